"""Sweeping as Go 1.19 does it (gc/sweep.py, mheap.reclaim): sweep
termination, the sweepgen flip's checks, proportional sweep, the span
reclaimer, the background sweeper next to allocating threads, and the
ownership protocol (the sweepgen CAS h-2 -> h-1)."""

from __future__ import annotations

import threading
import time

import pytest

from concalloc import Heap
from concalloc.gc import sweep as gcsweep
from concalloc.gc.sweep import (SweepError, bgsweep, deductSweepCredit, finishsweep_m, gcBackgroundMode,
                                gcPaceSweeper, gcSweep, isSweepDone, sweepLocked, sweepone)
from concalloc.sync import SyncContext, ThreadFailure, make_scheduler
from concalloc.sysmem import PAGE_SHIFT, PAGE_SIZE

from alloc_helpers import span_of

MiB = 1 << 20
JOIN = 30.0          # safety net for joins; nothing asserts on time


def _fill(h: Heap, sizes, n: int, p: int = 0) -> list[int]:
    return [h.malloc(sizes[i % len(sizes)], p=p) for i in range(n)]


def _mark_every_other(s) -> None:
    """Keep every other allocated slot of s (so no span is empty: the
    reclaimer skips them all)."""
    for k, i in enumerate(s.allocated_indices()):
        if k % 2 == 0:
            s.setMarked(i)


def _flip(h: Heap, mark=None) -> None:
    """Mark termination without sweeping: flip, then every P flushes."""
    h.sweep_cycle(mark, mode=gcBackgroundMode)


def _assert_all_swept(h: Heap) -> None:
    mh = h.mheap
    sg = mh.sweepgen
    bad = [s for s in mh.allspans if s.sweepgen not in (sg, sg + 3)]
    assert not bad, f"{len(bad)} spans not swept, e.g. {bad[0].describe()}"


def _heap_sys(h: Heap) -> int:
    st = h.mheap.stats
    return st.get("heapInUse") + st.get("heapFree") + st.get("heapReleased")


# ---------------------------------------------------------------- sweep termination

def test_finishsweep_m_waits_for_a_sweeper_in_flight(heap):
    h = heap.mheap
    _fill(heap, [64, 128, 1024], 3000)
    _flip(heap, _mark_every_other)
    sl = h.sweep.active.begin()                 # a sweeper that owns one span...
    s = gcsweep.nextSpanForSweep(h)
    ss = sl.tryAcquire(s)
    assert ss is not None and s.sweepgen == h.sweepgen - 1
    done = threading.Event()

    def terminate():
        finishsweep_m(h)                         # ...while sweep termination runs
        done.set()

    t = threading.Thread(target=terminate, daemon=True)
    t.start()
    deadline = time.monotonic() + JOIN
    while h.sweep.unswept_left() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert h.sweep.unswept_left() == 0          # everything else is swept...
    assert not done.wait(0.3), "finishsweep_m returned with a sweeper in flight"
    assert s.sweepgen == h.sweepgen - 1          # ...and the owned span still is not
    ss.sweep(False)
    h.sweep.active.end(sl)
    assert done.wait(JOIN)
    t.join(JOIN)
    assert h.sweep.active.isDone()
    _assert_all_swept(heap)
    heap.verify()


def _controlled_bgsweep_vs_termination(seed: int) -> list[str]:
    """bgsweep and a sweep-termination thread under the random scheduler.
    Returns the problems the terminator saw when finishsweep_m returned."""
    sync = SyncContext(make_scheduler("random", seed))
    heap = Heap(reserve_bytes=1 << 30, nprocs=1, sync=sync)
    try:
        h = heap.mheap
        _fill(heap, [64, 256, 2048], 400)
        _flip(heap, _mark_every_other)
        stop = [False]
        seen: list[str] = []

        def terminator():
            sync.yield_point("test.before_stw")
            finishsweep_m(h)
            sg = h.sweepgen
            seen.extend(s.describe() for s in h.allspans if s.sweepgen not in (sg, sg + 3))
            if h.sweep.active.sweepers():
                seen.append(f"{h.sweep.active.sweepers()} sweepers in flight")
            stop[0] = True
            h.sweep.wake()

        sync.scheduler.start_thread("bgsweep", lambda: bgsweep(h, lambda: stop[0]))
        sync.scheduler.start_thread("gc", terminator)
        sync.scheduler.join_all(timeout=JOIN)
        heap.verify()
        return seen
    finally:
        heap.close()


