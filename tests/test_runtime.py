"""The runtime end to end: Ps on real threads under every scheduler.

Every run here is bounded by a wall-clock safety net (run_bounded), but no
assertion depends on time: a run either ends the way the test says, or the
test fails with the command that replays it.  Each Runtime maps its own 1 GiB
reservation and is closed as soon as its run has ended.
"""

from __future__ import annotations


import pytest

from concalloc.check.violation import Violation
from concalloc.config import Config
from concalloc.runtime import EXIT_INTERNAL, EXIT_OK, EXIT_VIOLATION, Hang, Runtime, RunTimeout, replay_command
from concalloc.sync import Deadlock, Rank, ThreadFailure

GiB = 1 << 30
BOUND = 120.0          # seconds: a safety net for hung runs, never an assertion about speed
WORKLOADS = ("ring", "tree", "churn", "graph", "burst")

# Allocations per mutator so that the collector's first cycle (GOGC 1: a
# 40 KiB minimum heap goal) comes well before the end of the run, so the
# stop-the-world checks really happen.  Tree and graph objects are small
# (341 and 256 to a span), hence more steps; the OS scheduler is cheap, so it
# gets a wide margin: its collector thread must get the CPU and the GIL after
# the trigger and before the mutators finish.
GOGC = {"ring": 5, "tree": 5, "churn": 50, "graph": 5, "burst": 20}   # churn keeps ~1 MiB live
STEPS = {"ring": 400, "tree": 4000, "churn": 500, "graph": 2200, "burst": 500}
OS_STEPS = {"ring": 10000, "tree": 30000, "churn": 8000, "graph": 6000, "burst": 4000}
LIVE = 64
SCHEDULERS = {
    "os": {"scheduler": "os"},
    "os-noise": {"scheduler": "os", "noise": 0.2, "switch_interval": 0.0005},
    "random": {"scheduler": "random"},
    # PCT runs the highest-priority enabled thread; mutators never block here,
    # so the collector only runs once every mutator has dropped below it.
    # depth 6 gives 5 change points in the first 2000 decisions, each one
    # dropping the running (top) mutator: all 4 end up below the collector.
    "pct": {"scheduler": "pct", "pct_depth": 6, "pct_k": 2000},
    "vtime": {"scheduler": "vtime"},
}


def run_bounded(cfg: Config, timeout: float = BOUND, *, setup=None, **kw):
    """Build a Runtime, run it on a helper thread, wait at most `timeout` s.

    setup(rt) runs before the run (to make test locks, events...).  Returns
    (rt, result); the heap is closed once the run has ended.  A run that does
    not end is aborted and the test fails; its heap is then left mapped,
    since a stuck thread may still touch it."""
    rt = Runtime(cfg, **kw)
    if setup is not None:
        setup(rt)
    try:
        res = rt.run_bounded(timeout)
    except RunTimeout as e:
        pytest.fail(str(e))
    except BaseException:
        rt.close()
        raise
    rt.close()
    return rt, res


def describe(cfg: Config, res) -> str:
    return (f"replay: {replay_command(cfg)}\nexit {res.exit_code}, error: "
            f"{type(res.error).__name__ if res.error else None}: {res.error}")


def check_memstats(ms: dict, allocs: int) -> None:
    assert ms["HeapObjects"] == ms["Mallocs"] - ms["Frees"]
    assert ms["HeapSys"] == ms["HeapIdle"] + ms["HeapInuse"]
    assert ms["HeapAlloc"] == ms["Alloc"] <= ms["TotalAlloc"]
    assert ms["HeapAlloc"] <= ms["HeapInuse"]
    assert ms["HeapReleased"] <= ms["HeapIdle"]
    # Every mallocgc of a nonzero size is one malloc (a tiny allocation too):
    # the count is exact.
    assert ms["Mallocs"] == allocs
    assert ms["Frees"] <= ms["Mallocs"]


# --- 1. every workload under every scheduler -----------------------------------------

