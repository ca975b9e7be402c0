"""The fault catalogue: every fault is caught, by the oracle the catalogue names, and its control runs clean.

Each fault carries a seed known to catch it (Fault.seed).  Which seed catches
a fault moves when the scheduler's decisions change (a new yield point, a
lock taken in another order): if a test here fails with "not caught", run
`concalloc faults --only NAME` and put the seed it reports in the catalogue.
"""

from __future__ import annotations

import json
import shlex

import pytest

from concalloc import faults as catalogue
from concalloc.check.violation import Violation
from concalloc.config import Config, ConfigError
from concalloc.faultscmd import hunt, run_once, score
from concalloc.runconfig import replay_command
from concalloc.runtime import EXIT_OK, EXIT_VIOLATION, Runtime

from cli_helpers import cli

FAULTS = [f.name for f in catalogue.CATALOGUE]


@pytest.mark.parametrize("name", FAULTS)
def test_fault_is_caught_by_its_oracle_and_its_control_runs_clean(name):
    f = catalogue.get(name)
    code, invariant, message = run_once(f.config(seed=f.seed))
    assert code == EXIT_VIOLATION, (f"{name} not caught on seed {f.seed} (exit {code}: {message}); "
                                    f"`concalloc faults --only {name}` finds a seed that catches it")
    assert catalogue.oracle_of(invariant) == f.oracle, f"{name}: caught by {invariant}, expected {f.oracle}"
    code, invariant, message = run_once(f.config(seed=f.seed, with_fault=False))
    assert code == EXIT_OK, f"{name}'s scenario without the fault, seed {f.seed}: {invariant} {message}"


def test_the_catalogue_has_at_least_twelve_faults_each_documented():
    assert len(FAULTS) >= 12 and len(set(FAULTS)) == len(FAULTS)
    for f in catalogue.CATALOGUE:
        assert f.breaks and f.go and f.where, f.name
        assert f.oracle in catalogue.ORACLES, f"{f.name}: unknown oracle {f.oracle}"
        f.config()                          # the scenario is a valid Config


def test_oracle_of_maps_invariants_to_oracles():
    assert catalogue.oracle_of("gc.checkmark") == "checkmark"
    assert catalogue.oracle_of("gc.wbbuf_left") == "mark-state"
    assert catalogue.oracle_of("span.alloc_count") == "verify_heap"
    assert catalogue.oracle_of("heap.bad_pointer") == "pointer"
    assert catalogue.oracle_of("mutator.free_object") == "pointer"
    assert catalogue.oracle_of("sweep") == "sweep"
    assert catalogue.oracle_of("lock.not_held") == "lock"


def test_an_unknown_fault_is_refused_and_a_fault_replays():
    with pytest.raises(ConfigError, match="unknown fault 'nope'"):
        Config(faults=("nope",))
    cfg = Config(faults=["nonatomic-shade"])          # a schedule file's list comes back a tuple
    assert cfg.faults == ("nonatomic-shade",)
    assert "--fault nonatomic-shade" in replay_command(cfg)
    from concalloc.cli import build_parser
    from concalloc.demo import config_from_args
    cfg = catalogue.get("wb-skip-nil-old").config(seed=7).replace(faults=("wb-skip-nil-old", "nonatomic-shade"))
    argv = shlex.split(replay_command(cfg))[1:]
    assert argv.count("--fault") == 2 and config_from_args(build_parser().parse_args(argv)) == cfg


def test_with_no_fault_the_hot_paths_are_the_usual_ones():
    """No fault: Mutator.store is the class's own and the barrier is make_barrier's own closure."""
    f = catalogue.get("wb-skip-nil-new")
    with Runtime(f.config(with_fault=False).replace(steps=5)) as rt:
        m = rt.mutators[0]
        assert "store" not in vars(m)
        from concalloc.gc.barrier import make_barrier
        assert make_barrier(rt.gc, "hybrid").__qualname__ == "make_barrier.<locals>.wb"
        assert not (rt.gc.racyShade or rt.gc.racyStackScan) and rt.gc.recheck and rt.gc.flushWbBufs
    with Runtime(f.config().replace(steps=5)) as rt:
        assert make_barrier(rt.gc, "hybrid").__qualname__ == "_make_faulty_barrier.<locals>.wb"


def test_hunt_reports_runs_control_and_replay():
    f = catalogue.get("mcentral-unlocked")
    h = hunt(f, 3)
    assert h.caught and h.seed == 1 and h.runs == 1 and h.control == "clean"
    assert h.replay.startswith("concalloc run ") and "--fault mcentral-unlocked" in h.replay
    assert score([h]) == {"caught": 1, "injected": 1, "percent": 100.0, "runs": 1, "seconds": round(h.seconds, 1)}


def test_a_fault_never_caught_counts_against_the_score():
    f = catalogue.get("mcentral-unlocked")
    h = hunt(f, 2, runner=lambda cfg: (EXIT_OK, None, None))
    assert not h.caught and h.runs == 2 and h.replay is None
    assert score([h])["percent"] == 0.0


# --- the oracles this branch adds ------------------------------------------------------------

def test_a_span_list_changed_without_its_lock_is_caught():
    with Runtime(Config(steps=1)) as rt:
        c = rt.heap.mheap.central[5]
        s = c.grow()
        with c.lock:
            c.empty.insertBack(s)               # with the lock: fine
        with pytest.raises(Violation, match="lock not held") as e:
            c.empty.remove(s)                   # without it
        assert e.value.invariant == "lock.not_held"


