"""sync.Pool as Go 1.13+ builds it (sync/pool.go, sync/poolqueue.go), over real heap objects.

A Pool caches allocated-but-unused objects so a later Get can skip the
allocator.  Its shape, as in Go:

    Pool.local   one poolLocal per P (GOMAXPROCS of them), made on first
                 use after each cleanup (pinSlow):
                   private   one object, only its P touches it
                   shared    a poolChain: a list of poolDequeue rings, each
                             twice the last (8, 16, ...); the owner pushes
                             and pops at the head, other Ps steal at the tail
    Pool.victim  last cycle's local, still served by Get (getSlow)

    Put(x):  private if empty, else shared.pushHead
    Get():   private, shared.popHead, then getSlow: steal popTail from each
             other P, then the victim's private and shared; only then New()

    poolCleanup (world stopped, at the start of every GC cycle, after
    finishsweep_m as Go's clearpools): drop every victim, move every local
    to victim.  An object Put before cycle N is still served during cycle N
    (from the victim) and dropped by cycle N+1's start, so that cycle's
    sweep frees it unless a Get took it back meanwhile.

What differs from Go, and why:

* Go's poolDequeue is lock-free (one CAS on a packed head/tail word, slots
  nil'd by the consumer).  Here each P's shared chain is protected by one
  Mutex per (pool, P) (`PoolLock`, rank LEAF): its owner pushes and pops the
  head under it, thieves pop the tail under it.  The rings keep Go's other
  property: a slot outside [tail, head) is always 0, so a popped object is
  not retained (checked by check_pool).
* Go's Pool stores interface values in heap-allocated poolLocal arrays,
  reached from the Pool (a global), so the collector finds pooled objects
  through the data segment and every store into them takes the write
  barrier.  Here the poolLocal arrays are Python structures, so the pools
  are an extra root set scanned with the globals (GC.global_words, which
  markroot's data-segment job and checkmark read), and Put and Get take the
  barrier themselves: while the write barrier is on (mark), the object put
  in or taken out is recorded in the P's wbBuf, as Go's hybrid barrier
  records both the old and new pointer of a pool-slot store.  The root scan
  reads the slots racily; whatever it misses entered or left the pool
  during mark, and was shaded then.
* Objects are addresses; New is fn(m) -> address (an allocation on m's P).

Pinning: Go pins the goroutine to its P (no preemption, so no GC) for the
whole of Put/Get.  Here Put and Get reach no safe point (no allocation,
load or store of the Mutator; New runs after the pool is left), so the world
cannot stop inside them: poolCleanup never sees a pool operation half done.

Protection:
  Pool.local, Pool.victim, victimSize: installed under allPoolsMu (pinSlow)
      or the world stopped (poolCleanup); read by Put/Get with single loads
      (Go's load-acquire), never in the middle of a cleanup (see Pinning).
  poolLocal.private: owned by its P; read racily by the root scan.
  poolLocal.shared and its rings: the (pool, P) PoolLock.
  PoolRegistry.allPools / oldPools: allPoolsMu, or the world stopped.
  per-P counters (Pool.stats[pid]): owned by that P; summed racily.
"""

from __future__ import annotations

from .check.violation import throw
from .gc.barrier import WBBUF_ENTRIES, wbBufFlush1
from .sync import Rank, cas_attr

DEQUEUE_INIT = 8                 #: the first ring of a chain (Go: poolChain's initSize)
DEQUEUE_LIMIT = 1 << 30          #: a ring never grows past this (Go: dequeueLimit)
STATS = ("gets", "puts", "private", "shared", "steals", "victim", "news", "empty")


