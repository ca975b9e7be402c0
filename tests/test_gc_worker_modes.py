"""Mark worker modes in virtual time (gc/cycle.py _markWorkerMode): with
GOMAXPROCS=2 Go 1.19 runs no dedicated worker and a fractional one held to
25% of the mark phase; with 4, one dedicated worker.  Under the os scheduler,
or with --gc-workers, the workers are not modelled."""

from __future__ import annotations

import pytest

from concalloc.config import Config
from concalloc.gc.cycle import default_workers
from concalloc.gc.mark import DRAIN_CHECK_THRESHOLD
from concalloc.gc.pacer import GCController
from concalloc.runtime import Runtime

GiB = 1 << 30


def _run(gogc=25, live=2000, **kw):
    cfg = Config(workload="ring", live=live, size=64, mutators=1, gogc=gogc, heapcheck=0,
                 reserve_bytes=GiB, max_steps=10**12, **kw)
    with Runtime(cfg) as rt:
        res = rt.run()
        ctl = rt.gc.ctl
        modes = rt.gc.worker_modes
    assert res.exit_code == 0, res.error
    return res, ctl, modes


@pytest.mark.parametrize("procs", [1, 2, 3, 4, 6, 8])
def test_worker_threads_are_the_dedicated_ones_plus_one_fractional(procs):
    ctl = GCController()
    ctl.init(100, -1)
    dedicated = ctl._dedicatedAndFractional(procs)
    assert default_workers(procs) == max(1, dedicated + (ctl.fractionalUtilizationGoal > 0))


def test_two_procs_mark_with_a_fractional_worker_at_a_quarter():
    # a live heap of 20,000 objects: more scan work than one DRAIN_CHECK_THRESHOLD
    res, ctl, modes = _run(procs=2, steps=150000, scheduler="vtime", gogc=100, live=20000)
    assert modes
    cycles = res.gc["cycles"]
    assert len(cycles) >= 2
    assert ctl.fractionalUtilizationGoal == 0.25 and ctl.dedicatedMarkTime.load() == 0
    for c in cycles:
        mark_ns, bg_ns = c["clock_ns"][1], c["cpu_ns"][2]
        # pollFractionalWorkerExit lets a worker run to 1.2x its share of the mark so
        # far, checked every DRAIN_CHECK_THRESHOLD of scan work: a little over 30% at
        # most -- except its first drain, which the mark may not outlast (an assist
        # that takes the last work ends it, as in Go: assist_completion_point)
        polls = -(-c["background_work"] // DRAIN_CHECK_THRESHOLD)
        assert bg_ns <= 0.35 * mark_ns or polls <= 1, c
    # the worker stops ahead of its share and is off its P until the next
    # scheduling point; the mutator's assists finish the mark before that
    assert any(c["clock_ns"][1] < c["cpu_ns"][2] / 0.25 for c in cycles)


def test_four_procs_mark_with_one_dedicated_worker():
    res, ctl, modes = _run(procs=4, steps=20000, scheduler="vtime", gogc=10)
    assert res.gc["cycles"]
    assert modes and ctl.fractionalUtilizationGoal == 0 and ctl.fractionalMarkTime.load() == 0
    assert ctl.dedicatedMarkTime.load() > 0
    assert ctl.dedicatedMarkWorkersNeeded.load() == 1       # the slot is given back after each drain


def test_os_scheduler_and_explicit_workers_are_not_modelled():
    assert not _run(procs=2, steps=3000)[2]
    assert not _run(procs=2, steps=3000, scheduler="vtime", gc_workers=1)[2]


def _gc(procs=2, scheduler="vtime"):
    cfg = Config(workload="ring", live=100, size=64, mutators=1, gogc=100, heapcheck=0, procs=procs,
                 reserve_bytes=GiB, max_steps=10**12, steps=10, scheduler=scheduler)
    return Runtime(cfg)


@pytest.mark.parametrize("now,want", [(0, 10_000_000), (3_000_000, 10_000_000), (10_000_000, 20_000_000),
                                      (25_500_000, 30_000_000)])
def test_next_scheduling_point_is_the_next_sysmon_preemption_since_mark_start(now, want, monkeypatch):
    with _gc() as rt:
        gc = rt.gc
        gc.ctl.markStartTime = 1_000
        monkeypatch.setattr(gc, "clock", lambda: now + 1_000)
        assert gc._nextSchedulingPoint() == want + 1_000


@pytest.mark.parametrize("procs,late", [(2, True), (4, False)])
def test_enlist_worker_wakes_for_the_next_scheduling_point_unless_dedicated_workers_are_needed(procs, late):
    # Go 1.19's enlistWorker: no wakep for an idle P; a running P is preempted
    # for a worker only while dedicated workers are still needed.
    with _gc(procs) as rt:
        gc = rt.gc
        gc.ctl.dedicatedMarkWorkersNeeded.store(procs // 4)
        gc.enlist_worker()
        assert gc.enlisted is late


def test_enlist_worker_under_os_wakes_at_once():
    with _gc(scheduler="os") as rt:
        rt.gc.enlist_worker()
        assert rt.gc.enlisted is False


def test_an_assist_that_drains_the_last_work_signals_mark_completion():
    with _gc() as rt:
        gc = rt.gc
        told = []
        gc.done_cond = type("Cond", (), {"notify_all": lambda self: told.append(1)})()
        gc.markrootJobs = gc.rootsDone = 3
        gc.assist_completion_point()
        assert told == [1]
        gc.nwait -= 1                       # a worker still draining: not yet
        gc.assist_completion_point()
        assert told == [1]
