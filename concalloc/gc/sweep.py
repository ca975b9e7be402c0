"""Sweeping (mgcsweep.go; gcSweep and finishsweep_m from mgc.go).

Sweeping frees the objects the last mark left unmarked.  Go 1.19 has two
algorithms and so does this module's heap:

* the object reclaimer, sweepLocked.sweep: one span at a time, driven by
  mcentral.cacheSpan (for the span it is about to hand out), by sweepone
  (the background sweeper, proportional sweep, sweep termination) and by the
  stale-span path of mcentral.uncacheSpan;
* the span reclaimer, mheap.reclaim (in mheap.py): before the heap grows it
  looks for in-use spans with no mark at all (pageInUse &^ pageMarks) and
  sweeps them, so that whole spans come back before new pages are mapped.

A cycle's sweep, in Go's order (the collector, gc/cycle.py, calls these):

    mark termination, world stopped:
        gcSweep(h, mcaches)         flip sweepgen h -> h+2 ("p mcache not
                                    flushed" if a P skipped the last flip),
                                    queue every uncached in-use span,
                                    derive pageMarks, wake bgsweep
        gcPaceSweeper(h, trigger)   proportional-sweep rate for the cycle
        mcache.prepareForSweep()    every P: stale cached spans are swept
    world running:
        bgsweep, deductSweepCredit (before cacheSpan and large allocation),
        mheap.reclaim (before the heap grows), cacheSpan's own sweeps
    next cycle's sweep termination, world stopped:
        finishsweep_m(h)            sweep what is left, then wait until no
                                    sweeper is in flight

Ownership is a value, as in Go: sweepLocker.tryAcquire (the CAS sweepgen
h-2 -> h-1) returns a sweepLocked, and only a sweepLocked can sweep.  Every
potential sweeper first registers with sweep.active.begin() and leaves with
end(); sweep termination is "drained and no sweeper active" (isDone).  The
locker is used as `with sweep.active.begin() as sl:`, whose exit is the
end(): a sweeper that unwinds (a stopped run's Aborted) leaves too.

Where the model differs from Go:
* The unswept sets live here (sweepdata.unswept, one spanQueue per sweep
  class), not in the mcentrals: this mcentral is Go <= 1.14's, whose
  cacheSpan walks its own lists.  A span on both may be swept by cacheSpan
  first; sweepone then fails to acquire it and moves on, as 1.14's did.
* Go's sweepers cannot be preempted (m.locks++), so with the world stopped
  none is running and finishsweep_m only asserts it.  The background
  sweeper here is a thread that is not a P and does not stop with the
  world, so finishsweep_m waits (a sync-layer Cond) for it to leave,
  and gcSweep keeps the state "drained" while it builds the new cycle and
  publishes it (resets the state word) last.
* sweep.lock/parked/g: parking is an Event (sweepdata.wakeup) cleared
  before the sweeper re-checks isSweepDone and set by gcSweep after the
  reset, so no wake-up is lost and no lock is needed.
* pageMarks: Go sets them in greyobject while marking; gcSweep derives them
  from the mark bits with the world stopped, so any marker (and
  Heap.sweep_cycle's mark callback) feeds the span reclaimer.

Yield points (labels): "sweep.acquire" before the ownership CAS,
"sweep.sweep" once a span is owned (h-1) and before it is swept,
"sweep.span" in bgsweep between spans (Go's Gosched), "sweep.flip" in
gcSweep just after sweepgen moves (the background sweeper, which is not
stopped with the world, may run there).
"""

from __future__ import annotations

import time

from ..check.violation import Violation
from ..mspan import MSPAN_IN_USE
from ..sizeclasses import NUM_SPAN_CLASSES
from ..sync import AtomicInt, Rank, cas_attr, store_attr
from ..sysmem import PAGE_SIZE

# gcMode (mgc.go)
gcBackgroundMode, gcForceMode, gcForceBlockMode = 0, 1, 2

