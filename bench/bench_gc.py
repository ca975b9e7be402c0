"""Collector benchmarks: marking, pauses, the write barrier, throughput.

Figures (each ratio is measured against its floor in this run, floor and
subject repetitions interleaved, medians taken):

    gc.mark_vs_bfs             objects marked per second by the real marker
                               (gcStart, then gcDrain: markroot, scanstack,
                               scanobject, greyobject, the gcWork buffers,
                               then gcMarkDone / gcMarkTermination, untimed)
                               over a graph of scan objects in real memory,
                               divided by the objects per second of a bare
                               Python breadth-first walk of the same graph
                               reading the same words through Memory.
                               Target >= 0.33.
    gc.stw_mark_term_fraction  total mark-termination pause / total
                               concurrent-mark time, from the cycle records
                               (clock_ns) of real runs: 4 Ps, ring, GOGC 100,
                               heapcheck=0, gccheckmark off.  Target <= 0.05.
    gc.barrier_store_ratio     Mutator.store during mark (hybrid barrier
                               installed by gcStart's setGCPhase, its wbBuf
                               flushes included) over Mutator.store outside a
                               cycle (no barrier).  Target <= 2.  The stores
                               come right after gcStart, before any draining,
                               so the flushes grey what they shade.
    gc.barrier_store_ratio_marked  the same stores later in the same mark
                               phase, after the drain: every target already
                               marked.  No target.
    gc.barrier_store_ratio_bound   the same stores right after gcStart through
                               the same store path, with each full buffer
                               given to a flush that does only the per-pointer
                               work any flush must (its span lookups cut to a
                               dict lookup, no lock): a lower bound on barrier_store_ratio for
                               any Python version of Go's wbBufFlush1.  No
                               target.  Go 1.19 itself, on this test:
                               fidelity/go119/barrier.json.
    gc.throughput_ratio        ring allocations per second, 4 Ps, same steps,
                               with the collector on (GOGC 100) over with it
                               off (GOGC off).  Target >= 0.5.

The marking and barrier figures are timed in the bench thread's CPU time
(both sides run on it and never wait for another thread). They drive the
collector from the bench's own thread: a Runtime is built but not run, so no mutator or collector thread
exists, every P is idle and the world is effectively stopped.  The harness
(MarkHarness) calls GC.gcStart, mark.gcDrain, GC.gcMarkDone and
GC.gcMarkTermination -- the collector's own code, in the order its "gc"
thread runs them -- with the bench thread as the only marker.
"""

from __future__ import annotations

import random
import time
from collections import deque
from contextlib import contextmanager
from types import SimpleNamespace

from concalloc import mutator as _mutator
from concalloc.config import Config
from concalloc.gc import mark as _mark
from concalloc.memory import Type
from concalloc.mspan import MSPAN_IN_USE
from concalloc.runtime import Runtime

from .common import interleave, median, progress, timed_run

# The marking and barrier figures run on the bench's own thread and never wait
# for another: they are timed in that thread's CPU time, so that on a shared,
# loaded machine the time the thread spends descheduled lands on neither side
# (wall time made these ratios swing 2-3x from run to run at load 10+).
_pc = time.thread_time_ns

NODE = Type("bench_node", 32, [0, 1])     #: 4 words: two pointers (next, other), two scalars
NODE_PTR_OFFSETS = tuple(NODE.pointer_offsets(NODE.size))

# A workload that never runs: the bench thread plays the P's goroutine.
_IDLE_WORKLOAD = SimpleNamespace(slots=lambda cfg: 4, run=lambda m, cfg: None)


# --- the harness -------------------------------------------------------------------

