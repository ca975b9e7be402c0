"""Runtime benchmarks: throughput vs Ps (the controlled scheduler's cost is
in bench_sched.py).

procs.scaling_8_over_1   aggregate allocation throughput (allocations per
                         second over all mutators, whole run timed) with 8 Ps
                         vs 1 P, same steps per mutator.  Under the GIL the
                         target is "no collapse": >= 0.8.

Both sides of each ratio are measured alternately in the same process, and
each side's median is used.  Heap checks are off (heapcheck=0) so the figures
are the runtime's, not the checker's.
"""

from __future__ import annotations


from concalloc.config import Config

from .common import interleave, median, progress, timed_run

BASE = Config(procs=4, workload="ring", live=200, size=64, heapcheck=0, lock_stats=False,
              reserve_bytes=1 << 30)


def _timed_run(cfg: Config) -> tuple[float, int]:
    """(seconds, allocations) of one run, Runtime construction excluded."""
    dt, n, _ = timed_run(cfg)
    return dt, n


def scaling(reps: int, steps: int) -> dict:
    def throughput(procs: int) -> float:
        dt, n = _timed_run(BASE.replace(procs=procs, steps=steps))
        return n / dt
    one, eight = interleave(lambda: throughput(1), lambda: throughput(8), reps)
    return {"procs.scaling_8_over_1": median(eight) / median(one),
            "procs.allocs_per_s_1p": median(one), "procs.allocs_per_s_8p": median(eight)}


def run(quick: bool = False) -> dict:
    reps = 3 if quick else 7
    progress("runtime: throughput at 8 Ps vs 1 P")
    return scaling(reps, steps=5000 if quick else 20000)
