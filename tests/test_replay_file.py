"""Replay from the schedule file alone; the field -> flag table; format versions.

A schedule file carries the whole configuration (every Config field and the
mcache setting), so `run --replay FILE` with no other flag repeats the run;
a flag that contradicts the file is refused (exit 2, one line naming both
values); a malformed or foreign file is refused in one line.
"""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest

from concalloc.cli import build_parser
from concalloc.config import Config
from concalloc.demo import config_from_args, given_fields, given_options
from concalloc.runconfig import (FLAGS, NO_FLAG, RUN_FORMAT, SCHEDULE_FORMAT, SCHEDULE_VERSION, flag_for,
                                 replay_command)
from cli_helpers import cli

SMALL = ["--reserve", "1GiB"]




def run_json(capsys, *argv: str) -> dict:
    code, out, err = cli(capsys, "run", "--json", *argv)
    assert code == 0, err
    return json.loads(out)


# --- the table ---------------------------------------------------------------------------

def test_every_config_field_has_a_flag_or_a_reason():
    fields = {f.name for f in dataclasses.fields(Config)}
    missing = fields - set(FLAGS) - set(NO_FLAG)
    assert not missing, f"Config fields with no `run` flag in runconfig.FLAGS (or NO_FLAG): {sorted(missing)}"
    assert not (set(FLAGS) | set(NO_FLAG)) - fields, "FLAGS names a field Config does not have"


def test_every_flag_in_the_table_is_a_run_option():
    options = {s for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions
               for s in a.option_strings}
    for name, flag in FLAGS.items():
        assert flag.option in options, f"{name}: {flag.option} is not a `run` option"


def test_replay_command_sets_every_field_it_can():
    """A config that differs from the defaults in every flagged field comes back whole."""
    cfg = Config(procs=3, mutators=2, reserve_bytes=2 << 30, invalidptr=False, lockrank=False, heapcheck=2,
                 scheduler="pct", seed=5, schedule_seed=6, noise=0.5, switch_interval=0.01, pct_depth=4, pct_k=99, sticky=0.5,
                 hang_seconds=7.0, workload="churn", steps=77, live=12, size=48, noscan=True,
                 lock_stats=True, max_steps=5000, gogc=-1, memory_limit=64 << 20, barrier="yuasa",
                 stack_scan="rescan", mark_order="weave", gc_workers=2, gctrace=True, gccheckmark=True, wbshadow=True,
                 gcstoptheworld=2, allocator="first-fit")
    defaults = Config()
    differ = {f for f in FLAGS if getattr(cfg, f) != getattr(defaults, f)}
    # cost_table and costs need --scheduler vtime (this config is pct): test_vtime covers them;
    # faults need --allocator go (this config is first-fit): test_faults covers them
    assert differ >= set(FLAGS) - {"replay_file", "trace", "plot", "seconds", "cost_table", "costs", "faults"}, \
        f"give the test config a non-default {sorted(set(FLAGS) - differ)}"
    argv = shlex.split(replay_command(cfg, cache=False))[1:]
    args = build_parser().parse_args(argv)
    assert config_from_args(args) == cfg and args.cache == "off"
    assert given_fields(given_options(argv[1:])) >= differ - {"lock_stats"}


def test_errors_name_flags():
    assert flag_for("procs") == "--procs" and flag_for("reserve_bytes") == "--reserve"
    assert flag_for("heapcheck") == "--godebug heapcheck" and flag_for("replay_file") == "--replay"


# --- replay from the file alone ------------------------------------------------------------

NON_DEFAULT = ["--procs", "3", "--workload", "churn", "--live", "40", "--steps", "250", "--cache", "off",
               "--seed", "3", "--scheduler", "random", "--godebug", "heapcheck=2", *SMALL]


def test_replay_of_a_non_default_run_from_the_file_alone(capsys, tmp_path):
    path = str(tmp_path / "s.json")
    orig = run_json(capsys, *NON_DEFAULT, "--save-schedule", path)
    again = run_json(capsys, "--replay", path)
    assert again["event_log_hash"] == orig["event_log_hash"]
    assert again["memstats"] == orig["memstats"] and again["mutators"] == orig["mutators"]
    assert again["config"]["cache"] is False and again["config"]["seed"] == 3
    assert again["config"]["scheduler"] == "replay" and again["config"]["heapcheck"] == 2
    # the same flags again are no contradiction
    same = run_json(capsys, *NON_DEFAULT[:-2], "--replay", path)
    assert same["event_log_hash"] == orig["event_log_hash"]


