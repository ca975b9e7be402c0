"""Narration: a lost object's story names the object, the root that still
reaches it, the store whose barrier did not shade it and mark termination;
narrating a run changes none of its decisions or its event_log_hash; the
choices a run's scheduler made replay it exactly."""

from __future__ import annotations

import os

import pytest

from concalloc.config import Config
from concalloc.narrate import Narrator
from concalloc.story import lost_identity, lost_path, tell
from concalloc.runtime import Runtime
from concalloc.shrink import ChoiceStrategy, attempt

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")

# A loss the barrier matrix reports (docs/barriers.md): yuasa + concurrent stack scans, seed 12.
YUASA = Config(procs=2, workload="graph", steps=150, live=32, scheduler="random", seed=12,
               reserve_bytes=1 << 30, gogc=-1, memory_limit=0, barrier="yuasa", lock_stats=False,
               gccheckmark=True)
# The lost-object scenario with no barrier (docs/workloads.md: seed 5 loses B).
MOVER = Config(procs=2, workload=os.path.join(EXAMPLES, "lost_object.py"), steps=1000, scheduler="random",
               seed=5, reserve_bytes=1 << 30, gogc=5, barrier="none", lock_stats=False, gccheckmark=True)


def run(cfg, narrate: bool):
    with Runtime(cfg) as rt:
        narr = Narrator(rt) if narrate else None
        res = rt.run()
        story = tell(narr, res.error) if narr is not None and res.violations else None
        full = tell(narr, res.error, full=True) if story is not None else None
        ident = lost_identity(narr, res.error) if story is not None else None
        return res, rt.sched.steps, story, full, ident


def test_narrating_changes_no_decision_and_no_hash():
    plain, steps, _, _, _ = run(YUASA, False)
    told, steps2, story, _, _ = run(YUASA, True)
    assert plain.exit_code == told.exit_code == 1
    assert (plain.event_log_hash, steps) == (told.event_log_hash, steps2)
    assert story is not None


def test_yuasa_story_names_the_object_its_root_the_unshaded_store_and_mark_termination():
    res, _, story, _, ident = run(YUASA, True)
    assert res.violations[0]["invariant"] == "gc.checkmark"
    path = lost_path(res.error)
    assert path[-1][0] == res.error.address and story.address == res.error.address
    assert story.root == path[0][1] and "stack slot" in story.root
    assert story.path[-1] == story.lost and story.path_text.startswith(story.root)
    texts = [ln["text"] for ln in story.lines]
    kinds = [ln["kind"] for ln in story.lines]
    # the store that put the lost object behind a black object, its barrier shading nothing of it
    unshaded = [ln for ln in story.lines if ln["kind"] == "store" and ln["key"]]
    assert unshaded and all(f"{story.lost} is not shaded" in ln["text"] for ln in unshaded)
    assert any("yuasa shades" in ln["text"] for ln in unshaded)
    # and the stack write that hid it from the stack scan still to come
    assert any(ln["kind"] == "slot" and ln["key"] and "not yet scanned" in ln["text"]
               and f"dropping {story.lost}" in ln["text"] for ln in story.lines)
    assert "marktermination" in kinds and kinds[-2] == "checkmark"
    assert texts[-2] == f"checkmark: {story.lost} is white yet reachable from {story.path_text}"
    steps = [ln["step"] for ln in story.lines]
    assert steps == sorted(steps)
    assert ident is not None and ident[0] in ("P0", "P1") and ident[1] >= 1
    assert story.lost in story.names and story.names[story.lost].startswith(hex(story.address))


def test_mover_story_tells_the_classic_lost_object():
    """The issue's example: B moves behind a black parent, the deletion from the
    grey one is not shaded, the marker never reaches it."""
    res, _, story, full, _ = run(MOVER, True)
    assert res.exit_code == 1 and story is not None
    assert story.root == "global 0"
    lost = story.lost
    assert lost == "B" and story.path[0] == "R"      # the workload's OBJECT_NAMES
    text = story.text()
    assert f"stores {lost} into" in text and "no write barrier" in text and "is already black" in text
    assert any(ln["kind"] == "blacken" and ln["key"] and f"never reaches {lost}" in ln["text"]
               for ln in story.lines)
    assert any(ln["kind"] == "store" and f"overwriting {lost}" in ln["text"] for ln in story.lines)
    # the focused story leaves out the churn before the decisive moment; --full keeps it
    assert len(full.lines) > len(story.lines)
    assert any(ln["kind"] == "summary" for ln in story.lines)


def test_recorded_choices_replay_the_run_exactly():
    first = attempt(YUASA, True)
    again = attempt(YUASA.replace(max_steps=first.steps), True, ChoiceStrategy(first.choices))
    assert first.exit_code == again.exit_code == 1
    assert (again.steps, again.event_log_hash, again.preemptions) == \
           (first.steps, first.event_log_hash, first.preemptions)
    assert first.choices and first.preemptions <= len(first.choices)


def test_no_choices_is_the_non_preemptive_schedule():
    a = attempt(YUASA.replace(barrier="hybrid", steps=40), True, ChoiceStrategy({}))
    assert a.preemptions == 0 and a.choices == {}


def test_narration_needs_a_controlled_run():
    with Runtime(Config(procs=1, steps=10, reserve_bytes=1 << 30)) as rt, \
            pytest.raises(ValueError, match="controlled"):
        Narrator(rt)


def test_the_globals_scan_is_told_and_runs_of_loads_fold():
    from concalloc.story import Line, _fold, _Obj
    _, _, story, _, _ = run(MOVER, True)
    scans = [ln for ln in story.lines if ln["kind"] == "scan_globals"]
    assert scans and scans[0]["text"].startswith("the marker scans the globals: ")
    assert "global 0 holds R" in scans[0]["text"]
    b = _Obj(7)
    loads = [Line(5, "P1", "load", ["loads ", b, " from ", "global 0"]),
             Line(6, "P1", "load", ["loads ", b, " from ", "global 1"]),
             Line(7, "P1", "load", ["loads ", b, " from ", "global 0"])]
    same = [Line(8, "P0", "slot", ["clears stack slot 1"]), Line(9, "P0", "slot", ["clears stack slot 1"])]
    folded = _fold(loads + same)
    assert len(folded) == 2
    name = lambda o: "B"   # noqa: E731
    assert folded[0].text(name) == "loads B from global 0 and global 1 (3 loads)"
    assert folded[1].text(name) == "clears stack slot 1 (2 times)"
