"""The scavenger (gc/scavenge.py): gcPaceScavenger's goals, the background
scavenger working toward them with real madvise (RSS falls), the memory
limit making it release more, and allocSpan's synchronous scavenging."""

from __future__ import annotations

import mmap
import random
import threading
import time

import pytest

from concalloc import Heap
from concalloc.gc import scavenge as gcscav
from concalloc.gc.scavenge import (MAX_MEMORY_LIMIT, NO_GOAL, bgscavenge, gcPaceScavenger, heapRetained,
                                   mappedReady)
from concalloc.mheap import PageAlloc
from concalloc.sync import SyncContext, make_scheduler

from alloc_helpers import mark_addresses

MiB = 1 << 20
JOIN = 60.0          # safety net; nothing asserts on time


def _touched_heap(heaps, n: int, keep: int) -> tuple[Heap, list[int]]:
    """n 1 MiB objects, every OS page touched; all but the first `keep` freed
    (swept) but not released: retained and resident."""
    h = Heap(reserve_bytes=1 << 30, nprocs=1)
    heaps.append(h)
    xs = [h.malloc(MiB) for _ in range(n)]
    for x in xs:
        for off in range(0, MiB, mmap.PAGESIZE):
            h.memory.store(x + off, x + off)
    h.sweep_cycle(mark_addresses(h, xs[:keep]))
    return h, xs


def _run_bgscavenge(h: Heap, until, percent: float = 50, goal=None, timeout: float = JOIN) -> None:
    """bgscavenge on a thread until until() holds (or timeout), then stop it."""
    stop = [False]
    t = threading.Thread(target=bgscavenge, args=(h.mheap, lambda: stop[0]),
                         kwargs={"goal": goal, "percent": percent}, daemon=True)
    t.start()
    h.mheap.scavenger.wake()
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop[0] = True
    h.mheap.scavenger.wake()
    t.join(JOIN)
    assert not t.is_alive()


# ---------------------------------------------------------------- goals

