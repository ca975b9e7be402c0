"""Issue 9's command-line items: one-line errors, readable tables, progress,
Ctrl-C, bounded traces and the contention grid's input checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import concalloc.contention as contention
from concalloc.cli import build_parser
from concalloc.report import WIDTH, duration, hist_quantile, lock_tables
from cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--reserve", "1GiB"]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))




def one_line(err: str, *needles: str) -> None:
    assert err.count("\n") == 1 and err.startswith("concalloc: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


# --- out of memory ---------------------------------------------------------------------------

def test_an_object_larger_than_the_reservation_is_refused_up_front(capsys):
    code, out, err = cli(capsys, "run", "--size", "100000000000", "--steps", "2", "--procs", "1")
    assert code == 2 and out == ""
    one_line(err, "--size", "64GiB reservation", "--reserve")


def test_exhausting_the_reservation_is_one_line_after_the_report(capsys):
    code, out, err = cli(capsys, "run", "--size", "40000000", "--steps", "3000", "--procs", "1",
                         "--reserve", "64MiB")
    assert code == 3
    assert "runtime.MemStats" in out            # what ran is reported
    # a run that lasts a second prints a progress line first: not part of the error
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("["))
    one_line(err, "out of memory", "raise --reserve", "(in P0)")
    assert "reserve_bytes" not in err


# --- help, version, python -m ----------------------------------------------------------------

def test_version_flag_and_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "concalloc", "--version"], capture_output=True, text=True,
                         env=ENV, cwd=REPO, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("concalloc 0.") and out.stderr == ""
    bare = subprocess.run([sys.executable, "-m", "concalloc"], capture_output=True, text=True, env=ENV,
                          cwd=REPO, timeout=60)
    assert bare.returncode == 2 and bare.stderr == "concalloc: the following arguments are required: COMMAND\n"


@pytest.mark.parametrize("cmd", ["run", "contention"])
def test_every_option_has_help_with_its_default(cmd):
    sub = build_parser()._subparsers._group_actions[0].choices[cmd]
    for a in sub._actions:
        if not a.option_strings or a.dest == "help":
            continue
        assert a.help, f"{cmd} {a.option_strings[0]} has no help"
        if a.dest != "json":
            assert "default" in a.help, f"{cmd} {a.option_strings[0]} does not say its default"


# --- tables ------------------------------------------------------------------------------------

def test_duration_and_quantiles():
    assert [duration(v) for v in (812, 12_345, 8_959_497, 1_200_000_000)] == ["812 ns", "12.3 µs", "8.96 ms",
                                                                             "1.2 s"]
    assert duration(15, "steps") == "15 steps" and duration(None) == "-"
    hist = {"0": 1, "4": 97, "1024": 2}           # log2 buckets: [4, 8) and [1024, 2048)
    assert hist_quantile(hist, 0.5) == 8 and hist_quantile(hist, 0.99) == 2048
    assert hist_quantile(hist, 0.99, cap=1500) == 1500 and hist_quantile({}, 0.5) is None


def _locks(names_and_classes):
    row = {"acquisitions": 1_234_567, "contended": 54_321, "wait_total": 987_654_321_000, "wait_max": 9_000_000,
           "wait_hist": {"4194304": 54_000, "8388608": 321}, "hold_total": 123_456_789, "hold_max": 1, "hold_samples": 3,
           "owner_switches": 0, "max_waiters": 3}
    locks = {n: {**row, "lock_class": c} for n, c in names_and_classes}
    classes: dict = {}
    for n, c in names_and_classes:
        classes.setdefault(c, {**row, "locks": 0})["locks"] += 1
    return {"unit": "ns", "locks": locks, "classes": classes}


def test_lock_tables_fit_100_columns_in_human_units_without_repeated_rows():
    locks = _locks([("mheap", "mheap"), ("sched", "sched")] +
                   [(f"mcentral[{i}]", "mcentral") for i in range(120, 136)])
    text = lock_tables(locks)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "4.19 ms" in text or "8.39 ms" in text         # p50 from the histogram, in ms
    assert "9 ms" in text and "988 s" in text             # max and total wait in human units
    assert "987,654" not in text and "9,000,000" not in text and " ns" not in text   # no raw ns
    rows = [line.split()[0] for line in text.splitlines() if line and line[0].isalpha()]
    data = [r for r in rows if r not in ("lock", "top")]
    assert "mheap" not in text.split("top ")[1], "a single-lock class's row is not repeated"
    assert len(data) == len(set(data))


def test_single_class_workload_has_one_table():
    text = lock_tables(_locks([("mheap", "mheap")]))
    assert "top " not in text


# --- contention -----------------------------------------------------------------------------

def test_duplicated_lists_run_once_and_plot(capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "contention", "--procs", "2,1,2", "--cache", "on,on", "--scheduler", "random",
                            "--steps", "60", "--out", str(out), *SMALL)
    assert code == 0, err
    assert "each value is run once" in err
    rows = json.loads((out / "contention.json").read_text())["rows"]
    assert sorted({(r["procs"], r["cache"]) for r in rows}) == [(1, "on"), (2, "on")]
    assert len(rows) == len({(r["procs"], r["cache"], r["lock_class"]) for r in rows})
    assert (out / "contention.png").stat().st_size > 10_000


@pytest.mark.parametrize("make_out, says", [
    (lambda tmp: tmp / "a-file", "cannot make the directory"),
    (lambda tmp: Path("/proc/concalloc-x"), "cannot make the directory"),
])
def test_out_is_checked_before_any_run(capsys, tmp_path, monkeypatch, make_out, says):
    (tmp_path / "a-file").write_text("occupied")
    monkeypatch.setattr(contention, "run_cell", lambda *a, **k: pytest.fail("a run started"))
    code, out, err = cli(capsys, "contention", "--procs", "1", "--out", str(make_out(tmp_path)), *SMALL)
    assert code == 2 and out == ""
    one_line(err, "--out", says)


def test_progress_counts_and_the_plot_has_error_bars(capsys, tmp_path):
    code, out, err = cli(capsys, "contention", "--procs", "1,2", "--cache", "off", "--scheduler", "random",
                         "--steps", "40", "--repeat", "2", "--out", str(tmp_path), *SMALL)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("[1/4] 1 Ps, cache off, run 1/2") and "ETA" not in lines[0]
    assert lines[-1].startswith("[4/4] 2 Ps, cache off, run 2/2, ETA ")
    doc = json.loads((tmp_path / "contention.json").read_text())
    assert doc["format"] == "concalloc-contention" and doc["format_version"] == 1
    assert {p["runs"] for p in doc["points"]} == {2}
    assert all("mean_wait_sd" in p for p in doc["points"])
    never = [r for r in doc["rows"] if r["contended"] == 0]
    assert never and all(r["mean_wait"] is None for r in never), "never contended has no mean wait"
    quiet = cli(capsys, "contention", "--procs", "1", "--cache", "off", "--scheduler", "random", "--steps", "20",
                "--out", str(tmp_path), "--log-level", "warning", *SMALL)
    assert quiet[0] == 0 and quiet[2] == ""


# --- Ctrl-C -----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, measured", [
    (["run", "--seconds", "60", "--procs", "2"], "runtime.MemStats"),
    (["contention", "--procs", "1,2", "--seconds", "30"], "lock contention by lock class"),
])
def test_ctrl_c_reports_what_was_measured_and_exits_130(tmp_path, argv, measured):
    p = subprocess.Popen([sys.executable, "-m", "concalloc", *argv, "--reserve", "1GiB",
                          *(["--out", str(tmp_path)] if argv[0] == "contention" else [])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
    # Interrupt once the work has begun (its first progress line), not after a fixed sleep:
    # on a loaded machine the imports alone can take longer than any fixed delay.
    first = p.stderr.readline()
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    err = first + err
    assert p.returncode == 130, err
    assert measured in out
    assert "interrupted" in err.splitlines()[-1] and "Traceback" not in err


# --- traces -----------------------------------------------------------------------------------

def test_a_trace_is_bounded_and_streamed(capsys, tmp_path):
    """80,000 allocations: one event each made an 11 MB file; counters and slices stay small."""
    path = tmp_path / "t.json"
    code, out, err = cli(capsys, "run", "--json", "--steps", "20000", "--procs", "4", "--trace", str(path), *SMALL)
    assert code == 0, err
    size = path.stat().st_size
    events = json.loads(path.read_text())["traceEvents"]
    assert size < 1_500_000, f"{size} bytes"
    assert not [e for e in events if e.get("cat") == "alloc"]
    assert sum(1 for e in events if e["ph"] == "C" and e["name"].startswith("allocs ")) >= 4 * 19


def test_streaming_recorder_keeps_at_most_a_chunk_per_thread(tmp_path):
    from concalloc.trace import CHUNK, StreamingRecorder
    rec = StreamingRecorder(str(tmp_path / "t.json"))
    biggest = 0
    for i in range(3 * CHUNK + 5):
        rec.emit("lock_acquire", lock="x")
        rec.emit("lock_release", lock="x")
        biggest = max(biggest, len(rec._stream.state[0]))
    rec.close()
    assert biggest < CHUNK
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    holds = [e for e in events if e["ph"] == "X"]
    assert len(holds) == 3 * CHUNK + 5 and all(e["name"] == "hold x" for e in holds)


# --- locks -------------------------------------------------------------------------------------

def test_plain_mutex_with_is_the_bare_locks_own():
    """`with m:` on a plain mutex runs threading.Lock's C __enter__/__exit__ (no Python frame)."""
    import threading

    from concalloc.sync import Rank, SyncContext
    m = SyncContext(check_ranks=False).mutex("mheap", Rank.MHEAP)
    lock_type = type(threading.Lock())
    assert type(type(m).__enter__) is type(threading.Lock().__enter__)
    assert type(m).__enter__.__self__ is m.lock.__self__ and isinstance(m.lock.__self__, lock_type)
    with m:
        assert m.lock(False) is False and m.locked()
    assert not m.locked() and m.owner is None and m.name == "mheap" and m.rank == Rank.MHEAP