def test_black_allocation_without_assist_debt_is_caught():
    from concalloc.gc.checkmark import check_assist_charged
    with Runtime(Config(steps=1)) as rt:
        check_assist_charged(rt.gc)             # nothing allocated: fine
        c = rt.allp[0].mcache
        c.markedBlack, c.assistCharged = 4096, 1024
        with pytest.raises(Violation, match="allocated 4096 bytes black") as e:
            check_assist_charged(rt.gc)
        assert e.value.invariant == "gc.assist_uncharged"


# --- the command ------------------------------------------------------------------------------

def test_faults_command_json(capsys):
    code, out, err = cli(capsys, "faults", "--only", "mcentral-unlocked", "--only", "wbbuf-unflushed",
                         "--runs", "3", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["format"] == "concalloc-faults" and doc["score"]["caught"] == 2 and doc["score"]["percent"] == 100.0
    by = {x["fault"]: x for x in doc["faults"]}
    assert by["mcentral-unlocked"]["oracle"] == "lock" and by["wbbuf-unflushed"]["oracle"] == "mark-state"
    assert all(x["replay"] and x["control"] == "clean" for x in doc["faults"])
    assert "[1/2] mcentral-unlocked" in err          # progress goes to stderr


def test_faults_command_table_and_list(capsys):
    code, out, _ = cli(capsys, "faults", "--only", "sweep-no-swap-bits", "--runs", "2", "--quiet")
    assert code == 0 and "mutation score: 1/1 caught (100.0%)" in out and "--fault sweep-no-swap-bits" in out
    code, out, _ = cli(capsys, "faults", "--list")
    assert code == 0 and all(n in out for n in FAULTS)


def test_faults_command_bad_arguments(capsys):
    code, _, err = cli(capsys, "faults", "--only", "nope")
    assert code == 2 and "unknown fault 'nope'" in err
    code, _, err = cli(capsys, "faults", "--runs", "0")
    assert code == 2 and "--runs" in err


def test_a_lock_ordering_problem_counts_as_caught(monkeypatch):
    """A LockRankViolation (Go's "lock ordering problem") ends a run with exit 3 inside a
    ThreadFailure; the hunt counts it as the lock oracle's catch."""
    import concalloc.runtime as runtime_mod
    from concalloc.runresult import RunResult
    from concalloc.sync.errors import LockRankViolation, ThreadFailure

    class FakeRuntime:
        def __init__(self, cfg):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def run_bounded(self, seconds):
            res = RunResult(config={})
            res.error = ThreadFailure("P0", "...", LockRankViolation("lock ordering problem: mcentral[5] after mheap"))
            res.exit_code = 3
            return res
    monkeypatch.setattr(runtime_mod, "Runtime", FakeRuntime)
    code, invariant, message = run_once(Config())
    assert (code, invariant) == (EXIT_VIOLATION, "lock.rank") and "lock ordering problem" in message
    assert catalogue.oracle_of(invariant) == "lock"


def test_faults_command_exits_1_below_100_percent(capsys, monkeypatch):
    import concalloc.faultscmd as faultscmd
    monkeypatch.setattr(faultscmd, "run_once", lambda cfg: (EXIT_OK, None, None))   # nothing ever caught
    code, out, _ = cli(capsys, "faults", "--only", "nonatomic-shade", "--runs", "2", "--quiet")
    assert code == 1 and "NOT CAUGHT" in out and "mutation score: 0/1 caught (0.0%)" in out
    assert "nonatomic-shade: not caught in 2 runs" in out


def test_a_search_under_another_controlled_scheduler(capsys):
    code, out, err = cli(capsys, "faults", "--only", "mcentral-unlocked", "--runs", "3", "--scheduler", "pct",
                         "--json", "--quiet")
    assert code == 0, err
    (entry,) = json.loads(out)["faults"]
    assert entry["caught"] and "--scheduler pct" in entry["replay"]


def test_a_stack_left_unscanned_at_mark_termination_is_caught():
    from concalloc.gc.checkmark import gcMarkRootCheck
    with Runtime(Config(steps=1)) as rt:
        for p in rt.allp:
            p.gcscandone = True
        gcMarkRootCheck(rt.gc)                  # every stack scanned: fine
        rt.allp[1].gcscandone = False
        with pytest.raises(Violation, match="scan missed a g") as e:
            gcMarkRootCheck(rt.gc)
        assert e.value.invariant == "gc.scan_missed"


def test_faults_need_gos_allocator():
    with pytest.raises(ConfigError, match="need --allocator go"):
        Config(faults=("nonatomic-shade",), allocator="first-fit")


def test_faults_run_on_a_users_workload_file(capsys):
    """--workload FILE replaces every fault's scenario with the user's: the runs (and the
    replay command) use that file; a file that does not exist is one line, exit 2."""
    import os
    lost = os.path.join(os.path.dirname(__file__), "..", "examples", "lost_object.py")
    code, out, err = cli(capsys, "faults", "--only", "wbbuf-unflushed", "--runs", "5", "--quiet",
                         "--workload", lost, "--json")
    doc = json.loads(out)
    (h,) = doc["faults"]
    assert code == EXIT_OK and h["caught"], h
    assert "lost_object.py" in h["replay"]
    code, out, err = cli(capsys, "faults", "--workload", "no_such_workload.py")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--workload" in err