@pytest.mark.parametrize("seed", range(8))
def test_finishsweep_m_waits_for_bgsweep_under_controlled_scheduler(seed):
    assert _controlled_bgsweep_vs_termination(seed) == []


def test_finishsweep_m_without_the_wait_throws_for_some_schedule(monkeypatch):
    """The check above can fail: with the wait removed, some schedule reaches
    the end of sweep termination while bgsweep owns a span, and Go's throw
    fires."""
    wait_idle = gcsweep.activeSweep.wait_idle

    def no_wait_in_termination(self):
        if threading.current_thread().name != "gc":   # bgsweep keeps its own wait
            wait_idle(self)
    monkeypatch.setattr(gcsweep.activeSweep, "wait_idle", no_wait_in_termination)
    failed = 0
    for seed in range(8):
        try:
            _controlled_bgsweep_vs_termination(seed)
        except ThreadFailure as e:
            assert "active sweepers found at start of mark phase" in str(e)
            failed += 1
    assert failed


@pytest.mark.parametrize("seed", range(10))
def test_two_waiters_for_an_in_flight_sweeper_both_wake(seed):
    """finishsweep_m and bgsweep may wait for the same in-flight sweeper;
    the end() that brings the count to 0 must wake both (waking one leaves
    the other blocked for good: the scheduler reports a Deadlock)."""
    sync = SyncContext(make_scheduler("random", seed))
    heap = Heap(reserve_bytes=1 << 30, nprocs=1, sync=sync)
    try:
        h = heap.mheap
        sl = h.sweep.active.begin()              # in flight before the run starts
        woke: list[str] = []

        def sweeper():
            for _ in range(4):
                sync.yield_point("test.sweeping")
            h.sweep.active.end(sl)

        def waiter(name):
            sync.yield_point("test.wait")
            h.sweep.active.wait_idle()
            woke.append(name)

        sync.scheduler.start_thread("sweeper", sweeper)
        for name in ("w1", "w2"):
            sync.scheduler.start_thread(name, lambda name=name: waiter(name))
        sync.scheduler.join_all(timeout=JOIN)
        assert sorted(woke) == ["w1", "w2"] and h.sweep.active.sweepers() == 0
    finally:
        heap.close()


# ---------------------------------------------------------------- the flip

def test_gcSweep_throws_p_mcache_not_flushed(heap):
    h = heap.mheap
    for p in range(4):
        heap.malloc(64, p=p)
    gcSweep(h, heap.mcaches)
    for c in heap.mcaches[:3]:                  # P 3 never runs prepareForSweep
        c.prepareForSweep()
    finishsweep_m(h)
    with pytest.raises(SweepError, match="p mcache not flushed") as ei:
        gcSweep(h, heap.mcaches)
    assert ei.value.invariant == "sweep.mcache_not_flushed"
    assert f"p 3 flushGen {h.sweepgen - 2} != sweepgen {h.sweepgen}" in str(ei.value)


def test_gcSweep_after_every_p_flushed_is_fine(heap):
    h = heap.mheap
    for p in range(4):
        heap.malloc(64, p=p)
    for _ in range(3):
        gcSweep(h, heap.mcaches)
        for c in heap.mcaches:
            c.prepareForSweep()
        finishsweep_m(h)
    heap.verify()


def test_gcSweep_throws_on_a_span_left_unswept(heap):
    """A span still at h-2 when the next flip comes (sweep termination skipped)."""
    h = heap.mheap
    _fill(heap, [64, 512], 200)
    _flip(heap, _mark_every_other)
    with pytest.raises(SweepError, match="span not swept before the sweepgen flip") as ei:
        gcSweep(h, heap.mcaches)
    assert ei.value.invariant == "sweep.unswept_at_flip"


