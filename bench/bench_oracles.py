"""What the oracles cost when on (docs/invariants.md).  No targets: figures to read.

    oracles.ring_ratio        a free (os) run with gccheckmark=1, 2 Ps, ring:
                              with the RingRecorder that keeps each thread's
                              last events for a violation record, over the
                              same run with no recorder (what every run
                              without an oracle has: the ring's cost when
                              off is nil by construction, there is no recorder).
    oracles.wbshadow_ratio    a controlled graph run (2 Ps, cycles back to
                              back) with wbshadow=1 over without.
    oracles.heapcheck2_ratio  the same run with heapcheck=2 (the strong
                              tricolour walk every cycle, the pointer oracle
                              on every load and store) over heapcheck=1.

CPU time of the process over Runtime.run (construction excluded; every
thread's, so a loaded machine's waiting is not counted), repetitions
interleaved, medians taken.
"""

from __future__ import annotations

import time

from concalloc import trace
from concalloc.config import Config

from .common import interleave, median, progress, timed_run

GiB = 1 << 30


def cpu_run(cfg: Config) -> float:
    """CPU seconds of the whole process over one run; a run that fails fails the benchmark."""
    return timed_run(cfg, clock=time.process_time)[0]


def _ring(on: bool, cfg: Config) -> float:
    real = trace.oracle_on
    trace.oracle_on = real if on else (lambda c: False)
    try:
        return cpu_run(cfg)
    finally:
        trace.oracle_on = real


def run(quick: bool = False) -> dict:
    reps = 3 if quick else 7
    out = {}
    progress("oracles: the events' ring under os")
    free = Config(procs=2, steps=5000 if quick else 20000, gccheckmark=True, reserve_bytes=GiB)
    off, on = interleave(lambda: _ring(False, free), lambda: _ring(True, free), reps)
    out["oracles.ring_ratio"] = median(on) / median(off)
    ctl = dict(procs=2, workload="graph", steps=150 if quick else 300, live=32, scheduler="random", seed=1,
               gogc=-1, memory_limit=0, reserve_bytes=GiB)
    for name, change in (("wbshadow", {"wbshadow": True}), ("heapcheck2", {"heapcheck": 2})):
        progress(f"oracles: {name} on a controlled run")
        base, subject = Config(**ctl), Config(**ctl, **change)
        a, b = interleave(lambda: cpu_run(base), lambda: cpu_run(subject), reps)
        out[f"oracles.{name}_ratio"] = median(b) / median(a)
    return out
