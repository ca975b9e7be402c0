"""Controlled-scheduling benchmarks: what searching schedules costs.

sched.controlled_ratio        wall time of one bounded run (4 Ps, ring, fixed
                              steps) under the `random` controlled scheduler
                              (pipe baton, the default) vs the same run under
                              free `os` threads.  Target <= 4 (issue 7).
sched.controlled_ratio_lock   the same with threading.Lock batons instead of
                              pipes (controlled.BATON = "lock"), so the two
                              handoff primitives are compared in one run.
sched.controlled_cpu_ratio    the same two runs compared in process CPU time
sched.controlled_cpu_ratio_lock  (all threads): on a shared machine the free
                              run's wall time swings with the load (its four
                              threads want two CPUs), CPU time much less.
sched.steps                   decisions in the controlled run (same for both
                              batons: the primitive does not change results).
sched.handoffs                decisions that passed the baton to another
                              thread (the rest kept the running thread).

All three runs alternate in the same process and each side's median is used;
heap checks are off (heapcheck=0), and event_log_hash is computed as in every
controlled run (it is part of the cost).
"""

from __future__ import annotations

import time

from concalloc.runtime import Runtime
from concalloc.sync import controlled

from .bench_runtime import BASE
from .common import interleave, median, progress


def _run(cfg, baton: str | None = None, out: dict | None = None) -> float:
    """Wall ns of one run (construction excluded); its CPU ns go to out["cpu"]."""
    old = controlled.BATON
    if baton is not None:
        controlled.BATON = baton
    try:
        with Runtime(cfg) as rt:
            w0, c0 = time.perf_counter_ns(), time.process_time_ns()
            res = rt.run()
            wall, cpu = time.perf_counter_ns() - w0, time.process_time_ns() - c0
    finally:
        controlled.BATON = old
    if res.error is not None:
        raise RuntimeError(f"benchmark run failed: {res.error}")
    if out is not None:
        out.setdefault("cpu", []).append(cpu)
        if cfg.controlled():
            out["steps"] = res.sched["steps"]
            out["handoffs"] = sum(1 for w, _, nxt in rt.sched._log if w is not nxt)
    return float(wall)


def controlled_ratio(reps: int, steps: int) -> dict:
    os_cfg = BASE.replace(scheduler="os", steps=steps)
    rnd = BASE.replace(scheduler="random", steps=steps)
    free: dict = {}
    pipe: dict = {}
    lock: dict = {}
    locks: list[float] = []

    def subject() -> float:
        locks.append(_run(rnd, "lock", lock))
        return _run(rnd, "pipe", pipe)
    fs, ss = interleave(lambda: _run(os_cfg, None, free), subject, reps)
    cpu_os = median(free["cpu"])
    return {"sched.controlled_ratio": median(ss) / median(fs),
            "sched.controlled_ratio_lock": median(locks) / median(fs),
            "sched.controlled_cpu_ratio": median(pipe["cpu"]) / cpu_os,
            "sched.controlled_cpu_ratio_lock": median(lock["cpu"]) / cpu_os,
            "sched.os_run_ms": median(fs) / 1e6, "sched.random_run_ms": median(ss) / 1e6,
            "sched.random_lock_run_ms": median(locks) / 1e6,
            "sched.os_cpu_ms": cpu_os / 1e6, "sched.random_cpu_ms": median(pipe["cpu"]) / 1e6,
            "sched.steps": float(pipe["steps"]), "sched.handoffs": float(pipe["handoffs"])}


def run(quick: bool = False) -> dict:
    progress("sched: controlled (pipe and lock batons) vs free scheduler")
    return controlled_ratio(3 if quick else 7, steps=500 if quick else 1500)
