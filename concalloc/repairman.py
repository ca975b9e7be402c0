"""The machine-repairman check of virtual time: a lock loop against closed forms.

N threads each loop "take lock L, hold it h ns, release, work w ns".  That
is the machine-repairman model (a closed queue, one server, N sources):
the lock is the repairman, a thread at work is a running machine.  Run on
the vtime scheduler, its throughput, contention and waits have closed forms
to agree with:

* exponential h and w (M/M/1//N): with r = h/w,
      p0(N) = 1 / sum_{k=0..N} N!/(N-k)! r^k        (lock idle)
      X = (1 - p0(N)) / h                            (acquisitions per ns)
      P(contended) = 1 - p0(N-1)                     (arrival theorem: an arriving
                                                      thread sees N-1 others in equilibrium)
      mean wait per acquisition = N/X - w - h
* constant h and w (D/D/1//N): X = min(N/(h+w), 1/h), exactly, once the
  start-up transient is over (the lock is either never or always queued).

``simulate`` runs the loop with clocks in integer ns (exponential draws
from a per-thread Random seeded by (seed, thread)) and returns the measured
figures; ``model_error`` is the largest relative error over a set of cases,
what bench/bench_vtime.py reports as vtime.model_error.
"""

from __future__ import annotations

import math
import random

from .costmodel import CostModel
from .sync import Rank, SyncContext
from .sync.vtime import VtimeScheduler

# (N, h ns, w ns): light, medium and saturated loads, a few N.
CASES = ((2, 1000, 4000), (4, 1000, 4000), (8, 1000, 4000), (4, 2000, 2000), (8, 500, 6000), (16, 300, 3000))


def mm1n(n: int, h: float, w: float) -> dict:
    """Closed-form M/M/1//N figures (see the module comment)."""
    def p0(m: int) -> float:
        r = h / w
        return 1.0 / sum(math.perm(m, k) * r ** k for k in range(m + 1))
    x = (1 - p0(n)) / h
    return {"throughput": x, "contention": 1 - p0(n - 1), "wait": n / x - w - h}


def dd1n(n: int, h: float, w: float) -> dict:
    return {"throughput": min(n / (h + w), 1 / h)}


def simulate(n: int, h: float, w: float, cycles: int, seed: int = 1, exponential: bool = True) -> dict:
    """Run the lock loop on the vtime scheduler; measured throughput, contention, wait."""
    sched = VtimeScheduler(seed, CostModel({"default": 0.0}))
    ctx = SyncContext(sched, check_ranks=False, lock_stats=True)
    lock = ctx.mutex("L", Rank.MHEAP)

    def loop(name: str) -> None:
        rng = random.Random(f"{seed}:{name}")
        for _ in range(cycles):
            hold = rng.expovariate(1 / h) if exponential else h
            work = rng.expovariate(1 / w) if exponential else w
            lock.lock()
            sched.charge_ps(round(hold) * 1000, "hold")
            lock.unlock()
            sched.charge_ps(round(work) * 1000, "work")
            sched.yield_point("next")

    for i in range(n):
        sched.start_thread(f"T{i}", lambda name=f"T{i}": loop(name))
    sched.join_all()
    st = ctx.lock_stats()["locks"]["L"]
    span = sched.makespan_ps() / 1000
    acq = st["acquisitions"]
    return {"throughput": acq / span, "contention": st["contended"] / acq, "wait": st["wait_total"] / acq,
            "acquisitions": acq, "makespan_ns": span, "steps": sched.steps}


def compare(n: int, h: float, w: float, cycles: int, seed: int = 1) -> dict:
    """Measured vs closed form for one case; relative errors per figure."""
    got = simulate(n, h, w, cycles, seed)
    want = mm1n(n, h, w)
    err = {k: abs(got[k] - want[k]) / want[k] for k in ("throughput", "contention")}
    # waits: relative to the cycle they live in, so near-zero waits do not blow up
    err["wait"] = abs(got["wait"] - want["wait"]) / (h + w + want["wait"])
    return {"case": (n, h, w), "got": got, "want": want, "error": err}


def model_error(cycles: int = 2000, seed: int = 1, cases=CASES) -> dict:
    rows = [compare(n, h, w, cycles, seed) for n, h, w in cases]
    worst = max(max(r["error"].values()) for r in rows)
    return {"max_error": worst, "rows": rows}
