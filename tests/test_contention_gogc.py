"""`concalloc contention --gogc 50,100,off`: GC pressure as a third axis of the grid."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading

import pytest

from concalloc.cli import main
from concalloc.contention import CLASSES, aggregate, all_classes, grid_table, plot_classes

SMALL = ["--reserve", "1GiB"]
# 4 KiB objects: 600 of them per P pass GOGC 5's 200 KiB goal several times.
TINY = ["--procs", "1,2", "--cache", "on", "--steps", "600", "--size", "4096", "--scheduler", "random", *SMALL]


def cli(capsys, *argv: str):
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("code", main(list(argv))), daemon=True)
    t.start()
    t.join(300)
    assert not t.is_alive()
    out, err = capsys.readouterr()
    assert "code" in box, err
    return box["code"], out, err


@pytest.fixture(scope="module")
def gogc_grid(tmp_path_factory):
    """One tiny grid on the GOGC axis, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("gogc")
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        code = main(["contention", *TINY, "--gogc", "off,5,5", "--out", str(out)])
    return code, so.getvalue(), se.getvalue(), out


def test_gogc_axis_runs_every_value_and_pressure_shows(gogc_grid):
    code, out, err, d = gogc_grid
    assert code == 0, err
    assert "--gogc: each value is run once (got off,5,5)" in err
    assert "[1/4] 1 Ps, cache on, GOGC 5" in err and "[4/4] 2 Ps, cache on, GOGC off" in err
    doc = json.loads((d / "contention.json").read_text())
    assert doc["gogc"] == [5, -1]
    rows = doc["rows"]
    assert {(r["procs"], r["gogc"]) for r in rows} == {(1, 5), (2, 5), (1, -1), (2, -1)}
    gcs = {r["gogc"]: r["num_gc"] for r in rows}
    assert gcs[-1] == 0 and gcs[5] >= 2, gcs       # GOGC off: no cycle; GOGC 5: several
    # the collector's locks are taken under pressure, not with GOGC off
    stw = {r["gogc"]: r["acquisitions"] for r in rows if r["lock_class"] == "worldsema" and r["procs"] == 1}
    assert stw.get(5, 0) > stw.get(-1, 0)
    assert {(p["lock_class"], p["procs"], p["gogc"]) for p in doc["points"]} >= \
        {(c, pr, g) for c in CLASSES for pr in (1, 2) for g in (5, -1)}
    with open(d / "contention.csv") as f:
        got = list(csv.DictReader(f))
    assert {r["gogc"] for r in got} == {"5", "-1"} and "num_gc" in got[0]
    assert (d / "contention.png").stat().st_size > 10_000


def test_gogc_table_has_the_axis_and_the_collectors_lock_classes(gogc_grid):
    code, out, err, _ = gogc_grid
    head = out.splitlines()[1].split()
    assert head[:4] == ["lock", "class", "cache", "GOGC"] and head[-1] == "GCs"
    shown = {line.split()[0] for line in out.splitlines()[3:] if line.strip() and not line.startswith("wrote")}
    assert set(CLASSES) <= shown and {"worldsema", "gc.ctl"} <= shown, shown
    assert any(line.split()[2] == "off" for line in out.splitlines()[3:] if line.startswith("mcentral"))


def test_without_gogc_the_grid_is_as_before(capsys, tmp_path):
    code, out, err = cli(capsys, "contention", "--json", "--procs", "1", "--cache", "on,off", "--steps", "40",
                         "--scheduler", "random", "--out", str(tmp_path), *SMALL)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["gogc"] == [100] and {r["gogc"] for r in doc["rows"]} == {100}
    table = grid_table(doc["rows"], scheduler="random")
    assert "GOGC" not in table and "GCs" not in table
    assert {line.split()[0] for line in table.splitlines()[3:]} <= set(CLASSES)


@pytest.mark.parametrize("value, says", [
    ("x", "--gogc: expected a percent or off, got 'x'"),
    ("5,-7", "--gogc: must be an integer in [-1"),
    (",", "--gogc: expected a comma-separated list"),
])
def test_bad_gogc_list_exits_2_before_any_run(capsys, tmp_path, monkeypatch, value, says):
    import concalloc.contention as contention
    monkeypatch.setattr(contention, "run_cell", lambda *a, **k: pytest.fail("a run started"))
    code, out, err = cli(capsys, "contention", "--gogc", value, "--out", str(tmp_path), *SMALL)
    assert code == 2 and out == "" and err.count("\n") == 1 and says in err, err


def test_points_and_plot_classes_split_by_gogc():
    def row(cls, gogc, contended, acq=10):
        return {"lock_class": cls, "cache": "on", "procs": 1, "gogc": gogc, "unit": "steps",
                "acquisitions": acq, "contended": contended, "contention_rate": contended / acq if acq else 0.0,
                "contended_per_1000": 0.0, "mean_wait": None, "acq_per_alloc": 1.0, "allocs_per_s": 0.0,
                "num_gc": 3 if gogc == 50 else 0}
    rows = [row("mcentral", 50, 1), row("mcentral", -1, 0), row("sched", 50, 4), row("gc.ctl", 50, 0, 99),
            row("sweep", 50, 0, 0), row("work.full", 50, 0, 5)]
    pts = aggregate(rows)
    assert sorted((p["lock_class"], p["gogc"], p["num_gc"]) for p in pts if p["lock_class"] == "mcentral") == \
        [("mcentral", -1, 0), ("mcentral", 50, 3)]
    assert plot_classes(rows) == CLASSES + ("sched", "gc.ctl")     # most contended, then most taken
    assert all_classes(rows) == CLASSES + ("gc.ctl", "sched", "work.full")   # "sweep" never taken
