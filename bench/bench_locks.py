"""Lock benchmarks: the cost of instrumentation and of controlled scheduling.

Figures (ratios are subject median / floor median, both measured in this
run with repetitions interleaved; raw medians in ns beside them):

    locks.stats_ratio          uncontended lock()+unlock() of a mutex with lock
                               statistics on and rank checking off, against a
                               bare threading.Lock acquire()+release()  target <= 3
    locks.ranked_ratio         the same with statistics and rank checking (the
                               debug mode, like Go's static lock ranking)  target <= 5
    locks.plain_ratio          `with m:` on a plain mutex (no stats, no ranks)
                               against `with lock:` on a bare threading.Lock
                                                                        target <= 1.2
    locks.controlled_ratio     a two-thread lock workload under the controlled
                               random scheduler against the same under free OS
                               threads (whole run, start to join)

Each subject and its floor run the same loop shape (two method calls per
iteration, looked up each time, or one `with` block), so the loop's own cost is in both.
The three lock ratios are timed in the bench thread's CPU time (time.thread_time_ns),
as bench_gc's marking figures are: both sides run on that one thread and never wait,
and on a loaded machine wall time lets another process's time land on one side; the
controlled-vs-free figure is wall time (it runs and joins threads).

`python -m bench.bench_locks --sampling` instead runs the ring workload with
the mcache off (lock-heavy) with hold times sampled and with every hold timed,
and prints both lock tables: the check that sampling reads the same.
"""

from __future__ import annotations

import threading
import time

from concalloc.sync import Rank, SyncContext, make_scheduler

from .common import interleave, median, progress

_now = time.perf_counter_ns     # wall: whole multi-thread runs
_cpu = time.thread_time_ns      # this thread's CPU time: the single-thread lock loops


def _call_loop(obj, acquire: str, release: str, n: int):
    """obj.<acquire>(); obj.<release>() n times, looking both up each time as call
    sites do (a StatsMutex swaps its unlock on a sampled acquisition)."""
    ns: dict = {}
    exec(f"def loop(obj, n):\n    for _ in range(n):\n        obj.{acquire}()\n        obj.{release}()\n", ns)
    loop = ns["loop"]

    def rep() -> float:
        t0 = _cpu()
        loop(obj, n)
        return (_cpu() - t0) / n
    return rep


def _with_loop(m, n: int):
    def rep() -> float:
        t0 = _cpu()
        for _ in range(n):
            with m:
                pass
        return (_cpu() - t0) / n
    return rep


def _mutex(**ctx_opts):
    return SyncContext(**ctx_opts).mutex("mcentral[12]", Rank.MCENTRAL, "mcentral")


def _lock_ratio(reps: int, n: int, with_block: bool = False, **ctx_opts) -> tuple[float, float, float]:
    lk = threading.Lock()
    m = _mutex(**ctx_opts)
    if with_block:
        floor, subject = _with_loop(lk, n), _with_loop(m, n)
    else:
        floor, subject = _call_loop(lk, "acquire", "release", n), _call_loop(m, "lock", "unlock", n)
    fs, ss = interleave(floor, subject, reps)
    return median(ss) / median(fs), median(fs), median(ss)


def _lock_workload(kind: str, seed: int, ops: int) -> float:
    """Two threads sharing two ranked locks; returns the run's wall time in ns."""
    sched = make_scheduler(kind, seed)
    ctx = SyncContext(sched)
    central = ctx.mutex("mcentral[1]", Rank.MCENTRAL)
    heap = ctx.mutex("mheap", Rank.MHEAP)

    def body():
        for i in range(ops):
            with central:
                if i % 4 == 0:
                    with heap:
                        pass
            ctx.yield_point("op")

    t0 = _now()
    sched.start_thread("P0", body)
    sched.start_thread("P1", body)
    sched.join_all(timeout=120)
    return _now() - t0


