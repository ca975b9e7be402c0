"""User workloads: --workload FILE.py | package.module[:name], setup before run,
one-line errors, and the reference kept in the replay command, the schedule
file and --json.  examples/lost_object.py is the worked example."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from concalloc.config import Config, ConfigError
from concalloc.runconfig import read_schedule
from concalloc.runtime import EXIT_OK, EXIT_VIOLATION, Runtime, replay_command
from concalloc.sync import AtomicInt
from concalloc import workloads
from cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lost_object.py"
SMALL = ["--reserve", "1GiB"]
BOUND = 120.0            # seconds: a safety net for hung runs, never a speed assertion




def run_cfg(cfg: Config, workload=None):
    with Runtime(cfg, workload=workload) as rt:
        return rt.run_bounded(BOUND)


# --- the example, by both reference forms ------------------------------------------------

@pytest.mark.parametrize("scheduler", ["os", "random"])
def test_example_runs_as_a_file(capsys, scheduler):
    code, out, err = cli(capsys, "run", "--json", *SMALL, "--workload", str(EXAMPLE), "--procs", "2",
                         "--steps", "400", "--gogc", "5", "--scheduler", scheduler)
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert doc["config"]["workload"] == str(EXAMPLE)
    assert doc["gc"]["num_gc"] >= 1                  # the reader's gc_start cycles ran
    assert set(doc["mutators"]) == {"P0", "P1"}


def test_example_runs_as_a_module(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO))
    code, out, err = cli(capsys, "run", "--json", *SMALL, "--workload", "examples.lost_object", "--procs", "2",
                         "--steps", "300", "--scheduler", "random")
    assert code == EXIT_OK, err
    assert json.loads(out)["config"]["workload"] == "examples.lost_object"


def test_the_command_finds_a_module_under_the_current_directory():
    """The `concalloc` script does not put the current directory on sys.path; the loader does."""
    script = Path(sys.executable).parent / "concalloc"
    if not script.exists():
        pytest.skip("no concalloc script next to this interpreter")
    p = subprocess.run([str(script), "run", "--json", *SMALL, "--workload", "examples.lost_object",
                        "--procs", "2", "--steps", "100", "--scheduler", "random"],
                       cwd=REPO, capture_output=True, text=True, timeout=BOUND)
    assert p.returncode == EXIT_OK, p.stderr
    assert json.loads(p.stdout)["config"]["workload"] == "examples.lost_object"


def test_example_loses_its_object_without_a_barrier():
    """The scenario can fail: with --barrier none some seed loses B (the example's own check or
    the pointer oracle sees it freed), while the hybrid barrier keeps it on the same seeds."""
    failed = []
    for seed in range(1, 9):
        cfg = Config(procs=2, workload=str(EXAMPLE), steps=1000, gogc=5, scheduler="random", seed=seed,
                     reserve_bytes=1 << 30, barrier="none")
        res = run_cfg(cfg)
        if res.exit_code == EXIT_VIOLATION:
            failed.append((seed, res.violations[0]["invariant"]))
            ok = run_cfg(cfg.replace(barrier="hybrid"))
            assert ok.exit_code == EXIT_OK, ok.error
            break
    assert failed, "no seed lost the object with the barrier off"
    assert failed[0][1] in ("lost_object.value", "mutator.bad_pointer", "mark.unmarked_reachable"), failed


def test_example_refuses_one_mutator(capsys):
    code, _, err = cli(capsys, "run", *SMALL, "--workload", str(EXAMPLE), "--procs", "1", "--steps", "10")
    assert code == 2 and err == "concalloc: --mutators: lost_object needs two mutators (a mover and a reader)\n"


# --- the reference survives ----------------------------------------------------------------

def test_reference_is_kept_in_replay_command_and_schedule_file(tmp_path, capsys):
    sched = tmp_path / "s.json"
    argv = ["run", "--json", *SMALL, "--workload", str(EXAMPLE), "--procs", "2", "--steps", "200",
            "--scheduler", "random", "--seed", "3"]
    code, out, err = cli(capsys, *argv, "--save-schedule", str(sched))
    assert code == EXIT_OK, err
    first = json.loads(out)
    saved = read_schedule(str(sched))["config"]
    assert saved.workload == str(EXAMPLE)
    assert f"--workload {EXAMPLE}" in replay_command(saved)
    code, out, err = cli(capsys, "run", "--json", "--replay", str(sched))
    assert code == EXIT_OK, err
    again = json.loads(out)
    assert again["event_log_hash"] == first["event_log_hash"]


# --- module:name --------------------------------------------------------------------------

def test_module_colon_name_takes_an_object(tmp_path, monkeypatch):
    (tmp_path / "uwl_objects.py").write_text(textwrap.dedent("""
        class Counting:
            DESCRIPTION = "allocate and count"
            def __init__(self):
                self.runs = 0
            def slots(self, cfg):
                return 1
            def run(self, m, cfg):
                self.runs += 1
                while m.running():
                    m.set_slot(0, m.alloc(32))
        WORKLOAD = Counting()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    wl = workloads.get("uwl_objects:WORKLOAD")
    assert wl.DESCRIPTION == "allocate and count"
    res = run_cfg(Config(procs=2, workload="uwl_objects:WORKLOAD", steps=50, scheduler="random",
                         reserve_bytes=1 << 30))
    assert res.exit_code == EXIT_OK, res.error
    assert wl.runs == 2 and res.config["workload"] == "uwl_objects:WORKLOAD"


# --- setup runs on P0 before any other run ----------------------------------------------

