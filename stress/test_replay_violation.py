"""A controlled run's violation replays 100 times out of 100.

The lost object of examples/lost_object.py (no barrier, random scheduler,
seed 5, 400 steps, checkmark on) is run once; its replay command is then run again and
again, and each replay must give the same violation record -- every field,
the last events of every thread included -- and the same event_log_hash.

    pytest stress -m smoke -k replay_violation     # 10 replays
    pytest stress -m long -k replay_violation      # 100 replays (some 10 s)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from concalloc.check.replay import replay
from concalloc.config import Config
from concalloc.runtime import EXIT_VIOLATION, Runtime

LOST = str(Path(__file__).resolve().parents[1] / "examples" / "lost_object.py")


def _replays(n: int) -> None:
    cfg = Config(workload=LOST, procs=2, scheduler="random", seed=5, barrier="none", gogc=5, gccheckmark=True,
                 steps=400)
    with Runtime(cfg) as rt:
        first = rt.run()
    assert first.exit_code == EXIT_VIOLATION, first.error
    record = first.violations[0]
    same = 0
    for i in range(n):
        again = replay(record["replay_command"])
        assert again.violations == [record], f"replay {i + 1} of {n} gave another record"
        assert again.event_log_hash == first.event_log_hash, f"replay {i + 1} of {n}: another event log"
        same += 1
    assert same == n


@pytest.mark.smoke
def test_a_violation_replays_10_times_out_of_10():
    _replays(10)


@pytest.mark.long
def test_a_violation_replays_100_times_out_of_100():
    _replays(100)
