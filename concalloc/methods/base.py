"""Method: what every non-Go allocation method shares.

The survey's methods (bump, first/next/best fit, segregated fit) run on the
same real-memory reservation as Go's allocator: each takes "chunks", runs
of pages that the mheap hands out as large spans (so verify_heap and the
page accounting still see every page), and manages the inside of them
itself with the 16-byte block headers of header.py.  Every method has:

    one global lock        a concalloc.sync ranked mutex (rank HEAPLOCK),
                           taken by every allocation, no per-P caches
    malloc(m, size, typ)   what the Mutator API drives: under the lock try
                           the method's allocation (alloc_locked); when it
                           cannot (or the collection trigger is reached),
                           stop the world and collect (collect), then try
                           again, growing the heap if still nothing fits
    collect()              the stop-the-world collector (world stopped)
    check()                the method's checker (world stopped); run at
                           its stop-the-world points under heapcheck >= 1
    the pointer oracle     check_field / check_pointer for heapcheck=2

Stopping the world from an allocation: the allocating P is released first
(a P blocked in stopTheWorld holds up nobody, as a goroutine in
runtime.GC holds no P), the lock is never held while the world stops (a P
blocked on it is not at a safe point), and a P that finds that another P
collected while it waited for the world does not collect again.

Safe points.  Under these methods a P stops for a collection only at the top
of an allocation (and in m.gc()): loads and stores are yield points but
never park, so between two allocations no object moves.  That gives the
rule a workload keeps under the moving `bump` method: an address held in a
Python local across an allocation (its own or, with several Ps, while it is
parked) is stale; re-read it from its stack slot or its parent object after
each allocation.  The built-in workloads keep it; heapcheck=2 catches one
that does not ("mutator.stale_pointer").

Roots are Go's: every mutator's stack slots and its register (the last
allocation), the globals of the data segment (moduledata), and the objects
sync.Pool holds (syncpool.py; cleared at each collection as Go's
clearpools does, and emptied entirely by the moving method).

Collection trigger (GOGC, as Go's pacer sets its goal): collect once the
bytes allocated since the last collection reach the goal minus the live
heap, goal = max(heapminimum, live * (1 + GOGC/100)), heapminimum = 4 MiB *
GOGC/100; GOGC off never collects (the heap only grows).

Protection: every field below is guarded by `lock`, or written with the
world stopped (collect, check).  Statistics are read when the run is over.
"""

from __future__ import annotations

import bisect

from ..check.violation import throw
from ..malloc import ZEROBASE, _type_noscan
from ..sync import Rank
from ..sysmem import ARENA_BASE, PAGE_SHIFT, PAGE_SIZE, OutOfMemory
from . import header as H

HEAP_MINIMUM = 4 << 20
SAMPLE_CAP = 50_000          # search-length samples kept (every allocation until then)


