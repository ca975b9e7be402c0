"""A stopped OS run (Ctrl-C, a watchdog, a timeout) unwinds its threads with
Aborted at their next yield point.  A thread that unwinds from inside a
critical section must give the lock back: after join_all the run's own
thread flushes every mcache (read_memstats), which takes the mcentral locks.

The stop is placed deterministically: the first sweep-ownership yield point
reached while a mutator searches mcentral's lists (lock held) stops the run
there, as a Ctrl-C arriving at that instant does.  Before the fix the
mutator left mcentral's lock held; the run's memstats read then waited on
it and raised Aborted out of Runtime.run (the CLI printed a traceback and
exited 1 instead of 130), or, with the plain lock, waited for ever."""

from __future__ import annotations

import sys
import threading

import pytest

from concalloc.config import Config
from concalloc.gc.sweep import YIELD_ACQUIRE
from concalloc.runtime import Runtime
from concalloc.sync import Aborted

SEARCH = ("_find_in_nonempty", "_find_in_empty")   # MCentral's list walks, lock held


class Stopped(RuntimeError):
    pass


def stop_inside_mcentral_search(rt) -> list[str]:
    """Make the first YIELD_ACQUIRE reached inside mcentral's search stop the run
    there; returns the list that gets the stopped thread's name."""
    quiet = rt.sync.yield_point
    hit: list[str] = []

    def yield_point(label: str = "") -> None:
        if label == YIELD_ACQUIRE and not hit and sys._getframe(2).f_code.co_name in SEARCH:
            hit.append(threading.current_thread().name)
            rt.sched.abort(Stopped("stopped inside mcentral's search"))
            raise Aborted           # what the rebound yield point raises
        quiet(label)

    rt.sync.yield_point = yield_point   # sweepLocker.tryAcquire looks it up on each call
    return hit


@pytest.mark.parametrize("kind", [
    {"lock_stats": True, "lockrank": False},    # the CLI's mutexes (StatsMutex)
    {"lock_stats": False, "lockrank": True},    # the library's default (RankedMutex)
    {"lock_stats": False, "lockrank": False},   # the bare lock: a wait on it is not interruptible
    {"lock_stats": True, "events": True},       # --trace, the oracles (InstrumentedMutex)
], ids=["stats", "ranked", "plain", "instrumented"])
def test_a_thread_stopped_inside_mcentral_gives_its_lock_back(kind):
    cfg = Config(procs=2, seconds=30, reserve_bytes=1 << 30, **kind)
    with Runtime(cfg) as rt:
        hit = stop_inside_mcentral_search(rt)
        res = rt.run_bounded(60)     # (the plain lock's wait would otherwise hang the test)
        held = [m.name for m in rt.sync.all_mutexes() if m.lock_class == "mcentral" and m.locked()]
    assert hit, "no mutator reached mcentral's search with a span to sweep"
    assert isinstance(res.error, Stopped), repr(res.error)
    assert held == []
    assert res.memstats and res.memstats["Mallocs"] > 0     # what was measured is reported


class _HoldsMcentral:
    """P0 caches a span, then holds that span class's mcentral lock from before
    the stop until `release` is set; the other mutators allocate until stopped."""

    def __init__(self):
        self.holding = threading.Event()
        self.release = threading.Event()

    def slots(self, cfg) -> int:
        return 4

    def run(self, m, cfg) -> None:
        m.alloc(64)
        if m.name != "P0":
            while m.running():
                m.alloc(64)
            return
        c = m.c
        spc = next(i for i, s in enumerate(c.alloc) if s is not c.emptymspan)
        with m.rt.heap.mheap.central[spc].lock:     # as a holder too slow to unwind in time
            self.holding.set()
            self.release.wait(30)


def test_a_thread_that_did_not_unwind_keeps_the_world_from_being_read(monkeypatch):
    """Past the abort grace the run's thread returns with P0 still running and
    holding the lock of the span class it caches: reading MemStats would flush
    P0's mcache under that lock (and raised Aborted out of run); the run is
    reported without the world-stopped reads instead, naming the stuck thread."""
    from concalloc.sync import sched
    monkeypatch.setattr(sched, "ABORT_GRACE", 0.2)
    work = _HoldsMcentral()
    with Runtime(Config(procs=2, seconds=30, reserve_bytes=1 << 30, lock_stats=True, lockrank=False),
                 workload=work) as rt:
        threading.Thread(target=lambda: work.holding.wait(30) and rt.sched.abort(Stopped("stop")),
                         daemon=True).start()
        try:
            res = rt.run_bounded(60)
        finally:
            work.release.set()
    assert work.holding.is_set()
    assert isinstance(res.error, Stopped) and "P0" in rt.sched.stuck
    assert "threads that did not unwind: P0" in "".join(getattr(res.error, "__notes__", []))
    assert res.memstats == {} and res.stw == {}