class poolDequeue:
    """A fixed-size ring of object addresses; head and tail are free-running
    counters (index = counter & (len-1)).  The owner's PoolLock protects it."""

    __slots__ = ("vals", "head", "tail")

    def __init__(self, n: int):
        self.vals = [0] * n
        self.head = 0            # next slot to fill
        self.tail = 0            # oldest object

    def pushHead(self, x: int) -> bool:
        n = len(self.vals)
        if self.head - self.tail == n:
            return False                            # full
        i = self.head & (n - 1)
        if self.vals[i]:
            return False                            # (lock-free Go: a thief still clearing it)
        self.vals[i] = x
        self.head += 1
        return True

    def popHead(self) -> int:
        if self.head == self.tail:
            return 0
        self.head -= 1
        i = self.head & (len(self.vals) - 1)
        x, self.vals[i] = self.vals[i], 0
        return x

    def popTail(self) -> int:
        if self.head == self.tail:
            return 0
        i = self.tail & (len(self.vals) - 1)
        x, self.vals[i] = self.vals[i], 0          # nil the slot: no retention
        self.tail += 1
        return x

    def values(self) -> list[int]:
        n = len(self.vals)
        return [self.vals[i & (n - 1)] for i in range(self.tail, self.head)]


class poolChain:
    """Rings from tail (elts[0], where thieves pop) to head (elts[-1], where
    the owner pushes); a full head ring gets a successor twice its size, a
    drained tail ring is dropped."""

    __slots__ = ("elts",)

    def __init__(self):
        self.elts: list[poolDequeue] = []

    def pushHead(self, x: int) -> None:
        if not self.elts:
            self.elts.append(poolDequeue(DEQUEUE_INIT))
        d = self.elts[-1]
        if d.pushHead(x):
            return
        d2 = poolDequeue(min(2 * len(d.vals), DEQUEUE_LIMIT))
        self.elts.append(d2)
        d2.pushHead(x)

    def popHead(self) -> int:
        for d in reversed(self.elts):               # back up into older rings
            x = d.popHead()
            if x:
                return x
        return 0

    def popTail(self) -> int:
        while self.elts:
            x = self.elts[0].popTail()
            if x:
                return x
            if len(self.elts) == 1:
                return 0
            self.elts.pop(0)                        # drained and not the head: drop it
        return 0

    def values(self) -> list[int]:
        return [x for d in self.elts for x in d.values()]


class poolLocal:
    __slots__ = ("private", "shared", "lock")

    def __init__(self, lock):
        self.private = 0             # owned by its P
        self.shared = poolChain()    # lock
        self.lock = lock             # the (pool, P) PoolLock, shared by local and victim

    def values(self) -> list[int]:
        with self.lock:
            shared = self.shared.values()
        p = self.private
        return ([p] if p else []) + shared


