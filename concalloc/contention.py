"""The contention experiment: how the per-P cache changes lock contention.

For each number of Ps and each cache setting (on: Go's mcache in front of
the mcentrals; off: every small allocation takes its mcentral lock), run the
same workload with every P a mutator, `repeat` times (seeds seed, seed+1,
...), and collect, per lock class (mcentral, mheap, ...), acquisitions,
contended acquisitions, the contention rate and the mean wait of a
contended acquisition.  The grid becomes a terminal table, CSV (one row per
run), JSON (runs and per-point means with standard deviations) and a PNG
plot (means, error bars of one standard deviation when repeat > 1; a lock
class that was never contended has no mean wait, drawn as a hollow marker
on the axis rather than as a 0 wait).

With --gogc 50,100,off the grid gains a third axis, GC pressure: every
(cache, Ps) cell runs once per GOGC value, and the table then shows every
lock class, the collector's too (the sweeper, the mark workers and the
stop-the-world machinery take locks: sweep, work.full, gc.ctl, gc.bgwork,
worldsema, sched), with the cycles each run made.  Rows and points carry
`gogc` (as Config has it: -1 is off) and `num_gc`; the plot has one row of
panels per GOGC value.  Without --gogc the grid is Ps x cache at GOGC 100.

Output paths are checked before the first run (check_outputs); progress
says which run of how many and the ETA; Ctrl-C keeps the runs that finished.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import time

from .log import logger, shows
from .report import duration, table
from .runconfig import CONTENTION_FORMAT, CONTENTION_VERSION, run_config_dict
from .runtime import Runtime

CLASSES = ("mcentral", "mheap")
OUTPUTS = ("csv", "json", "png")
METRICS = ("contention_rate", "contended_per_1000", "mean_wait")


def check_outputs(outdir: str) -> dict:
    """Make the output directory and check each output file can be written, before any run."""
    from .config import ConfigError
    from .demo import check_writable
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise ConfigError("out", f"cannot make the directory {outdir!r}: {e.strerror or e}") from None
    paths = {k: os.path.join(outdir, f"contention.{k}") for k in OUTPUTS}
    for p in paths.values():
        check_writable(p, "out")
    return paths


def gogc_text(gogc: int) -> str:
    return "off" if gogc < 0 else str(gogc)


def run_cell(cfg, procs: int, cache: bool, rep: int = 0, gogc: int | None = None):
    """One run of the grid (at GOGC `gogc`, or cfg's): (rows, interrupted).  A run's own error is raised."""
    from .demo import run_interruptibly
    cell = cfg.replace(procs=procs, mutators=None, lock_stats=True, seed=cfg.seed + rep,
                       gogc=cfg.gogc if gogc is None else gogc)
    with Runtime(cell, cache=cache) as rt:
        res, interrupted = run_interruptibly(rt)
    if interrupted:
        return [], True
    if res.error is not None:   # the run's own error (a Violation exits 1, as in `run`)
        res.error.add_note(f"in the contention grid's run with {procs} Ps, cache {'on' if cache else 'off'}, "
                           f"GOGC {gogc_text(cell.gogc)}")
        raise res.error
    allocs = sum(m["allocs"] for m in res.mutators.values())
    clock = "virtual" if res.vtime else ("wall" if cfg.scheduler == "os" else "steps")
    # throughput over the run's own clock: virtual seconds under vtime, else wall seconds
    seconds = res.vtime["makespan_ns"] * 1e-9 if res.vtime else res.elapsed
    num_gc = res.gc.get("num_gc", 0)
    rows = []
    for cls, st in sorted(res.locks.get("classes", {}).items()):
        acq, cont = st["acquisitions"], st["contended"]
        rows.append({
            "procs": procs, "cache": "on" if cache else "off", "gogc": cell.gogc, "rep": rep, "seed": cell.seed,
            "lock_class": cls, "acquisitions": acq, "contended": cont,
            "contention_rate": cont / acq if acq else 0.0,
            "contended_per_1000": 1000 * cont / allocs if allocs else 0.0,
            "mean_wait": st["wait_total"] / cont if cont else None,     # never contended: no wait
            "wait_total": st["wait_total"], "unit": res.locks.get("unit", "ns"), "clock": clock,
            "allocs": allocs, "allocs_per_s": allocs / seconds if seconds else 0.0,
            "acq_per_alloc": acq / allocs if allocs else 0.0, "num_gc": num_gc,
        })
    return rows, False


def run_grid(cfg, procs_list, cache_list, repeat: int = 1, progress: bool = True, gogc_list=None):
    """Every (gogc, cache, procs, rep) run in turn: (rows, interrupted).  gogc_list
    defaults to cfg's one GOGC."""
    gogcs = [cfg.gogc] if gogc_list is None else list(gogc_list)
    cells = [(g, c, p, r) for g in gogcs for c in cache_list for p in procs_list for r in range(repeat)]
    rows: list[dict] = []
    t0 = time.monotonic()
    for i, (gogc, cache, procs, rep) in enumerate(cells):
        if progress and shows("info"):
            spent = time.monotonic() - t0
            eta = f", ETA {spent / i * (len(cells) - i):.0f} s" if i else ""
            logger.info("[{}/{}] {} Ps, cache {}{}{}{}", i + 1, len(cells), procs, "on" if cache else "off",
                        f", GOGC {gogc_text(gogc)}" if len(gogcs) > 1 else "",
                        f", run {rep + 1}/{repeat}" if repeat > 1 else "", eta)
        got, interrupted = run_cell(cfg, procs, cache, rep, gogc)
        if interrupted:
            return rows, True
        rows.extend(got)
    return rows, False


def aggregate(rows: list[dict]) -> list[dict]:
    """One point per (lock class, cache, procs, gogc): each metric's mean and standard deviation
    over the runs (mean_wait over the runs that had a contended acquisition)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["lock_class"], r["cache"], r["procs"], r.get("gogc", 100)), []).append(r)
    out = []
    for (cls, cache, procs, gogc), rs in groups.items():
        pt = {"lock_class": cls, "cache": cache, "procs": procs, "gogc": gogc, "runs": len(rs),
              "unit": rs[0]["unit"], "num_gc": sum(r.get("num_gc", 0) for r in rs) / len(rs),
              "acquisitions": sum(r["acquisitions"] for r in rs) / len(rs),
              "contended": sum(r["contended"] for r in rs) / len(rs),
              "acq_per_alloc": sum(r["acq_per_alloc"] for r in rs) / len(rs),
              "allocs_per_s": sum(r["allocs_per_s"] for r in rs) / len(rs)}
        for m in METRICS:
            vals = [r[m] for r in rs if r[m] is not None]
            pt[m] = statistics.fmean(vals) if vals else None
            pt[m + "_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(pt)
    return out


def gogc_order(gogc: int) -> tuple:
    """Increasing GC pressure read right to left: 50, 100, ..., off last."""
    return (gogc < 0, gogc)


def all_classes(rows: list[dict]) -> tuple:
    """CLASSES first, then every other lock class taken at least once, by name: what the
    table shows on the GOGC axis."""
    return CLASSES + tuple(sorted({r["lock_class"] for r in rows if r["acquisitions"]} - set(CLASSES)))


def grid_table(rows: list[dict], classes=CLASSES, scheduler: str = "os", gc_axis: bool = False) -> str:
    """Means per point.  allocs/s only under the os scheduler (elsewhere it is wall-clock noise).
    gc_axis (--gogc given): a GOGC column and the cycles per run (GCs)."""
    shown = [p for p in aggregate(rows) if p["lock_class"] in classes]
    shown.sort(key=lambda p: (classes.index(p["lock_class"]), p["cache"] != "on", gogc_order(p["gogc"]),
                              p["procs"]))
    wall = scheduler == "os"
    body = []
    for p in shown:
        sd = f" ±{100 * p['contention_rate_sd']:.2f}" if p["runs"] > 1 else ""
        gc = [gogc_text(p["gogc"])] if gc_axis else []
        body.append([p["lock_class"], p["cache"]] + gc + [p["procs"], f"{p['acquisitions']:,.0f}",
                     f"{p['contended']:,.0f}", f"{100 * p['contention_rate']:.2f}%{sd}",
                     duration(p["mean_wait"], p["unit"]) if p["mean_wait"] is not None else "never",
                     f"{p['acq_per_alloc']:.4f}"] + ([f"{p['num_gc']:,.0f}"] if gc_axis else []))
    clock = rows[0].get("clock", "wall") if rows else "wall"
    if clock == "virtual":     # virtual time is a real clock for throughput
        wall = True
    for p, line in zip(shown, body):
        if wall:
            line.append(f"{p['allocs_per_s']:,.0f}")
    headers = (["lock class", "cache"] + (["GOGC"] if gc_axis else []) +
               ["Ps", "acquired", "contended", "rate", "mean wait", "acq/alloc"] + (["GCs"] if gc_axis else []))
    per_s = "allocs/vs" if clock == "virtual" else "allocs/s"
    return table(headers + ([per_s] if wall else []), body,
                 title=f"lock contention by lock class ({clock} clock)", left=3 if gc_axis else 2)


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def json_doc(rows: list[dict], cfg) -> dict:
    """The JSON: its "gogc" lists the GOGC axis's values (-1 is off), as the rows have them."""
    gogcs = sorted({r.get("gogc", cfg.gogc) for r in rows}, key=gogc_order) or [cfg.gogc]
    return {"format": CONTENTION_FORMAT, "format_version": CONTENTION_VERSION,
            "config": run_config_dict(cfg, None), "gogc": gogcs, "rows": rows, "points": aggregate(rows)}


def write_json(rows: list[dict], cfg, path: str) -> None:
    with open(path, "w") as f:
        json.dump(json_doc(rows, cfg), f, indent=1)


def plot(rows: list[dict], path: str, title: str, classes=CLASSES) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = aggregate(rows)
    gogcs = sorted({p["gogc"] for p in points}, key=gogc_order) or [100]
    height = 0.5 + 4.4 * len(gogcs)      # inches: one row of panels per GOGC value, and the legend
    fig, grid = plt.subplots(len(gogcs), 3, figsize=(15, height), squeeze=False)
    unit = rows[0]["unit"] if rows else "ns"
    longest = max((p["mean_wait"] for p in points if p["mean_wait"] is not None), default=0)
    wait_scale, wait_unit = ((1e6, "ms") if longest >= 1e6 else (1e3, "µs")) if unit == "ns" else (1, unit)
    panels = (("contention_rate", 100, "contended / all acquisitions (%)", "contention rate"),
              ("contended_per_1000", 1, "contended acquisitions per 1000 allocations",
               "contention per allocation"),
              ("mean_wait", 1 / wait_scale, f"mean wait per contended acquisition ({wait_unit})", "mean wait"))
    never = None
    for axes, gogc in zip(grid, gogcs):
        never = _plot_row(axes, [p for p in points if p["gogc"] == gogc], panels, classes) or never
    xlabel = "Ps (GOMAXPROCS, all running mutators)"
    procs = sorted({r["procs"] for r in rows}) or [1]
    for axes, gogc in zip(grid, gogcs):
        for ax, (_, _, ylabel, name) in zip(axes, panels):
            ax.set(xlabel=xlabel, ylabel=ylabel, title=name + (f", GOGC {gogc_text(gogc)}" if len(gogcs) > 1 else ""))
            ax.set_xscale("log", base=2)
            ax.set_xticks(procs, [str(p) for p in procs])
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
    handles, labels = grid[0][0].get_legend_handles_labels()
    if never is not None:
        from matplotlib.lines import Line2D
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                              markeredgecolor="grey", markersize=9))
        labels.append("never contended (no wait to show)")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.34 / height, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_row(axes, points: list[dict], panels, classes):
    """One row of panels (one GOGC value): a line per (lock class, cache).  Returns the
    last "never contended" marker drawn, for the legend (or None)."""
    never = None
    for ci, cls in enumerate(classes):
        for cache, style in (("on", "-"), ("off", "--")):
            pts = sorted((p for p in points if p["lock_class"] == cls and p["cache"] == cache),
                         key=lambda p: p["procs"])
            if not pts:
                continue
            xs = [p["procs"] for p in pts]
            color = f"C{(ci * 2 + (cache == 'off')) % 10}"
            for ax, (key, scale, _, _) in zip(axes, panels):
                ys = [p[key] * scale if p[key] is not None else math.nan for p in pts]
                err = [p[key + "_sd"] * scale if p[key] is not None else 0.0 for p in pts]
                ax.errorbar(xs, ys, yerr=err if any(err) else None, fmt=style, marker="o", color=color,
                            capsize=3, label=f"{cls}, cache {cache}")
                hollow = [x for x, p in zip(xs, pts) if p[key] is None]
                if hollow:
                    never = ax.plot(hollow, [0] * len(hollow), linestyle="none", marker="o", markersize=9,
                                    markerfacecolor="none", markeredgecolor=color, clip_on=False)[0]
    return never


def plot_classes(rows: list[dict], extra: int = 2) -> tuple:
    """CLASSES and the `extra` other lock classes with the most contended acquisitions
    (then the most acquisitions): the plot's lines on the GOGC axis, which every class
    would crowd."""
    totals: dict[str, list[int]] = {}
    for r in rows:
        if r["lock_class"] not in CLASSES:
            t = totals.setdefault(r["lock_class"], [0, 0])
            t[0] += r["contended"]
            t[1] += r["acquisitions"]
    busiest = sorted(totals, key=lambda c: (-totals[c][0], -totals[c][1], c))[:extra]
    return CLASSES + tuple(busiest)


def write_outputs(rows: list[dict], cfg, paths: dict, title: str, classes=CLASSES) -> dict:
    write_csv(rows, paths["csv"])
    write_json(rows, cfg, paths["json"])
    plot(rows, paths["png"], title, classes)
    return paths
