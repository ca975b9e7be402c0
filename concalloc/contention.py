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


def run_cell(cfg, procs: int, cache: bool, rep: int = 0):
    """One run of the grid: (rows, interrupted).  A run's own error is raised."""
    from .demo import run_interruptibly
    cell = cfg.replace(procs=procs, mutators=None, lock_stats=True, seed=cfg.seed + rep)
    with Runtime(cell, cache=cache) as rt:
        res, interrupted = run_interruptibly(rt)
    if interrupted:
        return [], True
    if res.error is not None:   # the run's own error (a Violation exits 1, as in `run`)
        res.error.add_note(f"in the contention grid's run with {procs} Ps, cache {'on' if cache else 'off'}")
        raise res.error
    allocs = sum(m["allocs"] for m in res.mutators.values())
    clock = "virtual" if res.vtime else ("wall" if cfg.scheduler == "os" else "steps")
    # throughput over the run's own clock: virtual seconds under vtime, else wall seconds
    seconds = res.vtime["makespan_ns"] * 1e-9 if res.vtime else res.elapsed
    rows = []
    for cls, st in sorted(res.locks.get("classes", {}).items()):
        acq, cont = st["acquisitions"], st["contended"]
        rows.append({
            "procs": procs, "cache": "on" if cache else "off", "rep": rep, "seed": cell.seed,
            "lock_class": cls, "acquisitions": acq, "contended": cont,
            "contention_rate": cont / acq if acq else 0.0,
            "contended_per_1000": 1000 * cont / allocs if allocs else 0.0,
            "mean_wait": st["wait_total"] / cont if cont else None,     # never contended: no wait
            "wait_total": st["wait_total"], "unit": res.locks.get("unit", "ns"), "clock": clock,
            "allocs": allocs, "allocs_per_s": allocs / seconds if seconds else 0.0,
            "acq_per_alloc": acq / allocs if allocs else 0.0,
        })
    return rows, False


def run_grid(cfg, procs_list, cache_list, repeat: int = 1, progress: bool = True):
    """Every (cache, procs, rep) run in turn: (rows, interrupted)."""
    cells = [(c, p, r) for c in cache_list for p in procs_list for r in range(repeat)]
    rows: list[dict] = []
    t0 = time.monotonic()
    for i, (cache, procs, rep) in enumerate(cells):
        if progress and shows("info"):
            spent = time.monotonic() - t0
            eta = f", ETA {spent / i * (len(cells) - i):.0f} s" if i else ""
            logger.info("[{}/{}] {} Ps, cache {}{}{}", i + 1, len(cells), procs, "on" if cache else "off",
                        f", run {rep + 1}/{repeat}" if repeat > 1 else "", eta)
        got, interrupted = run_cell(cfg, procs, cache, rep)
        if interrupted:
            return rows, True
        rows.extend(got)
    return rows, False