SWEEP_DRAINED_MASK = 1 << 31            # sweepDrainedMask
NUM_SWEEP_CLASSES = NUM_SPAN_CLASSES * 2  # numSweepClasses: per span class, full then partial
SWEEP_CLASS_DONE = (1 << 32) - 1        # sweepClassDone
SWEEP_MIN_HEAP_DISTANCE = 1 << 20       # gcPaceSweeper's margin below the trigger

YIELD_ACQUIRE = "sweep.acquire"
YIELD_SWEEP = "sweep.sweep"
YIELD_SPAN = "sweep.span"
YIELD_FLIP = "sweep.flip"


class SweepError(Violation):
    """A sweep invariant Go throws on."""

    def __init__(self, message: str, span=None, invariant: str = "sweep"):
        super().__init__(invariant, message, span=span)


# ---------------------------------------------------------------- activeSweep

class activeSweep:
    """Outstanding sweepers and the "drained" bit (Go's activeSweep).

    state: atomic (AtomicInt); the top bit says the unswept queues are
    empty, the rest counts sweepers between begin() and end().
    Model-only, for waiting until no sweeper is in flight (wait_idle): idle
    is a sync-layer Cond on mu (a LEAF mutex, so end() may take it under
    any allocator lock); nwait (atomic) counts waiters, so an end() that
    brings the count to 0 takes mu and notifies only when someone waits."""

    __slots__ = ("h", "state", "mu", "idle", "nwait")

    def __init__(self, h):
        self.h = h
        self.state = AtomicInt(0)                   # atomic
        self.mu = h.sync.mutex("sweep.active", Rank.LEAF, "sweep")
        self.idle = h.sync.cond(self.mu, "sweep.active.idle")
        self.nwait = AtomicInt(0)                   # atomic; changed with mu held

    def begin(self) -> "sweepLocker":
        """Register a sweeper.  An invalid locker means nothing is left to
        sweep (other sweepers may still be finishing)."""
        st = self.state
        while True:
            v = st.load()
            if v & SWEEP_DRAINED_MASK:
                return sweepLocker(self.h, self.h.sweepgen, False)
            if st.cas(v, v + 1):
                return sweepLocker(self.h, self.h.sweepgen, True)

    def end(self, sl: "sweepLocker") -> None:
        h = self.h
        if sl.sweepGen != h.sweepgen:
            raise SweepError(f"sweeper sweepgen {sl.sweepGen} mheap.sweepgen {h.sweepgen}: "
                             "sweeper left outstanding across sweep generations",
                             invariant="sweep.active")
        st = self.state
        while True:
            v = st.load()
            if (v & ~SWEEP_DRAINED_MASK) == 0:
                raise SweepError("mismatched begin/end of activeSweep", invariant="sweep.active")
            if st.cas(v, v - 1):
                if (v - 1) & ~SWEEP_DRAINED_MASK == 0 and self.nwait.load():
                    with self.mu:
                        self.idle.notify_all()
                return

    def markDrained(self) -> bool:
        """Record that the queues are empty; True for the call that did it."""
        st = self.state
        while True:
            v = st.load()
            if v & SWEEP_DRAINED_MASK:
                return False
            if st.cas(v, v | SWEEP_DRAINED_MASK):
                return True

    def sweepers(self) -> int:
        return self.state.load() & ~SWEEP_DRAINED_MASK

    def isDone(self) -> bool:
        """Drained and no sweeper in flight: this cycle's sweep is over."""
        return self.state.load() == SWEEP_DRAINED_MASK

    def reset(self) -> None:
        """World stopped: a new sweep cycle begins."""
        self.state.store(0)

    def wait_idle(self) -> None:
        """Block (through the sync layer) until no sweeper is in flight.
        Model-only: Go's sweepers cannot be in flight with the world stopped.
        The count is re-read with mu held after nwait is raised, and end()
        reads nwait after its decrement, so no wake-up is lost."""
        if not self.sweepers():
            return
        with self.mu:
            self.nwait.add(1)
            try:
                while self.sweepers():
                    self.idle.wait()
            finally:
                self.nwait.add(-1)