class Ordered:
    """setup allocates SETUP_ALLOCS objects (safe points: a controlled scheduler may switch
    there); every run records the sequence number it started at."""

    SETUP_ALLOCS = 30

    def __init__(self):
        self.seq = AtomicInt(0)
        self.setup_began = self.setup_ended = None
        self.setup_on = None
        self.run_started: dict[str, int] = {}       # one key per mutator, each written by its own P

    def slots(self, cfg):
        return 1

    def setup(self, m, cfg):
        self.setup_on = m.name
        self.setup_began = self.seq.add(1)
        for _ in range(self.SETUP_ALLOCS):
            m.set_slot(0, m.alloc(64))
        self.setup_ended = self.seq.add(1)

    def run(self, m, cfg):
        self.run_started[m.name] = self.seq.add(1)
        while m.running():
            m.set_slot(0, m.alloc(64))

    def early(self) -> list[str]:
        """Mutators whose run started before setup returned."""
        return [n for n, s in self.run_started.items() if s < self.setup_ended]


ORDER_SCHEDULERS = {"os": {"scheduler": "os", "noise": 0.3}, "random": {"scheduler": "random"}}


@pytest.mark.parametrize("sched", ORDER_SCHEDULERS)
def test_setup_runs_on_p0_before_any_run(sched):
    for seed in (1, 2, 3):
        wl = Ordered()
        res = run_cfg(Config(procs=3, workload="ring", steps=40, seed=seed, reserve_bytes=1 << 30,
                             **ORDER_SCHEDULERS[sched]), workload=wl)
        assert res.exit_code == EXIT_OK, res.error
        assert wl.setup_on == "P0" and set(wl.run_started) == {"P0", "P1", "P2"}
        assert wl.early() == [], f"seed {seed}: {wl.early()} ran before setup returned"


def test_without_the_wait_a_run_starts_during_setup():
    """The ordering check can fail: take the wait away and, under the random scheduler,
    another mutator starts its run while P0 is still in setup."""
    early = []
    for seed in range(1, 6):
        wl = Ordered()
        with Runtime(Config(procs=3, steps=40, seed=seed, scheduler="random", reserve_bytes=1 << 30),
                     workload=wl) as rt:
            rt.setup_done = None                  # no gate: the other Ps start at once
            assert rt.run_bounded(BOUND).exit_code == EXIT_OK
        early += wl.early()
    assert early


@pytest.mark.parametrize("sched", ORDER_SCHEDULERS)
def test_a_failing_setup_ends_the_run_without_a_hang(sched):
    class Broken(Ordered):
        def setup(self, m, cfg):
            m.alloc(64)
            raise ValueError("setup failed on purpose")

    wl = Broken()
    res = run_cfg(Config(procs=2, steps=40, reserve_bytes=1 << 30, **ORDER_SCHEDULERS[sched]), workload=wl)
    assert res.exit_code != EXIT_OK and "setup failed on purpose" in str(res.error)
    assert wl.run_started == {}


# --- one-line errors, exit 2, naming --workload -------------------------------------------

def _write(tmp_path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def bad_refs(tmp_path):
    (tmp_path / "adir").mkdir()
    return [
        (str(tmp_path / "missing.py"), "no such file"),
        (str(tmp_path / "adir"), "is not a Python module (expected a .py file)"),
        (_write(tmp_path, "notes.txt", "hello\n"), "is not a Python module"),
        (_write(tmp_path, "norun.py", "def slots(cfg):\n    return 1\n"), "has no run(m, cfg)"),
        (_write(tmp_path, "noslots.py", "def run(m, cfg):\n    pass\n"), "has no slots(cfg)"),
        (_write(tmp_path, "syntax.py", "def run(m, cfg)\n    pass\n"), "does not load: SyntaxError"),
        (_write(tmp_path, "raises.py", "x = 1\nraise RuntimeError('boom')\n"),
         "does not load: RuntimeError: boom (line 2)"),
        (_write(tmp_path, "badsetup.py", "def run(m, cfg): pass\ndef slots(cfg): return 1\nsetup = 3\n"),
         "setup is not a function"),
        ("nosuchmodule_xyz", "no module named 'nosuchmodule_xyz'"),
        ("concalloc.log:nosuch", "module 'concalloc.log' has no attribute 'nosuch'"),
        ("concalloc.log", "has no run(m, cfg)"),
        ("two words", "is neither a built-in"),
    ]


def test_bad_references_exit_2_in_one_line(tmp_path, capsys):
    for ref, text in bad_refs(tmp_path):
        code, out, err = cli(capsys, "run", *SMALL, "--steps", "10", "--workload", ref)
        assert code == 2, (ref, err)
        assert err.startswith("concalloc: --workload: ") and err.count("\n") == 1, (ref, err)
        assert text in err, (ref, err)
        assert out == ""


def test_bad_reference_is_a_config_error(tmp_path):
    for ref, text in bad_refs(tmp_path):
        with pytest.raises(ConfigError) as ei:
            Config(workload=ref)
        assert ei.value.field == "workload" and text in str(ei.value)


def test_contention_takes_a_user_workload(tmp_path, capsys):
    code, out, err = cli(capsys, "contention", "--json", *SMALL, "--workload", str(EXAMPLE), "--procs", "2",
                         "--cache", "on", "--steps", "100", "--scheduler", "random", "--out", str(tmp_path))
    assert code == EXIT_OK, err
    assert json.loads(out)["config"]["workload"] == str(EXAMPLE)


def test_the_docs_show_the_example_whole():
    doc = (REPO / "docs" / "workloads.md").read_text()
    assert EXAMPLE.read_text() in doc
