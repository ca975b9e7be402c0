"""The contention experiment: how the per-P cache changes lock contention.

For each number of Ps and each cache setting (on: Go's mcache in front of
the mcentrals; off: every small allocation takes its mcentral lock), run the
same workload with every P a mutator and collect, per lock class (mcentral,
mheap, ...), acquisitions, contended acquisitions, the contention rate and
the mean wait of a contended acquisition.  The grid becomes a terminal
table, CSV, JSON and a PNG plot.
"""

from __future__ import annotations

import csv
import json
import os

from .report import table
from .runtime import Runtime

CLASSES = ("mcentral", "mheap")


def run_cell(cfg, procs: int, cache: bool) -> list[dict]:
    cell = cfg.replace(procs=procs, mutators=None, lock_stats=True)
    with Runtime(cell, cache=cache) as rt:
        res = rt.run()
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
            "procs": procs, "cache": "on" if cache else "off", "lock_class": cls,
            "acquisitions": acq, "contended": cont,
            "contention_rate": cont / acq if acq else 0.0,
            "mean_wait": st["wait_total"] / cont if cont else 0.0,
            "wait_total": st["wait_total"], "unit": res.locks.get("unit", "ns"), "clock": clock,
            "allocs": allocs, "allocs_per_s": allocs / seconds if seconds else 0.0,
            "acq_per_alloc": acq / allocs if allocs else 0.0,
        })
    return rows


def run_grid(cfg, procs_list, cache_list, progress=None) -> list[dict]:
    rows = []
    for cache in cache_list:
        for procs in procs_list:
            if progress:
                progress(f"running {procs} Ps, cache {'on' if cache else 'off'} ...")
            rows.extend(run_cell(cfg, procs, cache))
    return rows


def grid_table(rows: list[dict], classes=CLASSES) -> str:
    shown = [r for r in rows if r["lock_class"] in classes]
    body = [[r["lock_class"], r["cache"], r["procs"], f"{r['acquisitions']:,}", f"{r['contended']:,}",
             f"{100 * r['contention_rate']:.2f}%", f"{r['mean_wait']:,.0f} {r['unit']}",
             f"{r['acq_per_alloc']:.4f}", f"{r['allocs_per_s']:,.0f}"] for r in shown]
    clock = rows[0].get("clock", "wall") if rows else "wall"
    per_s = "allocs/vs" if clock == "virtual" else "allocs/s"
    return table(["lock class", "cache", "Ps", "acquired", "contended", "rate", "mean wait",
                  "acq/alloc", per_s], body,
                 title=f"lock contention by lock class ({clock} clock)")


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_json(rows: list[dict], cfg, path: str) -> None:
    with open(path, "w") as f:
        json.dump({"config": cfg.to_dict(), "rows": rows}, f, indent=1)


def plot(rows: list[dict], path: str, title: str, classes=CLASSES) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_per, ax_wait) = plt.subplots(1, 3, figsize=(15, 4.4))
    styles = {"on": "-", "off": "--"}
    unit = rows[0]["unit"] if rows else "ns"
    wait_scale, wait_unit = (1000, "µs") if unit == "ns" else (1, unit)
    for cls in classes:
        for cache in ("on", "off"):
            pts = sorted((r["procs"], r) for r in rows if r["lock_class"] == cls and r["cache"] == cache)
            if not pts:
                continue
            xs = [p for p, _ in pts]
            label = f"{cls}, cache {cache}"
            ax_rate.plot(xs, [100 * r["contention_rate"] for _, r in pts], styles[cache], marker="o", label=label)
            ax_per.plot(xs, [1000 * r["contended"] / r["allocs"] if r["allocs"] else 0 for _, r in pts],
                        styles[cache], marker="o", label=label)
            ax_wait.plot(xs, [r["mean_wait"] / wait_scale for _, r in pts], styles[cache], marker="o", label=label)
    xlabel = "Ps (GOMAXPROCS, all running mutators)"
    ax_rate.set(xlabel=xlabel, ylabel="contended / all acquisitions (%)", title="contention rate")
    ax_per.set(xlabel=xlabel, ylabel="contended acquisitions per 1000 allocations",
               title="contention per allocation")
    clock = rows[0].get("clock", "wall") if rows else "wall"
    ax_wait.set(xlabel=xlabel, ylabel=f"mean wait per contended acquisition ({clock} {wait_unit})",
                title=f"mean wait ({clock} clock)")
    procs = sorted({r["procs"] for r in rows})
    for ax in (ax_rate, ax_per, ax_wait):
        ax.set_xscale("log", base=2)
        ax.set_xticks(procs, [str(p) for p in procs])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(rows: list[dict], cfg, outdir: str, title: str) -> dict:
    os.makedirs(outdir, exist_ok=True)
    paths = {k: os.path.join(outdir, f"contention.{k}") for k in ("csv", "json", "png")}
    write_csv(rows, paths["csv"])
    write_json(rows, cfg, paths["json"])
    plot(rows, paths["png"], title)
    return paths
