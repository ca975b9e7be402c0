"""What users see of the collector: its slices and counters in --trace, and --plot.

A traced run's Chrome trace must show each cycle and its concurrent mark on
the "gc" track, both stop-the-world pauses, the mark workers' drains, the
stack scans, sweeping and the heap counter (heapLive, trigger, goal).  Under
a controlled scheduler the same events are part of the hashed log, so they
must be the same bit for bit for the same seed.  --plot samples heapLive per
P, bounded, and draws a PNG.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from concalloc.check.violation import Violation
from concalloc.config import Config
from concalloc.gc.heapsamples import MAX_SAMPLES, HeapSamples, check_samples
from concalloc.runconfig import replay_command
from concalloc.runtime import Runtime
from concalloc.trace import Track

from test_run_cli import SMALL, cli, run_json

PNG = b"\x89PNG\r\n\x1a\n"
GiB = 1 << 30
TRACED = ["--steps", "3000", "--procs", "2", "--size", "1024", "--gogc", "5"]


def slices_by_thread(events: list[dict]) -> dict[str, Counter]:
    """{thread name: Counter of its slice names}."""
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    out: dict[str, Counter] = {}
    for e in events:
        if e["ph"] == "X":
            out.setdefault(names[e["tid"]], Counter())[e["name"]] += 1
    return out


def within(inner: dict, outer: dict) -> bool:
    return outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"] + 1e-3


@pytest.mark.parametrize("sched", ["os", "random"])
def test_a_traced_run_shows_the_collector(capsys, tmp_path, sched):
    path = tmp_path / "trace.json"
    doc = run_json(capsys, *TRACED, "--scheduler", sched, "--trace", str(path))
    assert doc["exit_code"] == 0
    ngc = doc["gc"]["num_gc"]
    assert ngc >= 1, "the run must collect for this test to mean anything"
    events = json.loads(path.read_text())["traceEvents"]
    by = slices_by_thread(events)
    gc = by["gc"]
    assert sum(n for name, n in gc.items() if name.startswith("GC ")) == ngc
    assert {f"GC {i}" for i in range(1, ngc + 1)} <= set(gc), gc
    assert gc["concurrent mark"] >= ngc
    assert gc["STW GC sweep termination"] == ngc
    assert gc["STW GC mark termination"] >= ngc
    assert gc["finishsweep_m"] >= ngc
    assert by["gcw0"]["GC (dedicated)"] >= 1

    # one stack scan per P per cycle, each named for the P (on whichever thread scanned it)
    scans = Counter()
    for c in by.values():
        for name, n in c.items():
            if name.startswith("scanstack "):
                scans[name] += n
    assert scans == {"scanstack P0": ngc, "scanstack P1": ngc}

    # each concurrent mark lies inside its cycle's slice, after sweep termination's pause
    cycles = {e["args"]["n"]: e for e in events if e["ph"] == "X" and e["cat"] == "gc_start"}
    for m in (e for e in events if e["ph"] == "X" and e["name"] == "concurrent mark"):
        cyc = cycles[m["args"]["n"]]
        assert within(m, cyc), (m, cyc)
    assert all("heap_marked" in c["args"] for c in cycles.values()), "the end's fields are the slice's args"

    # the heap counter: heapLive, trigger and goal, from the refills and from the collector
    heap = [e for e in events if e["ph"] == "C" and e["name"] == "heap"]
    assert all({"heapLive", "trigger", "heapGoal"} <= set(e["args"]) for e in heap)
    assert all(e["args"]["trigger"] <= e["args"]["heapGoal"] for e in heap)
    gc_tid = next(e["tid"] for e in events if e["ph"] == "M" and e.get("args", {}).get("name") == "gc")
    assert sum(1 for e in heap if e["tid"] == gc_tid) == 2 * ngc     # each cycle's start and end
    assert sum(1 for e in heap if e["tid"] != gc_tid) >= 2 * ngc     # the refills


def test_the_collector_events_are_deterministic_under_a_controlled_scheduler():
    cfg = Config(procs=2, scheduler="random", seed=3, steps=1500, size=1024, gogc=5,
                 reserve_bytes=GiB, lock_stats=False)
    logs, hashes = [], []
    for _ in range(2):
        with Runtime(cfg) as rt:
            res = rt.run_bounded(120)
            assert res.error is None, res.error
            assert res.gc["num_gc"] >= 1
            logs.append([(e.seq, e.thread, e.kind, e.fields) for e in rt.events.events()])
            hashes.append(res.event_log_hash)
    assert logs[0] == logs[1] and hashes[0] == hashes[1]
    kinds = Counter(k for _, _, k, _ in logs[0])
    for kind in ("gc_start", "gc_done", "gc_mark_start", "gc_mark_done", "gc_worker_start", "gc_worker_done",
                 "gc_scanstack_start", "gc_sweep_start", "gc_phase"):
        assert kinds[kind] >= 1, kind
    assert kinds["gc_start"] == kinds["gc_done"] == res.gc["num_gc"]

    def plain(v) -> bool:       # no wall time can hide in a payload: ints, names and flags only
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return isinstance(v, (int, str, bool))
    assert all(plain(f) for _, _, k, f in logs[0] if k.startswith("gc_") or k == "counter")


def test_no_recorder_no_gc_events():
    with Runtime(Config(procs=1, steps=50, reserve_bytes=GiB)) as rt:
        assert rt.events is None and rt.gc.events is None and rt.gc.samples is None
        assert rt.run_bounded(60).error is None


def test_a_slice_carries_its_end_fields_but_an_inner_one_cut_short_does_not():
    out: list = []
    tr = Track("P0", 1)
    tr.convert([(0, "gc_assist_start", {}), (1000, "gc_scanstack_start", {"p": "P0"}),
                (3000, "gc_assist_done", {"work": 5})], out)
    by_name = {e["name"]: e for e in out}
    assert by_name["MARK ASSIST"]["args"] == {"work": 5} and by_name["MARK ASSIST"]["dur"] == 3.0
    assert by_name["scanstack P0"]["args"] == {"p": "P0"}


# --- heapLive samples ---------------------------------------------------------------

def test_heap_samples_stay_bounded_and_cover_the_run():
    t = [0]
    hs = HeapSamples(lambda: t[0], 0, 2, interval=10)
    for i in range(200_000):
        t[0] = i * 7
        hs.sample(i % 2, i)
    check_samples(hs)
    got = hs.samples()
    assert all(len(buf) < MAX_SAMPLES for buf in hs.per_p)
    assert len(got) > MAX_SAMPLES                     # both Ps, each more than half full
    assert got == sorted(got)
    assert got[0][0] < 7 * 200_000 // 100 and got[-1][0] > 7 * 200_000 * 99 // 100
    assert hs.interval[0] > 10                        # it thinned itself out


def test_heap_samples_throttle_by_interval():
    t = [0]
    hs = HeapSamples(lambda: t[0], 0, 1, interval=100)
    for i in range(1000):
        t[0] = i
        hs.sample(0, i)
    assert [s for s, _ in hs.samples()] == list(range(0, 1000, 100))


@pytest.mark.parametrize("breakage", ["order", "bound"])
def test_check_samples_fails_on_a_broken_list(breakage):
    hs = HeapSamples(lambda: 0, 0, 1, interval=1)
    hs.per_p[0] = [(5, 1), (3, 2)] if breakage == "order" else [(i, i) for i in range(MAX_SAMPLES)]
    with pytest.raises(Violation):
        check_samples(hs)


# --- --plot ----------------------------------------------------------------------------

@pytest.mark.parametrize("sched", ["os", "random"])
def test_plot_draws_the_run(capsys, tmp_path, sched):
    out = tmp_path / "gc.png"
    doc = run_json(capsys, *TRACED, "--scheduler", sched, "--plot", str(out))
    assert doc["exit_code"] == 0 and doc["gc"]["num_gc"] >= 1
    assert doc["config"]["plot"] == str(out)
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


def test_a_plotted_run_samples_heap_live(tmp_path):
    cfg = Config(procs=2, steps=2000, size=1024, gogc=5, reserve_bytes=GiB, plot=str(tmp_path / "p.png"))
    with Runtime(cfg) as rt:
        res = rt.run_bounded(120)
        assert res.error is None
        samples = rt.gc.samples.samples()
        check_samples(rt.gc.samples)
        assert len(samples) >= 2 and samples == sorted(samples)
        assert max(b for _, b in samples) > 0
        # heapcheck=1: a verify_heap stop just before cycles 1, 2, 4, 8..., which the plot hatches
        stops = rt.gc.samples.verify_stops
        checked = [c for c in rt.gc.cycles if c["n"] & (c["n"] - 1) == 0]
        assert len(stops) == len(checked) >= 1
        assert all(a <= b <= c["start_ns"] for (a, b), c in zip(stops, checked))
    assert (tmp_path / "p.png").read_bytes().startswith(PNG)


def test_plot_path_is_checked_before_the_run(capsys):
    code, out, err = cli(capsys, "run", *SMALL, "--steps", "50", "--plot", "/nonexistent/dir/gc.png")
    assert code == 2 and out == ""
    assert err.splitlines() == ["concalloc: --plot: cannot write '/nonexistent/dir/gc.png': "
                                "No such file or directory"]


def test_plot_is_not_part_of_the_replay_command():
    cmd = replay_command(Config(scheduler="random", steps=10, plot="x.png", trace="t.json"))
    assert "--plot" not in cmd and "x.png" not in cmd
