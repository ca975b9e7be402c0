"""Write barriers and stack-scan protocols: the unsafe ones lose objects, the safe ones do not.

Checkmark (GODEBUG gccheckmark=1) re-marks from the roots at mark
termination and reports the first reachable object the concurrent mark left
white, with its path from a root.  A controlled run is a function of
(config, seed), so "some seed of the random scheduler finds it" is a
deterministic test: the seeds are searched in a bounded loop.

Cycles come back to back in these runs: with GOGC=off and a memory limit of
0 the heap goal is the marked heap (memoryLimitHeapGoal's floor), so every
allocation slow path after a cycle starts the next one, and a few hundred
steps hold several cycles.

The end-of-mark checks (check_no_grey, check_marked_allocated) are tested
here on states broken by hand.
"""

from __future__ import annotations

import pytest

from concalloc.check.violation import Violation
from concalloc.config import BARRIERS, STACK_SCANS, Config
from concalloc.gc.checkmark import check_marked_allocated, runCheckmark
from concalloc.gc.mark import check_no_grey
from concalloc.malloc import mallocgc
from concalloc.memory import Type
from concalloc.runtime import EXIT_OK, EXIT_VIOLATION, Runtime, replay_command

from gc_workloads import Mover

GiB = 1 << 30
SEEDS = range(1, 7)          # the seeds searched for a lost object, and run clean by the safe protocols
STEPS = {"graph": 150, "mover": 150}
# (workload, barrier, stack scan) that lose objects, and why:
UNSAFE = [
    ("graph", "none", "concurrent"),        # heap -> heap moves, nothing shaded
    ("mover", "dijkstra", "concurrent"),    # heap -> black stack, heap reference deleted unshaded
    ("mover", "dijkstra", "stw-snapshot"),  # the same, every stack black from the start
]
SAFE = [("hybrid", "concurrent"), ("dijkstra", "rescan"), ("yuasa", "stw-snapshot")]
ROOT_NAMES = ("stack slot", "register", "global")


def config(workload: str, barrier: str, stack_scan: str, seed: int, **kw) -> Config:
    base = dict(procs=2, steps=STEPS.get(workload, 300), live=32, scheduler="random", seed=seed,
                gogc=-1, memory_limit=0, barrier=barrier, stack_scan=stack_scan, gccheckmark=True,
                reserve_bytes=GiB)
    if workload != "mover":
        base["workload"] = workload
    return Config(**{**base, **kw})


def run(cfg: Config, workload: str):
    with Runtime(cfg, workload=Mover() if workload == "mover" else None) as rt:
        return rt.run()


def why(cfg, res) -> str:
    return f"replay: {replay_command(cfg)}\nexit {res.exit_code}: {res.error}"


# --- lost objects ---------------------------------------------------------------------

@pytest.mark.parametrize("workload,barrier,stack_scan", UNSAFE)
def test_an_unsafe_protocol_loses_an_object_under_some_seed(workload, barrier, stack_scan):
    tried = []
    for seed in SEEDS:
        cfg = config(workload, barrier, stack_scan, seed)
        res = run(cfg, workload)
        tried.append((seed, res.exit_code, res.gc["num_gc"]))
        if res.exit_code == EXIT_OK:
            continue
        assert res.exit_code == EXIT_VIOLATION, why(cfg, res)
        assert len(res.violations) == 1, why(cfg, res)
        v = res.violations[0]
        assert v["invariant"] == "gc.checkmark", why(cfg, res)
        msg = v["message"]
        assert msg.endswith("fatal error: checkmark found unmarked object"), msg
        assert f"barrier={barrier} stack-scan={stack_scan}" in msg
        # The path starts at a root and ends at the unmarked object.
        path = msg.split("path from a root: ", 1)[1].split("\n", 1)[0]
        first, last = path.split(" / ")[0], path.split(" / ")[-1]
        assert any(name in first for name in ROOT_NAMES), path
        assert last.endswith(v["address"]) or (first.startswith(v["address"]) and len(path.split(" / ")) == 1), \
            (path, v)
        assert v["replay"] == replay_command(cfg)
        return
    pytest.fail(f"{barrier} + {stack_scan} on {workload}: no lost object in seeds {list(SEEDS)}: "
                f"(seed, exit, cycles) {tried}")


@pytest.mark.parametrize("workload", ["graph", "mover"])
@pytest.mark.parametrize("barrier,stack_scan", SAFE)
def test_a_safe_protocol_loses_nothing_over_the_same_seeds(workload, barrier, stack_scan):
    for seed in SEEDS[:3]:
        cfg = config(workload, barrier, stack_scan, seed)
        res = run(cfg, workload)
        assert res.exit_code == EXIT_OK, why(cfg, res)
        assert res.gc["num_gc"] >= 2, why(cfg, res)


@pytest.mark.long
@pytest.mark.parametrize("workload", ["graph", "mover"])
@pytest.mark.parametrize("barrier,stack_scan", SAFE + [("hybrid", "stw-snapshot"), ("hybrid", "rescan"),
                                                        ("hybrid-cond", "concurrent")])
