"""Lock statistics: counts match the program, contention is seen, off means off."""

import time

import pytest

from concalloc.sync import Rank

FIELDS = {"acquisitions", "contended", "wait_total", "wait_max", "wait_hist", "hold_total", "hold_samples",
          "lock_class",
          "hold_max", "owner_switches", "max_waiters"}


@pytest.mark.parametrize("check_ranks", [True, False])
def test_single_thread_counts(make_ctx, kind, check_ranks):
    ctx = make_ctx(kind, lock_stats=True, check_ranks=check_ranks)
    centrals = [ctx.mutex(f"mcentral[{i}]", Rank.MCENTRAL, "mcentral") for i in range(3)]
    heap = ctx.mutex("mheap", Rank.MHEAP)

    def body():
        for n in range(40):
            c = centrals[n % 3]
            c.lock()
            if n % 4 == 0:
                with heap:
                    pass
            c.unlock()

    ctx.scheduler.start_thread("P0", body)
    ctx.scheduler.join_all(timeout=20)
    stats = ctx.lock_stats()
    assert stats["unit"] == ("ns" if kind in ("os", "vtime") else "steps")
    locks = stats["locks"]
    assert [locks[f"mcentral[{i}]"]["acquisitions"] for i in range(3)] == [14, 13, 13]
    assert locks["mheap"]["acquisitions"] == 10
    for row in locks.values():
        assert set(row) == FIELDS
        assert row["contended"] == row["wait_total"] == row["max_waiters"] == row["owner_switches"] == 0
        assert row["wait_hist"] == {}
        assert row["hold_max"] <= row["hold_total"]
    cls = stats["classes"]["mcentral"]
    assert cls["acquisitions"] == 40 and cls["locks"] == 3 and cls["contended"] == 0
    assert stats["classes"]["mheap"]["acquisitions"] == 10


def _wait_until(pred, what):
    deadline = time.monotonic() + 20
    while not pred():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.001)


@pytest.mark.parametrize("kind", ["os", "random"])
def test_contended_acquisition_is_counted(make_ctx, kind):
    """H holds the lock until W is waiting for it; W's acquisition is the one contended one."""
    ctx = make_ctx(kind, lock_stats=True)
    m = ctx.mutex("mheap", Rank.MHEAP)
    holding = ctx.event("holding")
    waiters = m.stats.waiters

    def holder():
        with m:
            holding.set()
            if kind == "os":
                _wait_until(lambda: waiters.load() == 1, "the waiter")
            else:
                while waiters.load() == 0:
                    ctx.yield_point("let the waiter in")

    def waiter():
        holding.wait()
        with m:
            pass

    ctx.scheduler.start_thread("H", holder)
    ctx.scheduler.start_thread("W", waiter)
    ctx.scheduler.join_all(timeout=20)
    row = ctx.lock_stats()["locks"]["mheap"]
    assert row["acquisitions"] == 2 and row["contended"] == 1
    assert row["max_waiters"] == 1 and row["owner_switches"] == 1
    assert sum(row["wait_hist"].values()) == 1
    assert row["wait_total"] == row["wait_max"] > 0
    assert waiters.load() == 0


def test_controlled_stats_are_reproducible(make_ctx):
    def run():
        ctx = make_ctx("random", seed=4, lock_stats=True)
        ms = [ctx.mutex(f"mcentral[{i}]", Rank.MCENTRAL, "mcentral") for i in range(2)]

        def body():
            for n in range(10):
                with ms[n % 2]:
                    ctx.yield_point("inside")
        for p in range(3):
            ctx.scheduler.start_thread(f"P{p}", body)
        ctx.scheduler.join_all(timeout=20)
        return ctx.lock_stats()
    first = run()
    assert first["classes"]["mcentral"]["contended"] > 0
    assert run() == first


def test_stats_off_means_no_stats(make_ctx):
    ctx = make_ctx("os", check_ranks=False)
    m = ctx.mutex("mheap", Rank.MHEAP)
    with m:
        assert m.owner is None          # plain mutexes keep no owner
    assert m.stats is None
    assert ctx.lock_stats()["locks"] == {} and ctx.all_mutexes() == [m]