@pytest.mark.parametrize("ranks", [False, True])
def test_sampled_statistics_count_every_acquisition(ranks):
    from concalloc.sync import Rank, SyncContext
    from concalloc.sync.lockstats import HOLD_SAMPLE
    ctx = SyncContext(check_ranks=ranks, lock_stats=True)
    m = ctx.mutex("mcentral[3]", Rank.MCENTRAL, "mcentral")
    for _ in range(1000):
        m.lock()
        m.unlock()
    for _ in range(500):
        with m:
            pass
    row = ctx.lock_stats()["locks"]["mcentral[3]"]
    assert row["acquisitions"] == 1500 and row["contended"] == 0
    # timed holds: the first, then one every HOLD_SAMPLE on average (random gaps in [1, 2*HOLD_SAMPLE))
    assert 1500 // (2 * HOLD_SAMPLE) <= row["hold_samples"] <= 1500
    assert row["hold_samples"] < 1500 / 8, "holds are sampled, not all timed"
    assert row["hold_total"] >= row["hold_max"] > 0


def test_run_progress_line_has_a_fraction_and_an_eta(capsys):
    from types import SimpleNamespace

    from concalloc.config import Config
    from concalloc.demo import _progress_line
    rt = SimpleNamespace(config=Config(steps=1000, procs=2), mutators=[1, 2], nchecks=3,
                         progress_counter=lambda: 500,
                         heap=SimpleNamespace(mheap=SimpleNamespace(gcController=SimpleNamespace(
                             heapLive=SimpleNamespace(load=lambda: 1 << 20)))))
    _progress_line(rt, 2.0)
    err = capsys.readouterr().err
    assert "25% ETA  6.0s] allocs       500" in err and "GCs 3" in err


def test_godebug_key_without_a_value_says_so(capsys):
    code, out, err = cli(capsys, "run", "--godebug", "heapcheck")
    assert code == 2
    one_line(err, "--godebug: heapcheck needs a value, e.g. heapcheck=1")


def test_stats_mutex_knows_the_owner_of_a_contended_hold_only():
    import threading

    from concalloc.sync import Rank, SyncContext
    ctx = SyncContext(check_ranks=False, lock_stats=True)
    m = ctx.mutex("mheap", Rank.MHEAP)
    seen = {}
    m.lock()
    assert m.owner is None                     # uncontended: not looked up

    def waiter():
        with m:
            seen["inside"] = m.owner
    t = threading.Thread(target=waiter, name="W")
    t.start()
    while m.stats.waiters.load() == 0:
        threading.Event().wait(0.001)
    m.unlock()
    t.join(20)
    assert seen["inside"] == "W"
    assert m.owner is None                     # forgotten at release, never stale
    with m:
        assert m.owner is None
    assert ctx.lock_stats()["locks"]["mheap"]["contended"] == 1