# ---------------------------------------------------------------- ownership

class sweepLocker:
    """Acquires sweep ownership of spans for one sweep generation.  As a
    `with` block it is one sweeper's registration: the exit is end()."""

    __slots__ = ("h", "sweepGen", "valid")

    def __init__(self, h, sweepGen: int, valid: bool):
        self.h = h
        self.sweepGen = sweepGen
        self.valid = valid

    def __enter__(self) -> "sweepLocker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.valid:
            self.h.sweep.active.end(self)

    def tryAcquire(self, s) -> "sweepLocked | None":
        """Own s for sweeping (CAS sweepgen h-2 -> h-1), or None."""
        if not self.valid:
            raise SweepError("use of invalid sweepLocker", invariant="sweep.active")
        sg = self.sweepGen
        if s.sweepgen != sg - 2:
            return None
        self.h.sync.yield_point(YIELD_ACQUIRE)
        if not cas_attr(s, "sweepgen", sg - 2, sg - 1):
            return None
        return sweepLocked(self.h, s)


class sweepLocked:
    """Sweep ownership of one span (sweepgen == h-1): the only handle that
    may sweep it.  Built by sweepLocker.tryAcquire, or directly by a caller
    that owns the span by other means (uncacheSpan's stale span)."""

    __slots__ = ("h", "mspan")

    def __init__(self, h, s):
        self.h = h
        self.mspan = s

    def sweep(self, preserve: bool) -> bool:
        """Free the unmarked objects: the marks become the allocation bits,
        fresh mark bits are allocated, the free-slot search restarts at 0 and
        the new sweepgen is published.  True if the span went back to the
        heap.  With preserve the caller keeps the span (it is about to cache
        it), so it is neither moved nor freed."""
        h, s = self.h, self.mspan
        if not preserve:
            self.mspan = None          # ownership is given up with the span
        if s is None:
            raise SweepError("mspan.sweep: use of a released sweepLocked: span swept twice",
                             invariant="sweep.bad_span_state")
        sg = h.sweepgen
        if s.state != MSPAN_IN_USE or s.sweepgen != sg - 1:
            raise SweepError(f"mspan.sweep: state={s.state} sweepgen={s.sweepgen} mheap.sweepgen={sg}: "
                             "mspan.sweep: bad span state", span=s, invariant="sweep.bad_span_state")
        h.sync.yield_point(YIELD_SWEEP)
        h.stats.add(pagesSwept=s.npages)
        sizeclass = s.spanclass >> 1
        _check_zombies(s)
        nalloc = s.countAlloc()
        nfreed = s.allocCount - nalloc
        if nalloc > s.allocCount:
            raise SweepError(f"runtime: nelems={s.nelems} nalloc={nalloc} previous allocCount={s.allocCount} "
                             f"nfreed={nfreed}\nfatal error: sweep increased allocation count", span=s)
        s.allocCount = nalloc
        # The new allocation bits first, then freeindex: the pointer oracle
        # reads freeindex, then allocBits, without a lock, so it never pairs
        # the new freeindex (0) with the old bits (which call a live object free).
        if "sweep-no-swap-bits" not in h.faults:    # the fault keeps the old allocBits
            s.allocBits = s.gcmarkBits
        s.freeindex = 0
        s.newMarkBits()
        s.refillAllocCache(0)
        if sizeclass != 0:
            if nfreed > 0:
                h.stats.add_small_free(sizeclass, nfreed)
                return h.central[s.spanclass].freeSpan(s, preserve)
            store_attr(s, "sweepgen", sg)
            return False
        store_attr(s, "sweepgen", sg)
        if nfreed > 0 and not preserve:
            h.stats.add(largeFree=s.elemsize, largeFreeCount=1)
            h.freeSpan(s)
            return True
        return False


