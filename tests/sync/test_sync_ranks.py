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
