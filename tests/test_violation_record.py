"""A violation is a structured record, and a controlled run's replay gives it again.

The record (concalloc/check/violation.py): kind, Go's text, address, span
and size class, cycle, phase, thread, each thread's last events, config,
seed, scheduler and the replay command.  The lost object of
examples/lost_object.py with no barrier (seed 5 of the random scheduler, 400 steps)
is the violating run; stress/test_replay_violation.py replays it 100 times.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from concalloc.check.replay import config_from_command, replay
from concalloc.check.violation import EVENTS_PER_THREAD, Violation
from concalloc.config import Config
from concalloc.runtime import EXIT_OK, EXIT_VIOLATION, Runtime
from concalloc.trace import RingRecorder

from cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]
LOST = str(REPO / "examples" / "lost_object.py")
KEYS = {"kind", "invariant", "message", "go_text", "address", "span", "sizeclass", "cycle", "phase", "thread",
        "events", "config", "seed", "scheduler", "replay_command", "replay"}


def lost_config(**kw) -> Config:
    return Config(**{**dict(workload=LOST, procs=2, scheduler="random", seed=5, barrier="none", gogc=5,
                            gccheckmark=True, steps=400), **kw})


@pytest.fixture(scope="module")
def lost():
    cfg = lost_config()
    with Runtime(cfg) as rt:
        res = rt.run()
    assert res.exit_code == EXIT_VIOLATION, f"seed 5 no longer loses B: pick another seed\n{res.error}"
    return cfg, res


def test_the_record_has_every_field(lost):
    cfg, res = lost
    v = res.violations[0]
    assert set(v) == KEYS
    assert v["kind"] == v["invariant"] == "gc.checkmark"
    assert v["go_text"] == "fatal error: checkmark found unmarked object"
    assert v["address"].startswith("0xc0") and v["span"]["base"] <= v["address"] < v["span"]["limit"]
    assert v["sizeclass"] == v["span"]["sizeclass"] > 0 and v["span"]["elemsize"] == 24
    assert v["cycle"] == res.gc["num_gc"] + 1 and v["phase"] == "marktermination" and v["thread"] == "gc"
    assert v["seed"] == 5 and v["scheduler"] == "random" and v["config"]["barrier"] == "none"
    assert v["config"]["workload"] == LOST and v["config"]["cache"] is True
    assert v["replay_command"].startswith("concalloc run ") and "--barrier none" in v["replay_command"]
    # the last events of every thread, oldest first, scheduler decisions among them
    ev = v["events"]
    assert {"gc", "P0", "P1", "gcw0"} <= set(ev)
    for thread, evs in ev.items():
        assert 0 < len(evs) <= EVENTS_PER_THREAD
        assert [e["seq"] for e in evs] == sorted(e["seq"] for e in evs)
        assert all(set(e) == {"seq", "kind", "fields"} for e in evs)
    assert any(e["kind"] == "sched_decision" for e in ev["P0"])
    json.dumps(v)                                   # JSON-ready as it is


def test_the_record_survives_pickling(lost):
    _cfg, res = lost
    v = res.error
    back = pickle.loads(pickle.dumps(v))
    assert isinstance(back, Violation) and back.to_dict() == v.to_dict() and str(back) == str(v)


def test_replaying_the_command_gives_the_same_record_and_hash(lost):
    cfg, res = lost
    v = res.violations[0]
    again_cfg, cache = config_from_command(v["replay_command"])
    assert again_cfg == cfg and cache
    for _ in range(10):
        again = replay(v["replay_command"])
        assert again.violations == res.violations
        assert again.event_log_hash == res.event_log_hash


def test_run_json_carries_the_record_and_the_text_report_prints_it(capsys):
    argv = ["run", "--workload", LOST, "--procs", "2", "--scheduler", "random", "--seed", "5", "--barrier", "none",
            "--gogc", "5", "--godebug", "gccheckmark=1", "--steps", "400"]
    code, out, _err = cli(capsys, *argv, "--json")
    assert code == EXIT_VIOLATION
    v = json.loads(out)["violations"][0]
    assert set(v) == KEYS and v["kind"] == "gc.checkmark" and v["events"]["gc"]
    assert v["replay_command"] == "concalloc " + " ".join(argv[:1] + [
        "--procs", "2", "--workload", LOST, "--steps", "400", "--scheduler", "random", "--seed", "5", "--gogc", "5",
        "--barrier", "none", "--godebug", "gccheckmark=1"])
    code, _out, err = cli(capsys, *argv)
    assert code == EXIT_VIOLATION
    assert "invariant violated: gc.checkmark" in err and "fatal error: checkmark found unmarked object" in err
    assert f"cycle={v['cycle']} phase=marktermination thread=gc scheduler=random seed=5" in err
    assert "  last events of P0:\n    " in err and f"  replay: {v['replay_command']}" in err


# --- the events' ring under free threads ----------------------------------------------------

class BadStats:
    """P1 books 8 KiB of free pages that do not exist: heap.accounting fails at the next verify."""

    def slots(self, cfg):
        from concalloc.workloads import ring
        return ring.slots(cfg)

    def run(self, m, cfg):
        from concalloc.workloads import ring
        if m.name == "P1":
            m.rt.heap.mheap.stats.add(heapFree=8192)
        ring.run(m, cfg)


def test_a_free_run_with_an_oracle_on_keeps_a_ring_of_each_threads_last_events():
    cfg = Config(procs=2, workload="ring", steps=3000, gccheckmark=True, reserve_bytes=1 << 30)
    with Runtime(cfg, workload=BadStats()) as rt:
        assert isinstance(rt.events, RingRecorder)
        res = rt.run()
    assert res.exit_code == EXIT_VIOLATION, res.error
    v = res.violations[0]
    assert v["kind"] == "heap.accounting" and v["scheduler"] == "os"
    assert v["events"] and all(0 < len(evs) <= EVENTS_PER_THREAD for evs in v["events"].values())
    assert any(e["kind"] == "alloc" for evs in v["events"].values() for e in evs)


def test_a_free_run_with_no_oracle_records_nothing():
    """The ring costs nothing when off: no recorder at all, so every `if ev:` is false."""
    for cfg in (Config(procs=2, steps=10), Config(procs=2, steps=10, heapcheck=0), Config(procs=2, steps=10, heapcheck=1)):
        with Runtime(cfg) as rt:
            assert rt.events is None and rt.gc.events is None and "alloc" not in vars(rt.mutators[0])
    with Runtime(Config(procs=2, steps=10, heapcheck=2)) as rt:
        assert isinstance(rt.events, RingRecorder)


def test_a_violation_outside_any_run_has_no_run_context():
    v = Violation("x.y", "broken\nfatal error: it broke")
    d = v.to_dict()
    assert d["go_text"] == "fatal error: it broke" and d["config"] is None and d["events"] == {}
    assert d["cycle"] is None and d["replay_command"]


def test_a_correct_run_has_no_record():
    with Runtime(lost_config(barrier="hybrid", steps=300)) as rt:
        res = rt.run()
    assert res.exit_code == EXIT_OK and res.violations == []
