"""Helpers shared by the bench_* modules: interleaved timing, the floor, progress.

Every figure is a ratio against a floor measured in the same run.  Floor and
subject repetitions alternate (and swap order every repetition), and each
side's median is taken, so a slow stretch of the machine lands on both.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

from concalloc.mspan import MASK64


def progress(msg: str) -> None:
    """One progress line on stderr (stdout carries only the JSON result)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class CtzFloor:
    """The floor: one allocCache count-trailing-zeros step on an int and one
    attribute store, as a bare method on a __slots__ object (MSpan has slots
    too).  The cache holds a 64-bit value, like a real allocCache, so the int
    arithmetic works on the same two-digit longs the allocator sees."""

    __slots__ = ("cache", "idx")

    def __init__(self, cache: int = (MASK64 << 8) & MASK64):
        self.cache = cache
        self.idx = 0

    def step(self) -> None:
        c = self.cache
        self.idx = (c & -c).bit_length() - 1


def interleave(floor: Callable[[], float], subject: Callable[[], float], reps: int,
               setup: Callable[[], None] | None = None) -> tuple[list[float], list[float]]:
    """Run reps repetitions of floor and subject, alternating which goes first.

    Each callable runs one timed repetition and returns its per-op time in ns
    (it times itself, so untimed work stays out).  setup, if given, runs
    untimed before every subject repetition."""
    fs: list[float] = []
    ss: list[float] = []
    for i in range(reps):
        if i & 1:
            fs.append(floor())
            if setup is not None:
                setup()
            ss.append(subject())
        else:
            if setup is not None:
                setup()
            ss.append(subject())
            fs.append(floor())
    return fs, ss


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def timed_run(cfg, clock=None):
    """(seconds, allocations, run result) of one Runtime run, construction
    excluded, by `clock` (default wall time; time.process_time for the whole
    process's CPU); a run that ends with an error fails the benchmark."""
    import time

    from concalloc.runtime import Runtime
    clock = clock or time.perf_counter
    with Runtime(cfg) as rt:
        t0 = clock()
        res = rt.run()
        dt = clock() - t0
    if res.error is not None:
        raise RuntimeError(f"benchmark run failed: {res.error}")
    return dt, sum(m["allocs"] for m in res.mutators.values()), res
