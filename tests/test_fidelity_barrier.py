"""fidelity/barrier: Go 1.19's own gc.barrier_store_ratio, recorded by
fidelity/run_barrier_go119.py, and the shape it must share with the bench."""

import inspect
import json
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest

from bench import bench_gc

ROOT = Path(__file__).resolve().parent.parent
RECORD = json.loads((ROOT / "fidelity" / "go119" / "barrier.json").read_text())
SOURCE = (ROOT / "fidelity" / "barrier" / "main.go").read_text()
GO = os.environ.get("GO119", "/usr/lib/go-1.19/bin/go")
KEYS = ("store_nobarrier_ns", "store_barrier_ns", "store_barrier_marked_ns",
        "barrier_store_ratio", "barrier_store_ratio_marked")


def test_record_is_go119_on_one_p_with_every_batch_in_mark():
    assert RECORD["meta"]["go"].startswith("go version go1.19")
    assert len(RECORD["runs"]) == RECORD["meta"]["runs"] == 3
    for run in RECORD["runs"]:
        assert run["gomaxprocs"] == 1 and run["batches_outside_mark"] == 0
        assert run["barrier_store_ratio"] == pytest.approx(run["store_barrier_ns"] / run["store_nobarrier_ns"])


def test_summary_is_the_median_of_the_runs():
    for k in KEYS:
        assert RECORD["summary"][k] == statistics.median(r[k] for r in RECORD["runs"]), k


def test_go_ran_the_bench_full_run_shape():
    _, live, batch, _ = bench_gc.SETTINGS["full"]
    for run in RECORD["runs"]:
        assert (run["live"], run["batch"]) == (bench_gc.barrier_graph(live), batch)
    # The node: 32 bytes, pointers in words 0 and 1; one garbage node after every fourth.
    assert bench_gc.NODE.size == 32 and bench_gc.NODE_PTR_OFFSETS == (0, 8)
    assert re.search(r"next, other \*node\s+a, b\s+int", SOURCE)
    assert inspect.signature(bench_gc.MarkHarness).parameters["garbage_every"].default == 4
    assert "i%4 == 3" in SOURCE
    # The same store on both sides: field 1 (other) of a random node.
    assert "pr.obj.other = pr.ptr" in SOURCE


def test_go_own_barrier_is_far_above_the_bench_target():
    # What docs/gc-bench.md says: Go 1.19's barriered store costs many plain ones.
    target = 2
    assert RECORD["summary"]["barrier_store_ratio"] > 5 * target
    assert RECORD["summary"]["barrier_store_ratio_marked"] > target


@pytest.mark.skipif(not shutil.which(GO) and not Path(GO).exists(), reason="Go 1.19 is not installed")
def test_program_builds_and_reports_a_mark_phase_batch(tmp_path):
    exe = tmp_path / "barrier"
    env = dict(os.environ, GOFLAGS="-mod=mod", GO111MODULE="on", GOMAXPROCS="1",
               GOCACHE=str(tmp_path / "cache"), HOME=str(tmp_path))
    subprocess.run([GO, "build", "-ldflags=-w", "-o", str(exe), "."], cwd=ROOT / "fidelity" / "barrier",
                   env=env, check=True, capture_output=True)
    out = json.loads(subprocess.run([str(exe), "-live", "2000", "-batch", "1024", "-reps", "3"], env=env,
                                    check=True, capture_output=True, text=True).stdout)
    assert out["go"].startswith("go1.19") and out["gomaxprocs"] == 1
    assert out["batches_outside_mark"] < 3 and out["store_barrier_ns"] > 0
    assert set(KEYS) <= set(out)
