"""Stress campaign: concurrent sweeping next to allocating Ps.

Each run keeps one bgsweep thread alive across several GC cycles.  Per
cycle the "gc" thread (the world stopped: no P runs) keeps a random half of
what the Ps kept, flips with gcSweep in background mode and paces the sweep
for a trigger 2 MiB away; then three Ps allocate (small, tiny, large; P3
through the cache-off path) while bgsweep, proportional sweep, cacheSpan
and the reclaimer all sweep; then, with the Ps joined, sweep termination
(finishsweep_m) runs and verify_heap checks everything.

    pytest stress -m smoke -k sweep     # a few seeds
    pytest stress -m long -k sweep      # the campaign

Every run is bounded by a wall-clock safety net; nothing asserts on time.
"""

from __future__ import annotations

import random

import pytest

from concalloc import Heap
from concalloc.gc.sweep import bgsweep, finishsweep_m, gcBackgroundMode, gcPaceSweeper
from concalloc.malloc import mallocgc, mallocgc_nocache
from concalloc.sync import SyncContext, make_scheduler

BOUND = 300.0
SIZES = (8, 16, 24, 64, 200, 640, 3000, 9000, 40000)
SCHED_OPTS = {"os": {"noise": 0.05, "switch_interval": 1e-5}, "random": {}, "pct": {"depth": 3, "pct_k": 20000}}


def run_sweep_campaign(kind: str, seed: int, rounds: int, nalloc: int) -> dict:
    sync = SyncContext(make_scheduler(kind, seed, **SCHED_OPTS[kind]))
    heap = Heap(reserve_bytes=1 << 31, nprocs=4, sync=sync)
    h, sched = heap.mheap, sync.scheduler
    stop = [False]
    kept: dict[int, list[int]] = {p: [] for p in (1, 2, 3)}
    keepers: dict = {}

    def mark(s):
        for i in keepers.get(s, ()):
            s.setMarked(i)

    def mutator(p: int, r: int) -> None:
        rng = random.Random(f"{seed}:{p}:{r}")
        c = heap.mcaches[p]
        alloc = mallocgc_nocache if p == 3 else mallocgc
        for _ in range(nalloc):
            x = alloc(c, rng.choice(SIZES))
            if rng.random() < 0.3:
                kept[p].append(x)

    def gc() -> None:
        rng = random.Random(seed)
        for r in range(rounds):
            keepers.clear()
            for p in kept:
                kept[p] = [x for x in kept[p] if rng.random() < 0.5]
                for x in kept[p]:
                    _base, s, idx = h.findObject(x)
                    keepers.setdefault(s, set()).add(idx)
            heap.sweep_cycle(mark, mode=gcBackgroundMode)
            gcPaceSweeper(h, h.gcController.heapLive.load() + (2 << 20))
            for p in (1, 2, 3):
                sched.start_thread(f"P{p}.{r}", lambda p=p, r=r: mutator(p, r))
            for p in (1, 2, 3):
                sched.join(f"P{p}.{r}")
            finishsweep_m(h)
            heap.verify()
        stop[0] = True
        h.sweep.wake()

    try:
        sched.start_thread("bgsweep", lambda: bgsweep(h, lambda: stop[0]))
        sched.start_thread("gc", gc)
        sched.join_all(timeout=BOUND)
        return {"nbgsweep": h.sweep.nbgsweep.load(), "npausesweep": h.sweep.npausesweep}
    finally:
        if not sched.alive():
            heap.close()


@pytest.mark.smoke
@pytest.mark.parametrize("kind,seed", [("os", 1), ("random", 1), ("random", 2), ("pct", 1)])
def test_sweep_campaign_smoke(kind, seed):
    res = run_sweep_campaign(kind, seed, rounds=4, nalloc=4000 if kind == "os" else 1500)
    if kind != "pct":                     # PCT may starve bgsweep by priority: legal
        assert res["nbgsweep"] > 0


@pytest.mark.long
@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("kind", ["os", "random", "pct"])
def test_sweep_campaign_long(kind, seed):
    run_sweep_campaign(kind, seed, rounds=6, nalloc=8000 if kind == "os" else 2000)
