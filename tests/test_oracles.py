"""The collector's oracles: heapcheck's state checks, wbshadow=1, gcstoptheworld=1/2.

Each oracle is shown failing on a state broken on purpose (with Go's text
where Go has one) and staying quiet on correct runs.  The quiet runs are
controlled (random scheduler), so they are deterministic; cycles come back
to back (GOGC off, memory limit 0).
"""

from __future__ import annotations

import pytest

from concalloc.check.violation import Violation
from concalloc.config import Config
from concalloc.gc import barrier as _barrier
from concalloc.gc import tricolor
from concalloc.gc.mark import check_no_grey
from concalloc.malloc import mallocgc
from concalloc.memory import Type
from concalloc.proc import World
from concalloc.runtime import EXIT_OK, EXIT_VIOLATION, Runtime, replay_command

from gc_workloads import Mover

GiB = 1 << 30
NODE = Type("oranode", 32, [0, 1, 2])


def config(workload="graph", **kw) -> Config:
    base = dict(procs=2, steps=150, live=32, scheduler="random", seed=1, gogc=-1, memory_limit=0,
                reserve_bytes=GiB)
    if workload != "mover":
        base["workload"] = workload
    return Config(**{**base, **kw})


def run(cfg: Config, workload=None):
    wl = Mover() if workload == "mover" else None if isinstance(workload, str) else workload
    with Runtime(cfg, workload=wl) as rt:
        return rt.run()


def why(cfg, res) -> str:
    return f"replay: {replay_command(cfg)}\nexit {res.exit_code}: {res.error}"


@pytest.fixture
def rt_of():
    made = []

    def make(**kw):
        r = Runtime(Config(procs=2, reserve_bytes=GiB, steps=10, scheduler="random", **kw))
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def _obj(rt, p=0):
    return mallocgc(rt.heap.mcaches[p], NODE.size, NODE)


def _mark(rt, x):
    s = rt.heap.mheap.spanOf(x)
    s.setMarked(s.objIndex(x))


# --- heapcheck: the strong tricolour invariant ----------------------------------------------

def test_black_object_pointing_to_a_white_one_is_caught(rt_of):
    rt = rt_of(barrier="dijkstra")
    a, b = _obj(rt), _obj(rt)
    rt.heap.memory.store(a + 8, b)           # a.field[1] = b
    _mark(rt, a)                             # a black (marked, on no queue), b white
    with pytest.raises(Violation) as e:
        tricolor.check_strong_tricolor(rt.gc)
    v = e.value
    assert v.kind == "gc.black_to_white" and v.address == b
    assert f"black object {a:#x} points to white object {b:#x} (field +8)" in v.message
    assert v.go_text == "fatal error: black object points to white object"
    assert v.span_info["elemsize"] == 32 and v.span_info["sizeclass"] == rt.heap.mheap.spanOf(b).spanclass >> 1


@pytest.mark.parametrize("hold", ["wbBuf", "gcWork", "work.full", "marked"])
def test_a_grey_or_buffered_target_is_no_violation(rt_of, hold):
    rt = rt_of(barrier="hybrid")
    a, b = _obj(rt), _obj(rt)
    rt.heap.memory.store(a, b)
    _mark(rt, a)
    if hold == "wbBuf":
        rt.allp[1].wbBuf.append(b + 8)       # an interior pointer counts for its object
    elif hold == "gcWork":
        _mark(rt, b)
        rt.gc.worker_gcws[0].put(b)
    elif hold == "work.full":
        _mark(rt, b)
        rt.gc.lists.put([b])
    else:
        _mark(rt, b)
    assert tricolor.check_strong_tricolor(rt.gc) >= 3    # a's pointer words were looked at