class MarkHarness:
    """A Runtime with one P, not run, whose heap holds a graph of NODE objects
    rooted in the P's stack slot 0; the bench thread allocates and stores
    through the P's Mutator and drives the collector's cycle functions.

    The graph: `live` nodes chained through field 0 (each points to the one
    allocated before it; slot 0 holds the last), field 1 of each points to a
    random earlier node; after every `garbage_every` live nodes one
    unreachable node is allocated (pointing into the live ones), so the
    first cycle has garbage to leave white."""

    def __init__(self, live: int, garbage_every: int = 4, seed: int = 1, barrier: str = "hybrid"):
        cfg = Config(procs=1, gogc=-1, heapcheck=0, lock_stats=False, reserve_bytes=1 << 30,
                     barrier=barrier, gc_workers=1)
        self.rt = Runtime(cfg, workload=_IDLE_WORKLOAD)
        self.gc = self.rt.gc
        self.m = self.rt.mutators[0]
        self.mem = self.rt.heap.memory
        self.ncycles = 0
        self.nodes = self._build(live, garbage_every, random.Random(seed))

    def _build(self, live: int, garbage_every: int, rng: random.Random) -> list[int]:
        m = self.m
        nodes: list[int] = []
        prev = 0
        for i in range(live):
            x = m.alloc(NODE.size, NODE)
            m.set_slot(1, x)                 # x is a root while it is not yet linked
            if prev:
                m.store(x, 0, prev)
                m.store(x, 1, nodes[rng.randrange(len(nodes))])
            m.write_word(x, 2, i)
            nodes.append(x)
            prev = x
            m.set_slot(0, x)
            if garbage_every and i % garbage_every == garbage_every - 1:
                g = m.alloc(NODE.size, NODE)
                m.store(g, 0, x)
        m.clear_slot(1)
        m.regs[:] = [0, 0]                   # only slot 0 roots the graph
        return nodes

    def roots(self) -> list[int]:
        """Every root word the marker scans: the stack, the registers, the globals."""
        return list(self.m.stack) + list(self.m.regs) + self.gc.global_words()

    # --- the cycle, in the order GC.gc_cycle runs it --------------------------------
    def start(self) -> dict:
        """gcStart: sweep termination, setGCPhase(mark) (the barrier goes on),
        root jobs prepared, blackening enabled.  Returns the cycle record."""
        self.ncycles += 1
        rec = {"n": self.ncycles, "forced": True, "procs": len(self.gc.allp)}
        self.gc.gcStart(rec)
        rec["t_mark"] = self.gc.clock()
        return rec

    def drain(self) -> None:
        """The bench thread as the only mark worker: claim every root job and
        blacken until no grey object is left (gcDrain without preemption)."""
        _mark.gcDrain(self.gc, self.gc.gcw)

    def finish(self, rec: dict) -> None:
        """gcMarkDone (ragged barrier, world stop, re-check) and gcMarkTermination."""
        gc = self.gc
        gc.gcMarkDone(rec)
        gc.gcMarkTermination(rec, rec.pop("t_mark"))

    @contextmanager
    def mark_phase(self):
        """start(), the block, then every P's gcWork published, drain() and
        finish(): one whole cycle around what the block does during mark.
        Yields the cycle record.  (If the block raises, the cycle is left
        as it is.)"""
        rec = self.start()
        yield rec
        for p in self.gc.allp:
            p.gcw.dispose()
        self.drain()
        self.finish(rec)

    def garbage_span(self, typ: Type, count: int) -> tuple[int, object]:
        """Allocate `count` typ objects nobody references and run a cycle
        that leaves them white: the next start()'s sweep frees their span.
        Returns (their address, the span)."""
        m = self.m
        addr = m.alloc(count * typ.size, typ)
        m.regs[:] = [0] * len(m.regs)
        span = self.gc.h.spanOf(addr)
        with self.mark_phase():
            pass
        return addr, span

    def marked_objects(self) -> int:
        """Objects whose mark bit is set in the in-use small-object spans
        (between drain and finish; the graph has no large object)."""
        n = 0
        for s in list(self.gc.h.allspans):
            if s.state == MSPAN_IN_USE and s.spanclass >> 1:
                n += (int.from_bytes(s.gcmarkBits, "little") & ((1 << s.nelems) - 1)).bit_count()
        return n

    def close(self) -> None:
        self.rt.close()


def bfs(roots: list[int], load, offsets=NODE_PTR_OFFSETS) -> int:
    """The floor: a bare breadth-first walk of the NODE graph from roots,
    reading each node's pointer words through Memory.load.  Returns the
    number of objects reached."""
    seen = set()
    q = deque()
    for r in roots:
        if r and r not in seen:
            seen.add(r)
            q.append(r)
    pop, push, add = q.popleft, q.append, seen.add
    while q:
        x = pop()
        for off in offsets:
            p = load(x + off)
            if p and p not in seen:
                add(p)
                push(p)
    return len(seen)


# --- gc.mark_vs_bfs -------------------------------------------------------------------

def mark_vs_bfs(reps: int, live: int) -> dict[str, float]:
    h = MarkHarness(live)
    try:
        # Cycle 1 frees the garbage, so every timed cycle marks the same live graph.
        rec = h.start()
        h.drain()
        h.finish(rec)
        counts: list[tuple[int, int]] = []

        def subject(pc=_pc) -> float:
            rec = h.start()
            t0 = pc()
            h.drain()
            dt = pc() - t0
            n = h.marked_objects()
            h.finish(rec)
            counts.append((n, rec["heap_marked"]))
            return dt / n

        reached = [0]

        def floor(pc=_pc, load=h.mem.load) -> float:
            roots = h.roots()
            t0 = pc()
            n = bfs(roots, load)
            dt = pc() - t0
            reached[0] = n
            return dt / n

        fs, ss = interleave(floor, subject, reps)
        want = reached[0]
        for n, heap_marked in counts:
            if n != want or heap_marked != want * NODE.size:
                raise AssertionError(f"the marker marked {n} objects ({heap_marked} bytes), "
                                     f"the walk reached {want}")
        return {
            "gc.mark_bfs_ns_per_object": median(fs),
            "gc.mark_ns_per_object": median(ss),
            "gc.mark_objects_per_s": 1e9 / median(ss),
            "gc.mark_objects": float(want),
            "gc.mark_vs_bfs": median(fs) / median(ss),
        }
    finally:
        h.close()


