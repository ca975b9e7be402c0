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
import time

import pytest

from concalloc.config import Config
from concalloc.gc.sweep import YIELD_ACQUIRE, sweepone
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


# --- the rest of what a stopped run gives back ---------------------------------------------

KINDS = {
    "stats": {"lock_stats": True, "lockrank": False},
    "ranked": {"lock_stats": False, "lockrank": True},
    "plain": {"lock_stats": False, "lockrank": False},
    "instrumented": {"lock_stats": True, "events": True},
}


def stop_at(rt, label: str, where, then=None) -> list:
    """Make the first yield point `label` whose caller's caller is named `where`
    stop the run there (then() runs first, in the stopped thread); returns the
    list that gets the stopped thread."""
    quiet = rt.sync.yield_point
    hit: list = []

    def yield_point(lbl: str = "") -> None:
        if lbl == label and not hit and sys._getframe(2).f_code.co_name == where:
            hit.append(threading.current_thread())
            if then is not None:
                then()
            rt.sched.abort(Stopped(f"stopped at {label} in {where}"))
            raise Aborted
        quiet(lbl)

    rt.sync.yield_point = yield_point
    return hit


def stop_while_stopping_the_world(rt) -> list:
    """Make the collector's first wait for the Ps to park (inside
    stopTheWorld, worldsema and sched.lock held) stop the run."""
    cond = rt.world.stopped_cond
    wait = cond.wait
    hit: list = []

    def stopped_wait() -> None:
        if not hit and threading.current_thread().name == "gc":
            hit.append(threading.current_thread())
            rt.sched.abort(Stopped("stopped while stopping the world"))
            raise Aborted
        wait()

    cond.wait = stopped_wait
    return hit