def test_only_the_barriers_that_promise_it_are_held_to_the_strong_invariant(rt_of):
    for barrier, checked in (("dijkstra", True), ("hybrid", True), ("yuasa", False),
                             ("hybrid-cond", False), ("none", False)):
        rt = rt_of(barrier=barrier)
        a, b = _obj(rt), _obj(rt)
        rt.heap.memory.store(a, b)
        _mark(rt, a)
        if checked:
            with pytest.raises(Violation, match="black object"):
                tricolor.check_walk(rt.gc)
        else:
            tricolor.check_walk(rt.gc)


def test_a_mark_bit_on_a_free_slot_is_caught_at_mark_completion(rt_of):
    rt = rt_of()
    x = _obj(rt)
    s = rt.heap.mheap.spanOf(x)
    tricolor.check_stw(rt.gc, walk=True)
    s.setMarked(s.nelems - 1)
    with pytest.raises(Violation) as e:
        tricolor.check_stw(rt.gc, walk=False)
    assert e.value.kind == "gc.marked_free" and "marked free object in span" in e.value.message
    assert e.value.go_text == "fatal error: found pointer to free object"


def test_a_mark_workers_gcwork_left_full_is_caught(rt_of):
    rt = rt_of()
    rt.gc.worker_gcws[0].put(_obj(rt))
    with pytest.raises(Violation) as e:
        check_no_grey(rt.gc)
    assert e.value.kind == "gc.grey_left" and "gcw0's gcWork still holds 1 grey objects" in e.value.message
    assert e.value.go_text == "fatal error: P has cached GC work at end of mark termination"


def _skip_insertion(monkeypatch):
    """A broken Dijkstra barrier: it never shades the new pointer (a no-op that says it is dijkstra)."""
    real = _barrier.make_barrier

    def make(gc, kind):
        if kind != "dijkstra":
            return real(gc, kind)

        def wb(m, slot, ptr):
            m.p.wbCalls += 1
        wb.kind = kind
        return wb
    monkeypatch.setattr("concalloc.gc.cycle.make_barrier", make)


def test_a_dijkstra_barrier_that_shades_nothing_breaks_the_strong_invariant_in_a_run(monkeypatch):
    _skip_insertion(monkeypatch)
    found = []
    for seed in range(1, 9):
        cfg = config("graph", barrier="dijkstra", heapcheck=2, seed=seed)
        res = run(cfg)
        if res.exit_code == EXIT_OK:
            continue
        assert res.exit_code == EXIT_VIOLATION, why(cfg, res)
        found.append(res.violations[0]["kind"])
        if "gc.black_to_white" in found:
            v = res.violations[0]
            assert v["phase"] in ("mark", "marktermination") and v["thread"] == "gc"
            assert "barrier=dijkstra" in v["message"]
            return
    pytest.fail(f"no seed broke the strong invariant; violations seen: {found}")


@pytest.mark.parametrize("workload,barrier,stack_scan", [
    ("graph", "hybrid", "concurrent"), ("mover", "hybrid", "concurrent"),
    ("graph", "dijkstra", "rescan"), ("mover", "dijkstra", "rescan"), ("graph", "hybrid", "stw-snapshot")])
def test_the_strong_invariant_holds_on_correct_runs(workload, barrier, stack_scan, monkeypatch):
    walked = []
    real = tricolor.check_strong_tricolor
    monkeypatch.setattr(tricolor, "check_strong_tricolor", lambda gc: walked.append(real(gc)))
    for seed in (1, 2, 3):
        cfg = config(workload, barrier=barrier, stack_scan=stack_scan, heapcheck=2, gccheckmark=True, seed=seed)
        res = run(cfg, workload)
        assert res.exit_code == EXIT_OK, why(cfg, res)
    assert len(walked) >= 6 and sum(walked) > 0, walked     # at mark completion and termination, every cycle


def test_heapcheck_1_walks_the_heap_only_in_the_cycles_that_verify(monkeypatch):
    walked = []
    real = tricolor.check_strong_tricolor
    monkeypatch.setattr(tricolor, "check_strong_tricolor", lambda gc: walked.append(gc.numgc + 1) or real(gc))
    res = run(config("graph", barrier="hybrid"))
    assert res.exit_code == EXIT_OK and res.gc["num_gc"] >= 9
    assert set(walked) <= {1, 2, 4, 8, 16, 32, 64} and {1, 2, 4, 8} <= set(walked)