def test_schedule_file_has_format_and_whole_config(capsys, tmp_path):
    path = tmp_path / "s.json"
    run_json(capsys, *NON_DEFAULT, "--save-schedule", str(path))
    doc = json.loads(path.read_text())
    assert doc["format"] == SCHEDULE_FORMAT and doc["format_version"] == SCHEDULE_VERSION
    assert set(doc["config"]) == {f.name for f in dataclasses.fields(Config)} - {"extra"} | {"cache"}
    assert doc["config"]["cache"] is False


@pytest.mark.parametrize("extra, says", [
    (["--seed", "4"], "--seed 4 contradicts the schedule file, which has --seed 3"),
    (["--cache", "on"], "--cache on contradicts the schedule file, which has --cache off"),
    (["--godebug", "heapcheck=1"], "--godebug heapcheck=1 contradicts the schedule file, which has "
                                   "--godebug heapcheck=2"),
    (["--procs", "2"], "--procs 2 contradicts the schedule file, which has --procs 3"),
    (["--scheduler", "pct"], "--scheduler pct contradicts the schedule file"),
])
def test_a_contradicting_flag_is_refused(capsys, tmp_path, extra, says):
    path = str(tmp_path / "s.json")
    run_json(capsys, *NON_DEFAULT, "--save-schedule", path)
    code, out, err = cli(capsys, "run", "--replay", path, *extra)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("concalloc: --replay: ") and says in err, err


def test_observing_flags_may_differ(capsys, tmp_path):
    path = str(tmp_path / "s.json")
    orig = run_json(capsys, *NON_DEFAULT, "--save-schedule", path)
    again = run_json(capsys, "--replay", path, "--no-lock-stats", "--trace", str(tmp_path / "t.json"))
    assert again["event_log_hash"] == orig["event_log_hash"] and again["locks"] == {}


def _schedule(tmp_path, doc) -> str:
    p = tmp_path / "bad.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


GOOD = {"format": SCHEDULE_FORMAT, "format_version": SCHEDULE_VERSION, "config": {"procs": 2, "steps": 10},
        "schedule": [["run:start", "P0"]]}


@pytest.mark.parametrize("doc, says", [
    ("", "not JSON"),
    ("[1, 2, 3]", 'no "format"'),
    ({}, 'no "format"'),
    ({"kind": "random", "schedule": []}, 'no "format"'),        # a file from before format versions
    ({**GOOD, "format": "something-else"}, 'no "format"'),
    ({**GOOD, "format_version": 2}, "format_version 2; this concalloc reads version 1"),
    ({**GOOD, "schedule": 42}, '"schedule" is not a list'),
    ({**GOOD, "schedule": [[1, 2]]}, '"schedule" is not a list'),
    ({**GOOD, "config": []}, '"config" is not an object'),
    ({**GOOD, "config": {"procs": 0}}, "its config is invalid (procs: must be an integer"),
    ({**GOOD, "config": {"nosuch": 1}}, "unknown setting 'nosuch'"),
    ({**GOOD, "config": {"cache": "maybe"}}, '"cache" must be true or false'),
])
def test_a_malformed_schedule_is_one_line_exit_2(capsys, tmp_path, doc, says):
    code, out, err = cli(capsys, "run", "--replay", _schedule(tmp_path, doc))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("concalloc: --replay: ") and says in err, err
    assert "Error" not in err and "Traceback" not in err


def test_json_outputs_carry_a_format_and_the_cache(capsys):
    doc = run_json(capsys, "--steps", "50", "--procs", "1", "--cache", "off", *SMALL)
    assert doc["format"] == RUN_FORMAT and doc["format_version"] == 1
    assert doc["config"]["cache"] is False
    assert set(doc["config"]) == {f.name for f in dataclasses.fields(Config)} - {"extra"} | {"cache"}
