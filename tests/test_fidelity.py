"""concalloc.fidelity: the Go 1.19 reference data and the comparison table."""

import json
import types
from pathlib import Path

import pytest

from concalloc import fidelity
from concalloc.fidelity import (EXPERIMENTS, GO_SUMMARY, TOLERANCE, compare, format_table, main,
                                summarize)
from concalloc.gc.gctrace import parse_trace

from gc_fake_records import MiB, fake_run

GO = json.loads(GO_SUMMARY.read_text())


def test_go_summary_covers_every_experiment_with_three_runs():
    assert GO["meta"]["go"].startswith("go version go1.19")
    for exp in EXPERIMENTS:
        ref = GO["experiments"][exp.name]
        assert ref["summary"]["runs"] == 3 and len(ref["memstats"]) == 3
        assert all(m["steps"] == exp.steps for m in ref["memstats"])


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda e: e.name)
def test_go_summary_is_what_the_raw_traces_say(exp):
    raw = [(GO_SUMMARY.parent / f"{exp.name}.{k}.txt").read_text() for k in (1, 2, 3)]
    runs = [parse_trace(text) for text in raw]
    assert summarize(runs) == GO["experiments"][exp.name]["summary"]
    assert all(len(run) == m["num_gc"] or len(run) == m["num_gc"] + 1       # a cycle may end after ReadMemStats
               for run, m in zip(runs, GO["experiments"][exp.name]["memstats"]))


def test_go_program_made_almost_no_garbage_of_its_own():
    # Mallocs - steps: what runtime init, flag parsing and reflect allocate.
    for name, ref in GO["experiments"].items():
        for m in ref["memstats"]:
            assert 0 <= m["mallocs"] - m["steps"] < 1000, name


def test_summarize_fake_run():
    records, _ = fake_run(cycles=5, forced_at=(2,))
    s = summarize([records, records[:3]])
    assert s["runs"] == 2 and s["cycles_per_run"] == [4, 2] and s["cycles"] == 3
    unforced = [r for r in records if not r["forced"]] + [r for r in records[:3] if not r["forced"]]
    assert s["goal_mean_mb"] == pytest.approx(sum(r["heap_goal"] for r in unforced) / len(unforced) / MiB, abs=1e-3)
    assert s["marked_floor_mean_mb"] == pytest.approx(sum(r["heap_marked"] >> 20 for r in unforced) / len(unforced))


def test_summarize_of_no_cycles_has_no_means():
    s = summarize([[]])
    assert s["cycles"] == 0 and s["goal_mean_mb"] is None and s["goal_median_mb"] is None


@pytest.mark.parametrize("ours,flagged", [(1.0, False), (1 + TOLERANCE - 0.01, False),
                                          (1 - TOLERANCE + 0.01, False), (1 + TOLERANCE + 0.01, True),
                                          (1 - TOLERANCE - 0.01, True)])
def test_compare_flags_outside_tolerance(ours, flagged):
    go = {"cycles": 10, "goal_mean_mb": 8.0, "marked_floor_mean_mb": 4.0}
    rows = compare(go, {k: v * ours for k, v in go.items()})
    assert [r["flagged"] for r in rows] == [flagged] * 3
    assert all(r["ratio"] == pytest.approx(ours, abs=1e-3) for r in rows)


def test_compare_flags_a_missing_number():
    rows = compare({"cycles": 10, "goal_mean_mb": 8.0, "marked_floor_mean_mb": 4.0},
                   {"cycles": 0, "goal_mean_mb": None, "marked_floor_mean_mb": 4.0})
    assert [r["flagged"] for r in rows] == [True, True, False]


def test_table_shows_both_sides_and_the_flag():
    go = {"cycles": 10, "goal_mean_mb": 8.0, "marked_floor_mean_mb": 4.0}
    table = format_table([("exp-a", compare(go, {"cycles": 10, "goal_mean_mb": 12.5, "marked_floor_mean_mb": 4.2}))])
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["experiment", "metric", "Go"]
    goal = next(line for line in lines if "mean goal MB" in line)
    assert "8.00" in goal and "12.50" in goal and "1.56" in goal and "outside" in goal
    assert "outside" not in next(line for line in lines if "mean marked MB" in line)


def _fake_result(cycles):
    return types.SimpleNamespace(exit_code=0, error=None, gc={"cycles": cycles})


def test_cli_without_a_collector_says_so(monkeypatch, capsys):
    monkeypatch.setattr(fidelity, "_collector_config_ready", lambda: False)
    assert main(["--only", EXPERIMENTS[5].name]) == 3
    assert "has no collector" in capsys.readouterr().err


def test_cli_with_no_cycles_says_so(monkeypatch, capsys):
    monkeypatch.setattr(fidelity, "_collector_config_ready", lambda: True)
    monkeypatch.setattr(fidelity, "_run_concalloc", lambda fields: types.SimpleNamespace(exit_code=0, error=None))
    assert main([]) == 3
    assert "recorded no GC cycle" in capsys.readouterr().err


