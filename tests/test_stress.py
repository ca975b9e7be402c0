"""`concalloc stress` / `stress-report`: jobs, shards, the results file, restart, merge.

The campaigns here are small (graph, 2 Ps, 150 allocations each, the
collector cycling back to back): with no write barrier most seeds lose an
object, with the hybrid barrier none may.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cli_helpers import cli
from concalloc.config import Config, ConfigError
from concalloc.stress import (Job, Progress, cells, job_key, merge, parse_seeds, parse_shard, plan,
                              read_records, text_report)

SMALL = ["--workload", "graph", "--steps", "150", "--live", "32", "--gogc", "off", "--memlimit", "0"]


def stress(capsys, out, *argv):
    code, stdout, err = cli(capsys, "stress", *SMALL, "--out", str(out), "--jobs", "2", *argv, timeout=300)
    return code, stdout, err


def report_json(capsys, *files) -> dict:
    code, out, err = cli(capsys, "stress-report", "--json", *map(str, files))
    assert code == 0, err
    return json.loads(out)


def by_cell(doc: dict) -> dict:
    return {c["cell"]["barrier"]: c for c in doc["cells"]}


# --- parsing and planning --------------------------------------------------------------

def test_seeds_and_shards_parse():
    assert list(parse_seeds("3:6")) == [3, 4, 5, 6]
    assert list(parse_seeds("7")) == [7]
    assert parse_shard("2/5") == (2, 5)
    for bad in ("6:3", "x", "-1:2", "1:"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


@pytest.mark.parametrize("argv, flag", [(["--seeds", "9:1"], "--seeds"), (["--shard", "3/2"], "--shard"),
                                        (["--barrier", "none,bogus"], "--barrier"), (["--jobs", "0"], "--jobs"),
                                        (["--procs", "2,x"], "--procs"), (["--scheduler", "replay"], "--scheduler")])
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, argv, flag):
    code, out, err = stress(capsys, tmp_path / "r.jsonl", *argv)
    assert code == 2 and err.count("\n") == 1 and flag in err, err
    assert not (tmp_path / "r.jsonl").exists() or not (tmp_path / "r.jsonl").read_text()


def grid(**axes):
    base = Config(procs=2, workload="graph", steps=10, live=8, reserve_bytes=1 << 30)
    full = {"workload": ["graph"], "barrier": ["hybrid"], "scheduler": ["random"]}
    full.update(axes)
    return cells(base, full)


def test_axes_make_a_grid_and_depth_only_splits_pct_cells():
    g = grid(barrier=["none", "hybrid"], scheduler=["random", "pct"], pct_depth=[2, 3])
    # random ignores the depth: 2 barriers x (random + pct at 2 depths)
    assert len(g) == 2 * 3
    assert sorted((c["barrier"], c["scheduler"], c.get("pct_depth")) for c, _, _ in g) == sorted(
        [(b, "random", None) for b in ("none", "hybrid")] + [(b, "pct", d) for b in ("none", "hybrid") for d in (2, 3)])


def test_shards_partition_the_jobs_seed_major():
    g = grid(barrier=["none", "hybrid", "yuasa"])
    seeds = parse_seeds("1:7")
    whole = plan(g, seeds, (1, 1), 60)
    assert [j.cfg.seed for j in whole] == [s for s in seeds for _ in g]
    parts = [plan(g, seeds, (i, 3), 60) for i in (1, 2, 3)]
    keys = [j.key for part in parts for j in part]
    assert sorted(keys) == sorted(j.key for j in whole) and len(set(keys)) == len(keys)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_job_key_is_the_whole_configuration():
    cfg = Config(workload="graph", steps=10, scheduler="random")
    assert job_key("run", cfg, True) == job_key("run", cfg.replace(), True)
    others = {job_key("run", cfg.replace(seed=2), True), job_key("run", cfg, False),
              job_key("run", cfg.replace(barrier="none"), True), job_key("pilot", cfg, True)}
    assert job_key("run", cfg, True) not in others and len(others) == 4


# --- the results file ------------------------------------------------------------------

def test_a_cut_off_last_line_is_dropped_and_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    rec = {"format": "concalloc-stress", "key": "k1", "kind": "run"}
    path.write_text(json.dumps(rec) + "\n" + '{"format": "concalloc-str')
    assert [r["key"] for r in read_records(str(path))] == ["k1"]
    assert path.read_text().endswith("concalloc-str")          # read-only: untouched
    read_records(str(path), repair=True)
    assert path.read_text() == json.dumps(rec) + "\n"


def test_a_foreign_file_is_refused(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    code, out, err = stress(capsys, path, "--seeds", "1")
    assert code == 2 and "not a JSON line" in err and err.count("\n") == 1
    assert path.read_text() == "hello\n"


# --- campaigns -----------------------------------------------------------------------

def test_a_campaign_finds_losses_only_where_theory_allows_and_replays_them(capsys, tmp_path):
    out = tmp_path / "r.jsonl"
    code, stdout, err = stress(capsys, out, "--barrier", "none,hybrid", "--seeds", "1:6")
    lines = out.read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(x)["kind"] == "run" for x in lines)
    doc = report_json(capsys, out)
    none, hybrid = by_cell(doc)["none"], by_cell(doc)["hybrid"]
    assert none["runs"] == hybrid["runs"] == 6
    assert hybrid["violations"] == 0 and none["violations"] >= 1
    assert code == 1                                   # some run found a violation
    first = none["first_violation"]
    violating = sorted(json.loads(x)["seed"] for x in lines
                       if json.loads(x)["outcome"] == "violation" and json.loads(x)["cell"]["barrier"] == "none")
    assert first["seed"] == violating[0] and first["runs_to_first"] == violating[0]
    assert none["violation_rate"] == len(violating) / 6
    assert "replay the first violation" in stdout and first["replay"] in stdout
    # the replay command repeats the violation
    argv = first["replay"].split()[1:]
    rcode, _, rerr = cli(capsys, *argv)
    assert rcode == 1 and first["invariant"] in rerr


def test_restart_skips_finished_jobs_and_shards_merge_to_the_whole(capsys, tmp_path):
    whole, a, b = tmp_path / "whole.jsonl", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    argv = ("--barrier", "none,hybrid", "--seeds", "1:5")
    stress(capsys, whole, *argv)
    before = whole.read_text()
    code, _, err = stress(capsys, whole, *argv)               # again: nothing to do
    assert whole.read_text() == before and "10 already in" in err and "0 to run" in err
    stress(capsys, a, *argv, "--shard", "1/2")
    stress(capsys, b, *argv, "--shard", "2/2")
    assert len(a.read_text().splitlines()) + len(b.read_text().splitlines()) == 10
    merged, one = report_json(capsys, a, b), report_json(capsys, whole)
    strip = ("seconds", "config")
    assert [{k: v for k, v in c.items() if k not in strip} for c in merged["cells"]] == \
        [{k: v for k, v in c.items() if k not in strip} for c in one["cells"]]
    # a shard given twice counts once
    assert report_json(capsys, a, b, a)["runs"] == 10


def test_kill_9_loses_at_most_the_jobs_in_flight(tmp_path):
    out = tmp_path / "k.jsonl"
    argv = [sys.executable, "-m", "concalloc", "stress", *SMALL, "--barrier", "none,hybrid", "--seeds", "1:15",
            "--jobs", "2", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 4):
            time.sleep(0.05)
            assert proc.poll() is None, proc.stderr.read()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)          # the campaign and its workers, as kill -9 would
        proc.wait()
    proc.stderr.close()
    done = read_records(str(out))
    assert 4 <= len(done) < 30
    with open(out, "a") as f:
        f.write('{"format": "concalloc-stress", "key": ')      # a line the kill cut off
    code = subprocess.run(argv[:-1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert f"{len(done)} already in" in code.stderr, code.stderr
    after = read_records(str(out))
    assert len(after) == 30 and len({r["key"] for r in after}) == 30
    assert after[:len(done)] == done                 # the old lines are kept as they were


CRASHY = '''
import os
DESCRIPTION = "dies on seed 2"
def slots(cfg):
    return 1
def run(m, cfg):
    if cfg.seed == 2 and m.p.id == 0:
        os.kill(os.getpid(), 9)
    while m.running():
        m.alloc(64)
'''


def test_a_worker_that_dies_is_recorded_and_replaced(capsys, tmp_path):
    wl = tmp_path / "crashy.py"
    wl.write_text(CRASHY)
    out = tmp_path / "r.jsonl"
    code, stdout, err = cli(capsys, "stress", "--workload", str(wl), "--steps", "20", "--seeds", "1:4",
                            "--jobs", "2", "--out", str(out), timeout=300)
    recs = {r["seed"]: r for r in read_records(str(out))}
    assert sorted(recs) == [1, 2, 3, 4]
    assert recs[2]["outcome"] == "crash" and "signal 9" in recs[2]["error"]
    assert all(recs[s]["outcome"] == "ok" for s in (1, 3, 4))
    assert code == 3                               # errors, no violation


# --- the report and progress -----------------------------------------------------------

def _rec(key, seed, outcome, barrier="none"):
    return {"format": "concalloc-stress", "kind": "run", "key": key, "seed": seed, "outcome": outcome,
            "cell": {"workload": "graph", "barrier": barrier}, "replay": f"concalloc run --seed {seed}",
            "config": {"workload": "graph", "barrier": barrier, "seed": seed, "scheduler": "random"},
            "violation": {"invariant": "gc.checkmark"} if outcome == "violation" else None, "seconds": 1.0}


def test_merge_takes_the_lowest_violating_seed_whatever_the_file_order():
    recs = [_rec("c", 9, "violation"), _rec("a", 1, "ok"), _rec("b", 4, "violation"), _rec("d", 2, "error"),
            _rec("b", 4, "violation"), _rec("e", 1, "ok", barrier="hybrid")]
    none, hybrid = merge(recs)
    assert (none.runs, none.violations, none.errors) == (4, 2, 1)
    assert none.first_seed == 4 and none.runs_to_first() == 3 and none.first_replay.endswith("--seed 4")
    assert hybrid.runs == 1 and hybrid.first_seed is None
    text = text_report([none, hybrid])
    assert "seed 4 (run 3)" in text and "50.00%" in text and "concalloc run --seed 4" in text


def test_a_field_at_its_default_does_not_split_a_cell():
    """Records from before a Config field existed (no schedule_seed) and after it (at its
    default) are one cell; a field set away from its default is another cell."""
    old = _rec("a", 1, "ok")
    new = _rec("b", 2, "violation")
    new["config"]["schedule_seed"] = None
    other = _rec("c", 3, "ok")
    other["config"]["schedule_seed"] = 7
    cells_ = merge([old, new, other])
    assert sorted(c.runs for c in cells_) == [1, 2]


def test_progress_says_count_eta_and_violations():
    stream = io.StringIO()
    p = Progress(3, stream=stream, every=0)
    for outcome in ("ok", "violation", "error"):
        p.update({"outcome": outcome, "config": {"barrier": "none", "seed": 1}})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("stress: 1/3 (33%)") and "ETA" in lines[0]
    assert "1 violation(s) in 1 cell(s), 1 error(s)" in lines[-1] and "3/3 (100%)" in lines[-1]


def test_job_pickles_for_the_workers():
    import pickle
    j = Job("run", {"workload": "graph"}, Config(workload="graph", steps=5), True, 30.0)
    k = pickle.loads(pickle.dumps(j))
    assert k.key == j.key and k.cfg == j.cfg
