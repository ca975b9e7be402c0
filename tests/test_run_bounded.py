"""Runtime.run_bounded: a run that does not end within its bound is aborted
and reported with its replay command; one that ends returns its result."""

import pytest

from concalloc.config import Config
from concalloc.runtime import EXIT_OK, Runtime, RunTimeout


class WaitForever:
    def slots(self, cfg):
        return 1

    def run(self, m, cfg):
        m.alloc(16)
        m.rt.sync.event("never").wait()   # os mode: a timed wait that sees the abort


def test_a_run_past_its_bound_is_aborted():
    rt = Runtime(Config(procs=1, steps=10, hang_seconds=60, reserve_bytes=1 << 30), workload=WaitForever())
    with pytest.raises(RunTimeout, match="replay: concalloc run"):
        rt.run_bounded(0.5)
    assert not rt.sched.alive()   # the waiting mutator unwound
    rt.close()


def test_a_run_within_its_bound_returns_its_result():
    with Runtime(Config(procs=2, steps=200, reserve_bytes=1 << 30)) as rt:
        assert rt.run_bounded(60).exit_code == EXIT_OK
