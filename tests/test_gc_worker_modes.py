"""Mark worker modes in virtual time (gc/cycle.py _markWorkerMode): with
GOMAXPROCS=2 Go 1.19 runs no dedicated worker and a fractional one held to
25% of the mark phase; with 4, one dedicated worker.  Under the os scheduler,
or with --gc-workers, the workers are not modelled."""

from __future__ import annotations

import pytest

from concalloc.config import Config
from concalloc.gc.cycle import default_workers
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
        # pollFractionalWorkerExit lets a worker run to 1.2x its share, checked every
        # DRAIN_CHECK_THRESHOLD of scan work: a little over 30% at most
        assert bg_ns <= 0.35 * mark_ns, c


def test_four_procs_mark_with_one_dedicated_worker():
    res, ctl, modes = _run(procs=4, steps=20000, scheduler="vtime", gogc=10)
    assert res.gc["cycles"]
    assert modes and ctl.fractionalUtilizationGoal == 0 and ctl.fractionalMarkTime.load() == 0
    assert ctl.dedicatedMarkTime.load() > 0
    assert ctl.dedicatedMarkWorkersNeeded.load() == 1       # the slot is given back after each drain


def test_os_scheduler_and_explicit_workers_are_not_modelled():
    assert not _run(procs=2, steps=3000)[2]
    assert not _run(procs=2, steps=3000, scheduler="vtime", gc_workers=1)[2]
