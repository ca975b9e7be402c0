"""The watchdog reports an OS-mode hang with stacks and lock owners."""

from concalloc.sync import Rank, Watchdog


def test_watchdog_fires_on_a_deadlock(make_ctx):
    # Ranks off so the deliberate inversion deadlocks instead of raising.  Statistics keep no
    # owner on the uncontended path, so the report says the locks are held, not by whom.
    ctx = make_ctx("os", check_ranks=False, lock_stats=True)
    a, b = ctx.mutex("A", Rank.MCENTRAL), ctx.mutex("B", Rank.MCENTRAL)
    got_a, got_b = ctx.event("got A"), ctx.event("got B")
    progress = [0]
    reports = []

    def t1():
        with a:
            progress[0] += 1
            got_a.set()
            got_b.wait()
            with b:
                progress[0] += 1

    def t2():
        with b:
            progress[0] += 1
            got_b.set()
            got_a.wait()
            with a:
                progress[0] += 1

    sched = ctx.scheduler
    with Watchdog(lambda: progress[0], 0.5, reports.append, mutexes=ctx.all_mutexes) as wd:
        sched.start_thread("T1", t1)
        sched.start_thread("T2", t2)
        fired = wd.fired.wait(30)
        sched.abort(RuntimeError("hang reported by the watchdog"))
    try:
        sched.join_all(timeout=20)
    except RuntimeError as e:
        assert "watchdog" in str(e)
    else:
        raise AssertionError("join_all should raise the abort reason")
    assert fired and len(reports) == 1
    report = reports[0]
    assert "no progress" in report
    assert "A: held (owner not recorded" in report and "B: held (owner not recorded" in report
    assert "thread T1:" in report and "thread T2:" in report and "in t1" in report
    assert sched.alive() == []


def test_watchdog_quiet_while_progress_is_made():
    """A counter that moves at every poll never looks hung, however slow the machine."""
    import threading
    calls = [0]
    polled = threading.Event()

    def progress():
        calls[0] += 1
        if calls[0] >= 10:
            polled.set()
        return calls[0]

    reports = []
    with Watchdog(progress, 0.05, reports.append, poll_seconds=0.01):
        assert polled.wait(30)
    assert reports == []