# --- wbshadow=1 ------------------------------------------------------------------------------

class HiddenStore:
    """P0 writes a pointer into a pointer field with write_word (no barrier),
    then either stores into the same field through the barrier (`at`="barrier")
    or asks for a GC cycle (`at`="gc")."""

    def __init__(self, at: str):
        self.at = at

    def slots(self, cfg):
        return 2

    def run(self, m, cfg):
        if m.p.id:
            return
        a = m.new(NODE)
        m.set_slot(0, a)
        b = m.new(NODE)
        m.set_slot(1, b)
        m.store(a, 0, b)                      # barriered: the shadow knows a.f0 = b
        m.write_word(a, 1, b)                 # not barriered: a.f1's shadow still says 0
        if self.at == "barrier":
            m.store(a, 1, 0)
        else:
            m.gc()


def test_a_store_that_skipped_the_barrier_is_caught_at_the_next_barriered_store():
    cfg = Config(procs=2, reserve_bytes=GiB, steps=10, scheduler="random", wbshadow=True)
    res = run(cfg, HiddenStore("barrier"))
    assert res.exit_code == EXIT_VIOLATION, why(cfg, res)
    v = res.violations[0]
    assert v["kind"] == "gc.wbshadow" and v["thread"] == "P0"
    assert v["message"].startswith("runtime: write barrier dst=")
    assert "word 1 of object" in v["message"] and "shadow old=0x0 new=0x0" in v["message"]
    assert v["go_text"] == "fatal error: missed write barrier"


def test_a_store_that_skipped_the_barrier_is_caught_with_the_world_stopped():
    cfg = Config(procs=2, reserve_bytes=GiB, steps=10, scheduler="random", wbshadow=True)
    res = run(cfg, HiddenStore("gc"))
    assert res.exit_code == EXIT_VIOLATION, why(cfg, res)
    v = res.violations[0]
    assert v["kind"] == "gc.wbshadow" and v["thread"] == "gc"
    assert v["message"].startswith("runtime: checkwritebarrier p=")
    assert v["go_text"] == "fatal error: missed write barrier"


def test_without_wbshadow_the_hidden_store_goes_unseen():
    cfg = Config(procs=2, reserve_bytes=GiB, steps=10, scheduler="random")
    assert run(cfg, HiddenStore("barrier")).exit_code == EXIT_OK


@pytest.mark.parametrize("workload,barrier", [("graph", "hybrid"), ("mover", "yuasa"), ("mover", "hybrid-cond"),
                                              ("graph", "dijkstra")])
def test_wbshadow_stays_quiet_on_barriered_programs(workload, barrier, monkeypatch):
    from concalloc.gc.wbshadow import WBShadow
    compared = []
    real = WBShadow.check_heap
    monkeypatch.setattr(WBShadow, "check_heap", lambda self: compared.append(real(self)))
    for seed in (1, 2):
        cfg = config(workload, barrier=barrier, stack_scan="rescan" if barrier == "dijkstra" else "concurrent",
                     wbshadow=True, seed=seed)
        res = run(cfg, workload)
        assert res.exit_code == EXIT_OK, why(cfg, res)
    assert compared and sum(compared) > 0


def test_wbshadow_stays_quiet_under_free_threads():
    cfg = Config(procs=2, reserve_bytes=GiB, workload="churn", steps=3000, gogc=5, wbshadow=True,
                 switch_interval=0.0005)
    res = run(cfg)
    assert res.exit_code == EXIT_OK, why(cfg, res)
    assert res.gc["num_gc"] >= 1