@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_workload_runs_clean_with_stw_checks(sched, workload):
    steps = (OS_STEPS if sched.startswith("os") else STEPS)[workload]
    cfg = Config(lock_stats=True, procs=4, workload=workload, steps=steps, live=LIVE, size=1024,
                 reserve_bytes=GiB, gogc=GOGC[workload], gccheckmark=True, **SCHEDULERS[sched])
    rt, res = run_bounded(cfg)
    why = describe(cfg, res)
    assert res.exit_code == EXIT_OK, why
    assert res.error is None and res.violations == [], why
    allocs = {name: m["allocs"] for name, m in res.mutators.items()}
    assert allocs == {f"P{i}": steps for i in range(4)}, why
    # The collector ran whole cycles: each stops the world at sweep
    # termination (with verify_heap) and at least once at mark termination,
    # and checkmark found every reachable object marked.
    ngc = res.gc["num_gc"]
    assert ngc >= 1 and res.memstats["NumGC"] == ngc, (res.gc, why)
    assert res.stw["GC sweep termination"]["count"] == ngc, (res.stw, why)
    assert res.stw["GC mark termination"]["count"] >= ngc, (res.stw, why)
    check_memstats(res.memstats, sum(allocs.values()))
    for name, st in res.locks["classes"].items():
        assert 0 <= st["contended"] <= st["acquisitions"], (name, st)
    assert res.locks["classes"]["worldsema"]["acquisitions"] == sum(p["count"] for p in res.stw.values())
    if cfg.controlled():
        assert res.event_log_hash and len(res.event_log_hash) == 64
        assert res.sched["steps"] > 0
    else:
        assert res.event_log_hash is None


def test_zero_mutators_end_at_once():
    # Config allows --mutators 0; such a run has nothing to do and must end.
    for sched in ("os", "random"):
        cfg = Config(lock_stats=True, procs=2, mutators=0, steps=100, scheduler=sched, reserve_bytes=GiB)
        _rt, res = run_bounded(cfg, timeout=30)
        assert res.exit_code == EXIT_OK, describe(cfg, res)
        assert res.mutators == {} and res.memstats["Mallocs"] == 0


def test_idle_ps_do_not_hold_up_the_world():
    # 4 Ps, 2 of them running mutators: the idle ones never park and the
    # world still stops.
    cfg = Config(lock_stats=True, procs=4, mutators=2, workload="ring", size=1024, steps=600, live=LIVE,
                 scheduler="random", reserve_bytes=GiB, gogc=5)
    _rt, res = run_bounded(cfg)
    assert res.exit_code == EXIT_OK, describe(cfg, res)
    assert set(res.mutators) == {"P0", "P1"}
    assert res.stw["GC sweep termination"]["count"] >= 1


# --- custom workloads ---------------------------------------------------------------

class Workload:
    """A workload object as Runtime(workload=...) takes it."""

    nslots = 4

    def __init__(self):
        self.rt = None

    def prepare(self, rt) -> None:
        self.rt = rt

    def slots(self, cfg) -> int:
        return self.nslots

    def run(self, m, cfg) -> None:
        raise NotImplementedError


def run_custom(wl: Workload, cfg: Config, timeout: float = BOUND):
    return run_bounded(cfg, timeout, workload=wl, setup=wl.prepare)


# --- 3. deadlock (controlled) and hang (os) ------------------------------------------

class OppositeOrders(Workload):
    """P0 takes A then B, P1 takes B then A.  Each signals once it holds its
    first lock and waits for the other's signal before taking its second, so
    the deadlock happens under every interleaving."""

    def prepare(self, rt):
        super().prepare(rt)
        self.a = rt.sync.mutex("test.A", Rank.LEAF)
        self.b = rt.sync.mutex("test.B", Rank.LEAF)
        self.holds = [rt.sync.event("test.P0.holds"), rt.sync.event("test.P1.holds")]

    def run(self, m, cfg):
        for _ in range(3):
            m.alloc(64)
        me = m.p.id
        first, second = (self.a, self.b) if me == 0 else (self.b, self.a)
        with first:
            self.holds[me].set()
            self.holds[1 - me].wait()
            with second:
                pass