def run(quick: bool = False) -> dict[str, float]:
    reps, n = (7, 50_000) if quick else (21, 200_000)
    out: dict[str, float] = {}
    for key, opts in (("stats", {"check_ranks": False, "lock_stats": True}),
                      ("ranked", {"check_ranks": True, "lock_stats": True}),
                      ("plain", {"check_ranks": False, "with_block": True})):
        progress(f"locks: {key}")
        ratio, floor_ns, subject_ns = _lock_ratio(reps, n, **opts)
        out[f"locks.{key}_ratio"] = ratio
        out[f"locks.{key}_ns"] = subject_ns
        out[f"locks.{key}_floor_ns"] = floor_ns
    progress("locks: controlled vs free")
    ops = 500 if quick else 2000
    seeds = iter(range(1_000_000))
    fs, ss = interleave(lambda: _lock_workload("os", 0, ops),
                        lambda: _lock_workload("random", next(seeds), ops), 5 if quick else 9)
    out["locks.controlled_ratio"] = median(ss) / median(fs)
    out["locks.controlled_run_ms"] = median(ss) / 1e6
    out["locks.free_run_ms"] = median(fs) / 1e6
    return out


# --- does sampling change what the statistics say? -------------------------------------------

SAMPLING_FIGURES = ("acq/alloc", "contention %", "mean wait ms", "p99 wait ms", "mean hold µs")


def _lock_figures(hold_every: int, seconds: float, seed: int) -> dict[str, dict[str, float]]:
    """One OS run of ring on 4 Ps with the mcache off (every small allocation takes its mcentral
    lock), ranks off, holds timed one in `hold_every`: figures per lock class."""
    from concalloc.config import Config
    from concalloc.report import hist_quantile
    from concalloc.runtime import Runtime
    from concalloc.sync import lockstats
    saved, lockstats.HOLD_SAMPLE = lockstats.HOLD_SAMPLE, hold_every
    try:
        cfg = Config(procs=4, seconds=seconds, lock_stats=True, lockrank=False, heapcheck=0, seed=seed,
                     reserve_bytes=4 << 30)
        with Runtime(cfg, cache=False) as rt:
            res = rt.run()
    finally:
        lockstats.HOLD_SAMPLE = saved
    allocs = sum(m["allocs"] for m in res.mutators.values())
    out = {}
    for cls in ("mcentral", "mheap"):
        st = res.locks["classes"][cls]
        acq, cont = st["acquisitions"], st["contended"]
        out[cls] = {"acq/alloc": acq / allocs, "contention %": 100 * cont / acq,
                    "mean wait ms": st["wait_total"] / cont / 1e6 if cont else 0.0,
                    "p99 wait ms": (hist_quantile(st["wait_hist"], 0.99, st["wait_max"]) or 0) / 1e6,
                    "mean hold µs": st["hold_total"] / acq / 1e3}
    return out


def sampling_check(seconds: float = 2.0, reps: int = 3) -> str:
    """Alternate runs with every hold timed and with one in lockstats.HOLD_SAMPLE; a table of
    each figure's mean ± standard deviation over the reps, per lock class."""
    import statistics

    from concalloc.report import table
    from concalloc.sync import lockstats
    runs: dict[int, list] = {1: [], lockstats.HOLD_SAMPLE: []}
    for r in range(reps):
        for every in (runs if r % 2 == 0 else reversed(list(runs))):
            progress(f"sampling check: run {r + 1}/{reps}, holds timed 1 in {every}")
            runs[every].append(_lock_figures(every, seconds, seed=1 + r))
    rows = []
    for cls in ("mcentral", "mheap"):
        for fig in SAMPLING_FIGURES:
            cells = []
            for every, rs in runs.items():
                vals = [x[cls][fig] for x in rs]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.fmean(vals):.4g} ± {sd:.2g}")
            rows.append([cls, fig] + cells)
    return table(["lock class", "figure", "every hold timed", f"1 in {lockstats.HOLD_SAMPLE} timed"], rows,
                 title=f"lock statistics with and without hold sampling (ring, 4 Ps, mcache off, "
                       f"{seconds:g} s, {reps} runs each)", left=2)


if __name__ == "__main__":
    import sys
    if "--sampling" in sys.argv:
        print(sampling_check())