def _check_zombies(s) -> None:
    """A marked slot at or after freeindex whose alloc bit is clear is a
    pointer to a free object (reportZombies)."""
    n, fi = s.nelems, s.freeindex
    if fi >= n:
        return
    mark = int.from_bytes(s.gcmarkBits, "little")
    alloc = int.from_bytes(s.allocBits, "little")
    zombies = ((mark & ~alloc) >> fi) & ((1 << (n - fi)) - 1)
    if zombies:
        i = fi + (zombies & -zombies).bit_length() - 1
        raise SweepError(
            f"runtime: marked free object in span {s.describe()}\n"
            f"  {s.startAddr + i * s.elemsize:#x} index {i} marked free\n"
            "fatal error: found pointer to free object", span=s, invariant="sweep.zombie")


# ---------------------------------------------------------------- the sweep queues

class spanQueue:
    """One sweep class's unswept spans, fixed at the flip (world stopped).
    pop is one atomic fetch-add on head, so any number of sweepers may
    drain it together; spans is never written while the world runs."""

    __slots__ = ("spans", "head")

    def __init__(self):
        self.spans: tuple = ()         # world stopped
        self.head = AtomicInt(0)       # atomic

    def pop(self):
        spans = self.spans
        if self.head.load() >= len(spans):
            return None
        i = self.head.add(1) - 1
        return spans[i] if i < len(spans) else None

    def reset(self, spans=()) -> None:
        self.spans = tuple(spans)
        self.head.store(0)

    def left(self) -> int:
        return max(0, len(self.spans) - self.head.load())


class sweepdata:
    """The state of sweeping (Go's global `sweep`), one per heap.

    active        activeSweep: atomic state word; idle Cond for wait_idle
    unswept       [NUM_SWEEP_CLASSES] spanQueue; rebuilt world stopped, popped atomically
    centralIndex  AtomicInt: the lowest sweep class that may hold work; only
                  grows while the world runs (update is an atomic max),
                  cleared world stopped
    wakeup        Event bgsweep parks on (set by gcSweep and wake())
    nbgsweep      AtomicInt: spans bgsweep swept (Go: owned by bgsweep)
    npausesweep   world stopped: spans swept during a pause
    """

    def __init__(self, h):
        self.active = activeSweep(h)
        self.unswept = [spanQueue() for _ in range(NUM_SWEEP_CLASSES)]
        self.centralIndex = AtomicInt(0)
        self.wakeup = h.sync.event("sweep.wakeup")
        self.nbgsweep = AtomicInt(0)
        self.npausesweep = 0

    def update_centralIndex(self, sc: int) -> None:
        """centralIndex = max(centralIndex, sc), atomically."""
        ci = self.centralIndex
        old = ci.load()
        while old < sc and not ci.cas(old, sc):
            old = ci.load()

    def wake(self) -> None:
        """Wake a parked bgsweep (to sweep, or to see that it should stop)."""
        self.wakeup.set()

    def unswept_left(self) -> int:
        return sum(q.left() for q in self.unswept)


def sweep_class(s) -> int:
    """A span's sweep class: its span class, then full (even) or partial (odd)."""
    return (s.spanclass << 1) | (0 if s.allocCount == s.nelems else 1)


def nextSpanForSweep(h):
    """Pop the next unswept span, lowest sweep class first; None when empty."""
    sw = h.sweep
    sc = sw.centralIndex.load()
    while sc < NUM_SWEEP_CLASSES:
        s = sw.unswept[sc].pop()
        if s is not None:
            sw.update_centralIndex(sc)
            return s
        sc += 1
    sw.update_centralIndex(SWEEP_CLASS_DONE)
    return None


# ---------------------------------------------------------------- sweepers