def aggregate(rows: list[dict]) -> list[dict]:
    """One point per (lock class, cache, procs): each metric's mean and standard deviation
    over the runs (mean_wait over the runs that had a contended acquisition)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["lock_class"], r["cache"], r["procs"]), []).append(r)
    out = []
    for (cls, cache, procs), rs in groups.items():
        pt = {"lock_class": cls, "cache": cache, "procs": procs, "runs": len(rs), "unit": rs[0]["unit"],
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


def grid_table(rows: list[dict], classes=CLASSES, scheduler: str = "os") -> str:
    """Means per point.  allocs/s only under the os scheduler (elsewhere it is wall-clock noise)."""
    shown = [p for p in aggregate(rows) if p["lock_class"] in classes]
    shown.sort(key=lambda p: (classes.index(p["lock_class"]), p["cache"] != "on", p["procs"]))
    wall = scheduler == "os"
    body = []
    for p in shown:
        sd = f" ±{100 * p['contention_rate_sd']:.2f}" if p["runs"] > 1 else ""
        body.append([p["lock_class"], p["cache"], p["procs"], f"{p['acquisitions']:,.0f}",
                     f"{p['contended']:,.0f}", f"{100 * p['contention_rate']:.2f}%{sd}",
                     duration(p["mean_wait"], p["unit"]) if p["mean_wait"] is not None else "never",
                     f"{p['acq_per_alloc']:.4f}"] + ([f"{p['allocs_per_s']:,.0f}"] if wall else []))
    clock = rows[0].get("clock", "wall") if rows else "wall"
    if clock == "virtual":     # virtual time is a real clock for throughput
        wall = True
        for p, line in zip(shown, body):
            line.append(f"{p['allocs_per_s']:,.0f}")
    headers = ["lock class", "cache", "Ps", "acquired", "contended", "rate", "mean wait", "acq/alloc"]
    per_s = "allocs/vs" if clock == "virtual" else "allocs/s"
    return table(headers + ([per_s] if wall else []), body,
                 title=f"lock contention by lock class ({clock} clock)", left=2)


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def json_doc(rows: list[dict], cfg) -> dict:
    return {"format": CONTENTION_FORMAT, "format_version": CONTENTION_VERSION,
            "config": run_config_dict(cfg, None), "rows": rows, "points": aggregate(rows)}


def write_json(rows: list[dict], cfg, path: str) -> None:
    with open(path, "w") as f:
        json.dump(json_doc(rows, cfg), f, indent=1)


def plot(rows: list[dict], path: str, title: str, classes=CLASSES) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = aggregate(rows)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.9))
    unit = rows[0]["unit"] if rows else "ns"
    longest = max((p["mean_wait"] for p in points if p["mean_wait"] is not None), default=0)
    wait_scale, wait_unit = ((1e6, "ms") if longest >= 1e6 else (1e3, "µs")) if unit == "ns" else (1, unit)
    panels = (("contention_rate", 100, "contended / all acquisitions (%)", "contention rate"),
              ("contended_per_1000", 1, "contended acquisitions per 1000 allocations",
               "contention per allocation"),
              ("mean_wait", 1 / wait_scale, f"mean wait per contended acquisition ({wait_unit})", "mean wait"))
    never = None
    for ci, cls in enumerate(classes):
        for cache, style in (("on", "-"), ("off", "--")):
            pts = sorted((p for p in points if p["lock_class"] == cls and p["cache"] == cache),
                         key=lambda p: p["procs"])
            if not pts:
                continue
            xs = [p["procs"] for p in pts]
            color = f"C{ci * 2 + (cache == 'off')}"
            for ax, (key, scale, _, _) in zip(axes, panels):
                ys = [p[key] * scale if p[key] is not None else math.nan for p in pts]
                err = [p[key + "_sd"] * scale if p[key] is not None else 0.0 for p in pts]
                ax.errorbar(xs, ys, yerr=err if any(err) else None, fmt=style, marker="o", color=color,
                            capsize=3, label=f"{cls}, cache {cache}")
                hollow = [x for x, p in zip(xs, pts) if p[key] is None]
                if hollow:
                    never = ax.plot(hollow, [0] * len(hollow), linestyle="none", marker="o", markersize=9,
                                    markerfacecolor="none", markeredgecolor=color, clip_on=False)[0]
    xlabel = "Ps (GOMAXPROCS, all running mutators)"
    procs = sorted({r["procs"] for r in rows}) or [1]
    for ax, (_, _, ylabel, name) in zip(axes, panels):
        ax.set(xlabel=xlabel, ylabel=ylabel, title=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(procs, [str(p) for p in procs])
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if never is not None:
        from matplotlib.lines import Line2D
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                              markeredgecolor="grey", markersize=9))
        labels.append("never contended (no wait to show)")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(rows: list[dict], cfg, paths: dict, title: str) -> dict:
    write_csv(rows, paths["csv"])
    write_json(rows, cfg, paths["json"])
    plot(rows, paths["png"], title)
    return paths
