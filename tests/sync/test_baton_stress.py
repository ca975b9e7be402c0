"""The batons under stress: many small controlled runs that hand off, block,
spawn, fail, deadlock and are aborted from outside at a random moment.
Every run must end (join_all returns well inside its timeout), leave no
thread behind, and leave no pipe open.

A lost handoff shows up as a run that never ends: join_all's timeout turns
it into TimeoutError, which fails the test.  CONCALLOC_BATON_STRESS_RUNS
raises the number of runs per baton (the default keeps the suite quick);
tests/sync/test_baton_stress.py:hammer is also callable on its own.
"""

import os
import random
import threading
import time

import pytest

from concalloc.sync import Deadlock, Rank, StepLimitExceeded, SyncContext, ThreadFailure, make_scheduler
from concalloc.sync import controlled

RUNS = int(os.environ.get("CONCALLOC_BATON_STRESS_RUNS", "400"))
JOIN_TIMEOUT = 30.0         # far above a run's length: reaching it is a hang
ENDINGS = (Deadlock, ThreadFailure, StepLimitExceeded, RuntimeError)   # RuntimeError: the outside abort


SEED_WAITER_FIRST = 1      # a seed whose run starts with "waiter" (the test checks the schedule)


class _Boom(Exception):
    pass


def _program(sched, ctx, rng: random.Random) -> None:
    """Start 2-5 threads whose bodies are drawn from rng: yield points, two
    mutexes taken in either order (so some runs deadlock), an event, spawns
    and joins of children, and now and then an exception."""
    locks = [ctx.mutex(f"m{i}", Rank.MCENTRAL) for i in range(2)]
    ev = ctx.event("ev")
    spawned = [0]

    def body(name: str, ops: list):
        def run():
            for op, arg in ops:
                if op == "yield":
                    ctx.yield_point("y")
                elif op == "lock":
                    a, b = locks[arg], locks[1 - arg]
                    with a:
                        ctx.yield_point("in")
                        with b:
                            ctx.yield_point("in2")
                elif op == "set":
                    ev.set()
                elif op == "wait":
                    ev.wait()
                elif op == "spawn" and spawned[0] < 6:
                    spawned[0] += 1
                    child = f"{name}.{spawned[0]}"
                    sched.start_thread(child, body(child, _ops(rng, 8)))
                    if arg:
                        sched.join(child)
                elif op == "boom":
                    raise _Boom(name)
        return run

    for i in range(rng.randint(2, 5)):
        sched.start_thread(f"T{i}", body(f"T{i}", _ops(rng, 60)))


def _ops(rng: random.Random, n: int) -> list:
    kinds = ["yield"] * 12 + ["lock"] * 3 + ["set", "wait", "spawn", "boom"]
    ops = []
    for _ in range(rng.randint(1, n)):
        op = rng.choice(kinds)
        if op == "boom" and rng.random() < 0.93:
            op = "yield"
        ops.append((op, rng.randrange(2)))
    return ops


def hammer(baton: str, runs: int, seed: int = 0) -> dict:
    """Run `runs` drawn programs on `baton`; return how they ended.  Raises
    AssertionError on a hang, a thread left behind or a leaked pipe."""
    old, controlled.BATON = controlled.BATON, baton
    fds = _open_fds()
    ended: dict[str, int] = {}
    try:
        for i in range(runs):
            rng = random.Random(f"{seed}:{i}")
            kind = rng.choice(["random", "random", "pct", "sticky-random"])
            sched = make_scheduler(kind, i, max_steps=rng.choice([50, 5000]))
            ctx = SyncContext(sched, check_ranks=False)
            _program(sched, ctx, rng)
            timer = None
            if rng.random() < 0.4:      # an outside abort at a random moment (wall clock: not replayable, on purpose)
                timer = threading.Timer(rng.random() * 0.002, sched.abort)
                timer.start()
            t0 = time.monotonic()
            try:
                sched.join_all(timeout=JOIN_TIMEOUT)
                how = "ok"
            except TimeoutError:
                raise AssertionError(f"{baton} baton: run {i} ({kind}) hung: {sched.schedule()[-5:]}") from None
            except ENDINGS as e:
                how = type(e).__name__
            finally:
                if timer is not None:
                    timer.cancel()
                    timer.join()
            assert time.monotonic() - t0 < JOIN_TIMEOUT / 2, f"{baton} baton: run {i} took too long"
            assert sched.alive() == [] and sched.stuck == [], f"{baton} baton: run {i} left {sched.alive()}"
            ended[how] = ended.get(how, 0) + 1
    finally:
        controlled.BATON = old
    if fds is not None:
        assert _open_fds() == fds, f"{baton} baton: pipes left open"
    return ended


def _open_fds() -> int | None:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


@pytest.mark.parametrize("baton", ["pipe", "lock"])
def test_batons_survive_aborts_failures_and_deadlocks(baton):
    ended = hammer(baton, RUNS)
    # The drawn programs reach every ending, so each path was hammered.
    assert set(ended) >= {"ok", "Deadlock", "ThreadFailure", "RuntimeError"}, ended


def test_a_thread_spawned_as_the_run_aborts_still_unwinds():
    """An abort from outside can run its wake-up pass just before the baton
    holder lists a new thread; the new thread must still see the abort."""
    sched = make_scheduler("random", 0)
    ctx = SyncContext(sched, check_ranks=False)

    def parent():
        sched.abort()                   # as if from outside, between two decisions
        sched.start_thread("late", lambda: None)

    sched.start_thread("parent", parent)
    with pytest.raises(RuntimeError, match="run aborted"):
        sched.join_all(timeout=JOIN_TIMEOUT)
    assert sched.alive() == [] and sched.stuck == []
    assert ctx is not None


def test_a_failure_in_a_threads_last_decision_ends_the_run():
    """A thread whose exit decision raises (here: a waiter's predicate, called
    by the exiting thread) must not die holding the baton: the run ends with
    that error instead of hanging."""
    sched = make_scheduler("random", SEED_WAITER_FIRST)

    def ready():
        if threading.current_thread().name == "other":
            raise _Boom("predicate")
        return False

    sched.start_thread("waiter", lambda: sched.block("wait", ready, lambda: "waiting"))
    sched.start_thread("other", lambda: None)
    with pytest.raises(ThreadFailure) as ei:
        sched.join_all(timeout=JOIN_TIMEOUT)
    assert ei.value.thread == "other" and "_Boom" in str(ei.value)
    assert [label for label, _ in sched.schedule()] == ["run:start", "waiter:wait"]
    assert sched.alive() == [] and sched.stuck == []


def test_random_strategy_draws_what_randrange_draws():
    """RandomStrategy calls rng._randbelow directly for speed; its picks must
    stay those of randrange (every recorded seed depends on it)."""
    from concalloc.sync.strategies import RandomStrategy
    strat, ref = RandomStrategy(7), random.Random(7)
    for n in [1, 2, 3, 4, 5, 8, 13] * 50:
        items = list(range(n))
        assert strat.choose(1, "y", None, items) == ref.randrange(n)