def test_gcSweep_throws_with_a_sweeper_in_flight(heap):
    h = heap.mheap
    _fill(heap, [64], 100)
    _flip(heap)
    finishsweep_m(h)
    h.sweep.active.state.store(1)               # a sweeper that slipped past the drained bit
    with pytest.raises(SweepError, match="active sweepers at the sweepgen flip"):
        gcSweep(h, heap.mcaches)


def _sweeper_running_through_a_flip(seed: int) -> list[str]:
    """A sweeper thread calling sweepone in a loop (bgsweep's inner loop,
    not parked) while the gc thread flips; returns the spans left unswept
    after sweep termination."""
    sync = SyncContext(make_scheduler("random", seed))
    heap = Heap(reserve_bytes=1 << 30, nprocs=1, sync=sync)
    try:
        h = heap.mheap
        _fill(heap, [64, 256, 2048], 200)
        stop = [False]
        left: list[str] = []

        def sweeper():
            while not stop[0]:
                sweepone(h)
                sync.yield_point("test.sweeper")

        def gc():
            _flip(heap, _mark_every_other)
            sync.yield_point("test.after_flip")
            finishsweep_m(h)
            sg = h.sweepgen
            left.extend(s.describe() for s in h.allspans if s.sweepgen not in (sg, sg + 3))
            stop[0] = True

        sync.scheduler.start_thread("sweeper", sweeper)
        sync.scheduler.start_thread("gc", gc)
        sync.scheduler.join_all(timeout=JOIN)
        return left
    finally:
        heap.close()


@pytest.mark.parametrize("seed", range(6))
def test_gcSweep_publishes_the_cycle_last_for_a_running_sweeper(seed):
    """A sweeper that is not stopped with the world must not see the new
    sweepgen before the queues are filled (it would mark the new cycle
    drained with every span still unswept)."""
    assert _sweeper_running_through_a_flip(seed) == []


# ---------------------------------------------------------------- ownership

def test_span_swept_twice_is_caught(heap):
    h = heap.mheap
    _fill(heap, [64], 300)
    _flip(heap, _mark_every_other)
    sl = h.sweep.active.begin()
    s = gcsweep.nextSpanForSweep(h)
    ss = sl.tryAcquire(s)
    assert ss.sweep(False) is False
    with pytest.raises(SweepError, match="swept twice"):
        ss.sweep(False)                           # the handle was given up with the span
    with pytest.raises(SweepError, match="bad span state") as ei:
        sweepLocked(h, s).sweep(False)            # a forged handle: sweepgen is h, not h-1
    assert ei.value.invariant == "sweep.bad_span_state"
    assert sl.tryAcquire(s) is None               # and nobody can acquire it again
    h.sweep.active.end(sl)
    finishsweep_m(h)
    heap.verify()


def test_sweeper_left_outstanding_across_generations(heap):
    h = heap.mheap
    _fill(heap, [64], 10)
    sl = h.sweep.active.begin()
    h.sweepgen += 2                               # a flip the sweeper did not hold up
    with pytest.raises(SweepError, match="sweeper left outstanding across sweep generations"):
        h.sweep.active.end(sl)
    h.sweepgen -= 2
    h.sweep.active.end(sl)
    with pytest.raises(SweepError, match="mismatched begin/end of activeSweep"):
        h.sweep.active.end(sl)


