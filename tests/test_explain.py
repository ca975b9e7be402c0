"""concalloc explain: a losing run's schedule shrinks to no more steps and
fewer preemptions, still loses an object, and the schedule file it writes
replays through `run --replay` with the same event_log_hash every time."""

from __future__ import annotations

import json
import shlex

from cli_helpers import cli
from concalloc.barriermatrix import Cell, cell_config
from concalloc.config import Config
from concalloc.explain import explain
from concalloc.runconfig import replay_command, replay_config
from concalloc.runtime import Runtime

BASE = Config(procs=2, workload="graph", steps=150, live=32, scheduler="random", reserve_bytes=1 << 30,
              lock_stats=False)
YUASA12 = cell_config(BASE, "yuasa", "concurrent", 12)     # the barrier matrix's cell config, seed 12


def test_shrunk_schedule_is_smaller_still_loses_and_replays_exactly(tmp_path):
    path = str(tmp_path / "shrunk.json")
    e = explain(YUASA12, do_shrink=True, schedule_file=path, max_runs=40, max_seconds=60)
    o, f = e.original.size(), e.final.size()
    assert e.original.exit_code == e.final.exit_code == 1 and e.final.invariant == "gc.checkmark"
    assert f["steps"] <= o["steps"] and f["preemptions"] < o["preemptions"]
    assert f["context_switches"] <= o["context_switches"]
    assert e.shrunk.runs <= 40
    assert e.replays_exactly and len(e.replay_hashes) == 2
    assert e.story is not None and e.story.lost in e.story.path_text
    # the ordinary replay path, twice, from the file alone
    hashes = set()
    for _ in range(2):
        cfg, cache = replay_config(path, Config(), set(), None)
        with Runtime(cfg, cache=cache) as rt:
            r = rt.run()
        assert r.exit_code == 1 and r.violations[0]["invariant"] == "gc.checkmark"
        hashes.add(r.event_log_hash)
    assert hashes == {e.final.event_log_hash}


def test_cli_explains_a_barrier_matrix_replay_command(capsys, tmp_path):
    cell = Cell("yuasa", "concurrent", replay=replay_command(YUASA12))
    argv = shlex.split(cell.explain)[1:]
    assert argv[0] == "explain" and argv[-1] == "--shrink"
    path = str(tmp_path / "s.json")
    code, out, err = cli(capsys, *argv[:-1], "--save-schedule", path, "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["format"] == "concalloc-explain" and doc["lost"] and doc["replays_exactly"]
    story = doc["story"]
    assert story["lost"] in story["path_text"] and story["barrier"] == "yuasa"
    assert any(ln["key"] and "is not shaded" in ln["text"] for ln in story["lines"])
    code, out, err = cli(capsys, "run", "--replay", path, "--json")
    assert code == 1 and json.loads(out)["event_log_hash"] == doc["event_log_hash"]


def test_cli_text_and_a_clean_run(capsys, tmp_path):
    path = str(tmp_path / "s.json")
    code, out, err = cli(capsys, "explain", "--workload", "graph", "--procs", "2", "--steps", "30",
                         "--scheduler", "random", "--barrier", "hybrid", "--save-schedule", path)
    assert code == 0, err
    assert "nothing to explain" in out


def test_cli_refuses_a_free_run(capsys):
    code, out, err = cli(capsys, "explain", "--scheduler", "os", "--steps", "10")
    assert code == 2 and "explain needs a controlled run" in err


def test_aftermath_shows_the_free_and_the_use_after_free(tmp_path):
    """Without checkmark the same run goes on: sweep frees the lost object, its
    memory is allocated again, and a mutator that still holds it reads it."""
    import os
    mover = Config(procs=2, workload=os.path.join(os.path.dirname(__file__), "..", "examples", "lost_object.py"),
                   steps=1000, scheduler="random", seed=5, reserve_bytes=1 << 30, gogc=5, barrier="none",
                   lock_stats=False)
    e = explain(mover, schedule_file=str(tmp_path / "s.json"))
    assert e.story is not None and e.after
    kinds = [ln["kind"] for ln in e.after]
    assert kinds[0] == "cycle_end" and "use_after_free" in kinds
    uaf = next(ln for ln in e.after if ln["kind"] == "use_after_free")
    assert uaf["text"].startswith(f"loads {e.story.lost}.f") and "use after free" in uaf["text"]
    assert uaf["step"] > e.final.steps
    assert e.after[-1]["kind"] == "end" and "lost_object.value" in e.after[-1]["text"]


def test_cli_full_tells_every_line(capsys, tmp_path):
    import os
    path = str(tmp_path / "s.json")
    mover = os.path.join(os.path.dirname(__file__), "..", "examples", "lost_object.py")
    argv = ["--workload", mover, "--procs", "2", "--steps", "1000", "--gogc", "5", "--barrier", "none",
            "--scheduler", "random", "--seed", "5"]
    code, out, _ = cli(capsys, "explain", *argv, "--save-schedule", path, "--json")
    code2, out2, _ = cli(capsys, "explain", *argv, "--save-schedule", path, "--json", "--full")
    short, full = json.loads(out)["story"]["lines"], json.loads(out2)["story"]["lines"]
    assert code == code2 == 1 and len(full) > len(short)
    assert not any(ln["kind"] == "summary" for ln in full)


def test_same_object_keeps_the_lost_object(tmp_path):
    e = explain(YUASA12, do_shrink=True, same_object=True, schedule_file=str(tmp_path / "s.json"),
                max_runs=15, max_seconds=60)
    thread, nth = e.original.lost
    assert e.final.exit_code == 1 and e.final.preemptions <= e.original.preemptions
    assert e.story.names[e.story.lost].endswith(f"({'graphnode'}, {thread}'s allocation {nth})")
