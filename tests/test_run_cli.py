"""`concalloc run`: JSON output, trace export, schedule save/replay, usage errors.

Most runs call concalloc.cli.main in-process (small reservations, few
steps); one runs the real command in a subprocess.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from concalloc.cli import build_parser
from concalloc.config import Config
from concalloc.demo import config_from_args
from concalloc.runtime import replay_command
from cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--reserve", "1GiB"]
GO_MEMSTATS = {"Alloc", "TotalAlloc", "Sys", "Mallocs", "Frees", "HeapAlloc", "HeapSys", "HeapIdle",
               "HeapInuse", "HeapReleased", "HeapObjects", "NextGC", "NumGC", "PauseTotalNs", "BySize"}




def run_json(capsys, *argv: str) -> dict:
    code, out, err = cli(capsys, "run", "--json", *SMALL, *argv)
    assert code == 0, err
    assert err == ""
    assert out.count("\n") == 1, "one JSON object on one line"
    return json.loads(out)


def test_json_report(capsys):
    code, out, err = cli(capsys, "run", "--steps", "300", "--procs", "2", "--json")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert {"config", "memstats", "locks", "stw", "violations"} <= set(doc)
    assert doc["config"]["procs"] == 2 and doc["config"]["steps"] == 300
    assert doc["config"]["scheduler"] == "os"
    assert GO_MEMSTATS <= set(doc["memstats"])
    ms = doc["memstats"]
    assert ms["Mallocs"] == 600 and ms["HeapObjects"] == ms["Mallocs"] - ms["Frees"]
    assert doc["violations"] == [] and doc["exit_code"] == 0
    assert {"mcentral", "mheap", "sched"} <= set(doc["locks"]["classes"])
    assert doc["mutators"] == {"P0": {"allocs": 300, "ptr_ops": 299}, "P1": {"allocs": 300, "ptr_ops": 299}}
    assert "event_log_hash" not in doc        # free OS threads have no reproducible log
    assert "error" not in doc


@pytest.mark.parametrize("sched", ["random", "pct"])
def test_controlled_runs_report_the_event_log_hash(capsys, sched):
    a = run_json(capsys, "--steps", "300", "--procs", "2", "--scheduler", sched, "--seed", "3")
    b = run_json(capsys, "--steps", "300", "--procs", "2", "--scheduler", sched, "--seed", "3")
    assert len(a["event_log_hash"]) == 64
    int(a["event_log_hash"], 16)
    assert a["event_log_hash"] == b["event_log_hash"]
    assert a["sched"]["kind"] == sched and a["sched"]["steps"] > 0
    for st in a["stw"].values():
        assert st["unit"] == "steps"
    assert a["locks"]["unit"] == "steps"


def test_human_report_of_a_controlled_run(capsys):
    # the progress line runs beside the run; a controlled run must still start
    code, out, err = cli(capsys, "run", "--steps", "300", "--procs", "2", "--scheduler", "random", *SMALL)
    assert code == 0, err
    assert ("mcache on, scheduler random seed 1, GODEBUG invalidptr=1,lockrank=1,heapcheck=1,gccheckmark=0,"
            "wbshadow=0,gcstoptheworld=0\n"
            "600 allocations") in out
    assert "GC: GOGC 100, hybrid barrier, concurrent stack scan, 1 mark worker(s): " in out
    assert "event_log_hash " in out
    assert "runtime.MemStats" in out and "lock statistics by class" in out


@pytest.mark.parametrize("sched", ["os", "random"])
def test_trace_is_chrome_trace_json(capsys, tmp_path, sched):
    path = tmp_path / "trace.json"
    doc = run_json(capsys, "--steps", "200", "--procs", "2", "--size", "1024", "--scheduler", sched,
                   "--gogc", "5", "--trace", str(path))
    assert doc["exit_code"] == 0
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    assert isinstance(events, list) and events
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"P0", "P1"} <= names
    tids = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    for e in events:
        assert e["ph"] in {"M", "X", "i", "C", "B", "E"}, e
        assert e["pid"] == 1
        if e["ph"] != "M":
            assert e["tid"] in tids and e["ts"] >= 0
        if e["ph"] == "X":
            assert e["dur"] >= 0
    allocs = [e for e in events if e["ph"] == "C" and e["name"].startswith("allocs P")]
    assert {e["name"] for e in allocs} == {"allocs P0", "allocs P1"}
    assert sum(max(e["args"]["allocations"] for e in allocs if e["name"] == n) for n in ("allocs P0", "allocs P1")) \
        == doc["memstats"]["Mallocs"]
    assert any(e["ph"] == "X" and e["name"].startswith("hold ") for e in events), "lock holds are slices"
    if sched != "os":     # deterministic: this run's collector stops the world
        assert "gc" in names
        assert any(e["ph"] == "X" and e["name"].startswith("STW") for e in events), "stop-the-world slices"


def test_save_schedule_then_replay(capsys, tmp_path):
    path = str(tmp_path / "sched.json")
    args = ["--steps", "300", "--procs", "2", "--workload", "churn", "--live", "32"]
    orig = run_json(capsys, *args, "--scheduler", "random", "--seed", "9", "--save-schedule", path)
    saved = json.loads(Path(path).read_text())
    assert saved["kind"] == "random" and len(saved["schedule"]) == orig["sched"]["steps"]
    again = run_json(capsys, *args, "--seed", "9", "--replay", path)
    assert again["config"]["scheduler"] == "replay"
    assert again["event_log_hash"] == orig["event_log_hash"]
    assert again["memstats"] == orig["memstats"]


def test_replay_with_a_contradicting_flag_exits_2_naming_it(capsys, tmp_path):
    path = str(tmp_path / "sched.json")
    run_json(capsys, "--steps", "200", "--procs", "2", "--scheduler", "random", "--save-schedule", path)
    code, out, err = cli(capsys, "run", "--json", *SMALL, "--steps", "200", "--procs", "2",
                         "--workload", "graph", "--replay", path)
    assert code == 2 and out == ""
    assert err == ("concalloc: --replay: --workload graph contradicts the schedule file, "
                   "which has --workload ring\n")


def test_replay_of_an_edited_schedule_exits_3(capsys, tmp_path):
    path = tmp_path / "sched.json"
    run_json(capsys, "--steps", "200", "--procs", "2", "--scheduler", "random", "--save-schedule", str(path))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-12] + [lines[-2].rstrip(","), lines[-1]]))   # drop the last decisions
    code, out, err = cli(capsys, "run", "--json", "--replay", str(path))
    assert code == 3
    doc = json.loads(out)
    assert doc["error"]["type"] == "ReplayDivergence"
    assert "concalloc: run ended with ReplayDivergence" in err


def test_zero_mutators(capsys):
    doc = run_json(capsys, "--steps", "100", "--procs", "2", "--mutators", "0", "--scheduler", "random")
    assert doc["exit_code"] == 0 and doc["mutators"] == {}


# --- bad arguments: exit 2, one line, no traceback ------------------------------------

BAD = [
    ["--procs", "0"],
    ["--procs", "x"],
    ["--scheduler", "nope"],
    ["--workload", "nope"],
    ["--seconds", "1", "--scheduler", "random"],
    ["--seconds", "1", "--scheduler", "pct"],
    ["--godebug", "foo=1"],
    ["--godebug", "heapcheck=x"],
    ["--godebug", "heapcheck=7"],
    ["--steps", "0"],
    ["--noise", "2"],
    ["--reserve", "12"],
    ["--reserve", "lots"],
    ["--live", "0"],
    ["--steps", "50", "--size", "12"],                   # ring with pointers needs 8-byte words
    ["--mutators", "5", "--procs", "4"],
    ["--scheduler", "replay"],                           # without a schedule file
    ["--steps", "50", "--replay", "/nonexistent/schedule.json"],
    ["--steps", "50", "--save-schedule", "unused.json"],  # the OS scheduler has no schedule
    ["--steps", "50", "--scheduler", "random", "--save-schedule", "/nonexistent/dir/s.json"],
    ["--steps", "50", "--trace", "/nonexistent/dir/trace.json"],
    ["--bogus-flag"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_arguments_exit_2_with_one_line(capsys, argv):
    code, out, err = cli(capsys, "run", *SMALL, *argv)
    assert code == 2, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("concalloc: ")
    assert "Traceback" not in err


def test_bad_replay_file_contents(capsys, tmp_path):
    for text in ("not json", '{"kind": "random"}', '{"schedule": [1, 2]}'):
        path = tmp_path / "bad.json"
        path.write_text(text)
        code, out, err = cli(capsys, "run", "--steps", "50", *SMALL, "--replay", str(path))
        assert code == 2, (text, err)
        assert len(err.splitlines()) == 1 and err.startswith("concalloc: --replay: ")


# --- the replay command round-trips through the parser ---------------------------------

@pytest.mark.parametrize("cfg, cache", [
    (Config(), True),
    (Config(procs=3, mutators=2, workload="graph", steps=500, live=77, scheduler="pct", seed=12,
            pct_depth=4, pct_k=900, reserve_bytes=1 << 30), False),
    (Config(workload="ring", size=24, noscan=True, seconds=2.5, noise=0.3, switch_interval=0.001,
            hang_seconds=4.0, heapcheck=0, lockrank=False, invalidptr=False), True),
    (Config(scheduler="replay", replay_file="/tmp/a schedule.json", steps=10, heapcheck=2), True),
])
def test_replay_command_parses_back_to_the_same_config(cfg, cache):
    cmd = replay_command(cfg, cache)
    argv = shlex.split(cmd)
    assert argv[:2] == ["concalloc", "run"]
    args = build_parser().parse_args(argv[1:])
    assert config_from_args(args) == cfg, cmd
    assert (args.cache == "on") == cache


# --- the real command ------------------------------------------------------------------

def test_subprocess_run_json():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-m", "concalloc.cli", "run", "--steps", "300", "--procs", "2",
                          "--json"], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    doc = json.loads(out.stdout)
    assert {"config", "memstats", "locks", "stw", "violations"} <= set(doc)
    assert doc["memstats"]["Mallocs"] == 600

    bad = subprocess.run([sys.executable, "-m", "concalloc.cli", "run", "--procs", "0"],
                         capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert bad.returncode == 2
    assert bad.stdout == "" and bad.stderr.count("\n") == 1 and bad.stderr.startswith("concalloc: ")