def test_racing_sweepers_each_span_swept_exactly_once(heap):
    h = heap.mheap
    _fill(heap, [32, 64, 96, 128, 4096], 6000)
    _flip(heap, _mark_every_other)
    spans = [s for s in h.allspans if s.sweepgen == h.sweepgen - 2]
    won: list[list] = [[], []]
    barrier = threading.Barrier(2)

    def racer(k):
        sl = h.sweep.active.begin()
        barrier.wait()
        for s in spans:
            ss = sl.tryAcquire(s)
            if ss is not None:
                won[k].append(s)
                ss.sweep(False)
        h.sweep.active.end(sl)

    ts = [threading.Thread(target=racer, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(JOIN)
    assert sorted(map(id, won[0] + won[1])) == sorted(map(id, spans))   # each once, none lost
    finishsweep_m(h)
    _assert_all_swept(heap)
    heap.verify()


# ---------------------------------------------------------------- proportional sweep

def _paced_cycle(pace: bool):
    """A simulated cycle: a heap of 64/256/2048-byte spans, half of each
    span marked; the pacer resets heapLive to the marked bytes and sets the
    next trigger 4 MiB above it; then P 0 allocates 64-byte objects until
    heapLive reaches the trigger.  Returns (heap, rate set by the pacer,
    samples): (heapLive - basis, pages swept) after each refill."""
    heap = Heap(reserve_bytes=1 << 30, nprocs=1)
    h = heap.mheap
    _fill(heap, [64, 256, 2048], 12000)
    _flip(heap, _mark_every_other)
    marked = sum(s.countAlloc() * s.elemsize for s in h.allspans if s.sweepgen == h.sweepgen - 2)
    h.gcController.heapLive.store(marked)          # the pacer's resetLive(bytesMarked)
    trigger = marked + 4 * MiB
    if pace:
        gcPaceSweeper(h, trigger)
    rate = h.sweepPagesPerByte
    samples = []
    c = heap.mcaches[0]
    last = c.nrefill
    while h.gcController.heapLive.load() < trigger:
        heap.malloc(64)
        if c.nrefill != last:
            last = c.nrefill
            samples.append((h.gcController.heapLive.load() - marked, h.stats.get("pagesSwept")))
    return heap, rate, samples


def test_proportional_sweep_finishes_before_the_trigger():
    heap, rate, samples = _paced_cycle(pace=True)
    try:
        h = heap.mheap
        assert rate > 0
        assert h.sweepPagesPerByte == 0.0           # deductSweepCredit ran out of work: done
        assert isSweepDone(h)
        _assert_all_swept(heap)
        assert h.stats.get("pagesSwept") >= 1000    # it really swept the heap, not a few spans
        done_at = next(a for a, swept in samples if swept == samples[-1][1])
        # done 1 MiB (the pacer's margin) before the trigger, give or take one span
        assert done_at <= 4 * MiB - gcsweep.SWEEP_MIN_HEAP_DISTANCE + PAGE_SIZE
        heap.verify()
    finally:
        heap.close()


def test_proportional_sweep_keeps_ahead_of_allocation():
    """Before each span is taken the sweeper has paid for it: pages swept
    >= rate * (heapLive - basis) at every refill, until nothing is left."""
    heap, rate, samples = _paced_cycle(pace=True)
    try:
        total = samples[-1][1]
        assert len(samples) > 100
        for allocated, swept in samples:
            if swept < total:
                assert swept >= int(rate * allocated), (allocated, swept, rate)
    finally:
        heap.close()


def test_without_pacing_the_heap_is_not_swept_by_the_trigger():
    """The control: the same cycle with no sweep rate leaves spans unswept."""
    heap, rate, samples = _paced_cycle(pace=False)
    try:
        h = heap.mheap
        assert rate == 0 and not isSweepDone(h)
        assert samples[-1][1] < 100                   # only cacheSpan's own sweeps
        sg = h.sweepgen
        assert any(s.sweepgen == sg - 2 for s in h.allspans)
    finally:
        heap.close()


def test_deduct_sweep_credit_recomputes_when_pacing_changes(heap):
    h = heap.mheap
    _fill(heap, [64, 1024], 4000)
    _flip(heap, _mark_every_other)
    gcPaceSweeper(h, h.gcController.heapLive.load() + 64 * MiB)
    slow = h.sweepPagesPerByte
    deductSweepCredit(h, 8 * PAGE_SIZE, 0)
    swept_slow = h.stats.get("pagesSwept")
    gcPaceSweeper(h, h.gcController.heapLive.load() + 2 * MiB)   # a closer trigger: faster
    assert h.sweepPagesPerByte > slow
    assert h.pagesSweptBasis.load() == swept_slow
    deductSweepCredit(h, 8 * PAGE_SIZE, 0)
    assert h.stats.get("pagesSwept") - swept_slow >= int(h.sweepPagesPerByte * 8 * PAGE_SIZE)


# ---------------------------------------------------------------- the span reclaimer

def test_reclaim_frees_large_spans_before_the_heap_grows(heap):
    h = heap.mheap
    _ = [heap.malloc(MiB) for _ in range(40)]
    _flip(heap)                                   # nothing marked, nothing swept yet
    sys0, end0 = _heap_sys(heap), h.curArenaEnd
    assert not isSweepDone(h)
    _ = [heap.malloc(MiB) for _ in range(40)]
    assert h.curArenaEnd == end0 and _heap_sys(heap) == sys0     # reused, not grown
    assert heap.read_memstats()["HeapInuse"] == 40 * MiB
    heap.verify()


def test_reclaim_frees_small_spans_for_a_large_object(heap):
    h = heap.mheap
    xs = _fill(heap, [64], 128 * 2048)            # 2048 full one-page spans: 16 MiB
    keep = span_of(heap, xs[0])

    def mark(s):
        if s is keep:
            s.setMarked(0)
    _flip(heap, mark)
    end0 = h.curArenaEnd
    big = heap.malloc(8 * MiB)
    assert h.curArenaEnd == end0                  # pages came from unmarked spans
    assert keep.state == 1 and keep.sweepgen == h.sweepgen - 2   # the marked span was left alone
    assert span_of(heap, big).npages == 8 * MiB >> PAGE_SHIFT
    finishsweep_m(h)
    heap.verify()


def test_without_reclaim_the_heap_would_grow(heap):
    """The control: allocSpan alone (no reclaim) maps new pages."""
    h = heap.mheap
    _ = [heap.malloc(MiB) for _ in range(40)]
    _flip(heap)
    end0 = h.curArenaEnd
    h.allocSpan(MiB >> PAGE_SHIFT, 0)
    assert h.curArenaEnd > end0


def test_reclaim_credit_from_sweepone(heap):
    """Pages sweepone freed count toward the next reclaim."""
    h = heap.mheap
    _ = [heap.malloc(MiB) for _ in range(4)]
    _flip(heap)
    assert sweepone(h) == MiB >> PAGE_SHIFT
    credit = h.reclaimCredit.load()
    assert credit == MiB >> PAGE_SHIFT
    h.reclaim(credit)
    assert h.reclaimCredit.load() == 0 and h.reclaimIndex.load() == 0   # paid from credit alone


# ---------------------------------------------------------------- bgsweep with mutators

def _bgsweep_with_mutators(sync: SyncContext, rounds: int = 3, nalloc: int = 1500) -> Heap:
    """One bgsweep thread lives across `rounds` cycles.  Each cycle: the
    "gc" thread flips (mark termination: every P's cache flushed, half of
    each span marked), two Ps allocate while bgsweep sweeps, then with the
    Ps stopped (joined) sweep termination runs and the heap is verified."""
    heap = Heap(reserve_bytes=1 << 30, nprocs=3, sync=sync)
    h = heap.mheap
    sched = sync.scheduler
    stop = [False]
    for p in (1, 2):
        _fill(heap, [24, 64, 640, 40000], 800, p=p)

    def mutator(p):
        xs = _fill(heap, [16, 64, 640, 9000, 40000], nalloc, p=p)
        assert all(h.spanOfHeap(x) is not None for x in xs)

    def gc():
        for r in range(rounds):
            _flip(heap, _mark_every_other)       # the world is stopped: no P runs
            for p in (1, 2):
                sched.start_thread(f"P{p}.{r}", lambda p=p: mutator(p))
            for p in (1, 2):
                sched.join(f"P{p}.{r}")
            finishsweep_m(h)                      # sweep termination, world stopped
            _assert_all_swept(heap)
            heap.verify()
        stop[0] = True
        h.sweep.wake()

    sched.start_thread("bgsweep", lambda: bgsweep(h, lambda: stop[0]))
    sched.start_thread("gc", gc)
    sched.join_all(timeout=120)
    return heap


def test_bgsweep_concurrent_with_allocating_ps_os_threads():
    sync = SyncContext(make_scheduler("os", 0, noise=0.01))
    heap = _bgsweep_with_mutators(sync)
    try:
        assert heap.mheap.sweep.nbgsweep.load() > 0
    finally:
        heap.close()


@pytest.mark.parametrize("seed", range(4))
def test_bgsweep_concurrent_with_allocating_ps_controlled(seed):
    sync = SyncContext(make_scheduler("random", seed))
    heap = _bgsweep_with_mutators(sync, rounds=2, nalloc=300)
    heap.close()