@pytest.mark.parametrize("where", ["stopping", "stopped"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_collector_stopped_with_the_world_stopped_gives_worldsema_back(kind, where):
    """The collector is stopped in stopTheWorld (waiting for the Ps) or
    between stopTheWorld and startTheWorld (at the sweepgen flip of mark
    termination): it held worldsema through its unwind and after the run."""
    from concalloc.gc.sweep import YIELD_FLIP
    cfg = Config(procs=2, seconds=30, reserve_bytes=1 << 30, gogc=25, **KINDS[kind])
    with Runtime(cfg) as rt:
        if where == "stopped":
            hit = stop_at(rt, YIELD_FLIP, "gcMarkTermination")
        else:
            hit = stop_while_stopping_the_world(rt)
        res = rt.run_bounded(60)
        held = [m.name for m in rt.sync.all_mutexes() if m.locked()]
    assert hit and hit[0].name == "gc", "the collector never got there"
    assert isinstance(res.error, Stopped), repr(res.error)
    assert held == []
    assert rt.sched.stuck == [] and rt.world.stopper is None


def os_sync(kind: str):
    """A free scheduler's SyncContext whose mutexes are of `kind`."""
    from concalloc.sync import SyncContext, make_scheduler
    from concalloc.trace import Recorder
    sched = make_scheduler("os", 0)
    return SyncContext(sched, check_ranks=kind == "ranked", lock_stats=kind in ("stats", "instrumented"),
                       events=Recorder(True) if kind == "instrumented" else None)


MiB = 1 << 20


def _unswept_large(heap) -> None:
    """40 one-MiB objects, then a flip that marks none: the next large
    allocation's reclaim sweeps (and frees) their spans."""
    for _ in range(40):
        heap.malloc(MiB)
    heap.sweep_cycle(None, mode=0)          # gcBackgroundMode: left unswept


def _unswept_small(heap) -> None:
    """Small spans with every other object marked: the next refill's
    cacheSpan sweeps one (and keeps it), and so does sweepone."""
    for _ in range(4000):
        heap.malloc(64)

    def mark(s):
        for k, i in enumerate(s.allocated_indices()):
            if k % 2 == 0:
                s.setMarked(i)
    heap.sweep_cycle(mark, mode=0)


SWEEPERS = {   # the sweeper stopped inside a span's sweep: (heap set-up, its call on the heap)
    "sweepone": (_unswept_small, lambda heap: sweepone(heap.mheap)),
    "cacheSpan": (_unswept_small, lambda heap: [heap.malloc(64) for _ in range(200)]),
    "reclaimChunk": (_unswept_large, lambda heap: heap.malloc(MiB)),
}


def run_heap_stopped_in(kind: str, where: str, then=None):
    """A heap on a free scheduler: SWEEPERS[where]'s set-up, then its call
    on a managed thread, stopped at the first YIELD_SWEEP reached from
    `where` (then() runs first, in the stopped thread).  Returns (heap, the
    stopped thread or None, the run's error); the caller closes the heap."""
    from concalloc.gc.sweep import YIELD_SWEEP
    from concalloc.heap import Heap
    prepare, call = SWEEPERS[where]
    sync = os_sync(kind)
    heap = Heap(reserve_bytes=1 << 30, nprocs=2, sync=sync)
    prepare(heap)
    quiet = sync.yield_point
    hit: list = []

    def yield_point(lbl: str = "") -> None:
        if lbl == YIELD_SWEEP and not hit and sys._getframe(2).f_code.co_name == where:
            hit.append(threading.current_thread())
            if then is not None:
                then(heap, hit[0])
            sync.scheduler.abort(Stopped(f"stopped sweeping in {where}"))
            raise Aborted
        quiet(lbl)

    sync.yield_point = yield_point
    sync.scheduler.start_thread("P0", lambda: call(heap))
    try:
        sync.scheduler.join_all(30)
    except Stopped as e:
        return heap, (hit[0] if hit else None), e
    return heap, (hit[0] if hit else None), None


@pytest.mark.parametrize("where", list(SWEEPERS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_sweeper_stopped_mid_sweep_leaves_sweep_active(kind, where):
    """Every sweeper registers with sweep.active (begin/end); one stopped
    inside a span's sweep left the count raised, and sweep termination
    would wait for it for ever."""
    heap, stopped, err = run_heap_stopped_in(kind, where)
    try:
        active = heap.mheap.sweep.active.sweepers()
        held = [m.name for m in heap.sync.all_mutexes() if m.locked()]
    finally:
        heap.close()
    assert stopped is not None, f"{where} never swept a span"
    assert isinstance(err, Stopped)
    assert active == 0, f"sweep.active still counts {active} after a sweeper stopped in {where}"
    assert held == []


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_reclaimer_stopped_while_sweeping_leaves_mheap_lock_to_its_holder(kind):
    """reclaimChunk drops mheap.lock to sweep a span.  Stopped there, it took
    the lock back in a finally (waiting on whoever held it by then), and
    reclaim's finally then released it: another thread's lock, once that
    wait was interrupted.  Here a holder takes mheap.lock at the stop and
    keeps it until the stopped thread has unwound: it must still hold it
    then, and the stopped thread must not have waited for it."""
    seen: dict = {}

    def start_holder(heap, stopped):
        lock = heap.mheap.lock
        holding = threading.Event()

        def holder():
            lock.lock()
            holding.set()
            stopped.join(10)
            seen["unwound"] = not stopped.is_alive()
            seen["still_held"] = lock.locked()
            try:
                lock.unlock()
            except BaseException as e:   # noqa: BLE001 - what the test looks at
                seen["unlock_error"] = repr(e)

        heap.sync.scheduler.start_thread("holder", holder)
        assert holding.wait(10)

    heap, stopped, err = run_heap_stopped_in(kind, "reclaimChunk", start_holder)
    try:
        held = [m.name for m in heap.sync.all_mutexes() if m.locked()]
        active = heap.mheap.sweep.active.sweepers()
    finally:
        heap.close()
    assert stopped is not None, "the span reclaimer never swept a span"
    assert isinstance(err, Stopped), repr(err)
    assert seen == {"unwound": True, "still_held": True}, seen
    assert held == [] and active == 0


def cond_waiter(kind: str):
    """An os scheduler, a mutex of the given kind with a Cond, and a waiter
    body that waits on the Cond inside `with mu:` and records how it ended
    in `ended["waiter"]`.  Returns (sched, mu, waiter, waiting, ended)."""
    from concalloc.sync import Rank, SyncContext, make_scheduler
    from concalloc.trace import Recorder
    sched = make_scheduler("os", 0)
    ctx = SyncContext(sched, check_ranks=kind == "ranked", lock_stats=kind == "stats",
                      events=Recorder(True) if kind == "instrumented" else None)
    mu = ctx.mutex("work", Rank.GC_WORK)
    cond = ctx.cond(mu, "work.cond")
    waiting = threading.Event()
    ended: dict = {}

    def waiter():
        try:
            with mu:
                waiting.set()
                cond.wait()
        except BaseException as e:   # noqa: BLE001 - what the test looks at
            ended["waiter"] = type(e).__name__
            raise

    return sched, mu, waiter, waiting, ended


@pytest.mark.parametrize("kind", ["stats", "ranked", "plain", "instrumented"])
def test_a_stopped_cond_wait_leaves_its_with_block_holding_the_mutex(kind):
    """A wait stopped by Aborted re-takes the mutex before it unwinds, as
    threading.Condition's does: the `with` around it releases what it holds.
    Before, the exit released a mutex the thread had given to the wait:
    an error when nobody held it, and another thread's lock when somebody did."""
    sched, mu, waiter, waiting, ended = cond_waiter(kind)
    holding, release = threading.Event(), threading.Event()

    def holder():
        waiting.wait(10)
        with mu:                      # the waiter gave it to its wait
            holding.set()
            release.wait(10)
            ended["still_held"] = mu.locked()   # still this thread's?
        ended["holder"] = "done"

    sched.start_thread("waiter", waiter)
    sched.start_thread("holder", holder)
    assert holding.wait(10)
    sched.abort(Stopped("stop"))
    # The waiter's wait sees the abort within POLL; give its unwind time to
    # (wrongly) release the holder's mutex.
    deadline = time.monotonic() + 1.0
    while mu.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    with pytest.raises(Stopped):
        sched.join_all(20)
    assert ended == {"waiter": "Aborted", "still_held": True, "holder": "done"}, ended
    assert not mu.locked() and sched.stuck == []


@pytest.mark.parametrize("kind", ["stats", "ranked", "plain", "instrumented"])
def test_a_stopped_cond_wait_with_the_mutex_free_unwinds_with_aborted(kind):
    """The same stop with nobody holding the mutex: before, the `with` exit
    released a free mutex (RuntimeError, or Go's "unlock of unlocked lock"
    as a LockRankViolation) instead of unwinding with Aborted."""
    sched, mu, waiter, waiting, ended = cond_waiter(kind)

    sched.start_thread("waiter", waiter)
    assert waiting.wait(10)
    sched.abort(Stopped("stop"))
    with pytest.raises(Stopped):
        sched.join_all(20)
    assert ended == {"waiter": "Aborted"}
    assert not mu.locked()