class Pool:
    """One sync.Pool.  Build it with PoolRegistry.pool (or syncpool.pool)."""

    def __init__(self, reg: "PoolRegistry", name: str, new=None):
        self.reg = reg
        self.name = name
        self.New = new                     # fn(m) -> address, or None (Get returns 0)
        self.local: list[poolLocal] | None = None    # see Protection
        self.victim: list[poolLocal] | None = None
        self.victimSize = 0
        self.locks = [reg.sync.mutex(f"syncpool.{name}.P{i}", Rank.LEAF, "syncpool.local")
                      for i in range(reg.nprocs)]
        self.stats = [dict.fromkeys(STATS, 0) for _ in range(reg.nprocs)]   # owned by P i

    # --- Put / Get ------------------------------------------------------------

    def Put(self, m, x: int) -> None:
        """Add the object at x to the pool (0 is ignored, as Go ignores nil)."""
        if not x:
            return
        pid = m.p.id
        l = self.pin(pid)
        self.reg.shade(m, x)
        self.stats[pid]["puts"] += 1
        if not l.private:
            l.private = x
            return
        with l.lock:
            l.shared.pushHead(x)

    def Get(self, m) -> int:
        """An object from the pool (removed from it), else New(m), else 0."""
        pid = m.p.id
        st = self.stats[pid]
        st["gets"] += 1
        l = self.pin(pid)
        x, l.private = l.private, 0
        if x:
            st["private"] += 1
        else:
            with l.lock:
                x = l.shared.popHead()
            if x:
                st["shared"] += 1
            else:
                x = self.getSlow(pid, st)
        if x:
            self.reg.shade(m, x)           # leaving the pool while marking: keep it grey
            return x
        if self.New is None:
            st["empty"] += 1
            return 0
        st["news"] += 1
        return self.New(m)

    def getSlow(self, pid: int, st: dict) -> int:
        locals_ = self.local
        size = len(locals_)
        for i in range(size):              # steal from the other Ps (then our own tail)
            l = locals_[(pid + i + 1) % size]
            with l.lock:
                x = l.shared.popTail()
            if x:
                st["steals"] += 1
                return x
        # The victim only after every primary cache, so that its objects age out.
        victim, vsize = self.victim, self.victimSize
        if victim is None or pid >= vsize:
            return 0
        l = victim[pid]
        x, l.private = l.private, 0
        if x:
            st["victim"] += 1
            return x
        for i in range(vsize):
            l = victim[(pid + i) % vsize]
            with l.lock:
                x = l.shared.popTail()
            if x:
                st["victim"] += 1
                return x
        self.victimSize = 0                # empty: later Gets skip it
        return 0

    def pin(self, pid: int) -> poolLocal:
        local = self.local
        if local is not None and pid < len(local):
            return local[pid]
        return self.pinSlow(pid)

    def pinSlow(self, pid: int) -> poolLocal:
        reg = self.reg
        with reg.allPoolsMu:
            if self.local is None:
                reg.allPools.append(self)
                self.local = [poolLocal(lk) for lk in self.locks]
            return self.local[pid]

    # --- observation ------------------------------------------------------------

    def primary_values(self) -> list[int]:
        return [x for l in (self.local or ()) for x in l.values()]

    def victim_values(self) -> list[int]:
        return [x for l in (self.victim or ()) for x in l.values()]

    def counters(self) -> dict[str, int]:
        """The per-P counters summed (racy while the run goes on)."""
        return {k: sum(s[k] for s in self.stats) for k in STATS}


class PoolRegistry:
    """The runtime's side of sync.Pool: allPools, oldPools and poolCleanup
    for one Runtime (rt.gc.pools)."""

    def __init__(self, rt):
        self.rt = rt
        self.sync = rt.sync
        self.nprocs = len(rt.allp)
        self.allPoolsMu = rt.sync.mutex("syncpool.allPoolsMu", Rank.LEAF)
        self.pools: list[Pool] = []        # allPoolsMu: every pool ever made, for the root scan
        self.allPools: list[Pool] = []     # allPoolsMu or world stopped: pools with a local
        self.oldPools: list[Pool] = []     # world stopped: pools with a victim
        self.cleanups = 0                  # world stopped
        self.dropped = 0                   # world stopped: objects dropped with their victim

    def pool(self, name: str, new=None) -> Pool:
        """The pool called name, made on first use."""
        with self.allPoolsMu:
            for p in self.pools:
                if p.name == name:
                    return p
        p = Pool(self, name, new)          # mutexes are made outside allPoolsMu
        with self.allPoolsMu:
            for q in self.pools:
                if q.name == name:
                    return q
            self.pools.append(p)
        return p

    def shade(self, m, x: int) -> None:
        """The write barrier for a pool slot (see the module comment): while
        it is on, x goes into the P's wbBuf."""
        if m.rt.write_barrier is None:
            return
        p = m.p
        buf = p.wbBuf
        buf.append(x)
        if len(buf) >= WBBUF_ENTRIES:
            wbBufFlush1(m.rt.gc, p)

    def poolCleanup(self) -> None:
        """Go's poolCleanup (world stopped, start of a GC cycle): drop the
        victims, demote every local to victim."""
        if self.rt.config.heapcheck >= 1:
            check_pool(self)
        for p in self.oldPools:
            self.dropped += len(p.victim_values())
            p.victim = None
            p.victimSize = 0
        for p in self.allPools:
            p.victim = p.local
            p.victimSize = len(p.local)
            p.local = None
        self.oldPools, self.allPools = self.allPools, []
        self.cleanups += 1

    def roots(self) -> list[int]:
        """Every pooled object, primary and victim: roots for the collector."""
        with self.allPoolsMu:
            pools = list(self.pools)
        return [x for p in pools for x in p.primary_values() + p.victim_values()]


