"""Conditions and events under every scheduler."""

import pytest

from concalloc.sync import Rank


def test_cond_producer_consumer(make_ctx, kind):
    ctx = make_ctx(kind)
    mu = ctx.mutex("work.full", Rank.GC_WORK)
    nonempty = ctx.cond(mu, "work.full nonempty")
    queue, got = [], []
    n_items = 30

    def producer():
        for i in range(n_items):
            with mu:
                queue.append(i)
                nonempty.notify_all()
            ctx.yield_point("produced")

    def consumer(name):
        def body():
            while True:
                with mu:
                    while not queue:
                        nonempty.wait()
                        assert mu.owner == name       # wait re-acquired the mutex
                    item = queue.pop(0)
                    if item is None:
                        queue.append(None)            # let the other consumer stop too
                        nonempty.notify_all()
                        return
                    got.append(item)
        return body

    def closer():
        ctx.scheduler.join("producer")
        with mu:
            queue.append(None)
            nonempty.notify_all()

    sched = ctx.scheduler
    sched.start_thread("producer", producer)
    sched.start_thread("c1", consumer("c1"))
    sched.start_thread("c2", consumer("c2"))
    sched.start_thread("closer", closer)
    sched.join_all(timeout=20)
    assert sorted(got) == list(range(n_items))


def test_cond_notify_wakes_one(make_ctx, kind):
    ctx = make_ctx(kind)
    mu = ctx.mutex("sweep", Rank.SWEEP)
    cv = ctx.cond(mu, "sweep parked")
    state = {"waiting": 0, "tickets": 0, "served": 0}
    all_waiting = ctx.event("all waiting")

    def waiter():
        with mu:
            state["waiting"] += 1
            if state["waiting"] == 2:
                all_waiting.set()
            while state["tickets"] == 0:
                cv.wait()
            state["tickets"] -= 1
            state["served"] += 1

    def waker():
        all_waiting.wait()
        for _ in range(2):
            with mu:
                state["tickets"] += 1
                cv.notify()

    sched = ctx.scheduler
    sched.start_thread("w1", waiter)
    sched.start_thread("w2", waiter)
    sched.start_thread("waker", waker)
    sched.join_all(timeout=20)
    assert state["served"] == 2 and state["tickets"] == 0


def test_event_set_clear_wait(make_ctx, kind):
    ctx = make_ctx(kind)
    go, ack = ctx.event("go"), ctx.event("ack")
    log = []

    def waiter():
        go.wait()
        log.append("woke")
        ack.set()

    def setter():
        assert not go.is_set()
        log.append("set")
        go.set()
        ack.wait()
        go.clear()
        assert not go.is_set() and ack.is_set()

    ctx.scheduler.start_thread("waiter", waiter)
    ctx.scheduler.start_thread("setter", setter)
    ctx.scheduler.join_all(timeout=20)
    assert log == ["set", "woke"]


@pytest.mark.parametrize("kind", ["random", "pct"])
def test_controlled_timed_wait_is_one_step(make_ctx, kind):
    ctx = make_ctx(kind)
    ev = ctx.event("never")
    out = []
    ctx.scheduler.start_thread("t", lambda: out.append(ev.wait(timeout=5.0)))
    ctx.scheduler.join_all(timeout=20)
    assert out == [False]
    assert ("t:wait event never", "t") in ctx.scheduler.schedule()


def test_os_timed_wait_times_out(make_ctx):
    ev = make_ctx("os").event("never")
    assert ev.wait(timeout=0.01) is False
    ev.set()
    assert ev.wait(timeout=0.01) is True


@pytest.mark.parametrize("sched_kind", ["random", "vtime"])
def test_hold_takes_the_same_decisions_as_the_bare_pairs(make_ctx, sched_kind):
    """A Hold (with hold: ... with hold.dropped(): ...) is the bare lock /
    unlock / lock / unlock sequence: a controlled run schedules it alike."""
    from concalloc.sync import Hold

    def run(held: bool):
        ctx = make_ctx(sched_kind, seed=3)
        mu = ctx.mutex("mheap", Rank.MHEAP)

        def body(name):
            def go():
                for _ in range(3):
                    if held:
                        with Hold(mu) as hold:
                            ctx.yield_point("in")
                            with hold.dropped():
                                ctx.yield_point("out")
                            ctx.yield_point("in")
                    else:
                        mu.lock()
                        ctx.yield_point("in")
                        mu.unlock()
                        ctx.yield_point("out")
                        mu.lock()
                        ctx.yield_point("in")
                        mu.unlock()
            return go
        for n in ("A", "B"):
            ctx.scheduler.start_thread(n, body(n))
        ctx.scheduler.join_all(20)
        assert not mu.locked()
        return ctx.scheduler.schedule()

    sched = run(True)
    assert sched and sched == run(False)


def test_hold_does_not_take_back_or_release_after_a_dropped_block_raised(make_ctx):
    from concalloc.sync import Hold
    ctx = make_ctx("os")
    mu = ctx.mutex("mheap", Rank.MHEAP)
    with pytest.raises(KeyError):
        with Hold(mu) as hold:
            with hold.dropped():
                mu.lock()            # as another thread could take it meanwhile
                raise KeyError
    assert mu.locked()               # the outer exit left the new holder's lock alone
    mu.unlock()
