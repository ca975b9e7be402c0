"""Lock statistics agree with what the allocator must do.

* One P: the only threads are its mutator and the collector, and the
  collector touches allocator locks (mcache flush, verify_heap) only with the
  world stopped, i.e. with the mutator parked at a safe point.  So no
  allocator lock is ever contended.  Under a controlled scheduler no lock at
  all is: every lock's held section of the stop-the-world handshake has no
  yield point inside it.  Under free OS threads sched.lock is the one lock
  the stopper and the parking P may really meet on (as two Go Ms would), so
  it is left out there.
* Cache off: every small non-tiny allocation takes its mcentral's lock
  exactly once, and nothing else takes an mcentral lock.
* Cache on: the mcentral lock is taken per span refill, not per object.
"""

from __future__ import annotations

import pytest

from concalloc.config import Config
from concalloc.runtime import EXIT_OK, Runtime, replay_command

GiB = 1 << 30
WORKLOADS = ("ring", "tree", "churn", "graph", "burst")
SCHEDULERS = {
    "os": {"scheduler": "os"},
    "os-noise": {"scheduler": "os", "noise": 0.2, "switch_interval": 0.0005},
    "random": {"scheduler": "random"},
    "pct": {"scheduler": "pct", "pct_k": 5000},
    "vtime": {"scheduler": "vtime"},
}
# Handshakes between threads, contended by design under free threads: the
# stop-the-world lock, and the collector's control lock the last mutator
# takes to stop it while the collector threads wake up.
HANDSHAKE_LOCKS = {"sched", "gc.ctl"}


def run(cfg: Config, cache: bool = True):
    with Runtime(cfg, cache=cache) as rt:
        res = rt.run()
        refills = sum(c.nrefill for c in rt.heap.mcaches)
    assert res.exit_code == EXIT_OK, (res.error, replay_command(cfg, cache))
    return res, refills


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_one_p_never_contends(sched, workload):
    # GOGC off: no collector thread takes a lock, so the one P is alone (the
    # background sweeper and mark workers do contend with it, as in Go).
    cfg = Config(lock_stats=True, procs=1, workload=workload, steps=3000, live=64, size=1024, reserve_bytes=GiB,
                 gogc=-1, **SCHEDULERS[sched])
    res, _ = run(cfg)
    locks = res.locks["locks"]
    assert locks, "lock statistics were asked for"
    exempt = HANDSHAKE_LOCKS if not cfg.controlled() else set()
    contended = {name: st["contended"] for name, st in locks.items()
                 if st["contended"] and name not in exempt}
    assert contended == {}, replay_command(cfg)
    for name, st in res.locks["classes"].items():
        if name not in exempt:
            assert st["contended"] == 0 and st["wait_total"] == 0 and st["max_waiters"] == 0, name
    assert res.locks["classes"]["mcentral"]["acquisitions"] > 0
    assert res.gc["num_gc"] == 0


@pytest.mark.parametrize("sched", list(SCHEDULERS))
@pytest.mark.parametrize("procs", [1, 4])
def test_cache_off_takes_the_mcentral_lock_once_per_allocation(sched, procs):
    steps = 1500
    cfg = Config(lock_stats=True, procs=procs, workload="ring", noscan=True, size=64, steps=steps, live=64,
                 reserve_bytes=GiB, **SCHEDULERS[sched])
    res, refills = run(cfg, cache=False)
    allocs = sum(m["allocs"] for m in res.mutators.values())
    assert allocs == steps * procs
    assert refills == 0
    mcentral = res.locks["classes"]["mcentral"]
    assert mcentral["acquisitions"] == allocs, replay_command(cfg, False)
    # one lock: every 64-byte object came from mcentral[spanclass of 64 B noscan]
    busy = {n: st["acquisitions"] for n, st in res.locks["locks"].items()
            if n.startswith("mcentral[") and st["acquisitions"]}
    assert list(busy.values()) == [allocs], busy
    assert res.memstats["Mallocs"] == allocs


@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_cache_on_takes_the_mcentral_lock_per_refill(sched):
    steps, procs = 1500, 4
    cfg = Config(lock_stats=True, procs=procs, workload="ring", noscan=True, size=64, steps=steps, live=64,
                 reserve_bytes=GiB, **SCHEDULERS[sched])
    res, refills = run(cfg, cache=True)
    allocs = sum(m["allocs"] for m in res.mutators.values())
    acq = res.locks["classes"]["mcentral"]["acquisitions"]
    # A 64-byte span holds 128 objects: each refill takes the lock once
    # (twice when it grows the class), and each flush of a partly used span
    # (stop-the-world ReadMemStats, the final one) once more.
    assert refills >= allocs // 128
    assert refills <= acq <= 2 * refills + (res.sched["checks"] + 1) * procs, (acq, refills, res.sched)
    assert acq * 20 < allocs, (acq, allocs)
