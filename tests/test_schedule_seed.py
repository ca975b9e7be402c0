"""--schedule-seed: the controlled scheduler's own seed, so that one program
(the workload's draws, from --seed) can be searched over many schedules.
A run stays a pure function of its Config: the replay command carries the
flag, and rerunning it gives the same event log hash."""

from __future__ import annotations

import json
import shlex

import pytest

from cli_helpers import cli
from concalloc.config import Config, ConfigError
from concalloc.runconfig import replay_command
from concalloc.runresult import EXIT_OK, EXIT_VIOLATION
from concalloc.runtime import Runtime

WEAVE = Config(procs=2, workload="weave", scheduler="random", gccheckmark=True, reserve_bytes=64 << 20)


def run(cfg):
    with Runtime(cfg) as rt:
        return rt.run()


def test_default_is_the_run_seed():
    a = run(WEAVE.replace(barrier="hybrid", seed=7))
    b = run(WEAVE.replace(barrier="hybrid", seed=7, schedule_seed=7))
    c = run(WEAVE.replace(barrier="hybrid", seed=7, schedule_seed=8))
    assert a.exit_code == b.exit_code == c.exit_code == EXIT_OK
    assert a.event_log_hash == b.event_log_hash
    assert c.event_log_hash != a.event_log_hash       # another schedule of the same program


def test_one_losing_program_loses_under_many_schedules():
    """weave's seed 306 draws a world and writes that can hide an object without a
    barrier (docs/barrier-study.md: most draws cannot, under any schedule); with
    the draws held, most random schedules of it lose, and some do not."""
    cfg = WEAVE.replace(barrier="none", seed=306)
    codes = [run(cfg.replace(schedule_seed=s)).exit_code for s in range(1, 9)]
    assert set(codes) <= {EXIT_OK, EXIT_VIOLATION}
    assert codes.count(EXIT_VIOLATION) >= 2, codes


def test_a_loss_replays_from_its_command(capsys):
    cfg = WEAVE.replace(barrier="none", seed=306)
    s = next(s for s in range(1, 20) if run(cfg.replace(schedule_seed=s)).exit_code == EXIT_VIOLATION)
    res = run(cfg.replace(schedule_seed=s))
    cmd = replay_command(cfg.replace(schedule_seed=s))
    assert f"--schedule-seed {s}" in cmd
    code, out, _ = cli(capsys, *shlex.split(cmd)[1:], "--json")
    assert code == EXIT_VIOLATION
    assert json.loads(out)["event_log_hash"] == res.event_log_hash


def test_a_bad_schedule_seed_is_refused():
    with pytest.raises(ConfigError, match="schedule_seed"):
        WEAVE.replace(schedule_seed=-1).validate()