class Method:
    name = "?"
    moving = False

    def __init__(self, rt):
        self.rt = rt
        cfg = rt.config
        self.cfg = cfg
        self.mheap = rt.heap.mheap
        self.sysmem = self.mheap.sysmem
        self.words = self.sysmem.words
        self.base = self.sysmem.base
        self.lock = rt.sync.mutex(f"alloc.{self.name}", Rank.HEAPLOCK)
        self.gogc = cfg.gogc
        self.heapminimum = max(PAGE_SIZE, HEAP_MINIMUM * max(cfg.gogc, 0) // 100) if cfg.gogc >= 0 \
            else HEAP_MINIMUM
        self.chunks: list[tuple[int, int]] = []   # sorted (start, end); lock
        self._starts: list[int] = []              # chunk starts, for bisect; lock
        self._spans: dict[int, object] = {}       # chunk start -> its mheap span; lock
        self.numgc = 0                            # lock (written with the world stopped)
        self.force = False                        # lock: m.gc_start() asked for a collection
        self.live_bytes = 0                       # after the last collection; lock
        self.since_gc = 0                         # bytes allocated since it; lock
        self.live_blocks = 0                      # allocated blocks now; lock
        s = self.stats = {                        # lock
            "allocs": 0, "bytes_requested": 0, "bytes_blocks": 0, "search_total": 0, "search_max": 0,
            "peak_heap": 0, "peak_live": 0, "pauses": [], "bytes_copied": 0, "collections": 0,
        }
        s["samples"] = []       # (live blocks, free blocks, search length) per allocation, capped
        s["frag"] = []          # (allocations so far, external, internal) at each collection
        self.gc = MethodGC(self)

    # --- the Mutator API's entry points -------------------------------------------------
    def bind(self, m) -> None:
        """Make mutator m allocate, load and store through this method."""
        from .oracle import bind_mutator
        bind_mutator(self, m)

    def malloc(self, m, size, typ) -> int:
        size, typ = _check_request(size, typ)
        if size == 0:
            return ZEROBASE
        with self.lock:
            x = self._try(size, typ)
            n = self.numgc
        if x:
            return x
        return self._alloc_slow(m, size, typ, n)

    def trigger_reached(self) -> bool:
        return self.gogc >= 0 and self.since_gc >= self.trigger_bytes()

    def _try(self, size, typ) -> int:
        """(lock held) the method's allocation, counted; 0 if it cannot or must collect first."""
        if self.force or self.trigger_reached():
            return 0
        x, visits, block = self.alloc_locked(size, typ)
        if x:
            self._count(size, block, visits)
        return x

    def _count(self, size: int, block: int, visits: int) -> None:
        s = self.stats
        s["allocs"] += 1
        s["bytes_requested"] += size
        s["bytes_blocks"] += block
        s["search_total"] += visits
        if visits > s["search_max"]:
            s["search_max"] = visits
        self.since_gc += block
        self.live_blocks += 1
        if len(s["samples"]) < SAMPLE_CAP:
            s["samples"].append((self.live_blocks, self.free_blocks(), visits))

    def _alloc_slow(self, m, size, typ, n_seen: int) -> int:
        reason = f"GC ({self.name})"
        self.stop_world(m, reason)
        try:
            with self.lock:
                # Collect if the trigger is reached (or asked for, or bump's space is
                # full); nothing fitting below the goal grows the heap instead, as
                # Go's heap grows between cycles.
                if self.numgc == n_seen and (self.force or self.moving or self.trigger_reached()):
                    self.run_collection(size)
                x, visits, block = self.alloc_locked(size, typ)
                if not x:
                    self.grow(H.block_size(size))
                    x, visits, block = self.alloc_locked(size, typ)
                if not x:
                    raise OutOfMemory(f"runtime: out of memory: cannot allocate {size}-byte block "
                                      f"({self.heap_bytes()} in use) [{self.name}]")
                self._count(size, block, visits)
                if m is None:
                    return x
                # Between starting the world and getting its P back this P holds
                # no P: another P may stop the world and collect (and move x).
                # x waits in the mutator's register, a root, as Go's mallocgc
                # frame holds it.
                m.regs[0] = x
        finally:
            self.start_world(m)
        return m.regs[0]

    def stop_world(self, m, reason: str) -> None:
        w = self.rt.world
        if m is not None:
            w.releasep(m.p)
        w.stopTheWorld(reason)

    def start_world(self, m) -> None:
        w = self.rt.world
        w.startTheWorld()
        if m is not None:
            w.acquirep(m.p)

    def run_collection(self, need: int = 0) -> None:
        """(world stopped, lock held) one collection, checked, timed and counted."""
        clock = self.rt.sched.clock
        hc = self.cfg.heapcheck
        self.numgc += 1
        n = self.numgc
        check = hc >= 2 or (hc == 1 and n & (n - 1) == 0)
        if check:
            self.check()
        t0 = clock()
        self.clearpools()
        self.collect(need)
        pause = clock() - t0
        if check:
            self.check_after()
        s = self.stats
        s["collections"] = n
        s["pauses"].append(pause)
        s["peak_live"] = max(s["peak_live"], self.live_bytes)
        ext, _total, _largest = self.external_fragmentation()
        s["frag"].append((s["allocs"], ext, self.internal_fragmentation()))
        self.since_gc = 0
        self.force = False

    def clearpools(self) -> None:
        """sync.Pool's cleanup at the start of a collection, as Go's clearpools:
        the primary caches become the victims, the old victims are dropped.
        A moving method drops everything (a second cleanup): the pools keep
        addresses where the copying collector cannot fix them."""
        pools = self.gc.pools
        if pools is not None:
            pools.poolCleanup()
            if self.moving:
                pools.poolCleanup()

    def pool_roots(self) -> list[int]:
        """Every object a sync.Pool holds (roots of the mark phase)."""
        pools = self.gc.pools
        return pools.roots() if pools is not None else []

    def trigger_bytes(self) -> int:
        goal = max(self.heapminimum, self.live_bytes * (100 + self.gogc) // 100)
        return max(goal - self.live_bytes, PAGE_SIZE)

    # --- what each method provides --------------------------------------------------------
    def alloc_locked(self, size: int, typ) -> tuple[int, int, int]:
        """(lock held) -> (address or 0, blocks visited, block bytes)."""
        raise NotImplementedError

    def collect(self, need: int) -> None:
        raise NotImplementedError

    def grow(self, need: int) -> None:
        raise NotImplementedError

    def check(self) -> None:
        raise NotImplementedError

    def check_after(self) -> None:
        """The checker right after a collection (default: the same as check)."""
        self.check()

    def free_blocks(self) -> int:
        return 0

    def stale_space(self, p: int) -> str:
        """A description of the space p lies in if objects have left it (moving methods), else ''."""
        return ""

    def in_use(self, p: int) -> bool:
        """p lies in the part of its chunk that holds blocks (all of it, but for bump)."""
        return True

    def external_fragmentation(self) -> tuple[float, int, int]:
        """(1 - largest free block / total free, total free, largest) now."""
        return 0.0, 0, 0

    def internal_fragmentation(self) -> float:
        """Bytes lost to rounding and headers over block bytes, over every allocation so far."""
        s = self.stats
        return 1 - s["bytes_requested"] / s["bytes_blocks"] if s["bytes_blocks"] else 0.0

    # --- chunks: page runs from the mheap -------------------------------------------------
    def take_chunk(self, nbytes: int) -> tuple[int, int]:
        """A run of pages for this method, taken from the mheap as a large span
        (lock held; mheap.lock ranks above HEAPLOCK)."""
        npages = -(-nbytes // PAGE_SIZE)
        if npages > (self.sysmem.reserve_bytes >> PAGE_SHIFT):
            raise OutOfMemory(f"runtime: out of memory: cannot allocate {nbytes}-byte block: larger than "
                              f"the whole {self.sysmem.reserve_bytes}-byte reservation")
        h = self.mheap
        s = h.alloc(npages, 1)
        s.freeindex, s.allocCount, s.allocCache = 1, 1, 0     # one object: the chunk (as allocLarge)
        h.stats.add(largeAlloc=npages << PAGE_SHIFT, largeAllocCount=1)
        if s.needzero:
            self.sysmem.memclr(s.startAddr, npages << PAGE_SHIFT)
        start, end = s.startAddr, s.startAddr + (npages << PAGE_SHIFT)
        i = bisect.bisect(self._starts, start)
        self._starts.insert(i, start)
        self.chunks.insert(i, (start, end))
        self._spans[start] = s
        self.stats["peak_heap"] = max(self.stats["peak_heap"], self.heap_bytes())
        return start, end

    def give_back(self, start: int) -> None:
        """Return a chunk's pages to the mheap (world stopped)."""
        s = self._spans.pop(start)
        i = self._starts.index(start)
        del self._starts[i]
        del self.chunks[i]
        s.allocCount = 0
        self.mheap.stats.add(largeFree=s.elemsize, largeFreeCount=1)
        s.needzero = 1
        self.mheap.freeSpan(s)

    def heap_bytes(self) -> int:
        return sum(e - s for s, e in self.chunks)

    def chunk_of(self, p: int) -> tuple[int, int] | None:
        i = bisect.bisect(self._starts, p) - 1
        if i >= 0:
            c = self.chunks[i]
            if p < c[1]:
                return c
        return None

    # --- word access ----------------------------------------------------------------------
    def ld(self, addr: int) -> int:
        return self.words[(addr - self.base) >> 3]

    def st(self, addr: int, v: int) -> None:
        self.words[(addr - self.base) >> 3] = v

    def in_arena(self, p: int) -> bool:
        return ARENA_BASE <= p < self.sysmem.end

    # --- roots ----------------------------------------------------------------------------
    def roots(self):
        """(container, index) of every root word: stack slots, registers, globals."""
        for m in self.rt.mutators:
            for i in range(len(m.stack)):
                yield m.stack, i
            for i in range(len(m.regs)):
                yield m.regs, i
        words = self.rt.heap.moduledata.words
        for i in range(len(words)):
            yield words, i

    def object_at(self, p: int) -> int:
        """The info word of the allocated object whose payload starts at p, or 0."""
        if p & 7 or self.chunk_of(p) is None:
            return 0
        w0, w1 = self.ld(p - H.HDR), self.ld(p - 8)
        if w0 & (H.FREE | H.FWD) or not H.is_info(w1):
            return 0
        return w1

    # --- the run's report ------------------------------------------------------------------
    def metrics(self) -> dict:
        s = self.stats
        n = s["allocs"]
        ext, total, largest = self.external_fragmentation()
        pauses = s["pauses"]
        return {
            "method": self.name, "allocs": n,
            "search_mean": s["search_total"] / n if n else 0.0, "search_max": s["search_max"],
            "internal_frag": self.internal_fragmentation(), "external_frag": ext,
            "free_bytes": total, "largest_free": largest,
            "peak_heap": s["peak_heap"], "peak_live": s["peak_live"],
            "collections": s["collections"], "pause_total": sum(pauses),
            "pause_max": max(pauses, default=0), "bytes_copied": s["bytes_copied"],
            "samples": list(s["samples"]), "frag": list(s["frag"]),
        }


def _check_request(size, typ):
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"mallocgc: size must be an int, got {type(size).__name__}")
    if size < 0:
        raise ValueError(f"mallocgc: negative size {size}")
    if typ is not None:
        if _type_noscan(typ):
            typ = None
        elif size % typ.size:
            raise ValueError(f"mallocgc: size {size} is not a whole number of {typ!r}")
    if size > H.MAX_REQ:
        raise OutOfMemory(f"runtime: out of memory: cannot allocate {size}-byte block")
    return int(size), typ


def bad_pointer(what: str, p: int) -> None:
    throw("gc.bad_pointer", f"{what} {p:#x} points into the heap but not at an allocated object: "
          "found bad pointer in Go heap (incorrect use of unsafe or cgo?)", address=p)


class MethodGC:
    """What the runtime and Mutator.gc() ask of a collector, for a method's
    stop-the-world collector (no threads of its own: a collection runs on
    the thread of the P that needs it)."""

    def __init__(self, method: Method):
        self.method = method
        self.cycles: list[dict] = []
        self.pools = None       # sync.Pool's registry (syncpool.registry installs it by CAS)

    # The survey's collectors run with the world stopped, so a violation
    # (violation_context) sees the phase off and the last collection's number.
    phase = 0   # gc.cycle.GC_OFF

    @property
    def numgc(self) -> int:
        return self.method.numgc

    @property
    def started(self) -> int:
        return self.method.numgc

    def start_threads(self, start_thread) -> None:
        pass

    def stop(self) -> None:
        pass

    def on_alloc_slow_path(self, c) -> None:
        pass

    def request_cycle(self) -> int:
        return self.method.numgc + 1

    def wait_cycle(self, n: int) -> None:
        """runtime.GC for a method: the caller's P is released already."""
        meth = self.method
        meth.stop_world(None, "GC (forced)")
        try:
            with meth.lock:
                if meth.numgc < n:
                    meth.run_collection()
        finally:
            meth.start_world(None)

    def sweep_all(self) -> None:
        pass

    def start_cycle_async(self) -> bool:
        with self.method.lock:
            self.method.force = True
        return True

    def memstats(self) -> dict:
        pauses = self.method.stats["pauses"]
        meth = self.method
        goal = meth.heap_bytes() if meth.moving else meth.live_bytes + meth.trigger_bytes()
        return {"NumGC": meth.numgc, "NumForcedGC": 0, "PauseTotalNs": sum(pauses),
                "PauseNs": pauses[-256:], "GCCPUFraction": 0.0, "NextGC": goal}

    def to_json(self) -> dict:
        return {"num_gc": self.method.numgc, "method": self.method.name, "barrier": "none",
                "stack_scan": "stw", "workers": 0, "cycles": []}
