"""Virtual-time benchmarks: what the vtime scheduler costs, and how right it is.

vtime.overhead_ratio   wall time of one bounded run (4 Ps, ring, fixed
                       steps) under --scheduler vtime vs the same run under
                       the `random` controlled scheduler.  Target <= 1.5.
vtime.model_error      the largest relative error of the simulated lock loop
                       against the machine-repairman closed forms (throughput,
                       contention, mean wait) over repairman.CASES.  Target
                       <= 0.10.  Deterministic: no timing enters it.

Both sides of the ratio are measured alternately in the same process and
each side's median is used; heap checks are off (heapcheck=0).
"""

from __future__ import annotations

from concalloc import repairman

from .bench_runtime import BASE, _timed_run
from .common import interleave, median, progress


def overhead_ratio(reps: int, steps: int) -> dict:
    rnd = BASE.replace(scheduler="random", steps=steps)
    vt = BASE.replace(scheduler="vtime", steps=steps)
    fs, ss = interleave(lambda: _timed_run(rnd)[0] * 1e9, lambda: _timed_run(vt)[0] * 1e9, reps)
    return {"vtime.overhead_ratio": median(ss) / median(fs),
            "vtime.random_run_ms": median(fs) / 1e6, "vtime.vtime_run_ms": median(ss) / 1e6}


def model_error(cycles: int) -> dict:
    out = repairman.model_error(cycles=cycles)
    figs = {"vtime.model_error": out["max_error"]}
    for r in out["rows"]:
        n, h, w = r["case"]
        figs[f"vtime.model_error_n{n}_h{h}_w{w}"] = max(r["error"].values())
    return figs


def run(quick: bool = False) -> dict:
    reps = 3 if quick else 7
    progress("vtime: vtime vs random controlled run")
    out = overhead_ratio(reps, steps=500 if quick else 1500)
    progress("vtime: lock loop vs the machine-repairman closed forms")
    out.update(model_error(cycles=1000 if quick else 3000))
    return out
