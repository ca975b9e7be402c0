"""What makes controlled runs cheap must not change what they are: the
baton primitive, the lean decision log, sparse memory decisions, the hash."""

import os

import pytest

from concalloc.config import Config
from concalloc.mutator import MEM_STRIDE
from concalloc.runtime import Runtime
from concalloc.sync import controlled, make_scheduler
from concalloc.trace import Recorder

GiB = 1 << 30


def _run(cfg: Config):
    with Runtime(cfg) as rt:
        res = rt.run()
    return rt, res


def _ring(**kw) -> Config:
    base = dict(procs=2, workload="ring", steps=200, live=50, size=64, heapcheck=0, reserve_bytes=GiB,
                scheduler="random", seed=3)
    return Config(**{**base, **kw})


def _labels(rt) -> list[str]:
    return [label.split(":", 1)[1] for label, _ in rt.sched.schedule()]


@pytest.mark.parametrize("baton", ["pipe", "lock"])
def test_batons_give_the_same_run(monkeypatch, baton):
    """The handoff primitive decides nothing: lock and pipe batons make the same schedule and hash."""
    ref_rt, ref = _run(_ring())
    monkeypatch.setattr(controlled, "BATON", baton)
    rt, res = _run(_ring())
    assert res.error is None
    assert rt.sched.schedule() == ref_rt.sched.schedule()
    assert res.event_log_hash == ref.event_log_hash


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_pipe_batons_are_closed_after_the_run():
    _run(_ring(steps=20))           # warm up whatever opens files once
    before = _open_fds()
    for seed in range(5):
        _run(_ring(steps=20, seed=seed))
    assert _open_fds() == before


