"""sync.Pool (concalloc/syncpool.py): Go's Put/Get order, the victim cache
surviving exactly one cycle, pooled objects kept alive by the collector and
freed once dropped, and check_pool failing on each broken structure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from concalloc import syncpool
from concalloc.check import Violation
from concalloc.config import Config
from concalloc.runtime import EXIT_OK, Runtime, replay_command
from concalloc.sysmem import ARENA_BASE

GiB = 1 << 30


class Script:
    """A workload that runs fn(m, rt) once on P0 (the other Ps idle)."""

    def __init__(self, fn):
        self.fn = fn
        self.rt = None
        self.seen: dict = {}

    def slots(self, cfg) -> int:
        return 4

    def run(self, m, cfg) -> None:
        if m.p.id == 0:
            self.fn(m, self.rt, self.seen)


def run_script(fn, procs=2, **kw):
    wl = Script(fn)
    cfg = Config(procs=procs, mutators=1, scheduler="random", steps=10_000, gogc=-1, gccheckmark=True,
                 heapcheck=2, reserve_bytes=GiB, **kw)
    rt = Runtime(cfg, workload=wl)
    wl.rt = rt
    res = rt.run()
    assert res.exit_code == EXIT_OK, f"{res.error}\nreplay: {replay_command(cfg)}"
    return rt, wl.seen


def freed(rt, x: int) -> bool:
    s = rt.heap.mheap.spanOfHeap(x)
    return s is None or s.isFree(s.objIndex(x))


# --- the deque and the chain ---------------------------------------------------------

def test_chain_grows_by_doubling_and_pops_lifo_at_head_fifo_at_tail():
    c = syncpool.poolChain()
    for x in range(1, 21):
        c.pushHead(x)
    assert [len(d.vals) for d in c.elts] == [8, 16]
    assert c.popHead() == 20 and c.popTail() == 1
    assert [c.popTail() for _ in range(7)] == list(range(2, 9))
    assert c.popTail() == 9 and len(c.elts) == 1, "the drained first ring is dropped"
    assert c.values() == list(range(10, 20))
    assert all(v == 0 for d in c.elts for i, v in enumerate(d.vals)
               if i not in {j & (len(d.vals) - 1) for j in range(d.tail, d.head)})


# --- Put / Get and the victim cache -----------------------------------------------

def test_put_get_order_private_then_shared_head():
    def fn(m, rt, seen):
        p = syncpool.pool(rt, "order")
        xs = [m.alloc(64) for _ in range(3)]
        for x in xs:
            p.Put(m, x)
        seen["got"] = [p.Get(m) for _ in range(4)]
        seen["xs"] = xs
        seen["stats"] = p.counters()
    _rt, seen = run_script(fn)
    a, b, c = seen["xs"]
    assert seen["got"] == [a, c, b, 0], "private first, then the shared chain's head (LIFO)"
    st = seen["stats"]
    assert (st["gets"], st["puts"], st["private"], st["shared"], st["empty"]) == (4, 3, 1, 2, 1)


def test_get_steals_from_another_ps_tail():
    def fn(m, rt, seen):
        p = syncpool.pool(rt, "steal")
        xs = [m.alloc(64) for _ in range(3)]
        for x in xs:
            p.Put(m, x)
        p1 = rt.allp[1]          # idle: borrow its identity to Get as P1 would
        real = m.p
        m.p = p1
        try:
            seen["got"] = p.Get(m)
        finally:
            m.p = real
        seen["xs"] = xs
        seen["stats"] = p.counters()
    _rt, seen = run_script(fn)
    assert seen["got"] == seen["xs"][1], "P1 finds its own empty and steals P0's shared tail"
    assert seen["stats"]["steals"] == 1


def test_victim_survives_exactly_one_cycle_then_the_collector_frees_it():
    def fn(m, rt, seen):
        p = syncpool.pool(rt, "victim")
        x = m.alloc(4096)
        y = m.alloc(4096)
        p.Put(m, x)
        p.Put(m, y)
        m.alloc(16)              # the register no longer holds y
        reg = rt.gc.pools
        m.gc()
        seen["after1"] = (sorted(p.primary_values()), sorted(p.victim_values()), freed(rt, x), freed(rt, y))
        got = p.Get(m)           # served from the victim
        m.set_slot(0, got)
        seen["got"] = (got, p.counters()["victim"])
        m.gc()
        seen["after2"] = (p.primary_values(), p.victim_values(), freed(rt, x), freed(rt, y), reg.dropped)
        seen["xy"] = (x, y)
    rt, seen = run_script(fn)
    x, y = seen["xy"]
    prim, vic, fx, fy = seen["after1"]
    assert prim == [] and vic == sorted([x, y]) and not fx and not fy, "cycle 1 moves them to the victim"
    got, nvictim = seen["got"]
    assert got in (x, y) and nvictim == 1
    other = y if got == x else x
    prim, vic, fx, fy, dropped = seen["after2"]
    assert prim == [] and vic == [] and dropped == 1
    assert (fx, fy) == ((True, False) if other == x else (False, True)), \
        "cycle 2 drops the victim: the object nobody took back is freed, the one taken back lives"


def test_pooled_objects_survive_concurrent_cycles_across_ps():
    """Four Ps share one pool through cycles back to back (GOGC off, a memory
    limit of 0); checkmark and the pointer oracle see every pooled object kept."""
    from concalloc.workloads.pool import PoolWorkload
    for sched in ("random", "os"):
        wl = PoolWorkload("pooled")
        cfg = Config(procs=3, workload="pool", scheduler=sched, steps=300 if sched == "random" else 3000,
                     size=512, gogc=-1, memory_limit=0, gccheckmark=True, heapcheck=2, reserve_bytes=GiB,
                     switch_interval=0.0005 if sched == "os" else None)
        with Runtime(cfg, workload=wl) as rt:
            res = rt.run()
            assert res.exit_code == EXIT_OK, f"{res.error}\nreplay: {replay_command(cfg)}"
            assert res.memstats["NumGC"] >= 2
            reg = rt.gc.pools
            assert reg.cleanups == res.memstats["NumGC"]
            syncpool.check_pool(reg)
            st = reg.pools[0].counters()
            assert st["gets"] == st["private"] + st["shared"] + st["steals"] + st["victim"] + st["news"]


# --- check_pool against corruption ----------------------------------------------------

def _healthy():
    """A runtime after a run that left a pool with objects in private, shared and victim."""
    holder = {}

    def fn(m, rt, seen):
        p = syncpool.pool(rt, "h")
        for x in [m.alloc(64) for _ in range(2)]:
            p.Put(m, x)
        m.alloc(16)
        m.gc()                                   # those two -> victim
        for x in [m.alloc(64) for _ in range(2)]:
            p.Put(m, x)
        seen["garbage"] = m.alloc(64)
        m.alloc(16)
        m.gc()                                   # garbage freed; the first two dropped, the next two -> victim
        seen["y"] = [m.alloc(128) for _ in range(3)]   # another size class: garbage's slot stays free
        for x in seen["y"]:
            p.Put(m, x)                          # private + shared
    rt, seen = run_script(fn)
    holder.update(seen)
    return rt, holder


def _pool(rt):
    return rt.gc.pools.pools[0]


def _dup(rt, s):
    p = _pool(rt)
    l = p.local[0]
    l.shared.pushHead(l.private)


def _overlap(rt, s):
    p = _pool(rt)
    p.victim[0].private = p.local[0].private


def _freed(rt, s):
    _pool(rt).local[1].private = s["garbage"]


def _wild(rt, s):
    _pool(rt).local[1].private = ARENA_BASE + (512 << 20)


def _retained(rt, s):
    d = _pool(rt).local[0].shared.elts[0]
    d.vals[(d.head + 1) & (len(d.vals) - 1)] = s["y"][0]


def _ring_bounds(rt, s):
    d = _pool(rt).local[0].shared.elts[0]
    d.head = d.tail + len(d.vals) + 1


def _short_local(rt, s):
    p = _pool(rt)
    p.local = p.local[:1]


CASES = [
    ("duplicate", "syncpool.duplicate", "pooled twice", _dup),
    ("victim_overlap", "syncpool.victim_overlap", "both the primary cache and the victim", _overlap),
    ("freed_object", "syncpool.freed_object", "not an allocated object", _freed),
    ("wild_pointer", "syncpool.freed_object", "not an allocated object", _wild),
    ("retained_slot", "syncpool.dequeue", "outside [tail, head)", _retained),
    ("ring_bounds", "syncpool.dequeue", "head", _ring_bounds),
    ("local_size", "syncpool.local_size", "poolLocals", _short_local),
]


@pytest.mark.parametrize("invariant,needle,corrupt", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_pool_catches(invariant, needle, corrupt):
    rt, seen = _healthy()
    try:
        reg = rt.gc.pools
        assert freed(rt, seen["garbage"])
        syncpool.check_pool(reg)                   # healthy
        corrupt(rt, seen)
        with pytest.raises(Violation) as ei:
            syncpool.check_pool(reg)
        assert ei.value.invariant == invariant, str(ei.value)
        assert needle in ei.value.message
    finally:
        rt.close()


def test_every_check_pool_invariant_has_a_case():
    doc = syncpool.check_pool.__doc__
    named = set(re.findall(r"(syncpool\.\w+)", doc))
    src = Path(syncpool.__file__).read_text()
    thrown = set(re.findall(r'throw\("(syncpool\.\w+)"', src))
    assert named == thrown
    assert named == {c[1] for c in CASES}


def test_check_pool_runs_at_each_cleanup_and_stops_the_run():
    """heapcheck >= 1: poolCleanup checks first, so a corrupt pool fails the cycle (exit 1)."""
    def fn(m, rt, seen):
        p = syncpool.pool(rt, "bad")
        x = m.alloc(64)
        p.Put(m, x)
        p.Put(m, x)                # a double Put: Go would hand the same buffer to two users
        m.gc()
    wl = Script(fn)
    cfg = Config(procs=1, scheduler="random", steps=1000, gogc=-1, reserve_bytes=GiB)
    with Runtime(cfg, workload=wl) as rt:
        wl.rt = rt
        res = rt.run()
    assert res.exit_code == 1 and res.violations[0]["invariant"] == "syncpool.duplicate"


# --- the pool's own barrier ------------------------------------------------------------

def _pooled_run(seed):
    from concalloc.workloads.pool import PoolWorkload
    cfg = Config(procs=2, workload="pool", scheduler="random", steps=150, size=512, seed=seed, gogc=-1,
                 memory_limit=0, gccheckmark=True, heapcheck=1, reserve_bytes=GiB)
    with Runtime(cfg, workload=PoolWorkload("pooled")) as rt:
        return rt.run()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pooled_objects_are_kept_through_back_to_back_cycles(seed):
    res = _pooled_run(seed)
    assert res.exit_code == EXIT_OK and res.memstats["NumGC"] >= 10, res.error


def test_without_the_pool_barrier_checkmark_finds_a_lost_pooled_object(monkeypatch):
    """A buffer Put after the pool's root scan from a stack not yet scanned,
    or taken by Get onto a scanned stack before the pool's scan, is seen by
    nobody unless Put/Get shade it: the run must fail (checkmark)."""
    monkeypatch.setattr(syncpool.PoolRegistry, "shade", lambda self, m, x: None)
    lost = [_pooled_run(seed) for seed in (1, 2, 3)]
    assert any(r.exit_code == 1 and r.violations[0]["invariant"] == "gc.checkmark" for r in lost), \
        [(r.exit_code, r.violations) for r in lost]
