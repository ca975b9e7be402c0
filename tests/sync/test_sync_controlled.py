"""Controlled scheduling: deadlock detection, determinism, replay, PCT mechanics."""

import json

import pytest

from concalloc.sync import (Deadlock, Rank, ReplayDivergence, StepLimitExceeded, SyncContext,
                            load_schedule, make_scheduler, save_schedule)
from concalloc.trace import Recorder


def _two_lock_deadlock(ctx):
    """T1 takes A then B, T2 takes B then A, each waiting until the other holds its first lock."""
    a, b = ctx.mutex("A", Rank.MCENTRAL), ctx.mutex("B", Rank.MCENTRAL)
    got_a, got_b = ctx.event("got A"), ctx.event("got B")

    def t1():
        with a:
            got_a.set()
            got_b.wait()
            with b:
                pass

    def t2():
        with b:
            got_b.set()
            got_a.wait()
            with a:
                pass

    ctx.scheduler.start_thread("T1", t1)
    ctx.scheduler.start_thread("T2", t2)


@pytest.mark.parametrize("kind", ["random", "pct"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_lock_deadlock_is_caught_at_once(kind, seed):
    sched = make_scheduler(kind, seed)
    ctx = SyncContext(sched, check_ranks=False)
    _two_lock_deadlock(ctx)
    with pytest.raises(Deadlock) as ei:
        sched.join_all(timeout=20)
    err = ei.value
    assert err.blocked == {"T1": "B.lock held by T2", "T2": "A.lock held by T1"}
    assert "T1: B.lock held by T2" in str(err) and "T2: A.lock held by T1" in str(err)
    # Found at the first decision with every thread blocked: nothing ran after it.
    assert err.step == len(sched.schedule()) + 1
    assert err.label in ("T1:wait B.lock", "T2:wait A.lock")
    assert sched.alive() == []


def test_naive_lock_order_deadlock_depends_on_the_seed():
    """Without forcing, only some schedules deadlock; each seed always decides the same way."""
    def run(seed):
        sched = make_scheduler("random", seed)
        ctx = SyncContext(sched, check_ranks=False)
        a, b = ctx.mutex("A", Rank.MCENTRAL), ctx.mutex("B", Rank.MCENTRAL)

        def take(first, second):
            def body():
                with first:
                    with second:
                        pass
            return body
        sched.start_thread("T1", take(a, b))
        sched.start_thread("T2", take(b, a))
        try:
            sched.join_all(timeout=20)
            return "ok"
        except Deadlock:
            return "deadlock"
    outcomes = [run(s) for s in range(12)]
    assert "deadlock" in outcomes and "ok" in outcomes
    assert outcomes == [run(s) for s in range(12)]


def _workload(ctx, extra_yield=False):
    """Three threads sharing two ranked locks, a counter and an event."""
    central = ctx.mutex("mcentral[5]", Rank.MCENTRAL, "mcentral")
    heap = ctx.mutex("mheap", Rank.MHEAP)
    done = ctx.event("P0 done")
    total = [0]
    rec = ctx.events

    def mutator(i):
        def body():
            for j in range(6):
                with central:
                    if j % 2 == 0:
                        with heap:
                            total[0] += 1
                    if rec:
                        rec.emit("alloc", p=i, n=j)
                ctx.yield_point("after alloc")
                if extra_yield and i == 1 and j == 3:
                    ctx.yield_point("surprise")
            if i == 0:
                done.set()
            else:
                done.wait()
        return body

    for i in range(3):
        ctx.scheduler.start_thread(f"P{i}", mutator(i))
    return total


def _run(kind, seed, extra_yield=False, **opts):
    sched = make_scheduler(kind, seed, **opts)
    rec = Recorder(True)
    ctx = SyncContext(sched, lock_stats=True, events=rec)
    total = _workload(ctx, extra_yield)
    sched.join_all(timeout=20)
    assert total[0] == 9
    return sched, rec, ctx


@pytest.mark.parametrize("kind,opts", [("random", {}), ("pct", {"depth": 3, "pct_k": 60})])
def test_same_seed_same_run_twenty_times(kind, opts):
    first_sched, first_rec, first_ctx = _run(kind, 11, **opts)
    want = (first_sched.schedule(), first_rec.event_log_hash(), first_ctx.lock_stats())
    assert len(want[0]) > 50
    for _ in range(20):
        sched, rec, ctx = _run(kind, 11, **opts)
        assert (sched.schedule(), rec.event_log_hash(), ctx.lock_stats()) == want


@pytest.mark.parametrize("kind,opts", [("random", {}), ("pct", {"depth": 3, "pct_k": 60})])
def test_different_seeds_give_different_schedules(kind, opts):
    schedules = {json.dumps(_run(kind, seed, **opts)[0].schedule()) for seed in range(6)}
    assert len(schedules) > 1


def test_labels_are_thread_and_yield_point():
    sched, _, _ = _run("random", 3)
    labels = {label for label, _ in sched.schedule()}
    assert "P2:mcentral[5].lock" in labels and "P0:mheap.unlock" in labels
    assert labels >= {"run:start", "P1:after alloc"}


def test_replay_reproduces_and_reports_divergence(tmp_path):
    sched, rec, _ = _run("random", 5)
    path = tmp_path / "schedule.json"
    save_schedule(sched, str(path), config={"workload": "three-mutators"})
    doc = load_schedule(str(path))
    assert doc["kind"] == "random" and doc["seed"] == 5 and doc["config"] == {"workload": "three-mutators"}

    again, again_rec, _ = _run("replay", 0, schedule=str(path))
    assert again.schedule() == sched.schedule()
    assert again_rec.event_log_hash() == rec.event_log_hash()

    with pytest.raises(ReplayDivergence) as ei:
        _run("replay", 0, extra_yield=True, schedule=doc)
    err = ei.value
    assert "P1:surprise" in err.got
    assert 1 <= err.step <= len(doc["schedule"])
    assert f"replay diverged at step {err.step}" in str(err)


def test_replay_reports_unrunnable_thread_and_short_program():
    sched, _, _ = _run("random", 5)
    schedule = sched.schedule()
    i = next(i for i, (label, chosen) in enumerate(schedule) if label == "run:start")
    bogus = list(schedule)
    bogus[i] = ("run:start", "P9")
    with pytest.raises(ReplayDivergence, match="P9 not runnable"):
        _run("replay", 0, schedule=bogus)
    with pytest.raises(ReplayDivergence, match="program ended"):
        _run("replay", 0, schedule=schedule + [("P0:extra", "P0")])


# -- PCT -------------------------------------------------------------------------


def _spinners(sched, n_threads, n_steps):
    ctx = SyncContext(sched)
    for t in range(n_threads):
        def body():
            for _ in range(n_steps):
                ctx.yield_point("step")
        sched.start_thread(f"T{t}", body)
    return ctx


def _chosen(sched):
    return [chosen for label, chosen in sched.schedule()]


@pytest.mark.parametrize("seed", range(20))
def test_pct_initial_priorities_and_change_points(seed):
    sched = make_scheduler("pct", seed, depth=3, pct_k=30)
    _spinners(sched, 4, 3)
    prios = sched.priorities()
    assert sorted(prios.values()) == [3, 4, 5, 6]
    cps = sched.strategy.change_points
    assert len(cps) == 2 and cps == sorted(set(cps)) and all(1 <= c <= 30 for c in cps)
    sched.join_all(timeout=20)


@pytest.mark.parametrize("seed", range(10))
def test_pct_depth_one_runs_by_priority_without_preemption(seed):
    sched = make_scheduler("pct", seed, depth=1)
    _spinners(sched, 3, 5)
    order = sorted(sched.priorities(), key=sched.priorities().get, reverse=True)
    sched.join_all(timeout=20)
    chosen = _chosen(sched)
    runs = [c for i, c in enumerate(chosen) if i == 0 or chosen[i - 1] != c]
    assert runs == order        # each thread runs to its end, highest priority first


@pytest.mark.parametrize("seed", range(12))
def test_pct_change_point_preempts_the_running_thread(seed):
    sched = make_scheduler("pct", seed, depth=2, pct_k=10)
    _spinners(sched, 2, 6)          # each thread: 6 yields + exit = 7 thread steps
    prios = sched.priorities()
    high = max(prios, key=prios.get)
    low = min(prios, key=prios.get)
    (k1,) = sched.strategy.change_points
    sched.join_all(timeout=20)
    chosen = _chosen(sched)         # chosen[0] is the start decision, chosen[t] thread step t
    if k1 <= 7:
        # The high thread runs until it executes step k1, drops to priority 1, and the
        # low one then runs to its end before the high one finishes.
        assert chosen == [high] * k1 + [low] * 7 + [high] * (7 - k1)
        assert sched.priorities()[high] == 1
    else:
        assert chosen == [high] * 7 + [low] * 7


def test_pct_steps_are_measured():
    sched = make_scheduler("pct", 4, depth=2, pct_k=10_000)
    _spinners(sched, 2, 50)
    sched.join_all(timeout=20)
    # start + 2 x 50 yields + the first exit (the last exit has nobody to choose)
    assert sched.steps == len(sched.schedule()) == 102


def test_step_limit_stops_a_livelock():
    sched = make_scheduler("pct", 0, depth=1, max_steps=500)
    ctx = SyncContext(sched)
    flag = []

    def spin():
        while not flag:
            ctx.yield_point("spin")

    def setter():
        flag.append(1)

    sched.start_thread("spinner", spin)
    sched.start_thread("setter", setter)
    if sched.priorities()["setter"] > sched.priorities()["spinner"]:
        sched.join_all(timeout=20)
    else:
        with pytest.raises(StepLimitExceeded):
            sched.join_all(timeout=20)
    assert sched.alive() == []


def test_threads_started_from_a_managed_thread_are_scheduled():
    sched = make_scheduler("random", 2)
    ctx = SyncContext(sched)
    seen = []

    def child():
        seen.append("child")

    def parent():
        sched.start_thread("child", child)
        sched.join("child")
        seen.append("parent")

    sched.start_thread("parent", parent)
    sched.join_all(timeout=20)
    assert seen == ["child", "parent"]
    labels = [label for label, _ in sched.schedule()]
    assert "parent:spawn child" in labels and "parent:join child" in labels
    assert ctx.yield_point == sched.yield_point
