"""Controlled-scheduling benchmarks: what searching schedules costs.

sched.controlled_ratio        wall time of one bounded run (4 Ps, ring, fixed
                              steps) under the `random` controlled scheduler
                              (pipe baton, the default) vs the same run under
                              free `os` threads.  Target <= 4 (issue 7).
sched.controlled_ratio_lock   the same with threading.Lock batons instead of
                              pipes (controlled.BATON = "lock"), so the two
                              handoff primitives are compared in one run.
sched.steps                   decisions in the controlled run (same for both
                              batons: the primitive does not change results).

All three runs alternate in the same process and each side's median is used;
heap checks are off (heapcheck=0), and event_log_hash is computed as in every
controlled run (it is part of the cost).
"""

from __future__ import annotations

from concalloc.runtime import Runtime
from concalloc.sync import controlled

from .bench_runtime import BASE, _timed_run
from .common import interleave, median, progress


def _with_baton(kind: str, cfg) -> float:
    old, controlled.BATON = controlled.BATON, kind
    try:
        return _timed_run(cfg)[0] * 1e9
    finally:
        controlled.BATON = old


def _steps(cfg) -> int:
    with Runtime(cfg) as rt:
        return rt.run().sched["steps"]


def controlled_ratio(reps: int, steps: int) -> dict:
    os_cfg = BASE.replace(scheduler="os", steps=steps)
    rnd = BASE.replace(scheduler="random", steps=steps)
    locks: list[float] = []

    def subject() -> float:
        locks.append(_with_baton("lock", rnd))
        return _with_baton("pipe", rnd)
    fs, ss = interleave(lambda: _timed_run(os_cfg)[0] * 1e9, subject, reps)
    return {"sched.controlled_ratio": median(ss) / median(fs),
            "sched.controlled_ratio_lock": median(locks) / median(fs),
            "sched.os_run_ms": median(fs) / 1e6, "sched.random_run_ms": median(ss) / 1e6,
            "sched.random_lock_run_ms": median(locks) / 1e6, "sched.steps": float(_steps(rnd))}


def run(quick: bool = False) -> dict:
    progress("sched: controlled (pipe and lock batons) vs free scheduler")
    return controlled_ratio(3 if quick else 7, steps=500 if quick else 1500)