def test_store_outside_marking_is_a_decision_once_per_stride():
    """GOGC off: no cycle, so loads/stores are decisions one in MEM_STRIDE per P."""
    rt, res = _run(_ring(gogc=-1))
    assert res.error is None and res.memstats["NumGC"] == 0
    labels = _labels(rt)
    stores = labels.count("store")
    ptr_ops = sum(m["ptr_ops"] for m in res.mutators.values())
    assert ptr_ops > 4 * MEM_STRIDE
    assert stores == sum(m["ptr_ops"] // MEM_STRIDE for m in res.mutators.values())
    assert labels.count("alloc") == sum(m["allocs"] for m in res.mutators.values())


def test_every_store_is_a_decision_while_the_collector_marks():
    """During mark every load/store of a mutator is a decision: between a P's
    gc_phase=mark and its gc_phase=off no store is skipped."""
    rt, res = _run(_ring(gogc=1, size=1024, steps=300, events=True))
    assert res.error is None and res.memstats["NumGC"] >= 1
    marking, seen, counted = False, 0, 0
    for e in rt.events.events():
        if e.kind == "gc_phase":
            marking = e.fields["phase"] != "off"
        elif e.kind == "sched_decision" and e.thread.startswith("P") and marking:
            counted += e.fields["label"].endswith(":store")
            seen += 1
    assert seen and counted, "stores were decisions while marking"


def test_mem_decision_follows_the_phase():
    with Runtime(_ring()) as rt:
        m = rt.mutators[0]
        mh = rt.heap.mheap
        mh.gcphase = 1
        assert all(m._mem_decision("load") for _ in range(100))
        mh.gcphase = 0
        assert sum(m._mem_decision("store") for _ in range(10 * MEM_STRIDE)) == 10


def test_vtime_decides_memory_sparsely_but_charges_every_operation():
    """vtime outside marking: one load/store in MEM_STRIDE is a decision, as
    under random, yet each P's clock is charged for every one of them."""
    rt, res = _run(_ring(scheduler="vtime", gogc=-1))
    assert res.error is None and res.memstats["NumGC"] == 0
    ptr_ops = {name: m["ptr_ops"] for name, m in res.mutators.items()}
    assert sum(ptr_ops.values()) > 4 * MEM_STRIDE
    assert _labels(rt).count("store") == sum(n // MEM_STRIDE for n in ptr_ops.values())
    costs = rt.sched.costs
    for w in rt.sched._workers:
        if w.name in ptr_ops:
            charged = w.spent.get("store", 0) // costs.ps("store") + w.spent.get("load", 0) // costs.ps("load")
            assert charged == ptr_ops[w.name], w.name


def test_decisions_are_merged_into_the_event_log_in_step_order():
    sched = make_scheduler("random", 5)
    rec = Recorder(True)
    sched.recorder = rec
    rec.bind(sched)

    def body():
        for i in range(3):
            rec.emit("work", i=i)
            sched.yield_point("y")
    sched.start_thread("A", body)
    sched.start_thread("B", body)
    sched.join_all(timeout=30)
    evs = rec.events()
    decisions = [e for e in evs if e.kind == "sched_decision"]
    assert [(e.fields["label"], e.fields["chosen"]) for e in decisions] == sched.schedule()
    assert [e.seq for e in decisions] == list(range(1, sched.steps + 1))
    # a thread's decision comes first among its events of that step
    for e in decisions:
        same = [x for x in evs if x.seq == e.seq and x.thread == e.thread]
        assert same[0] is e
    assert rec.last_events("A", 2)[-1].thread == "A"


def _hashed_run(seed: int, fields: dict):
    sched = make_scheduler("random", seed)
    rec = Recorder(True)
    rec.bind(sched)
    sched.recorder = rec

    def body():
        rec.emit("work", **fields)
        sched.yield_point("y")
        sched.yield_point("y")
    sched.start_thread("A", body)
    sched.start_thread("B", body)
    sched.join_all(timeout=30)
    return rec.event_log_hash(), sched.schedule()


def test_hash_sees_fields_and_decisions():
    """The streamed hash must change when the events or only the decisions do."""
    ref, ref_schedule = _hashed_run(0, {"x": 1})
    assert _hashed_run(0, {"x": 1})[0] == ref
    assert _hashed_run(0, {"x": 2})[0] != ref
    assert _hashed_run(0, {"y": 1})[0] != ref
    other = next(s for s in range(1, 50) if _hashed_run(s, {"x": 1})[1] != ref_schedule)
    assert _hashed_run(other, {"x": 1})[0] != ref, "same events, other decisions"


# --- sticky random ------------------------------------------------------------------

def _yields(sched, threads=3, n=200):
    def body():
        for _ in range(n):
            sched.yield_point("y")
    for i in range(threads):
        sched.start_thread(f"T{i}", body)
    sched.join_all(timeout=60)
    return sched.schedule()


def _switch_rate(schedule) -> float:
    """Fraction of the threads' own decisions that chose another thread."""
    own = [(label.split(":")[0], chosen) for label, chosen in schedule if not label.startswith("run:")
           and not label.endswith(":exit")]
    return sum(who != chosen for who, chosen in own) / len(own)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_sticky_random_switches_with_probability_p(p):
    rate = _switch_rate(_yields(make_scheduler("sticky-random", 7, sticky=p)))
    assert abs(rate - p) < 0.06, rate
    assert _switch_rate(_yields(make_scheduler("random", 7))) > 0.55   # uniform: about 2/3


def test_sticky_random_switch_goes_to_another_thread_uniformly():
    from collections import Counter
    sched = make_scheduler("sticky-random", 3, sticky=1.0)     # always switch
    moves = Counter((label.split(":")[0], chosen) for label, chosen in _yields(sched, threads=3, n=300)
                    if label.endswith(":y"))
    assert all(a != b for a, b in moves)
    for a in ("T0", "T1", "T2"):
        to = [n for (x, _), n in moves.items() if x == a]
        assert len(to) == 2 and min(to) > 0.35 * sum(to)


def test_sticky_random_is_reproducible_and_replays():
    a = _yields(make_scheduler("sticky-random", 11, sticky=0.3))
    assert a == _yields(make_scheduler("sticky-random", 11, sticky=0.3))
    assert a != _yields(make_scheduler("sticky-random", 12, sticky=0.3))
    assert _yields(make_scheduler("replay", 0, schedule=a)) == a


def test_sticky_random_run_from_the_config_and_bad_p():
    from concalloc.config import ConfigError
    rt, res = _run(_ring(scheduler="sticky-random", sticky=0.1, steps=100))
    assert res.error is None and res.event_log_hash
    rt2, res2 = _run(_ring(scheduler="sticky-random", sticky=0.1, steps=100))
    assert res2.event_log_hash == res.event_log_hash
    with pytest.raises(ConfigError):
        _ring(scheduler="sticky-random", sticky=0.0).validate()
    with pytest.raises(ValueError):
        make_scheduler("sticky-random", 1, sticky=1.5)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_managed_threads_share_one_cpu_and_the_caller_keeps_its_own():
    before = os.sched_getaffinity(0)
    sched = make_scheduler("random", 1)
    seen = []

    def body():
        seen.append(os.sched_getaffinity(0))
        sched.yield_point("y")
    sched.start_thread("A", body)
    sched.start_thread("B", body)
    sched.join_all(timeout=30)
    assert len(seen) == 2 and seen[0] == seen[1] and len(seen[0]) == 1 and seen[0] <= before
    assert os.sched_getaffinity(0) == before