@pytest.mark.parametrize("sched", ["random", "pct", "vtime"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_opposite_lock_orders_deadlock_in_controlled_mode(sched, seed):
    # Both locks have the same rank, which rank checking forbids outright;
    # with it off the deadlock itself must be found.
    cfg = Config(lock_stats=True, procs=2, steps=100, scheduler=sched, seed=seed, lockrank=False, reserve_bytes=GiB)
    _rt, res = run_custom(OppositeOrders(), cfg, timeout=60)
    assert res.exit_code == EXIT_INTERNAL, describe(cfg, res)
    assert isinstance(res.error, Deadlock), describe(cfg, res)
    assert res.error.blocked["P0"] == "test.B.lock held by P1"
    assert res.error.blocked["P1"] == "test.A.lock held by P0"
    text = str(res.error)
    assert "P0: test.B.lock held by P1" in text and "P1: test.A.lock held by P0" in text
    assert res.to_json()["error"]["type"] == "Deadlock"


def test_same_rank_nesting_is_a_rank_error_when_ranks_are_checked():
    cfg = Config(lock_stats=True, procs=2, steps=100, scheduler="random", reserve_bytes=GiB)
    _rt, res = run_custom(OppositeOrders(), cfg, timeout=60)
    assert res.exit_code == EXIT_INTERNAL, describe(cfg, res)
    assert isinstance(res.error, ThreadFailure)
    assert "lock ordering problem" in str(res.error)


class SelfDeadlock(Workload):
    """P0 takes test.L and then takes it again: it blocks forever, holding it.
    The other mutators run to their step bound and stop."""

    def prepare(self, rt):
        super().prepare(rt)
        self.lock = rt.sync.mutex("test.L", Rank.LEAF)

    def run(self, m, cfg):
        for _ in range(3):
            m.alloc(64)
        if m.p.id == 0:
            with self.lock:
                self.lock.lock()
        while m.running():
            m.alloc(64)


def test_watchdog_reports_a_hang_in_os_mode():
    cfg = Config(lock_stats=True, procs=2, steps=2000, scheduler="os", lockrank=False, hang_seconds=0.5,
                 reserve_bytes=GiB)
    rt, res = run_custom(SelfDeadlock(), cfg, timeout=60)
    assert res.exit_code == EXIT_INTERNAL, describe(cfg, res)
    assert isinstance(res.error, Hang), describe(cfg, res)
    text = str(res.error)
    assert text.startswith("watchdog: no progress for")
    assert "test.L: held" in text     # statistics record no owner on the uncontended path
    # every thread's stack, the blocked P's ending in this file's workload
    assert "thread P0:" in text and "thread gc:" in text
    p0 = text.split("thread P0:", 1)[1].split("\n  thread ", 1)[0]
    assert "test_runtime.py" in p0 and "in run" in p0, p0
    assert rt.sched.stuck == [], "every thread unwinds after the hang is reported"
    assert res.to_json()["error"]["type"] == "Hang"


# --- 4. rank inversion inside a mutator ---------------------------------------------

class RankInversion(Workload):
    """P1 takes mheap.lock, then an mcentral lock (mcentral ranks below mheap)."""

    def run(self, m, cfg):
        for _ in range(5):
            m.alloc(64)
        if m.p.id == 1:
            h = self.rt.heap.mheap
            with h.lock:
                with h.central[10].lock:
                    pass
        while m.running():
            m.alloc(64)


@pytest.mark.parametrize("sched", ["os", "random", "pct", "vtime"])
def test_rank_inversion_in_a_mutator_is_caught(sched):
    cfg = Config(lock_stats=True, procs=3, steps=100_000, scheduler=sched, reserve_bytes=GiB)
    _rt, res = run_custom(RankInversion(), cfg, timeout=60)
    # A lock-order error is raised at once in the acquiring thread; the
    # runtime reports it as that thread's failure (exit 3), not as a heap
    # invariant violation (exit 1).
    assert res.exit_code == EXIT_INTERNAL, describe(cfg, res)
    assert isinstance(res.error, ThreadFailure), describe(cfg, res)
    assert res.error.thread == "P1"
    assert res.violations == []
    tb = res.error.traceback_text
    assert "LockRankViolation: lock ordering problem: acquiring mcentral[10] (rank MCENTRAL)" in tb
    assert "while holding mheap (rank MHEAP)" in tb
    assert tb.count("test_runtime.py") >= 2          # both acquisition sites name this file
    # the run stopped early: nobody got near its 100 000 steps
    assert all(m["allocs"] < 100_000 for m in res.mutators.values())


# --- 6. an exception in a mutator ----------------------------------------------------

class Raises(Workload):
    def run(self, m, cfg):
        for _ in range(5):
            m.alloc(48)
        if m.p.id == 1:
            raise ValueError("workload failed on purpose")
        while m.running():
            m.alloc(48)


@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_exception_in_a_mutator_ends_the_run(sched):
    opts = dict(SCHEDULERS[sched])
    cfg = Config(lock_stats=True, procs=3, steps=100_000, reserve_bytes=GiB, **opts)
    rt, res = run_custom(Raises(), cfg, timeout=60)
    assert res.exit_code == EXIT_INTERNAL, describe(cfg, res)
    assert isinstance(res.error, ThreadFailure), describe(cfg, res)
    assert res.error.thread == "P1"
    tb = res.error.traceback_text
    assert tb.startswith("Traceback (most recent call last):")
    assert "ValueError: workload failed on purpose" in tb
    assert "in run" in tb and "test_runtime.py" in tb
    assert res.mutators["P1"]["allocs"] == 5
    assert all(m["allocs"] < 100_000 for m in res.mutators.values())
    assert rt.sched.stuck == []
    assert res.to_json()["error"]["type"] == "ThreadFailure"


class RaisesThenSpins(Workload):
    """P1 fails; P0 only loads and stores (no allocation, no m.running())."""

    def run(self, m, cfg):
        x = m.alloc(64)
        m.set_slot(0, x)
        if m.p.id == 1:
            for _ in range(5):
                m.alloc(64)
            raise ValueError("workload failed on purpose")
        while True:
            m.store(x, 0, m.load(x, 0))


@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_a_mutator_that_never_allocates_still_unwinds(sched):
    cfg = Config(lock_stats=True, procs=2, steps=1000, reserve_bytes=GiB, **SCHEDULERS[sched])
    rt, res = run_custom(RaisesThenSpins(), cfg, timeout=60)
    assert isinstance(res.error, ThreadFailure) and res.error.thread == "P1", describe(cfg, res)
    assert rt.sched.stuck == [], "P0 unwinds at its next load/store yield point"
    assert not getattr(res.error, "__notes__", None)


# --- a heap invariant violation: exit 1 with the replay command ----------------------

class CorruptsAccounting(Workload):
    """Allocates normally, but P0 corrupts HeapInuse once: the next
    verify_heap must catch it."""

    def run(self, m, cfg):
        i = 0
        while m.running():
            m.set_slot(i % self.nslots, m.alloc(1024))
            if m.p.id == 0 and i == 10:
                self.rt.heap.mheap.stats.add(heapInUse=8192)
            i += 1


@pytest.mark.parametrize("sched", ["os", "random"])
def test_invariant_violation_exits_1_with_replay(sched):
    cfg = Config(lock_stats=True, procs=2, steps=3000, scheduler=sched, reserve_bytes=GiB)
    _rt, res = run_custom(CorruptsAccounting(), cfg)
    assert res.exit_code == EXIT_VIOLATION, describe(cfg, res)
    assert isinstance(res.error, Violation)
    assert len(res.violations) == 1
    v = res.violations[0]
    assert v["invariant"] == "heap.accounting", v
    assert v["replay"] == replay_command(cfg)
    assert "error" not in res.to_json()       # a violation is reported under "violations"


def test_a_controlled_thread_that_never_yields_is_a_hang():
    """Under a controlled scheduler a thread that never reaches a yield point
    keeps the baton: the watchdog sees no decision for --hang-seconds and ends
    the run with exit 3 and the thread dump, as it does for free threads."""
    import time as _time

    class Spinner(Workload):
        def run(self, m, cfg):
            m.alloc(64)
            end = _time.monotonic() + 4.0       # bounded, so the test leaves no spinning thread
            while _time.monotonic() < end:
                pass
            m.alloc(64)

    cfg = Config(procs=2, steps=10, scheduler="random", hang_seconds=1.0, reserve_bytes=GiB)
    _rt, res = run_bounded(cfg, workload=Spinner())
    assert res.exit_code == EXIT_INTERNAL, describe(cfg, res)
    assert isinstance(res.error, Hang), describe(cfg, res)
    assert "no progress" in str(res.error) and "thread P" in str(res.error)
