"""The collector's cycles end to end: garbage freed, live objects kept, pacing, runtime.GC.

Each run has checkmark on (every reachable object must be marked at mark
termination) and, where said, the pointer oracle (heapcheck=2: every pointer
a mutator loads or stores points into an allocated object, so a freed live
object is caught at its next use).  Cycles come from a small GOGC; the graph
and tree workloads allocate 32-byte objects, and Go 1.19 gives the sweeper at
least 1 MiB of heap growth after each cycle (sweepMinHeapDistance), some
32 000 of them, so they also set a memory limit of 0, whose heap goal is the
marked heap: cycles back to back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from concalloc.config import Config
from concalloc.gc.gctrace import GCTRACE_RE, format_gctrace
from concalloc.gc.pacer import defaultHeapMinimum, sweepMinHeapDistance
from concalloc.mbitmap import pointer_slots
from concalloc.sizeclasses import _SMALL_SPC_NOSCAN
from concalloc.memory import Type
from concalloc.runtime import EXIT_OK, Runtime, replay_command

GiB = 1 << 30
MiB = 1 << 20
REPO = Path(__file__).resolve().parents[1]
# Under os a short switch interval lets the collector's threads get the GIL
# from the mutators often enough for cycles to end while they run.
OS = {"scheduler": "os", "switch_interval": 0.0005}
SCHEDULERS = {
    "os": OS,
    "random": {"scheduler": "random"},
    # PCT's k should be near the decisions a thread makes: these runs are short
    # (heap loads/stores are decisions only while the collector marks).
    "pct": {"scheduler": "pct", "pct_depth": 6, "pct_k": 500},
}
# Per workload: (steps under os, steps controlled, settings).  Under os the
# mutators hold the GIL for long stretches, hence more steps.
WORKLOADS = {
    "ring": (10000, 1200, {"gogc": 1, "size": 1024}),
    "tree": (4000, 200, {"gogc": 1, "memory_limit": 0}),
    "churn": (4000, 300, {"gogc": 5}),
    "graph": (1200, 60, {"gogc": 1, "memory_limit": 0}),
    "burst": (4000, 300, {"gogc": 5}),
}


def run(cfg: Config, workload=None, cache: bool = True):
    with Runtime(cfg, workload=workload, cache=cache) as rt:
        res = rt.run()
    return rt, res


def why(cfg, res) -> str:
    return f"replay: {replay_command(cfg)}\nexit {res.exit_code}: {res.error}"


# --- garbage is freed, live objects survive ------------------------------------------------

@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_cycles_free_garbage_and_keep_live_objects(sched, workload):
    os_steps, steps, kw = WORKLOADS[workload]
    cfg = Config(procs=2, workload=workload, steps=os_steps if sched == "os" else steps, live=32,
                 gccheckmark=True, heapcheck=2, reserve_bytes=GiB, **kw, **SCHEDULERS[sched])
    _rt, res = run(cfg)
    assert res.exit_code == EXIT_OK and res.violations == [], why(cfg, res)
    ms = res.memstats
    assert ms["NumGC"] >= 2, why(cfg, res)
    assert ms["Frees"] > 0, why(cfg, res)
    # What the cycles marked is what survived: the live heap after the last
    # cycle's sweep never exceeds what was allocated, and each cycle's marked
    # bytes are at most the heap at its mark termination.
    for c in res.gc["cycles"]:
        assert 0 < c["heap_marked"] <= c["heap_end"], (c, why(cfg, res))
    assert ms["HeapObjects"] == ms["Mallocs"] - ms["Frees"]


# --- GOGC and the memory limit -----------------------------------------------------------

def _ring(**kw) -> Config:
    return Config(**{**dict(procs=2, workload="ring", steps=15000, live=32, size=1024, reserve_bytes=GiB),
                     **OS, **kw})


def test_gogc_off_never_starts_a_cycle():
    cfg = _ring(gogc=-1)
    _rt, res = run(cfg)
    assert res.exit_code == EXIT_OK, why(cfg, res)
    ms = res.memstats
    assert ms["TotalAlloc"] >= 5 * defaultHeapMinimum      # far past any GOGC goal
    assert ms["NumGC"] == 0 and res.gc["cycles"] == [] and res.stw == {}
    assert ms["Frees"] == 0 and ms["HeapAlloc"] == ms["TotalAlloc"]


def test_gogc_0_runs_cycles_back_to_back():
    # GOGC=0: the goal is the marked heap itself; only the sweeper's 1 MiB of
    # runway (the cycle ends with sweeping to do) separates two cycles.
    zero = run(cfg0 := _ring(gogc=0))[1]
    hundred = run(_ring(gogc=100))[1]
    assert zero.exit_code == EXIT_OK and hundred.exit_code == EXIT_OK, why(cfg0, zero)
    cycles = zero.gc["cycles"]
    assert len(cycles) >= 3, why(cfg0, zero)
    for c in cycles:
        assert c["next_goal"] <= c["heap_marked"] + sweepMinHeapDistance, c
        assert c["next_trigger"] <= c["next_goal"]
    assert all(c["next_goal"] >= defaultHeapMinimum for c in hundred.gc["cycles"])
    assert len(cycles) > len(hundred.gc["cycles"])


@pytest.mark.parametrize("sched", ["os", "random"])
def test_memory_limit_with_gogc_off_keeps_the_goal_under_it(sched):
    limit = 8 * MiB
    steps = 3000 if sched == "os" else 1200
    cfg = _ring(gogc=-1, memory_limit=limit, steps=steps, size=8192, scheduler=sched)
    _rt, res = run(cfg)
    assert res.exit_code == EXIT_OK, why(cfg, res)
    ms = res.memstats
    assert ms["TotalAlloc"] > 2 * limit
    cycles = res.gc["cycles"]
    assert len(cycles) >= 1 and ms["Frees"] > 0, why(cfg, res)
    for c in cycles:
        # The goal is the limit less non-heap memory and 1 MiB of headroom,
        # but never below the marked heap (objects allocated during mark are
        # marked: under os, where mutators outrun the markers for the GIL, that
        # can pass the limit, as a live heap over GOMEMLIMIT does in Go).
        assert c["heap_goal"] <= max(limit, c["heap_start"]), c
        assert c["next_goal"] <= max(limit, c["heap_marked"]), c
    assert ms["NextGC"] == cycles[-1]["next_goal"] > 0, "with GOGC=off the memory limit sets NextGC"
    if sched == "random":     # assists hold the heap to the goal when mutators cannot outrun the markers
        assert max(c["heap_end"] for c in cycles) <= limit, cycles
        assert max(c["next_goal"] for c in cycles) <= limit, cycles


# --- determinism ----------------------------------------------------------------------------

def test_a_controlled_run_with_cycles_is_deterministic_and_replays(tmp_path):
    cfg = Config(procs=2, workload="churn", steps=250, live=32, scheduler="random", seed=9, gogc=5,
                 gccheckmark=True, reserve_bytes=GiB)
    path = str(tmp_path / "sched.json")
    with Runtime(cfg) as rt:
        first = rt.run()
        rt.save_schedule(path)
    assert first.exit_code == EXIT_OK, why(cfg, first)
    assert first.gc["num_gc"] >= 2
    _rt, again = run(cfg)
    _rt, replayed = run(cfg.replace(scheduler="replay", replay_file=path))
    for res in (again, replayed):
        assert res.exit_code == EXIT_OK, res.error
        assert res.event_log_hash == first.event_log_hash
        assert res.gc == first.gc and res.memstats == first.memstats


# --- runtime.GC and gc_start ------------------------------------------------------------------

NODE = Type("gcnode", 32, [0, 1])


class ForcedCycles:
    """P0 allocates garbage, calls m.gc() twice, then m.gc_start() once and
    allocates until that cycle is done.  Records what it saw."""

    def __init__(self):
        self.rt = None
        self.seen = {}

    def prepare(self, rt):
        self.rt = rt

    def slots(self, cfg):
        return 2

    def run(self, m, cfg):
        gc = self.rt.gc
        if m.p.id != 0:
            while m.running():
                m.set_slot(0, m.alloc(NODE.size, NODE))
            return
        keep = m.alloc(NODE.size, NODE)
        m.set_slot(0, keep)
        for _ in range(300):
            m.alloc(64)                    # garbage
        for i in range(2):
            before = gc.numgc
            m.gc()
            self.seen[f"gc{i}"] = (before, gc.numgc, gc.cycles[-1]["forced"])
        before = gc.numgc
        m.gc_start()
        self.seen["start_returned"] = (before, gc.numgc)
        n = 0
        while gc.numgc == before and n < 100_000:
            m.set_slot(1, m.alloc(NODE.size, NODE))
            n += 1
        self.seen["start_done"] = (gc.numgc, gc.cycles[-1]["forced"], n)
        self.seen["keep_marked"] = m.load(keep, 0) == 0 and m.slot(0) == keep


@pytest.mark.parametrize("sched", ["os", "random"])
def test_runtime_gc_completes_a_cycle_and_gc_start_returns_at_once(sched):
    wl = ForcedCycles()
    cfg = Config(procs=2, steps=400, scheduler=sched, gogc=-1, gccheckmark=True, heapcheck=2,
                 reserve_bytes=GiB)
    with Runtime(cfg, workload=wl) as rt:
        wl.prepare(rt)
        res = rt.run()
    assert res.exit_code == EXIT_OK, why(cfg, res)
    seen = wl.seen
    for i in range(2):                # m.gc() returns with its cycle complete
        before, after, forced = seen[f"gc{i}"]
        assert after == before + 1 and forced, seen
    before, at_return = seen["start_returned"]
    assert at_return == before, "gc_start returned before its cycle ended (this P must park for it)"
    numgc, forced, n = seen["start_done"]
    assert numgc == before + 1 and forced and n > 0, seen
    ms = res.memstats
    assert ms["NumGC"] == ms["NumForcedGC"] == 3, "GOGC=off: only the forced cycles"
    assert ms["Frees"] >= 300
    assert [c["num_forced"] for c in res.gc["cycles"]] == [1, 2, 3]


# --- the trigger test comes last on every allocation path ------------------------------------------

SCAN = Type("hooknode", 48, [0, 2])
BIG_SCAN = Type("hookbig", 64, [1])


class AllocPaths:
    """Allocates on every path until each has gone through its slow path
    (a refill, a new mcentral span, a large span) a few times."""

    def __init__(self, paths):
        self.paths = paths
        self.rt = None

    def prepare(self, rt):
        self.rt = rt

    def slots(self, cfg):
        return 4

    def run(self, m, cfg):
        for path in self.paths:
            if path == "small":
                self.dirty(m, path_args(path)[0])
            for _ in range(self.paths[path]):
                self.rt.hook_seen.clear()       # only this allocation's slow path counts
                x = m.alloc(*path_args(path))
                self.rt.hook_check(path, x)
        while m.running():
            m.alloc(8)

    def dirty(self, m, size):
        """Fill spans of this size class with garbage that has nonzero words,
        and collect it: the slots the next allocations reuse are dirty until
        the allocation path clears them."""
        for _ in range(self.paths["small"]):
            x = m.alloc(size)
            for i in range(size // 8):
                m.write_word(x, i, 0x5A5A5A5A)
        m.gc()


def path_args(path):
    return {"tiny": (8,), "small": (48,), "small-scan": (SCAN.size, SCAN),
            "large": ((32 << 10) + 64, BIG_SCAN)}[path]


def install_inspecting_hooks(rt):
    """Wrap the collector's slow-path hook: at each call, record what the
    object just allocated looks like.  The caller checks it against the
    address the allocation returned."""
    h = rt.heap.mheap
    last_bits = {}
    for c in rt.heap.mcaches:
        orig_bits = c.heapBitsSetType

        def bits(s, x, size, typ, orig_bits=orig_bits, c=c):
            orig_bits(s, x, size, typ)
            last_bits[c.pid] = (s, x)
        c.heapBitsSetType = bits
    seen = []
    orig_refill, orig_large = h.on_refill, h.on_large_alloc

    small = _SMALL_SPC_NOSCAN[path_args("small")[0]]
    mem = rt.heap.memory

    def on_refill(c):
        s, x = last_bits.get(c.pid, (None, 0))
        # With the mcache on, the object a refill hands out is the one just
        # before the cached span's freeindex: record its words as they are now.
        cs = c.alloc[small]
        xs = cs.startAddr + (cs.freeindex - 1) * cs.elemsize if rt.cache and cs.freeindex else 0
        seen.append({"tiny": c.tiny, "tinyoffset": c.tinyoffset, "bits_x": x,
                     "slots": pointer_slots(s, x) if s is not None else None,
                     "small_x": xs, "small_words": [mem.load(xs + 8 * i) for i in range(6)] if xs else None})
        orig_refill(c)

    def on_large(c, s):
        seen.append({"span": s, "limit": s.limit, "alloc": s.allocCount,
                     "slots": pointer_slots(s, s.startAddr), "marked": s.isMarked(0)})
        orig_large(c, s)
    h.on_refill, h.on_large_alloc = on_refill, on_large
    return seen


@pytest.mark.parametrize("cache", [True, False], ids=["cache-on", "cache-off"])
def test_trigger_hook_sees_the_object_ready_on_every_path(cache):
    paths = {"tiny": 3000, "small": 600, "small-scan": 600, "large": 4}
    checked = {p: 0 for p in paths}
    wl = AllocPaths(paths)
    cfg = Config(procs=1, steps=10, scheduler="random", gogc=5, reserve_bytes=GiB)
    with Runtime(cfg, workload=wl, cache=cache) as rt:
        wl.prepare(rt)
        seen = rt.hook_seen = install_inspecting_hooks(rt)

        def hook_check(path, x):
            if not seen:
                return
            v = seen.pop()
            assert not seen, "one slow path per allocation"
            if path == "tiny":
                assert v["tiny"] == x and v["tinyoffset"] == 8, (v, hex(x))
            elif path == "small-scan":
                assert v["bits_x"] == x, "heap bits written before the trigger test"
                assert v["slots"] == [x + 8 * i for i in SCAN.ptrwords], v
            elif path == "large":
                s = v["span"]
                assert s.startAddr == x and v["limit"] == x + path_args("large")[0] and v["alloc"] == 1
                assert v["slots"] == pointer_slots(s, x) and v["slots"][:1] == [x + 8], v
                assert v["marked"] == bool(rt.gc.phase)
            elif cache:                          # small noscan: cleared before the trigger test
                assert v["small_x"] == x and v["small_words"] == [0] * 6, (v, hex(x))
            checked[path] += 1
        rt.hook_check = hook_check
        res = rt.run()
    assert res.exit_code == EXIT_OK, res.error
    assert all(checked.values()), checked
    assert res.gc["num_gc"] >= 1


# --- gctrace and MemStats -----------------------------------------------------------------------

def test_gctrace_lines_of_a_real_run_match_go_grammar():
    cmd = [sys.executable, "-m", "concalloc", "run", "--procs", "2", "--workload", "churn", "--steps", "300",
           "--live", "32", "--scheduler", "random", "--gogc", "5", "--gctrace", "--reserve", "1GiB",
           "--no-lock-stats", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if re.search(r"\bgc \d+ @", ln)]
    assert len(lines) >= 2, out.stderr
    doc = json.loads(out.stdout)
    cycles = doc["gc"]["cycles"]
    assert len(lines) == len(cycles) == doc["memstats"]["NumGC"]
    for ln, c in zip(lines, cycles):
        text = ln[ln.index("gc "):]
        assert GCTRACE_RE.match(text), text
        assert text == format_gctrace(c)


def test_memstats_gc_fields_agree_with_the_cycles():
    cfg = Config(procs=2, workload="burst", steps=300, live=32, scheduler="random", gogc=5, reserve_bytes=GiB)
    rt, res = run(cfg)
    assert res.exit_code == EXIT_OK, why(cfg, res)
    ms, cycles = res.memstats, res.gc["cycles"]
    assert len(cycles) >= 2
    assert ms["NumGC"] == len(cycles) == res.gc["num_gc"]
    pauses = [c["clock_ns"][0] + c["clock_ns"][2] for c in cycles]
    assert ms["PauseTotalNs"] == sum(pauses)
    assert ms["PauseNs"][:len(cycles)] == pauses and not any(ms["PauseNs"][len(cycles):])
    assert ms["NextGC"] == cycles[-1]["next_goal"]
    assert ms["NumForcedGC"] == sum(c["forced"] for c in cycles) == 0
    assert ms["LastGC"] == ms["PauseEnd"][len(cycles) - 1] > 0
    assert [c["n"] for c in cycles] == list(range(1, len(cycles) + 1))


# --- the marked-bytes accounting -------------------------------------------------------------

ACCOUNTING = {
    "graph-random": dict(workload="graph", steps=150, scheduler="random", gogc=-1, memory_limit=0),
    "churn-random": dict(workload="churn", steps=300, scheduler="random", gogc=5),
    "ring-os": dict(workload="ring", steps=5000, size=1024, gogc=1, **OS),
}


@pytest.mark.parametrize("name", list(ACCOUNTING))
def test_bytes_marked_equals_the_mark_bits_at_mark_termination(name, monkeypatch):
    # heapMarked (work.bytesMarked plus the allocate-black bulk marks) is the
    # pacer's live heap and gctrace's third figure: at mark termination it
    # must be exactly the bytes whose mark bits are set.  A count left in a
    # P's gcWork (marks made by the mark-termination re-check's barrier
    # flush) would be missing here and added to the next cycle instead.
    import concalloc.gc.checkmark as checkmark
    orig = checkmark.check_marked_allocated
    seen = []

    def check(gc):
        orig(gc)
        with gc.h.lock:
            spans = list(gc.h.allspans)
        in_bits = sum(s.countAlloc() * s.elemsize for s in spans)
        counted = gc.bytesMarked.load() + sum(p.mcache.markedBlack for p in gc.allp)
        left = [(p.name, p.gcw.bytesMarked) for p in gc.allp if p.gcw.bytesMarked]
        seen.append((gc.numgc + 1, in_bits, counted, left))
    monkeypatch.setattr(checkmark, "check_marked_allocated", check)
    cfg = Config(procs=2, live=32, reserve_bytes=GiB, gccheckmark=True, **ACCOUNTING[name])
    _rt, res = run(cfg)
    assert res.exit_code == EXIT_OK, why(cfg, res)
    assert len(seen) == res.gc["num_gc"] >= 2
    for n, in_bits, counted, left in seen:
        assert counted == in_bits and not left, (f"cycle {n}: counted {counted} B marked, mark bits say "
                                                 f"{in_bits} B; left in gcWork: {left}", why(cfg, res))
    assert [c["heap_marked"] for c in res.gc["cycles"]] == [s[2] for s in seen]