# --- gc.barrier_store_ratio -------------------------------------------------------------

def barrier_store_ratio(reps: int, live: int, batch: int) -> dict[str, float]:
    """Mutator.store(obj, 1, ptr) batches with the hybrid barrier on (inside
    a cycle, after gcStart and before any draining: the barrier's buffer
    flushes grey what they shade) vs off (between cycles).  The same
    (obj, ptr) pairs on both sides; the untimed rest of each cycle (drain,
    mark termination) runs after the barrier batch.  Then the bound (see
    barrier_flush_bound) against the same floor on the same graph."""
    h = MarkHarness(live)
    try:
        rng = random.Random(2)
        nodes = h.nodes
        pairs = [(nodes[rng.randrange(live)], nodes[rng.randrange(live)]) for _ in range(batch)]
        m = h.m
        calls = [0]

        def stores(pc=_pc) -> float:
            store = m.store     # looked up per batch: installing the barrier may rebind it
            t0 = pc()
            for obj, ptr in pairs:
                store(obj, 1, ptr)
            return (pc() - t0) / batch

        late: list[float] = []

        def subject() -> float:
            rec = h.start()
            if m._wb is None or m._wb.kind != "hybrid":
                raise AssertionError("gcStart did not install the hybrid barrier")
            ns = stores()
            calls[0] += m.p.wbCalls
            h.drain()
            # Late in mark: every object reachable is marked, so the flushes
            # only look the pointers up (gcMarkDone flushes what is left).
            late.append(stores())
            h.finish(rec)
            return ns

        def floor() -> float:
            if m._wb is not None:
                raise AssertionError("a barrier is installed outside the cycle")
            return stores()

        fs, ss = interleave(floor, subject, reps)
        if calls[0] != reps * batch:
            raise AssertionError(f"{calls[0]} barrier calls for {reps * batch} stores during mark")
        fs2, bs = interleave(floor, barrier_flush_bound(h, stores), reps)
        return {
            "gc.store_nobarrier_ns": median(fs),
            "gc.store_barrier_ns": median(ss),
            "gc.barrier_store_ratio": median(ss) / median(fs),
            "gc.store_barrier_marked_ns": median(late),
            "gc.barrier_store_ratio_marked": median(late) / median(fs),
            "gc.store_barrier_bound_ns": median(bs),
            "gc.barrier_store_ratio_bound": median(bs) / median(fs2),
        }
    finally:
        h.close()


def barrier_flush_bound(h: MarkHarness, stores):
    """The subject of gc.barrier_store_ratio_bound: the same stores right
    after gcStart, through the same store path (the quiet hybrid barrier's
    append), but each full buffer handed to a flush that does only what any
    flush must do per pointer -- skip nil, find the object's mark bit, test
    it, set it and queue the object if it was clear -- with the finding cut
    to one dict lookup (each node to its bit, built before timing), no
    lock, no span checks, on zeroed copies of the mark bits.  It is not a correct
    flush; it is a lower bound on what Go's wbBufFlush1 can cost written in
    Python, so a bound above 2 says that no version of it meets the target
    (docs/gc-bench.md).

    Leaving the real marks alone is safe here: nothing is black before the
    drain (no root scanned, nothing allocated), and every node stays
    reachable through field 0, which no store touches."""
    gc, m = h.gc, h.m
    copies: dict[int, bytearray] = {}
    where: dict[int, tuple[bytearray, int, int]] = {}
    for x in h.nodes:
        _, s, idx = gc.h.findObject(x)
        bits = copies.setdefault(id(s), bytearray(len(s.gcmarkBits)))
        where[x] = (bits, idx >> 3, 1 << (idx & 7))
    grey: list[int] = []

    def flush(gc, p) -> bool:
        buf = p.wbBuf
        p.wbBuf = []
        for ptr in buf:
            if ptr:
                bits, i, bit = where[ptr]
                old = bits[i]
                if not old & bit:
                    bits[i] = old | bit
                    grey.append(ptr)
        return True

    def subject() -> float:
        for bits in copies.values():
            bits[:] = bytes(len(bits))
        grey.clear()
        rec = h.start()
        if getattr(m.store, "__func__", None) is not _mutator.Mutator._store_hybrid_quiet:
            raise AssertionError("the quiet hybrid store is not installed: the bound needs its path")
        real, _mutator.wbBufFlush1 = _mutator.wbBufFlush1, flush
        try:
            ns = stores()
        finally:
            _mutator.wbBufFlush1 = real
        if not grey:
            raise AssertionError("the bound's flush greyed nothing")
        m.p.wbBuf = []          # the unflushed rest: dropped, as the flushes were
        h.drain()
        h.finish(rec)
        return ns

    return subject