def test_safe_protocols_over_many_seeds(workload, barrier, stack_scan):
    for seed in range(1, 21):
        cfg = config(workload, barrier, stack_scan, seed, steps=300)
        res = run(cfg, workload)
        assert res.exit_code == EXIT_OK, why(cfg, res)


# --- every combination runs --------------------------------------------------------------

SAFE_ALWAYS = {("hybrid", s) for s in STACK_SCANS} | {("dijkstra", "rescan"), ("yuasa", "stw-snapshot")}


@pytest.mark.parametrize("stack_scan", STACK_SCANS)
@pytest.mark.parametrize("barrier", BARRIERS)
def test_every_barrier_and_stack_scan_runs(barrier, stack_scan):
    cfg = Config(procs=2, workload="graph", steps=1500, live=32, scheduler="os", switch_interval=0.0005,
                 gogc=-1, memory_limit=0,
                 barrier=barrier, stack_scan=stack_scan, gccheckmark=True, reserve_bytes=GiB)
    res = run(cfg, "graph")
    assert res.gc["barrier"] == barrier and res.gc["stack_scan"] == stack_scan
    if (barrier, stack_scan) in SAFE_ALWAYS:
        assert res.exit_code == EXIT_OK, why(cfg, res)
    elif res.exit_code != EXIT_OK:   # an unsafe protocol may lose an object; nothing else may go wrong
        assert res.exit_code == EXIT_VIOLATION and res.violations[0]["invariant"] == "gc.checkmark", why(cfg, res)
        return
    cycles = res.gc["cycles"]
    assert res.gc["num_gc"] == len(cycles) >= 1, why(cfg, res)
    calls = sum(c["barrier_calls"] for c in cycles)
    if barrier == "none":
        assert calls == 0
    else:                            # the barrier is installed while marking
        assert calls > 0, cycles


# --- the end-of-mark checks on broken states ------------------------------------------

NODE = Type("checknode", 32, range(4))


@pytest.fixture
def rt():
    r = Runtime(Config(procs=2, steps=10, reserve_bytes=GiB, heapcheck=0))
    try:
        yield r
    finally:
        r.close()


def _object(rt, p=0):
    return mallocgc(rt.heap.mcaches[p], NODE.size, NODE)


def test_clean_state_passes_the_checks(rt):
    _object(rt)
    check_no_grey(rt.gc)
    check_marked_allocated(rt.gc)


def test_grey_object_left_in_a_gcwork_is_caught(rt):
    rt.allp[1].gcw.put(_object(rt))
    with pytest.raises(Violation) as e:
        check_no_grey(rt.gc)
    assert e.value.invariant == "gc.grey_left" and "P1's gcWork still holds 1 grey objects" in e.value.message


def test_grey_object_left_on_the_global_list_is_caught(rt):
    rt.gc.lists.put([_object(rt)])
    with pytest.raises(Violation) as e:
        check_no_grey(rt.gc)
    assert e.value.invariant == "gc.grey_left" and "work.full not empty" in e.value.message


def test_buffered_barrier_entry_is_caught(rt):
    rt.allp[0].wbBuf.append(_object(rt))
    with pytest.raises(Violation) as e:
        check_no_grey(rt.gc)
    assert e.value.invariant == "gc.wbbuf_left" and "P0's write-barrier buffer holds 1 entries" in e.value.message


def test_mark_bit_on_a_free_slot_is_caught(rt):
    x = _object(rt)
    s = rt.heap.mheap.spanOf(x)
    s.setMarked(s.objIndex(x))          # the allocated object: fine
    check_marked_allocated(rt.gc)
    free = s.nelems - 1
    assert s.isFree(free)
    s.setMarked(free)
    with pytest.raises(Violation) as e:
        check_marked_allocated(rt.gc)
    assert e.value.invariant == "gc.marked_free"
    assert "marked free object in span" in e.value.message
    assert e.value.address == s.startAddr + free * s.elemsize


def test_checkmark_reports_an_unmarked_reachable_object_with_its_path(rt):
    m = rt.mutators[0]
    a, b = _object(rt), _object(rt)
    rt.heap.memory.store(a + 16, b)      # a.field[2] = b
    m.stack[1] = a
    for x in (a, b):
        s = rt.heap.mheap.spanOf(x)
        s.setMarked(s.objIndex(x))
    assert runCheckmark(rt.gc) == 2
    s = rt.heap.mheap.spanOf(b)
    s.gcmarkBits[s.objIndex(b) >> 3] &= ~(1 << (s.objIndex(b) & 7))
    with pytest.raises(Violation) as e:
        runCheckmark(rt.gc)
    assert e.value.invariant == "gc.checkmark" and e.value.address == b
    assert f"path from a root: {a:#x} (P0 stack slot 1) / field +16 -> {b:#x}" in e.value.message