def test_gcPaceScavenger_gc_percent_goal(heaps):
    h, _ = _touched_heap(heaps, 16, keep=4)
    m = h.mheap
    assert m.lastHeapInUse == 4 * MiB                 # recorded by gcSweep
    gcPaceScavenger(m, MAX_MEMORY_LIMIT, heapGoal=8 * MiB, lastHeapGoal=8 * MiB)
    # lastHeapInUse * (heapGoal/lastHeapGoal) * 110%, rounded up to a physical page
    assert m.scavenge.gcPercentGoal.load() == -(-(4 * MiB * 110 // 100) // 4096) * 4096
    assert m.scavenge.memoryLimitGoal.load() == NO_GOAL
    gcPaceScavenger(m, MAX_MEMORY_LIMIT, heapGoal=32 * MiB, lastHeapGoal=8 * MiB)   # heap growing 4x
    assert m.scavenge.gcPercentGoal.load() == NO_GOAL  # 4 * 4.4 MiB > retained 16 MiB: nothing to do
    gcPaceScavenger(m, MAX_MEMORY_LIMIT, heapGoal=8 * MiB, lastHeapGoal=0)          # first cycle
    assert m.scavenge.gcPercentGoal.load() == NO_GOAL


def test_gcPaceScavenger_memory_limit_goal_is_95_percent(heaps):
    h, _ = _touched_heap(heaps, 16, keep=4)
    m = h.mheap
    gcPaceScavenger(m, 10 * MiB, heapGoal=8 * MiB, lastHeapGoal=0)
    assert m.scavenge.memoryLimitGoal.load() == 10 * MiB * 95 // 100
    gcPaceScavenger(m, 64 * MiB, heapGoal=8 * MiB, lastHeapGoal=0)   # under the limit: no goal
    assert m.scavenge.memoryLimitGoal.load() == NO_GOAL


# ---------------------------------------------------------------- the background scavenger

def test_bgscavenge_releases_toward_the_goal_and_rss_falls(heaps):
    h, xs = _touched_heap(heaps, 48, keep=8)
    m = h.mheap
    gcPaceScavenger(m, MAX_MEMORY_LIMIT, heapGoal=16 * MiB, lastHeapGoal=16 * MiB)
    goal = m.scavenge.gcPercentGoal.load()
    assert goal != NO_GOAL and heapRetained(m) >= 48 * MiB
    rss0, rel0 = h.rss(), m.stats.get("heapReleased")
    _run_bgscavenge(h, lambda: heapRetained(m) <= goal)
    retained = heapRetained(m)
    released = m.stats.get("heapReleased") - rel0
    assert retained <= goal                                   # the goal is met...
    assert retained > goal - gcscav.SCAVENGE_QUANTUM          # ...and not overshot: toward it, not all
    assert released >= 48 * MiB - goal
    assert m.scavenger.released.load() == released
    assert rss0 - h.rss() >= released // 2                    # real pages left the process
    assert all(h.memory.load(x) == x for x in xs[:8])         # live objects untouched
    h.verify()


def test_bgscavenge_does_nothing_without_a_goal(heaps):
    h, _ = _touched_heap(heaps, 16, keep=4)
    m = h.mheap
    gcPaceScavenger(m, MAX_MEMORY_LIMIT, heapGoal=8 * MiB, lastHeapGoal=0)
    rel0 = m.stats.get("heapReleased")
    _run_bgscavenge(h, lambda: False, timeout=0.3)
    assert m.stats.get("heapReleased") == rel0 and m.scavenger.nsleep == 0   # parked, not spinning


def test_memory_limit_makes_the_scavenger_release_more(heaps):
    h, _ = _touched_heap(heaps, 48, keep=8)
    m = h.mheap
    gcPaceScavenger(m, MAX_MEMORY_LIMIT, heapGoal=64 * MiB, lastHeapGoal=8 * MiB)
    assert m.scavenge.gcPercentGoal.load() == NO_GOAL          # the gcPercent goal alone is met
    gcPaceScavenger(m, 20 * MiB, heapGoal=64 * MiB, lastHeapGoal=8 * MiB)
    limit_goal = m.scavenge.memoryLimitGoal.load()
    assert limit_goal == 19 * MiB
    rss0 = h.rss()
    _run_bgscavenge(h, lambda: mappedReady(m) <= limit_goal)
    assert limit_goal - gcscav.SCAVENGE_QUANTUM < mappedReady(m) <= limit_goal
    assert rss0 - h.rss() >= (48 - 19) * MiB // 2
    h.verify()


def test_bgscavenge_goal_argument_overrides_the_pacer(heaps):
    h, _ = _touched_heap(heaps, 32, keep=4)
    m = h.mheap
    target = 12 * MiB
    _run_bgscavenge(h, lambda: heapRetained(m) <= target, goal=lambda: (target, NO_GOAL))
    assert target - gcscav.SCAVENGE_QUANTUM < heapRetained(m) <= target


def test_sweep_done_wakes_the_scavenger(heaps):
    """A parked scavenger is woken by the sweeper that drains the cycle."""
    h = Heap(reserve_bytes=1 << 30, nprocs=1)
    heaps.append(h)
    m = h.mheap
    _ = [h.malloc(MiB) for _ in range(16)]
    m.scavenger.wakeup.clear()
    h.sweep_cycle(mode=0)                        # background: nothing swept yet
    m.scavenger.wakeup.clear()
    from concalloc.gc.sweep import sweepone
    while sweepone(m) != -1:
        assert not m.scavenger.wakeup.is_set()
    assert m.scavenger.wakeup.is_set()


def test_bgscavenge_under_controlled_scheduler_is_deterministic(heaps):
    def run(seed):
        sync = SyncContext(make_scheduler("random", seed))
        h = Heap(reserve_bytes=1 << 30, nprocs=1, sync=sync)
        heaps.append(h)
        m = h.mheap
        _ = [h.malloc(MiB) for _ in range(8)]
        h.sweep_cycle()
        target = 2 * MiB
        done = [False]

        def waiter():
            while heapRetained(m) > target:
                sync.yield_point("test.poll")
            done[0] = True
            m.scavenger.wake()

        sync.scheduler.start_thread("bgscavenge", lambda: bgscavenge(m, lambda: done[0],
                                                                      goal=lambda: (target, NO_GOAL)))
        sync.scheduler.start_thread("waiter", waiter)
        sync.scheduler.join_all(timeout=JOIN)
        return heapRetained(m), sync.scheduler.schedule(), m.scavenger.released.load(), m.scavenger.nsleep

    r1, s1, released, nsleep = run(3)
    r2, s2, _, _ = run(3)
    assert r1 <= 2 * MiB and (r1, s1) == (r2, s2)
    # No wall time: a quantum counts Go's 10 us per 4 KiB page, so a ~1 ms
    # burst is 7 quanta (448 KiB) and each burst is followed by one sleep.
    burst = 7 * gcscav.SCAVENGE_QUANTUM
    assert released >= 6 * MiB - 1 and nsleep in (released // burst, -(-released // burst))


# ---------------------------------------------------------------- synchronous scavenging

def test_alloc_span_scavenges_down_to_the_memory_limit(heaps):
    h, _ = _touched_heap(heaps, 48, keep=8)
    m = h.mheap
    gcPaceScavenger(m, 24 * MiB, heapGoal=64 * MiB, lastHeapGoal=0)
    assert mappedReady(m) > 24 * MiB
    h.malloc(MiB)                                 # any span allocation enforces the limit
    assert mappedReady(m) <= 24 * MiB
    h.verify()


def _holey_heap(heaps) -> Heap:
    """An 8 MiB hole of free, retained (touched) pages below one live 1 MiB object."""
    h = Heap(reserve_bytes=1 << 30, nprocs=1)
    heaps.append(h)
    xs = [h.malloc(MiB) for _ in range(9)]
    for x in xs:
        for off in range(0, MiB, mmap.PAGESIZE):
            h.memory.store(x + off, 1)
    h.sweep_cycle(mark_addresses(h, xs[8:]))
    return h


@pytest.mark.parametrize("goal", [True, False])
def test_heap_growth_is_offset_by_scavenging(heaps, goal):
    h = _holey_heap(heaps)
    m = h.mheap
    if goal:
        gcPaceScavenger(m, MAX_MEMORY_LIMIT, heapGoal=8 * MiB, lastHeapGoal=8 * MiB)
        assert m.scavenge.gcPercentGoal.load() < 2 * MiB     # 110% of the 1 MiB in use
    end0, free0, rss0 = m.curArenaEnd, m.stats.get("heapFree"), h.rss()
    assert free0 == 8 * MiB
    h.malloc(16 * MiB)                            # does not fit the hole: the heap grows
    assert m.curArenaEnd > end0
    if goal:                                      # the hole was released to offset the growth
        assert m.stats.get("heapFree") == 0
        assert rss0 - h.rss() >= 4 * MiB
    else:                                         # no goal: the hole stays resident
        assert m.stats.get("heapFree") == free0
    h.verify()


# ---------------------------------------------------------------- the page search

def _reference_highest(inuse: bytes, scav: bytes, below: int):
    for top in range(below - 1, -1, -1):
        if not inuse[top] and not scav[top]:
            start = top
            while start > 0 and not inuse[start - 1] and not scav[start - 1]:
                start -= 1
            return start, top + 1 - start
    return None


@pytest.mark.parametrize("seed", range(20))
def test_highest_free_unscavenged_matches_a_plain_scan(seed):
    rng = random.Random(seed)
    n = rng.randrange(1, 300)
    pa = PageAlloc()
    pa.inuse = bytearray(rng.random() < 0.4 for _ in range(n))
    pa.scav = bytearray((not pa.inuse[i]) and rng.random() < 0.4 for i in range(n))
    for below in (n, rng.randrange(0, n + 1)):
        assert gcscav._highest_free_unscavenged(pa, below) == _reference_highest(pa.inuse, pa.scav, below)
