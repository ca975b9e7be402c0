"""A controlled run is a pure function of (config, seed), and its schedule replays it.

Runs are small (200 allocations per mutator, 2 or 3 Ps) so that twenty
repeats per workload stay cheap.  Determinism is checked on the whole result
(everything but wall time), not only on the event log hash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from concalloc.config import Config
from concalloc.runtime import EXIT_INTERNAL, EXIT_OK, Runtime, replay_command
from concalloc.sync import ReplayDivergence

GiB = 1 << 30
REPEATS = 20
WORKLOADS = ("ring", "tree", "churn", "graph", "burst")
# Graph makes ~35 scheduling decisions per allocation; fewer steps keep it cheap.
STEPS = {"ring": 200, "tree": 200, "churn": 200, "graph": 100, "burst": 200}
CONTROLLED = {"random": {}, "pct": {"pct_depth": 3, "pct_k": 300}}
REPO = Path(__file__).resolve().parents[1]


def config(workload: str, scheduler: str, seed: int = 7, procs: int = 3, **kw) -> Config:
    return Config(procs=procs, workload=workload, steps=STEPS[workload], live=32, scheduler=scheduler,
                  seed=seed, reserve_bytes=GiB, **{**CONTROLLED.get(scheduler, {}), **kw})


def run(cfg: Config, save: str | None = None):
    with Runtime(cfg) as rt:
        res = rt.run()
        if save:
            rt.save_schedule(save)
        return res, rt.sched.schedule()


def observable(res) -> dict:
    """Everything a run reports except wall time."""
    d = res.to_json()
    d.pop("elapsed_s")
    return d


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("scheduler", list(CONTROLLED))
def test_repeats_give_one_result(scheduler, workload):
    cfg = config(workload, scheduler)
    first, sched0 = run(cfg)
    assert first.exit_code == EXIT_OK, (first.error, replay_command(cfg))
    want = observable(first)
    for i in range(REPEATS - 1):
        res, sched = run(cfg)
        assert res.event_log_hash == first.event_log_hash, f"repeat {i + 2}: {replay_command(cfg)}"
        assert sched == sched0
        assert observable(res) == want


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("scheduler", list(CONTROLLED))
def test_different_seeds_give_different_schedules(scheduler, workload):
    hashes, schedules = set(), set()
    for seed in range(1, 6):
        res, sched = run(config(workload, scheduler, seed=seed))
        assert res.exit_code == EXIT_OK
        hashes.add(res.event_log_hash)
        schedules.add(tuple(sched))
    assert len(hashes) == 5 and len(schedules) == 5


def test_the_same_run_in_another_process_has_the_same_hash():
    # String hashing is randomised per process; nothing in a run may depend on it.
    cfg = config("churn", "random", seed=11)
    res, _ = run(cfg)
    cmd = [sys.executable, "-m", "concalloc.cli", "run", "--json", "--procs", "3", "--workload", "churn",
           "--steps", str(STEPS["churn"]), "--live", "32", "--scheduler", "random", "--seed", "11",
           "--reserve", "1GiB", "--no-lock-stats"]
    env = dict(os.environ, PYTHONHASHSEED="4242",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["config"] == res.config
    assert doc["event_log_hash"] == res.event_log_hash


# --- replay ----------------------------------------------------------------------------

@pytest.mark.parametrize("workload", ["ring", "churn"])
def test_replay_reproduces_a_random_run(tmp_path, workload):
    path = str(tmp_path / "sched.json")
    cfg = config(workload, "random", seed=5)
    orig, sched = run(cfg, save=path)
    assert orig.exit_code == EXIT_OK
    doc = json.loads(Path(path).read_text())
    assert doc["kind"] == "random" and doc["config"] == {**cfg.to_dict(), "cache": True}
    assert [tuple(d) for d in doc["schedule"]] == sched
    again, sched2 = run(cfg.replace(scheduler="replay", replay_file=path))
    assert again.exit_code == EXIT_OK, again.error
    assert again.event_log_hash == orig.event_log_hash
    assert sched2 == sched
    assert again.memstats == orig.memstats and again.mutators == orig.mutators


def test_replay_of_a_pct_run(tmp_path):
    path = str(tmp_path / "sched.json")
    cfg = config("burst", "pct", seed=3)
    orig, _ = run(cfg, save=path)
    again, _ = run(cfg.replace(scheduler="replay", replay_file=path))
    assert again.exit_code == EXIT_OK and again.event_log_hash == orig.event_log_hash


@pytest.mark.parametrize("change, expect", [
    ({"workload": "churn"}, "yield point"),              # another program
    ({"procs": 2}, None),                                # fewer threads
    ({"steps": 150}, None),                              # a shorter run
    ({"steps": 250}, None),                              # a longer run
])
def test_replay_of_another_config_diverges(tmp_path, change, expect):
    path = str(tmp_path / "sched.json")
    cfg = config("ring", "random", seed=5)
    orig, _ = run(cfg, save=path)
    assert orig.exit_code == EXIT_OK
    other = cfg.replace(scheduler="replay", replay_file=path, **change)
    res, _ = run(other)
    assert res.exit_code == EXIT_INTERNAL, replay_command(other)
    assert isinstance(res.error, ReplayDivergence), res.error
    assert str(res.error).startswith(f"replay diverged at step {res.error.step}: expected ")
    if expect:
        assert expect in str(res.error)
    assert res.to_json()["error"]["type"] == "ReplayDivergence"


@pytest.mark.parametrize("edit, expect", [
    (lambda sched: sched[:-10], "the end of the recorded schedule"),
    (lambda sched: sched + [sched[-1]], "the program ended after"),
])
def test_replay_of_an_edited_schedule_diverges(tmp_path, edit, expect):
    path = tmp_path / "sched.json"
    cfg = config("ring", "random", seed=5)
    orig, _ = run(cfg, save=str(path))
    doc = json.loads(path.read_text())
    doc["schedule"] = edit(doc["schedule"])
    path.write_text(json.dumps(doc))
    res, _ = run(cfg.replace(scheduler="replay", replay_file=str(path)))
    assert res.exit_code == EXIT_INTERNAL
    assert isinstance(res.error, ReplayDivergence) and expect in str(res.error), res.error


def test_hash_does_not_depend_on_the_calling_thread():
    # The thread that calls run() makes the start decision and flushes the
    # mcaches at the end; its name must not leak into the event log.
    import threading
    cfg = config("ring", "random", seed=2)
    here, _ = run(cfg)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("res", run(cfg)[0]), name="some-harness-thread")
    t.start()
    t.join(120)
    assert box["res"].event_log_hash == here.event_log_hash
    assert threading.current_thread().name != "run"      # the caller's name is given back
