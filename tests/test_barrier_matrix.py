"""concalloc barrier-matrix: the cells theory calls unsafe lose objects, the safe
ones do not, each loss carries a replay command that reproduces it, and a safe
cell that lost an object would make the command exit 1."""

from __future__ import annotations

import json

from cli_helpers import cli
from concalloc.barriermatrix import SAFE, Cell, run_matrix
from concalloc.config import Config
from concalloc.runtime import Runtime

BASE = Config(procs=2, workload="graph", steps=150, live=32, scheduler="random", reserve_bytes=1 << 30)


def runner(cfg):
    with Runtime(cfg) as rt:
        return rt.run()


def test_no_barrier_loses_an_object_and_the_hybrid_barrier_does_not():
    cells = run_matrix(BASE, 6, runner, barriers=("none", "hybrid"), stack_scans=("concurrent",))
    none, hybrid = cells
    assert none.expected == "loses" and none.lost >= 1 and none.what == "gc.checkmark", none
    assert hybrid.expected == "safe" and hybrid.lost == 0 and hybrid.runs == 6 and not hybrid.surprise
    # the replay command reproduces the loss
    import shlex
    argv = shlex.split(none.replay)[1:]
    assert argv[0] == "run" and "--barrier" in argv and "gccheckmark=1" in none.replay


def test_a_safe_cell_that_loses_is_flagged():
    c = Cell("hybrid", "concurrent", runs=3, lost=1)
    assert ("hybrid", "concurrent") in SAFE and c.surprise
    assert not Cell("none", "concurrent", runs=3, lost=1).surprise


def test_cli_json(capsys):
    code, out, err = cli(capsys, "barrier-matrix", "--runs", "1", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["format"] == "concalloc-barrier-matrix" and len(doc["cells"]) == 15
    assert all(c["lost"] == 0 for c in doc["cells"] if c["expected"] == "safe")
    code, _, err = cli(capsys, "barrier-matrix", "--runs", "0")
    assert code == 2 and err.startswith("concalloc: --runs")