def sweepone(h) -> int:
    """Sweep one unswept span: pages it returned to the heap (0 if the span
    lives on), or -1 when nothing is left to sweep (Go's ^uintptr(0))."""
    sw = h.sweep
    with sw.active.begin() as sl:
        if not sl.valid:
            return -1
        npages = -1
        noMoreWork = False
        while True:
            s = nextSpanForSweep(h)
            if s is None:
                noMoreWork = sw.active.markDrained()
                break
            if s.state != MSPAN_IN_USE:
                # freed by another sweeper (cacheSpan, reclaim) after being swept
                if s.sweepgen not in (sl.sweepGen, sl.sweepGen + 3):
                    raise SweepError(f"runtime: bad span s.state={s.state} s.sweepgen={s.sweepgen} "
                                     f"sweepgen={sl.sweepGen}\nfatal error: non in-use span in unswept list",
                                     span=s, invariant="sweep.bad_span_state")
                continue
            ss = sl.tryAcquire(s)
            if ss is not None:
                npages = s.npages
                if ss.sweep(False):
                    h.reclaimCredit.add(npages)   # whole span freed: the page reclaimer may count it
                else:
                    npages = 0
                break
    if noMoreWork:
        h.scavenger.ready()                   # sweeping is done: the scavenger has work
    return npages


def isSweepDone(h) -> bool:
    return h.sweep.active.isDone()


def finishsweep_m(h) -> None:
    """Sweep termination (world stopped): sweep every span still unswept,
    then wait until no sweeper is in flight, so marking starts with every
    span at sweepgen h or h+3 (cached)."""
    sw = h.sweep
    while sweepone(h) != -1:
        sw.npausesweep += 1
    sw.active.wait_idle()
    if sw.active.sweepers() != 0:
        raise SweepError("active sweepers found at start of mark phase", invariant="sweep.active")
    for q in sw.unswept:
        q.reset()
    h.scavenger.wake()


def bgsweep(h, should_stop, yield_point=None) -> None:
    """The background sweeper's loop (run it on a thread of its own).

    Sweeps one span at a time, yielding between spans ("sweep.span"; under
    the free scheduler it also gives up the CPU, as Go's Gosched), and
    parks on sweep.wakeup once the cycle's sweep is done.  It returns when
    should_stop() is true; whoever makes it true calls h.sweep.wake() so a
    parked sweeper sees it."""
    sw = h.sweep
    free = not h.sync.scheduler.controlled

    def gosched():
        (yield_point or h.sync.yield_point)(YIELD_SPAN)
        if free:
            time.sleep(0)

    ev = h.sync.events
    while not should_stop():
        n = 0
        while sweepone(h) != -1:
            if ev and not n:
                ev.emit("gc_sweep_start", fn="bgsweep")
            n += 1
            sw.nbgsweep.add(1)
            gosched()
            if should_stop():
                return
        if ev and n:
            ev.emit("gc_sweep_done", spans=n)
        sw.wakeup.clear()
        if should_stop():
            return
        if not isSweepDone(h):
            # Drained but another sweeper is still in flight, or a flip came
            # in between: look again once no sweeper is in flight.  (Go spins
            # here; a spin would starve the other sweeper under a scheduler
            # that runs the highest-priority thread, such as PCT.)
            sw.active.wait_idle()
            continue
        sw.wakeup.wait()


# ---------------------------------------------------------------- the cycle

def _assert_mcaches_flushed(h, mcaches) -> None:
    """Every P flushed its mcache at the last flip (Go checks this in gcStart)."""
    sg = h.sweepgen
    for c in mcaches:
        if c.flushGen != sg:
            raise SweepError(f"runtime: p {c.pid} flushGen {c.flushGen} != sweepgen {sg}\n"
                             "fatal error: p mcache not flushed", invariant="sweep.mcache_not_flushed")


