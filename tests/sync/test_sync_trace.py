"""The event recorder and its Chrome trace export."""

import json

from concalloc.sync import Rank, SyncContext, make_scheduler
from concalloc.trace import Recorder, write_chrome_trace


def test_disabled_recorder_is_falsy_and_free():
    rec = Recorder(False)
    assert not rec
    rec.emit("alloc", size=8)
    assert rec.events() == []
    ctx = SyncContext(events=rec)
    assert not ctx.events and ctx.recorder is None


def _traced_run(kind, seed=2):
    rec = Recorder(True)
    ctx = SyncContext(make_scheduler(kind, seed), lock_stats=True, events=rec)
    m = ctx.mutex("mcentral[7]", Rank.MCENTRAL, "mcentral")
    holding = ctx.event("holding")
    waiting = m.stats.waiters

    def holder():
        e = ctx.events
        e.emit("stw_start", reason="test")
        with m:
            holding.set()
            while waiting.load() == 0:
                ctx.yield_point("hold")
        e.emit("stw_stop")
        e.emit("counter", name="heap", values={"live": 10, "goal": 20})
        e.emit("gc_phase", phase="mark")

    def waiter():
        holding.wait()
        with m:
            ctx.events.emit("alloc", size=16)

    ctx.scheduler.start_thread("gc", holder)
    ctx.scheduler.start_thread("P0", waiter)
    ctx.scheduler.join_all(timeout=20)
    return rec


def _check_nesting(slices):
    for tid in {s["tid"] for s in slices}:
        mine = sorted((s for s in slices if s["tid"] == tid), key=lambda s: (s["ts"], -s["dur"]))
        stack = []
        for s in mine:
            end = s["ts"] + s["dur"]
            while stack and stack[-1] <= s["ts"]:
                stack.pop()
            assert not stack or end <= stack[-1], f"slice {s['name']} overlaps its parent"
            stack.append(end)


def test_chrome_trace_is_valid_and_nested(tmp_path):
    rec = _traced_run("random")
    path = tmp_path / "trace.json"
    write_chrome_trace(rec, str(path))
    doc = json.loads(path.read_text())
    assert doc["displayTimeUnit"] == "ns"
    evs = doc["traceEvents"]
    names = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"gc", "P0"} <= names
    slices = [e for e in evs if e["ph"] == "X"]
    assert {"STW test", "wait mcentral[7]", "hold mcentral[7]"} <= {s["name"] for s in slices}
    assert all(s["dur"] >= 0 for s in slices)
    _check_nesting(slices)
    counters = [e for e in evs if e["ph"] == "C"]
    heap = [e for e in counters if e["name"] == "heap"]
    assert heap and heap[0]["args"] == {"live": 10, "goal": 20}
    instants = [e for e in evs if e["ph"] == "i"]
    assert any(e["name"] == "GC phase mark" and e["s"] == "g" for e in instants)
    allocs = [e for e in counters if e["name"] == "allocs P0"]
    assert [e["args"] for e in allocs] == [{"allocations": 1, "bytes": 16}]
    for e in evs:
        assert {"ph", "pid", "name"} <= set(e) and ("ts" in e or e["ph"] == "M")


def test_controlled_log_is_ordered_by_step_and_hash_ignores_time():
    a, b = _traced_run("random"), _traced_run("random")
    assert a.event_log_hash() == b.event_log_hash()
    seqs = [e.seq for e in a.events()]
    assert seqs == sorted(seqs)
    kinds = [e.kind for e in a.events()]
    assert {"sched_decision", "lock_wait", "lock_acquire", "lock_release", "alloc"} <= set(kinds)
    assert _traced_run("random", seed=3).event_log_hash() != a.event_log_hash()


def test_last_events_of_a_thread():
    rec = _traced_run("os")
    last = rec.last_events("gc", 3)
    assert [e.kind for e in last] == ["stw_stop", "counter", "gc_phase"]
    assert all(e.thread == "gc" for e in last)
    assert rec.last_events("nobody", 5) == []
