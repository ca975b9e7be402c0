"""Lock rank checking: Go's "lock ordering problem", with both acquisition sites."""

import pytest

from concalloc.sync import LockRankViolation, Rank, SyncContext, ThreadFailure
from concalloc.sync.lockrank import rank_allows

HERE = __file__


def _line_of(marker: str) -> int:
    with open(HERE) as f:
        for n, line in enumerate(f, 1):
            if line.rstrip().endswith(marker):
                return n
    raise AssertionError(marker)


def test_inversion_names_both_sites():
    ctx = SyncContext()
    heap = ctx.mutex("mheap", Rank.MHEAP)
    central = ctx.mutex("mcentral[12]", Rank.MCENTRAL, "mcentral")
    with heap:  # SITE-HELD
        with pytest.raises(LockRankViolation) as ei:
            central.lock()  # SITE-NEW
    msg = str(ei.value)
    assert msg.startswith("lock ordering problem")
    assert "acquiring mcentral[12] (rank MCENTRAL)" in msg and "holding mheap (rank MHEAP)" in msg
    assert f"{HERE}:{_line_of('# SITE-NEW')}" in msg
    assert f"{HERE}:{_line_of('# SITE-HELD')}" in msg
    assert central.owner is None and ctx.held_locks() == []


def test_increasing_order_is_allowed_and_stack_unwinds():
    ctx = SyncContext()
    central = ctx.mutex("mcentral[3]", Rank.MCENTRAL, "mcentral")
    heap = ctx.mutex("mheap", Rank.MHEAP)
    leaf = ctx.mutex("leaf", Rank.LEAF)
    with central, heap, leaf:
        assert ctx.held_locks() == [central, heap, leaf]
        assert heap.owner == "MainThread"
    assert ctx.held_locks() == [] and heap.owner is None


@pytest.mark.parametrize("held,new", [(Rank.MCENTRAL, Rank.MCENTRAL), (Rank.LEAF, Rank.LEAF),
                                      (Rank.MHEAP, Rank.STW)])
def test_not_strictly_increasing_is_refused(held, new):
    ctx = SyncContext()
    a, b = ctx.mutex("a", held), ctx.mutex("b", new)
    with a:
        with pytest.raises(LockRankViolation, match="^lock ordering problem"):
            b.lock()


def test_inline_comparison_matches_rank_allows():
    for held in Rank:
        for new in Rank:
            assert rank_allows(held, new) == (int(held) < int(new))


def test_unlock_of_unheld_lock_is_an_error():
    ctx = SyncContext()
    m = ctx.mutex("mheap", Rank.MHEAP)
    with pytest.raises(LockRankViolation, match="does not hold"):
        m.unlock()


def test_out_of_order_release_is_fine():
    ctx = SyncContext()
    a, b = ctx.mutex("a", Rank.MCENTRAL), ctx.mutex("b", Rank.MHEAP)
    a.lock()
    b.lock()
    a.unlock()
    assert ctx.held_locks() == [b]
    b.unlock()


def test_violation_in_a_managed_thread_stops_the_run(make_ctx, kind):
    ctx = make_ctx(kind)
    heap = ctx.mutex("mheap", Rank.MHEAP)
    central = ctx.mutex("mcentral[1]", Rank.MCENTRAL)

    def bad():
        with heap:
            central.lock()

    ctx.scheduler.start_thread("P0", bad)
    with pytest.raises(ThreadFailure) as ei:
        ctx.scheduler.join_all(timeout=20)
    assert ei.value.thread == "P0"
    assert "lock ordering problem" in ei.value.traceback_text


def test_plain_mutex_is_the_bare_lock():
    ctx = SyncContext(check_ranks=False)
    m = ctx.mutex("mheap", Rank.MHEAP)
    assert type(m.lock).__name__ == "builtin_function_or_method"
    assert m.lock.__self__ is m.unlock.__self__
    with m:
        assert m.lock(False) is False


# --- the held chain (a ranked mutex links the locks its holder took before it) ----------------

def test_releasing_the_middle_lock_unlinks_it_and_the_top_still_checks_ranks():
    ctx = SyncContext()
    a = ctx.mutex("a", Rank.MCENTRAL)
    b = ctx.mutex("b", Rank.MHEAP)
    c = ctx.mutex("c", Rank.GLOBAL_ALLOC)
    a.lock()
    b.lock()
    c.lock()  # SITE-C
    b.unlock()
    assert ctx.held_locks() == [a, c] and b.owner is None and c.owner == "MainThread"
    with pytest.raises(LockRankViolation) as ei:
        b.lock()                      # c (GLOBAL_ALLOC) is still the newest: MHEAP is refused
    assert "holding c (rank GLOBAL_ALLOC)" in str(ei.value)
    assert f"{HERE}:{_line_of('# SITE-C')}" in str(ei.value)
    c.unlock()
    b.lock()                          # now a (MCENTRAL) is the newest
    assert ctx.held_locks() == [a, b]
    b.unlock()
    a.unlock()
    assert ctx.held_locks() == []
    with pytest.raises(LockRankViolation, match="does not hold"):
        a.unlock()


def test_released_oldest_lock_leaves_the_rest_of_the_chain():
    ctx = SyncContext()
    a, b = ctx.mutex("a", Rank.MCENTRAL), ctx.mutex("b", Rank.MHEAP)
    a.lock()
    b.lock()
    a.unlock()
    a_again = ctx.mutex("a2", Rank.MCENTRAL)
    with pytest.raises(LockRankViolation, match="holding b"):
        a_again.lock()
    b.unlock()
    a_again.lock()
    assert ctx.held_locks() == [a_again]
    a_again.unlock()


def test_each_thread_has_its_own_chain():
    import threading
    ctx = SyncContext()
    central = ctx.mutex("mcentral[1]", Rank.MCENTRAL)
    heap = ctx.mutex("mheap", Rank.MHEAP)
    seen = {}
    took, done = threading.Event(), threading.Event()

    def other():
        with heap:
            seen["other"] = ctx.held_locks()
            seen["owner"] = heap.owner
            took.set()
            done.wait(20)

    t = threading.Thread(target=other, name="T")
    with central:
        t.start()
        assert took.wait(20)
        assert ctx.held_locks() == [central]       # the other thread's heap is not ours
        assert heap.owner == "T" and central.owner == "MainThread"
        done.set()
        t.join(20)
    assert seen == {"other": [heap], "owner": "T"}
    assert ctx.held_locks() == [] and heap.owner is None


def test_ranked_mutex_excludes_and_reports_locked():
    """The ranked mutex's lock (a one-token queue) is a mutex: locked() while held, and four
    threads' unprotected read-modify-writes under it lose nothing."""
    import threading
    import time
    ctx = SyncContext(lock_stats=True)
    m = ctx.mutex("mheap", Rank.MHEAP)
    assert type(m).__name__ == "RankedMutex" and not m.locked()
    with m:
        assert m.locked()
    assert not m.locked()
    box = [0]

    def body():
        for _ in range(300):
            with m:
                v = box[0]
                time.sleep(0)           # invite a switch inside the critical section
                box[0] = v + 1

    ts = [threading.Thread(target=body) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert box[0] == 1200 and not m.locked() and ctx.held_locks() == []
    row = ctx.lock_stats()["locks"]["mheap"]
    assert row["acquisitions"] == 1201 and row["contended"] > 0