def gcSweep(h, mcaches, mode: int = gcBackgroundMode) -> None:
    """The sweepgen flip, at mark termination with the world stopped.

    Every P's mcache must have been flushed for the current sweepgen and
    every uncached span swept (finishsweep_m ran); both are checked.  The
    uncached in-use spans are queued for sweeping by sweep class, pageMarks
    are derived from the mark bits, and bgsweep is woken.  In
    gcForceBlockMode every span is swept before returning.  Afterwards the
    caller runs each P's mcache.prepareForSweep()."""
    _assert_mcaches_flushed(h, mcaches)
    sw = h.sweep
    # bgsweep is a thread that does not stop with the world: keep it out
    # (drained) until the new cycle is fully set up, and publish the cycle
    # by resetting the state word last.
    sw.active.markDrained()
    if sw.active.sweepers():
        raise SweepError("active sweepers at the sweepgen flip", invariant="sweep.active")
    with h.lock:
        old = h.sweepgen
        queues: list[list] = [[] for _ in range(NUM_SWEEP_CLASSES)]
        for ha in h.arenas:
            ha.pageMarks[:] = bytes(len(ha.pageMarks))
        for s in h.allspans:
            sg = s.sweepgen
            if sg != old and sg != old + 3:
                raise SweepError(f"span sweepgen {sg} at the flip of mheap.sweepgen {old} -> {old + 2}: "
                                 "span not swept before the sweepgen flip", span=s,
                                 invariant="sweep.unswept_at_flip")
            if sg == old:                      # uncached: queue it; cached ones are swept at uncache
                queues[sweep_class(s)].append(s)
            if s.gcmarkBits.count(0) != len(s.gcmarkBits):
                h.setPageMark(s.startAddr)
        h.sweepgen = old + 2
        h.sync.yield_point(YIELD_FLIP)
        h.stats.add(pagesSwept=-h.stats.get("pagesSwept"))
        h.sweepArenas = len(h.arenas)
        h.reclaimIndex.store(0)
        h.reclaimCredit.store(0)
        for q, spans in zip(sw.unswept, queues):
            q.reset(spans)
        sw.centralIndex.store(0)
        sw.active.reset()                      # last: sweepers may start now
    # The last cycle's rate and basis are stale now (pagesSwept restarted at
    # 0): no proportional sweep until gcPaceSweeper sets this cycle's rate
    # (Go calls it right after, with the world still stopped).
    h.sweepPagesPerByte = 0.0
    if mode == gcForceBlockMode:
        while sweepone(h) != -1:
            sw.npausesweep += 1
    else:
        sw.wake()
    h.lastHeapInUse = h.stats.get("heapInUse")   # memstats.lastHeapInUse, set right after gcSweep


# ---------------------------------------------------------------- proportional sweep

def gcPaceSweeper(h, trigger: int) -> None:
    """Set the proportional-sweep rate so that every in-use page is swept
    by the time heapLive reaches trigger (world stopped or mheap.lock)."""
    if isSweepDone(h):
        h.sweepPagesPerByte = 0.0
        return
    heapLiveBasis = h.gcController.heapLive.load()
    heapDistance = max(trigger - heapLiveBasis - SWEEP_MIN_HEAP_DISTANCE, PAGE_SIZE)
    pagesSwept = h.stats.get("pagesSwept")
    sweepDistancePages = h.stats.get("pagesInUse") - pagesSwept
    if sweepDistancePages <= 0:
        h.sweepPagesPerByte = 0.0
        return
    h.sweepPagesPerByte = sweepDistancePages / heapDistance
    h.sweepHeapLiveBasis = heapLiveBasis
    h.pagesSweptBasis.store(pagesSwept)        # last: tells sweepers to recompute their debt


def deductSweepCredit(h, spanBytes: int, callerSweepPages: int) -> None:
    """Proportional sweep: before taking a span of spanBytes, sweep until
    the pages swept this cycle keep up with heapLive's growth since the
    basis.  A caller that will sweep pages itself passes them in
    callerSweepPages.  mheap.lock must not be held."""
    if h.sweepPagesPerByte == 0:
        return
    while True:
        sweptBasis = h.pagesSweptBasis.load()
        live = h.gcController.heapLive.load()
        liveBasis = h.sweepHeapLiveBasis
        newHeapLive = spanBytes + (live - liveBasis if live > liveBasis else 0)
        pagesTarget = int(h.sweepPagesPerByte * newHeapLive) - callerSweepPages
        while pagesTarget > h.stats.get("pagesSwept") - sweptBasis:
            if sweepone(h) == -1:
                h.sweepPagesPerByte = 0.0
                return
            if h.pagesSweptBasis.load() != sweptBasis:
                break                            # pacing changed: recompute the debt
        else:
            return
