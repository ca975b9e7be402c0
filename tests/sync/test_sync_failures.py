"""A thread's exception stops the whole run under every scheduler, and nothing hangs."""

import pytest

from concalloc.sync import Rank, ThreadFailure, make_scheduler, SyncContext


def _failing_run(ctx, spin_steps):
    """P0 fails once P1 waits for an event nobody sets and P2 spins at yield points."""
    unwound = []
    never, p1_started, p2_started = ctx.event("never"), ctx.event("P1 started"), ctx.event("P2 started")
    heap = ctx.mutex("mheap", Rank.MHEAP)

    def failing():
        p2_started.wait()
        for _ in range(3):
            ctx.yield_point("work")
        with heap:
            raise ValueError("span state corrupted")

    def waiter():
        try:
            p1_started.set()
            never.wait()
        finally:
            unwound.append("P1")

    def spinner():
        try:
            p1_started.wait()
            p2_started.set()
            n = 0
            while spin_steps is None or n < spin_steps:
                ctx.yield_point("spin")
                n += 1
        finally:
            unwound.append("P2")

    sched = ctx.scheduler
    sched.start_thread("P0", failing)
    sched.start_thread("P1", waiter)
    sched.start_thread("P2", spinner)
    return unwound


def _check_failure(ei, sched, unwound):
    err = ei.value
    assert err.thread == "P0"
    assert "ValueError: span state corrupted" in err.traceback_text
    assert "in failing" in err.traceback_text
    assert sched.alive() == []
    assert sorted(unwound) == ["P1", "P2"]


def test_thread_failure_unwinds_the_others(make_ctx, kind):
    # Under PCT a spinner of higher priority than P0 would spin forever: bound it there.
    ctx = make_ctx(kind)
    unwound = _failing_run(ctx, None if kind != "pct" else 200)
    with pytest.raises(ThreadFailure) as ei:
        ctx.scheduler.join_all(timeout=20)
    _check_failure(ei, ctx.scheduler, unwound)


def test_replayed_failure_fails_the_same_way():
    first = SyncContext(make_scheduler("random", 9))
    _failing_run(first, 40)
    with pytest.raises(ThreadFailure):
        first.scheduler.join_all(timeout=20)
    ctx = SyncContext(make_scheduler("replay", 0, schedule=first.scheduler.schedule()))
    unwound = _failing_run(ctx, 40)
    with pytest.raises(ThreadFailure) as ei:
        ctx.scheduler.join_all(timeout=20)
    _check_failure(ei, ctx.scheduler, unwound)
    assert ctx.scheduler.schedule() == first.scheduler.schedule()


def test_os_failure_unblocks_a_thread_waiting_on_a_held_lock():
    ctx = SyncContext(make_scheduler("os", 0))
    heap = ctx.mutex("mheap", Rank.MHEAP)
    held = ctx.event("held")
    unwound = []

    def holder():
        heap.lock()             # never unlocked: the thread dies holding it
        held.set()
        raise RuntimeError("died holding mheap")

    def blocked():
        held.wait()
        try:
            heap.lock()
        finally:
            unwound.append("blocked")

    ctx.scheduler.start_thread("holder", holder)
    ctx.scheduler.start_thread("blocked", blocked)
    with pytest.raises(ThreadFailure, match="died holding mheap"):
        ctx.scheduler.join_all(timeout=20)
    assert unwound == ["blocked"] and ctx.scheduler.alive() == []


def test_join_all_timeout_aborts_instead_of_hanging():
    ctx = SyncContext(make_scheduler("os", 0))
    never = ctx.event("never")
    ctx.scheduler.start_thread("stuck", never.wait)
    with pytest.raises(TimeoutError, match="stuck"):
        ctx.scheduler.join_all(timeout=0.2)
    assert ctx.scheduler.alive() == []


def test_os_noise_and_switch_interval_are_restored():
    import sys
    before = sys.getswitchinterval()
    sched = make_scheduler("os", 3, noise=0.5, switch_interval=1e-5)
    ctx = SyncContext(sched, lock_stats=True)
    m = ctx.mutex("mcentral[1]", Rank.MCENTRAL)

    def body():
        for _ in range(200):
            with m:
                ctx.yield_point("inside")

    for i in range(3):
        sched.start_thread(f"P{i}", body)
    sched.join_all(timeout=20)
    assert sys.getswitchinterval() == before
    assert ctx.lock_stats()["locks"]["mcentral[1]"]["acquisitions"] == 600