# --- real runs: gc.stw_mark_term_fraction, gc.throughput_ratio ---------------------------

RUN = Config(procs=4, workload="ring", live=1000, size=256, heapcheck=0, gccheckmark=False,
             lock_stats=False, reserve_bytes=1 << 30)


def _timed_run(cfg: Config):
    """(seconds, allocations, cycle records) of one run, construction excluded."""
    dt, n, res = timed_run(cfg)
    return dt, n, res.gc["cycles"]


def stw_mark_term_fraction(reps: int, steps: int, gogc: int = 100) -> dict[str, float]:
    """Per run: sum of the cycles' mark-termination clock time (clock_ns[2])
    over the sum of their concurrent-mark time (clock_ns[1]); the median
    over reps runs.  Forced cycles: none (the pacer triggers them all)."""
    fractions, ncycles, stw2, marks = [], [], [], []
    for _ in range(reps):
        _, _, cycles = _timed_run(RUN.replace(gogc=gogc, steps=steps))
        if not cycles:
            raise AssertionError(f"no GC cycle in {steps} steps x 4 Ps: raise steps")
        s2 = sum(c["clock_ns"][2] for c in cycles)
        mk = sum(c["clock_ns"][1] for c in cycles)
        fractions.append(s2 / mk)
        ncycles.append(len(cycles))
        stw2.append(s2 / len(cycles))
        marks.append(mk / len(cycles))
    return {
        "gc.stw_mark_term_fraction": median(fractions),
        "gc.stw_mark_term_ns": median(stw2),
        "gc.concurrent_mark_ns": median(marks),
        "gc.stw_cycles_per_run": median(ncycles),
    }


def throughput_ratio(reps: int, steps: int, gogc: int = 100) -> dict[str, float]:
    ncycles: list[int] = []

    def run(gogc: int) -> float:
        dt, n, cycles = _timed_run(RUN.replace(gogc=gogc, steps=steps))
        if gogc >= 0:
            ncycles.append(len(cycles))
        elif cycles:
            raise AssertionError("GOGC off ran a cycle")
        return dt * 1e9 / n

    fs, ss = interleave(lambda: run(-1), lambda: run(gogc), reps)
    return {
        "gc.allocs_per_s_gc_off": 1e9 / median(fs),
        "gc.allocs_per_s_gc_on": 1e9 / median(ss),
        "gc.throughput_cycles_per_run": median(ncycles),
        "gc.throughput_ratio": median(fs) / median(ss),
    }


#: (reps, live nodes of the marking graph, stores per barrier batch, ring steps)
SETTINGS = {"tiny": (2, 500, 512, 2000), "quick": (5, 20000, 4096, 12000),
            "full": (11, 50000, 8192, 30000)}


def barrier_graph(live: int) -> int:
    """Nodes of the barrier figures' graph (fidelity/barrier's -live in Go)."""
    return max(live // 4, 256)


def run(quick: bool = False, tiny: bool = False) -> dict[str, float]:
    """tiny: a smoke run of a few seconds for the tests, with GOGC 10 so that
    its short runs see cycles at all (its figures are sane, not the bench's)."""
    gogc = 10 if tiny else 100
    reps, live, batch, steps = SETTINGS["tiny" if tiny else "quick" if quick else "full"]
    out: dict[str, float] = {}
    progress(f"gc: marker vs breadth-first walk, {live} live objects, {reps} reps")
    out.update(mark_vs_bfs(reps, live))
    progress(f"gc: store with / without the hybrid barrier, {reps} batches of {batch}")
    out.update(barrier_store_ratio(reps, barrier_graph(live), batch))
    run_reps = 2 if tiny else 3 if quick else 5
    progress(f"gc: mark termination vs concurrent mark, {run_reps} runs of 4 Ps x {steps} steps")
    out.update(stw_mark_term_fraction(run_reps, steps, gogc))
    progress(f"gc: throughput GOGC {gogc} vs off, {run_reps} runs each of 4 Ps x {steps} steps")
    out.update(throughput_ratio(run_reps, steps, gogc))
    return out
