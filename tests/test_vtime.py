"""Virtual time (--scheduler vtime): the clock rules, the cost model, and
validation against closed forms.

Every test here can fail: the lock loop is compared with the machine-
repairman formulas, the mcache's effect with counts the allocator keeps
itself, and determinism with whole results under different switch
intervals and load.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from concalloc import calibrate, costmodel, repairman
from concalloc.config import Config, ConfigError
from concalloc.costmodel import CostModel
from concalloc.runtime import Runtime
from concalloc.sync import Rank, SyncContext
from concalloc.sync.vtime import VtimeScheduler

GiB = 1 << 30
REPO = Path(__file__).resolve().parents[1]


def vsched(ns: dict | None = None, seed: int = 1) -> tuple[VtimeScheduler, SyncContext]:
    s = VtimeScheduler(seed, CostModel({"default": 0.0, **(ns or {})}))
    return s, SyncContext(s, check_ranks=False, lock_stats=True)


def vrun(procs: int = 2, steps: int = 300, cache: bool = True, seed: int = 3, **kw):
    cfg = Config(procs=procs, workload="ring", steps=steps, live=64, scheduler="vtime", seed=seed,
                 reserve_bytes=GiB, heapcheck=0, lock_stats=True, **kw)
    with Runtime(cfg, cache=cache) as rt:
        res = rt.run()
        refills = [c.nrefill for c in rt.heap.mcaches]
        schedule = rt.sched.schedule()
    assert res.error is None, res.error
    return res, refills, schedule


# -- the clock rules ---------------------------------------------------------------

def test_waiter_clock_jumps_to_the_release_time():
    s, ctx = vsched({"hold": 1000.0, "early": 100.0})
    L = ctx.mutex("L", Rank.MHEAP)
    seen = {}

    def holder():
        L.lock()
        s.charge("hold")            # holds L from 0 to 1000 ns
        L.unlock()

    def waiter():
        s.charge("early")
        s.yield_point("go")         # tries L at 100 ns: held until 1000
        L.lock()
        seen["at"] = s.clock()
        L.unlock()

    s.start_thread("H", holder)
    s.start_thread("W", waiter)
    s.join_all()
    st = ctx.lock_stats()["locks"]["L"]
    assert seen["at"] == 1000
    assert st["contended"] == 1 and st["wait_total"] == 900 and st["hold_total"] == 1000
    assert s.summary({}, 1)["threads"]["W"]["by_key"]["wait L.lock"] == 900


def test_uncontended_when_the_holder_is_done_before_the_waiter_arrives():
    s, ctx = vsched({"hold": 100.0, "late": 500.0})
    L = ctx.mutex("L", Rank.MHEAP)

    def holder():
        L.lock()
        s.charge("hold")
        L.unlock()

    def late():
        s.charge("late")
        s.yield_point("go")
        L.lock()
        L.unlock()

    s.start_thread("H", holder)
    s.start_thread("W", late)
    s.join_all()
    assert ctx.lock_stats()["locks"]["L"]["contended"] == 0


def test_event_waiter_resumes_at_the_setters_clock_and_spawned_threads_at_the_parents():
    s, ctx = vsched({"work": 5000.0, "child": 7.0})
    ev = ctx.event("kick")
    got = {}

    def setter():
        s.charge("work")
        s.yield_point("set")
        ev.set()
        s.yield_point("after set")

    def waiter():
        ev.wait()
        got["woken"] = s.clock()
        s.start_thread("child", lambda: got.__setitem__("child", s.clock()))
        s.join("child")

    s.start_thread("S", setter)
    s.start_thread("W", waiter)
    s.join_all()
    assert got == {"woken": 5000, "child": 5000}


def test_the_smallest_clock_runs_first():
    s, _ = vsched({"a": 300.0, "b": 200.0})
    order = []

    def t(name, key):
        for _ in range(3):
            s.charge(key)
            s.yield_point("step")
            order.append((s.clock(), name))

    s.start_thread("A", lambda: t("A", "a"))
    s.start_thread("B", lambda: t("B", "b"))
    s.join_all()
    assert [c for c, _ in order] == sorted(c for c, _ in order)


# -- validation: the machine-repairman closed forms ------------------------------------------

@pytest.mark.parametrize("n,h,w", [(2, 1000, 4000), (4, 1000, 4000), (8, 500, 6000), (4, 2000, 2000)])
def test_lock_loop_agrees_with_machine_repairman(n, h, w):
    r = repairman.compare(n, h, w, cycles=1500, seed=2)
    assert max(r["error"].values()) <= 0.10, r


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_constant_lock_loop_throughput_is_the_dd_bound(n):
    h, w = 1000, 3000
    got = repairman.simulate(n, h, w, cycles=400, exponential=False)
    want = repairman.dd1n(n, h, w)["throughput"]
    assert abs(got["throughput"] - want) / want <= 0.01
    if n == 1:
        assert got["contention"] == 0


def test_closed_forms_are_what_the_textbook_says():
    # N=1: never waits; throughput 1/(h+w).  Large N: the lock saturates.
    one = repairman.mm1n(1, 100, 900)
    assert one["contention"] == 0 and abs(one["throughput"] - 1 / 1000) < 1e-12 and abs(one["wait"]) < 1e-6
    assert abs(repairman.mm1n(64, 100, 900)["throughput"] - 1 / 100) < 1e-6


def test_throughput_is_linear_without_sharing_and_flat_at_the_lock_bound():
    """Amdahl: a lock held h of every h+w ns caps throughput at 1/h whatever N."""
    h, w = 1000, 3000

    def x(n, lock):
        s, ctx = vsched()
        L = ctx.mutex("L", Rank.MHEAP)

        def loop():
            for _ in range(200):
                if lock:
                    L.lock()
                s.charge_ps(h * 1000, "hold")
                if lock:
                    L.unlock()
                s.charge_ps(w * 1000, "work")
                s.yield_point("next")
        for i in range(n):
            s.start_thread(f"T{i}", loop)
        s.join_all()
        return n * 200 / (s.makespan_ps() / 1000)

    free = [x(n, False) for n in (1, 2, 4, 8)]
    locked = [x(n, True) for n in (1, 2, 4, 8)]
    assert all(abs(f / free[0] - n) < 1e-9 for f, n in zip(free, (1, 2, 4, 8)))
    assert locked[3] <= 1 / h * 1.001 and locked[3] / locked[0] < 4.01


# -- validation on the runtime -------------------------------------------------------

@pytest.mark.parametrize("cache", [True, False])
def test_one_p_is_never_contended(cache):
    res, _, _ = vrun(procs=1, steps=600, cache=cache)
    for cls in ("mcentral", "mheap"):
        assert res.locks["classes"][cls]["contended"] == 0


def _count(schedule, thread: str, prefix: str) -> int:
    return sum(1 for label, _ in schedule if label.startswith(f"{thread}:{prefix}") and label.endswith(".lock")
               and not label.startswith(f"{thread}:wait"))


@pytest.mark.parametrize("procs", [1, 2, 4])
def test_mcache_effect_is_exact_in_acquisitions(procs):
    """Cache off: one mcentral acquisition per allocation.  Cache on: one per
    refill, plus one more for each refill that had to grow a span from the
    mheap (cacheSpan relocks to insert it) -- counted from the schedule."""
    off, _, sched_off = vrun(procs=procs, steps=300, cache=False)
    on, refills, sched_on = vrun(procs=procs, steps=300, cache=True)
    for i in range(procs):
        p = f"P{i}"
        assert _count(sched_off, p, "mcentral[") == off.mutators[p]["allocs"]
        grows = _count(sched_on, p, "mheap")
        assert _count(sched_on, p, "mcentral[") == refills[i] + grows
        assert refills[i] < on.mutators[p]["allocs"] / 10


@pytest.mark.parametrize("procs", [2, 4, 8])
def test_virtual_mcentral_waits_fall_with_the_cache(procs):
    off, _, _ = vrun(procs=procs, steps=200, cache=False)
    on, _, _ = vrun(procs=procs, steps=200, cache=True)
    w_off = off.locks["classes"]["mcentral"]["wait_total"]
    w_on = on.locks["classes"]["mcentral"].get("wait_total", 0)
    assert w_off > 0 and w_on < w_off


def test_runtime_throughput_grows_with_the_cache_and_flattens_at_the_lock_without():
    """Cache off: every allocation holds the mcentral lock, so throughput can
    never pass 1/hold (Amdahl for a lock) and at 8 Ps sits close to it, far
    below 8x one P.  Cache on: the lock is taken 2/128 times per
    allocation, so 4 Ps scale nearly linearly."""
    def x(res):
        return res.vtime["allocs_per_vs"] * 1e-9     # per virtual ns
    off1, _, _ = vrun(procs=1, steps=600, cache=False)
    off8, _, _ = vrun(procs=8, steps=600, cache=False)
    st = off8.locks["classes"]["mcentral"]
    hold = st["hold_total"] / st["acquisitions"]
    assert 0.9 / hold <= x(off8) <= 1.01 / hold
    assert x(off8) < 4 * x(off1)
    on1, _, _ = vrun(procs=1, steps=600, cache=True)
    on4, _, _ = vrun(procs=4, steps=600, cache=True)
    assert x(on4) / x(on1) >= 3.0


def test_hooks_charge_the_barrier_per_store_and_memclr_per_byte():
    cfg = Config(procs=1, workload="ring", steps=200, live=32, scheduler="vtime", reserve_bytes=GiB, heapcheck=0)
    with Runtime(cfg) as rt:
        rt.set_write_barrier(lambda m, slot, value: None)   # before the run: allowed
        costs = rt.sched.costs
        vt = rt.run().vtime["threads"]["P0"]["by_key"]
    stores = round(vt["store"] * 1000 / costs.ps("store"))
    assert stores > 0 and vt["store.wb"] * 1000 == stores * costs.ps("store.wb")
    churn = Config(procs=1, workload="churn", steps=200, live=32, scheduler="vtime", reserve_bytes=GiB,
                   heapcheck=0)
    with Runtime(churn) as rt:
        by = rt.run().vtime["threads"]["P0"]["by_key"]
    assert by["memclr"] * 1000 % costs.ps("memclr") == 0 and by["memclr"] > 0   # whole bytes
    with Runtime(churn.replace(costs=("memclr=0",))) as rt:
        assert "memclr" not in rt.run().vtime["threads"]["P0"]["by_key"]


def test_other_schedulers_take_charges_as_no_ops():
    from concalloc.sync import make_scheduler
    for kind in ("os", "random"):
        make_scheduler(kind, 1).charge("gc.mark.ptr", 10)


def _without_wall_time(res) -> str:
    d = res.to_json()
    d.pop("elapsed_s")
    return json.dumps(d, sort_keys=True, default=str)


def test_bit_for_bit_under_switch_intervals_and_load():
    saved = sys.getswitchinterval()
    stop = threading.Event()
    burner = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)], daemon=True)
    try:
        sys.setswitchinterval(1e-6)
        a, _, _ = vrun(procs=3, steps=200, seed=11)
        sys.setswitchinterval(0.05)
        burner.start()               # a busy Python thread competing for the GIL
        b, _, _ = vrun(procs=3, steps=200, seed=11)
    finally:
        stop.set()
        sys.setswitchinterval(saved)
    assert _without_wall_time(a) == _without_wall_time(b)
    c, _, _ = vrun(procs=3, steps=200, seed=12)
    assert c.vtime["makespan_ns"] != a.vtime["makespan_ns"] or c.event_log_hash != a.event_log_hash


def test_figures_are_in_virtual_time():
    res, _, _ = vrun(procs=2, steps=300)
    vt = res.vtime
    assert res.locks["clock"] == "virtual" and res.locks["unit"] == "ns"
    assert all(d["clock"] == "virtual" for d in res.stw.values())
    assert vt["makespan_ns"] == max(t["clock_ns"] for t in vt["threads"].values())
    for name, t in vt["threads"].items():   # the breakdown adds up to the clock
        assert abs(sum(t["by_key"].values()) - t["clock_ns"]) < 1e-6, name
    total = sum(m["allocs"] for m in res.mutators.values())
    assert abs(vt["allocs_per_vs"] - total / (vt["makespan_ns"] * 1e-9)) < 1e-3


def test_chrome_trace_is_in_virtual_time(tmp_path):
    path = tmp_path / "t.json"
    res, _, _ = vrun(procs=2, steps=200, trace=str(path))
    events = json.loads(path.read_text())["traceEvents"]
    last = max(e.get("ts", 0) + e.get("dur", 0) for e in events)
    assert abs(last * 1000 - res.vtime["makespan_ns"]) <= 1
    waits = [e for e in events if e["ph"] == "X" and e["cat"] == "lock_wait"]
    locks = res.locks["classes"]
    assert round(sum(e["dur"] for e in waits) * 1000) == sum(c["wait_total"] for c in locks.values())


# -- what-if knobs ----------------------------------------------------------------------

def test_knob_on_the_critical_section_moves_contention():
    base, _, _ = vrun(procs=4, steps=150, cache=False)
    slow, _, _ = vrun(procs=4, steps=150, cache=False, costs=("mcentral.critical=x4",))
    assert slow.locks["classes"]["mcentral"]["wait_total"] > 2 * base.locks["classes"]["mcentral"]["wait_total"]
    assert slow.vtime["allocs_per_vs"] < base.vtime["allocs_per_vs"]
    assert slow.vtime["costs"]["knobs"] == ["mcentral.critical=x4"]


def test_replay_command_repeats_the_costs():
    from concalloc.runconfig import replay_command
    cfg = Config(scheduler="vtime", steps=10, costs=("mheap.lock=+500ns", "memclr=0"), cost_table="t.toml")
    cmd = replay_command(cfg)
    assert "--scheduler vtime" in cmd and "--cost-table t.toml" in cmd
    assert "--cost mheap.lock=+500ns --cost memclr=0" in cmd


def test_cost_model_lookup_and_knobs():
    m = CostModel({"default": 5.0, "lock": 20.0, "mheap.lock": 30.0, "wait": 0.0,
                   "alloc.small": 10.0, "alloc.small.3": 12.0})
    assert m.resolve("mheap.lock") == "mheap.lock"
    assert m.resolve("mcentral[12].lock") == "lock"
    assert m.resolve("wait mcentral[12].lock") == "wait"
    assert m.resolve("alloc.small.9") == "alloc.small"
    assert m.resolve("gc.mark.something") == "default"
    k = m.with_knobs(["mcentral.lock=+500ns", "mheap.lock=x4", "alloc.small=0", "wait=1us"])
    assert k.cost_ns("mcentral[3].lock") == 520.0 and k.cost_ns("mheap.lock") == 120.0
    assert k.cost_ns("alloc.small.3") == 0.0 and k.cost_ns("alloc.small.9") == 0.0
    assert k.cost_ns("wait x") == 1000.0 and m.cost_ns("wait x") == 0.0
    assert k.digest() != m.digest()
    for bad in ("mheap.lock", "mheap.lock=fast", "lock=-30", "lock=x2ns"):
        with pytest.raises(ConfigError):
            m.with_knobs([bad])
    with pytest.raises(ConfigError):
        CostModel({"lock": 1.0})     # no default


def test_shipped_table_records_its_origin_and_prices_every_class(tmp_path):
    m = costmodel.load()
    assert "go1.19" in m.meta["go"] and m.meta["machine"]
    for c in range(1, 68):
        assert m.resolve(f"alloc.small.{c}") == f"alloc.small.{c}"
    for k in ("lock", "load", "store", "store.wb", "memclr", "mheap.alloc.page", "default"):
        assert k in m.ns
    out = tmp_path / "t.toml"
    costmodel.dump(m.ns, m.meta, str(out))
    assert costmodel.load(str(out)).ns == m.ns


def test_calibrate_fits_a_saved_go_output(tmp_path):
    raw = REPO / "calibrate" / "go" / "last-run.txt"
    res = calibrate.parse(raw.read_text())
    assert "BenchmarkMutex" in res and len([k for k in res if k.startswith("BenchmarkAllocSmall/")]) == 66
    ns, _ = calibrate.fit(res)
    assert ns["lock"] == res["BenchmarkMutex"]["ns/op"]
    assert ns["memclr"] == res["BenchmarkMemclr"]["ns/op"] / 65536
    assert all(v >= 0 for v in ns.values())
    with pytest.raises(ValueError):
        calibrate.fit({"BenchmarkMutex": {"ns/op": 1.0}})


# -- the command line ---------------------------------------------------------------------

def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "concalloc.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=300)


def test_cli_vtime_run_report_and_errors(tmp_path):
    png = tmp_path / "vt.png"
    p = _cli("run", "--scheduler", "vtime", "--steps", "150", "--procs", "2", "--reserve", "1GiB",
             "--cost", "memclr=0", "--vtime-report", str(png))
    assert p.returncode == 0, p.stderr
    assert "virtual time:" in p.stdout and "where virtual time went" in p.stdout and "virtual ns" in p.stdout
    assert png.stat().st_size > 1000
    for bad in (["--scheduler", "vtime", "--cost", "lock=fast"],
                ["--scheduler", "random", "--cost", "lock=+1ns"],
                ["--scheduler", "random", "--vtime-report"],
                ["--scheduler", "vtime", "--cost-table", str(tmp_path / "missing.toml")]):
        p = _cli("run", "--steps", "10", *bad)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, (bad, p.stderr)

def test_cli_contention_names_its_clock(tmp_path):
    p = _cli("contention", "--scheduler", "vtime", "--procs", "1,16", "--cache", "off", "--steps", "60",
             "--reserve", "1GiB", "--out", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["rows"]
    assert {r["clock"] for r in rows} == {"virtual"}
    m16 = [r for r in rows if r["procs"] == 16 and r["lock_class"] == "mcentral"][0]
    assert m16["contended"] > 0


def test_timed_event_wait_times_out_in_virtual_time_or_wakes_at_the_setter():
    s, ctx = vsched({"work": 3000.0})
    early, late = ctx.event("early"), ctx.event("late")
    got = {}

    def waiter():
        got["early"] = (early.wait(timeout=1e-5), s.clock())    # set at 3 µs, timeout 10 µs
        got["late"] = (late.wait(timeout=1e-6), s.clock())      # never set: times out 1 µs later

    def setter():
        s.charge("work")
        s.yield_point("x")
        early.set()
        s.yield_point("after")

    s.start_thread("W", waiter)
    s.start_thread("S", setter)
    s.join_all()
    assert got == {"early": (True, 3000), "late": (False, 4000)}
    by = s.summary({}, 1)["threads"]["W"]["by_key"]
    assert by["wait event early"] == 3000 and by["wait event late"] == 1000


def test_a_polling_loop_does_not_livelock():
    """A background thread polling a flag with a timed wait lets the others run."""
    s, ctx = vsched({"work": 100.0})
    stop = ctx.event("stop")
    polls = []

    def poller():
        while not stop.wait(timeout=1e-6):
            polls.append(s.clock())

    def worker():
        for _ in range(45):         # sets stop at 4.5 µs
            s.charge("work")
            s.yield_point("w")
        stop.set()
        s.yield_point("done")

    s.start_thread("bg", poller)
    s.start_thread("P0", worker)
    s.join_all()
    assert polls == [1000 * (i + 1) for i in range(len(polls))] and len(polls) == 4
