"""Search benchmarks on the `weave` scenario (go-weave's barrier model, issue 7).

stress.weave_runs_per_min         controlled runs of weave per minute, each built,
                                  run and closed in this process (one core: the
                                  GIL), hybrid barrier, checkmark on.  Target >= 1000.
stress.weave_run_ms               the same, as milliseconds per run.
stress.weave_first_loss.<cell>    for each unsafe cell (none+concurrent,
                                  dijkstra+concurrent, yuasa+concurrent): the
                                  median, over SEARCHES independent searches, of
                                  the runs up to and including the first lost
                                  object.  The searches are SCREENED: a seed whose
                                  program weave's screen proves loss-free under the
                                  cell's barrier (concalloc/workloads/weave_screen.py)
                                  is not run and not counted as a run.  The search
                                  uses the screen's LIKELY tier (weave_screen.can_lose:
                                  only programs that can lose when the mark ends
                                  after both mutators' last writes, a heuristic
                                  that also skips programs losing only in rare
                                  endings; dijkstra's sound screen keeps 4x as
                                  many programs that lose 4x less often).  A search
                                  that finds no loss within CAP runs or PROGRAMS
                                  programs counts as CAP + 1.  Target <= 60.
                                  These searches use go-weave's drain order
                                  (--mark-order weave: root jobs and grey objects
                                  in any order, as go-weave's collector drains;
                                  Go's roots-first order shuts Yuasa's heap route
                                  on this world), and per cell the
                                  scheduler that lost most often on the programs
                                  the screen keeps (UNSAFE; measured in
                                  docs/barrier-study.md): sticky-random for none
                                  and yuasa, random for dijkstra.
stress.weave_first_loss_programs.<cell>  the median programs (seeds) drawn up to
                                  and including the first loss, screened-out ones
                                  included (a capped search: all it drew).
stress.weave_first_loss_seconds.<cell>  the median seconds to the first loss
                                  (screening and runs; a capped search: all of it).
stress.weave_first_loss_capped.<cell>  searches that hit the cap (0 when every
                                  search found a loss).
stress.weave_safe_runs            runs made in the three safe cells (hybrid +
                                  concurrent, dijkstra + rescan, yuasa +
                                  stw-snapshot) ...
stress.weave_safe_lost            ... and the objects they lost.  Target 0.
                                  The safe cells are NOT screened: every seed runs.

Search j uses seeds j*SEED_STRIDE + 1, + 2, ...  The figures are counts of
runs, not times (but the seconds): they do not depend on the machine, only on
the scheduler and the collector.  WEAVE is the configuration of the rate and
safe-cell figures; the first-loss searches use FIRST_LOSS (WEAVE in go-weave's
drain order) with UNSAFE's scheduler.  docs/barrier-study.md says why the
search screens programs: most of weave's random programs lose under no
schedule at all, and the screen proves it of 90-99% of them without running
them.
"""

from __future__ import annotations

import statistics
import time

from concalloc.config import Config
from concalloc.runtime import Runtime
from concalloc.runresult import EXIT_OK, EXIT_VIOLATION
from concalloc.workloads.weave import screen
from concalloc.workloads.weave_screen import verdicts

from .common import progress

WEAVE = Config(procs=2, workload="weave", scheduler="random", gccheckmark=True, reserve_bytes=64 << 20)
FIRST_LOSS = WEAVE.replace(mark_order="weave")   # go-weave's drain order (module comment)
UNSAFE = (("none", "concurrent", {"scheduler": "sticky-random"}),
          ("dijkstra", "concurrent", {"scheduler": "random"}),
          ("yuasa", "concurrent", {"scheduler": "sticky-random"}))
SAFE = (("hybrid", "concurrent"), ("dijkstra", "rescan"), ("yuasa", "stw-snapshot"))
SEED_STRIDE = 100_000


def one_run(cfg: Config):
    with Runtime(cfg) as rt:
        return rt.run()


def runs_per_min(n: int) -> dict:
    cfg = WEAVE.replace(barrier="hybrid")
    one_run(cfg.replace(seed=0))                  # imports and first-use costs out of the timing
    t0 = time.perf_counter()
    for seed in range(1, n + 1):
        res = one_run(cfg.replace(seed=seed))
        if res.exit_code != EXIT_OK:
            raise RuntimeError(f"weave hybrid seed {seed}: {res.error}")
    dt = time.perf_counter() - t0
    return {"stress.weave_runs_per_min": 60 * n / dt, "stress.weave_run_ms": 1000 * dt / n}


def first_loss(barrier: str, stack_scan: str, sched: dict, search: int, cap: int,
               programs: int) -> tuple[int, int, float]:
    """Search `search`, screened: (runs, programs drawn, seconds) up to and including
    its first lost object; runs = cap + 1 if none within cap runs or `programs` programs.
    sched: the cell's scheduler settings (Config fields)."""
    cfg = FIRST_LOSS.replace(barrier=barrier, stack_scan=stack_scan, **sched)
    t0 = time.perf_counter()
    runs = 0
    for k in range(1, programs + 1):
        c = cfg.replace(seed=search * SEED_STRIDE + k)
        if not screen(c, likely=True):
            continue
        runs += 1
        res = one_run(c)
        if res.exit_code == EXIT_VIOLATION:
            return runs, k, time.perf_counter() - t0
        if res.exit_code != EXIT_OK:
            raise RuntimeError(f"weave {barrier}+{stack_scan} seed {c.seed}: {res.error}")
        if runs == cap:
            return cap + 1, k, time.perf_counter() - t0
    return cap + 1, programs, time.perf_counter() - t0


def first_losses(searches: int, cap: int, programs: int) -> dict:
    out = {}
    for barrier, scan, sched in UNSAFE:
        verdicts.cache_clear()       # each cell pays for its own screening (the seconds figure)
        progress(f"stress: first loss, {barrier}+{scan} ({sched}), {searches} screened searches "
                 f"(cap {cap} runs or {programs} programs)")
        found = [first_loss(barrier, scan, sched, j, cap, programs) for j in range(1, searches + 1)]
        key = f"{barrier}_{scan}"
        out[f"stress.weave_first_loss.{key}"] = float(statistics.median(r for r, _, _ in found))
        out[f"stress.weave_first_loss_programs.{key}"] = float(statistics.median(p for _, p, _ in found))
        out[f"stress.weave_first_loss_seconds.{key}"] = round(statistics.median(t for _, _, t in found), 2)
        out[f"stress.weave_first_loss_capped.{key}"] = float(sum(1 for r, _, _ in found if r > cap))
    return out


def safe_cells(runs: int) -> dict:
    made = lost = 0
    for barrier, scan in SAFE:
        progress(f"stress: safe cell {barrier}+{scan}, {runs} runs")
        cfg = WEAVE.replace(barrier=barrier, stack_scan=scan)
        for seed in range(1, runs + 1):
            res = one_run(cfg.replace(seed=seed))
            made += 1
            if res.exit_code == EXIT_VIOLATION:
                lost += 1
                progress(f"stress: SAFE CELL LOST: {res.violations[0]['invariant']} seed {seed}")
            elif res.exit_code != EXIT_OK:
                raise RuntimeError(f"weave {barrier}+{scan} seed {seed}: {res.error}")
    return {"stress.weave_safe_runs": float(made), "stress.weave_safe_lost": float(lost)}


def run(quick: bool = False) -> dict:
    progress("stress: weave runs per minute")
    out = runs_per_min(60 if quick else 300)
    out.update(first_losses(5 if quick else 20, 60 if quick else 200, 5000 if quick else 20_000))
    out.update(safe_cells(50 if quick else 200))
    return out