def registry(rt) -> PoolRegistry:
    """rt's PoolRegistry, installed as rt.gc.pools on first use (Go's
    runtime_registerPoolCleanup).  Call it before the mutators start (a
    workload's setup, or before rt.run())."""
    reg = rt.gc.pools
    if reg is None:
        new = PoolRegistry(rt)
        cas_attr(rt.gc, "pools", None, new)     # two Ps racing: one registry wins
        reg = rt.gc.pools
    return reg


def pool(rt, name: str, new=None) -> Pool:
    """The sync.Pool `name` of runtime rt (made on first use)."""
    return registry(rt).pool(name, new)


# --- invariants ------------------------------------------------------------------

def check_pool(reg: PoolRegistry) -> None:
    """Every pool (world stopped, or no mutator running):

    syncpool.freed_object   a pooled object is an allocated heap object
    syncpool.duplicate      no object is in the pools twice
    syncpool.victim_overlap an object is in a pool's primary or its victim, not both
    syncpool.dequeue        each ring: 0 <= head-tail <= len, slots in
                            [tail, head) hold an object, slots outside are 0
    syncpool.local_size     a local array has one poolLocal per P
    """
    h = reg.rt.heap.mheap
    seen: dict[int, str] = {}
    for p in reg.pools:
        for arr, what in ((p.local, "local"), (p.victim, "victim")):
            if arr is not None and len(arr) != reg.nprocs:
                throw("syncpool.local_size", f"sync.Pool {p.name}: {what} has {len(arr)} poolLocals "
                      f"for {reg.nprocs} Ps")
            for l in arr or ():
                for d in l.shared.elts:
                    _check_dequeue(p, d)
        prim = set(p.primary_values())
        both = prim & set(p.victim_values())
        if both:
            x = min(both)
            throw("syncpool.victim_overlap", f"sync.Pool {p.name}: object {x:#x} is in both the "
                  "primary cache and the victim cache", address=x)
        for x in p.primary_values() + p.victim_values():
            if x in seen:
                throw("syncpool.duplicate", f"sync.Pool {p.name}: object {x:#x} is pooled twice "
                      f"(also in {seen[x]}): a Put of an object already in the pool", address=x)
            seen[x] = p.name
            _check_allocated(h, p, x)


def _check_dequeue(p: Pool, d: poolDequeue) -> None:
    n = len(d.vals)
    if n & (n - 1) or not 0 <= d.head - d.tail <= n:
        throw("syncpool.dequeue", f"sync.Pool {p.name}: ring of {n} with head {d.head} tail {d.tail}")
    live = {i & (n - 1) for i in range(d.tail, d.head)}
    for i, v in enumerate(d.vals):
        if (i in live) != bool(v):
            throw("syncpool.dequeue", f"sync.Pool {p.name}: ring slot {i} is "
                  + ("empty inside [tail, head)" if i in live else f"{v:#x} outside [tail, head) "
                     "(a popped object still retained)"))


def _check_allocated(h, p: Pool, x: int) -> None:
    s = h.spanOfHeap(x)
    if s is None or s.isFree(s.objIndex(x)):
        throw("syncpool.freed_object", f"sync.Pool {p.name} holds {x:#x}, which is not an "
              "allocated object: the collector freed a pooled object", span=s, address=x)