def test_wbshadow_off_installs_nothing(rt_of):
    rt = rt_of()
    assert rt.wbshadow is None and rt.write_barrier is None
    m = rt.mutators[0]
    assert "alloc" not in vars(m) or m.alloc.__func__.__name__ == "_alloc_recorded"
    on = rt_of(wbshadow=True)
    assert on.write_barrier is not None and on.write_barrier.inner is None
    assert on.mutators[0].alloc.__name__ == "alloc" and "alloc" in vars(on.mutators[0])


# --- gcstoptheworld=1/2 ------------------------------------------------------------------------

def test_gcstoptheworld_marks_with_the_world_stopped(monkeypatch):
    """No mutator takes a step between a cycle's start and its end, and the
    only pauses are sweep termination's (and verify_heap's)."""
    cfg = config("graph", barrier="hybrid", gcstoptheworld=1, gccheckmark=True, events=True)
    with Runtime(cfg) as rt:
        res = rt.run()
        assert res.exit_code == EXIT_OK, why(cfg, res)
        evs = rt.events.events()
    assert set(res.stw) == {"GC sweep termination", "verify_heap"}
    stopped, inside = False, []
    for e in evs:
        if e.thread == "gc" and e.kind in ("stw_start", "stw_stop") and e.fields.get("reason") == "GC sweep termination":
            stopped = e.kind == "stw_start"
        elif stopped and e.thread.startswith("P") and e.kind == "alloc":
            inside.append(e)
    assert res.gc["num_gc"] >= 5 and not inside, inside[:3]


@pytest.mark.parametrize("mode", [1, 2])
def test_gcstoptheworld_loses_nothing_even_without_a_barrier(mode):
    """The reference mode: with the world stopped through mark, no barrier is needed."""
    for workload in ("graph", "mover"):
        for seed in (1, 2, 3):
            cfg = config(workload, barrier="none", gcstoptheworld=mode, gccheckmark=True, heapcheck=2, seed=seed)
            res = run(cfg, workload)
            assert res.exit_code == EXIT_OK, why(cfg, res)


def test_the_same_runs_lose_objects_concurrently():
    """What gcstoptheworld=1 fixes: the concurrent collector with no barrier loses an object."""
    for workload in ("graph", "mover"):
        for seed in (1, 2, 3):
            cfg = config(workload, barrier="none", gccheckmark=True, heapcheck=2, seed=seed)
            if run(cfg, workload).exit_code == EXIT_VIOLATION:
                return
    pytest.fail("barrier none lost nothing over the seeds gcstoptheworld runs clean")


def test_gcstoptheworld_2_sweeps_before_the_world_starts(monkeypatch):
    unswept = []
    real = World.startTheWorld

    def start(self):
        gc = self.rt_gc
        if gc.phase == 0 and self._reason == "GC sweep termination" and gc.numgc >= 1:
            h = gc.h
            with h.lock:
                spans = list(h.allspans)
            unswept.append(sum(1 for s in spans if s.sweepgen == h.sweepgen - 2))
        real(self)
    monkeypatch.setattr(World, "startTheWorld", start)
    for mode in (2, 1):
        unswept.clear()
        cfg = config("graph", barrier="hybrid", gcstoptheworld=mode)
        with Runtime(cfg) as rt:
            rt.world.rt_gc = rt.gc
            res = rt.run()
        assert res.exit_code == EXIT_OK, why(cfg, res)
        if mode == 2:
            assert unswept and not any(unswept), unswept
        else:
            assert any(unswept), "gcstoptheworld=1 leaves the sweep to the background"


def test_the_godebug_settings_parse_and_replay():
    cfg = Config.from_godebug("wbshadow=1,gcstoptheworld=2,heapcheck=2")
    assert cfg.wbshadow and cfg.gcstoptheworld == 2 and cfg.heapcheck == 2
    assert "--godebug heapcheck=2,wbshadow=1,gcstoptheworld=2" in replay_command(cfg)
    with pytest.raises(Exception, match="gcstoptheworld"):
        Config(gcstoptheworld=3)