@pytest.mark.parametrize("json_out", [False, True])
def test_cli_compares_fake_cycles_with_go(monkeypatch, capsys, tmp_path, json_out):
    records, _ = fake_run(cycles=8)
    ours = summarize([records])
    exp = EXPERIMENTS[5]
    go = {"meta": {}, "experiments": {exp.name: {"summary": dict(ours, goal_mean_mb=ours["goal_mean_mb"] * 2)}}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(go))
    seen = []
    monkeypatch.setattr(fidelity, "_collector_config_ready", lambda: True)
    monkeypatch.setattr(fidelity, "_run_concalloc", lambda fields: seen.append(fields) or _fake_result(records))
    rc = main(["--only", exp.name, "--go-summary", str(path), "--steps", "500"] + ["--json"] * json_out)
    assert rc == 1                                         # the goal is half Go's: flagged
    assert seen == [dict(procs=2, mutators=1, workload="ring", live=20000, size=64, noscan=False,
                         steps=500, gogc=100)]
    out = capsys.readouterr().out
    if json_out:
        rows = json.loads(out)[0]["rows"]
        assert [r["flagged"] for r in rows] == [False, True, False]
    else:
        assert exp.name in out and out.count("outside") == 1


def test_cli_rejects_bad_arguments(capsys):
    assert main(["--only", "no-such-experiment"]) == 2
    assert main(["--steps", "0"]) == 2
    assert main(["--frobnicate"]) == 2


def test_cli_refuses_the_old_chain_ring(capsys):
    # Go's chain runs record the old ring.py, which kept everything reachable;
    # concalloc's ring cuts its chain, so comparing them would mislead.
    assert main(["--only", EXPERIMENTS[1].name]) == 2
    err = capsys.readouterr().err
    assert "Go-only record" in err and EXPERIMENTS[5].name in err and EXPERIMENTS[1].name + "," not in err


def test_experiment_args_match_the_go_program():
    exp = EXPERIMENTS[3]
    assert exp.noscan and exp.go_args() == ["-live=5000", "-size=1024", "-steps=1000000", "-noscan"]
    assert all(Path(GO_SUMMARY.parent / f"{e.name}.1.txt").exists() for e in EXPERIMENTS)


def test_mark_phases_reads_gctrace_fields():
    lines = ["gc 1 @0.010s 3%: 0.10+8.0+0.10 ms clock, 0.20+0/1.0/0+0.20 ms cpu, 10->14->5 MB, 12 MB goal, "
             "0 MB stacks, 0 MB globals, 2 P",
             "gc 2 @0.050s 3%: 0.10+2.0+0.10 ms clock, 0.20+1.0/0.50/0.50+0.20 ms cpu, 3->4->2 MB, 4 MB goal, "
             "0 MB stacks, 0 MB globals, 2 P",
             "gc 3 @0.090s 3%: 0.10+4.0+0.10 ms clock, 0.20+0/1.0/0+0.20 ms cpu, 4->6->3 MB, 4 MB goal, "
             "0 MB stacks, 0 MB globals, 2 P (forced)"]
    m = fidelity.mark_phases([parse_trace("\n".join(lines))])
    assert m["cycles"] == 2                         # the forced cycle is left out
    assert m["mark_clock_ms"] == pytest.approx(5.0) and m["mark_cpu_ms"] == pytest.approx(1.5)
    assert m["mark_cpu_share"] == pytest.approx((1 / 8 + 2 / 2) / 2, abs=1e-3)
    assert m["assist_ms"] == pytest.approx(0.5) and m["grown_mb"] == 2.5 and m["marked_mb"] == 3.5


LOADED = GO_SUMMARY.parent.parent / "go119-loaded"


def test_go_marks_are_short_on_an_idle_machine():
    # fidelity/go119 was measured on an idle machine: Go 1.19's -cut marks
    # last about half a millisecond, with its CPU busy for all of it, and
    # mark only the live ring (1 MB in whole MB).
    m = fidelity.go_mark_phases("ring-cut-L20000-S64-gogc100")
    assert m["cycles"] >= 30 and m["mark_clock_ms"] < 2 and m["mark_cpu_share"] > 0.5
    assert m["marked_mb"] <= 1 and m["grown_mb"] == 0
    assert fidelity.load_go_summary()["meta"]["loadavg_after"][0] < 0.5     # as recorded by run_go119.py


def test_go_marks_stretch_on_a_loaded_machine():
    # fidelity/go119-loaded: the same runs beside 2 busy processes
    # (run_go119.py --hog 2).  The marks last several ms with under half of
    # the CPU, the mutator allocates through them, Go marks what grew and
    # runs about half as many cycles.
    loaded = fidelity.go_mark_phases("ring-cut-L20000-S64-gogc100", LOADED)
    idle = fidelity.go_mark_phases("ring-cut-L20000-S64-gogc100")
    assert loaded["mark_clock_ms"] > 2 * loaded["mark_cpu_ms"] and loaded["mark_clock_ms"] > 5 * idle["mark_clock_ms"]
    assert loaded["marked_mb"] >= loaded["grown_mb"] >= 1
    summary = fidelity.load_go_summary(LOADED / "summary.json")
    name = "ring-cut-L20000-S64-gogc100"
    assert summary["meta"]["hog"] == 2
    assert summary["experiments"][name]["summary"]["cycles"] < 0.75 * fidelity.load_go_summary()["experiments"][name]["summary"]["cycles"]


def test_marks_table_names_both_sides():
    m = fidelity.go_mark_phases("ring-cut-L20000-S64-gogc200")
    text = fidelity.format_marks([("x", "Go 1.19", m), ("x", "concalloc", m)])
    assert "mark ms" in text and "Go 1.19" in text and "concalloc" in text and len(text.splitlines()) == 3
