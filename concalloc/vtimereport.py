"""Where virtual time went: the `--vtime-report` table and PNG.

Reads the ``vtime`` part of a run's result (VtimeScheduler.summary): each
thread's clock split into the cost-table keys that were charged to it (work)
and the waits its clock jumped over ("wait mcentral.lock", ...), flame-style:
one bar per thread, one segment per key, longest first.
"""

from __future__ import annotations

from .report import table


def _fmt_ns(ns: float) -> str:
    for unit, f in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= f:
            return f"{ns / f:,.2f} {unit}"
    return f"{ns:,.0f} ns"


def summary_line(vt: dict, mutators: dict) -> str:
    allocs = sum(m["allocs"] for m in mutators.values())
    knobs = vt["costs"]["knobs"]
    return (f"virtual time: {_fmt_ns(vt['makespan_ns'])} makespan, {allocs:,} allocations = "
            f"{vt['allocs_per_vs']:,.0f} allocs per virtual second; GC CPU fraction "
            f"{vt['gc_cpu_fraction']:.4f}; cost table {vt['costs']['source']} ({vt['costs']['digest']})"
            + (f", knobs {' '.join(knobs)}" if knobs else ""))


def breakdown_rows(vt: dict, top: int = 8) -> list[list]:
    rows = []
    for name, t in vt["threads"].items():
        clock = t["clock_ns"] or 1
        for i, (key, ns) in enumerate(t["by_key"].items()):
            if i >= top:
                break
            rows.append([name if i == 0 else "", _fmt_ns(t["clock_ns"]) if i == 0 else "",
                         key, _fmt_ns(ns), f"{100 * ns / clock:.1f}%"])
    return rows


def breakdown_table(vt: dict, top: int = 8) -> str:
    return table(["thread", "clock", "key", "virtual time", "of clock"], breakdown_rows(vt, top),
                 title=f"where virtual time went (top {top} keys per thread; 'wait ...' = blocked)")


def breakdown_png(vt: dict, path: str, top: int = 10) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = list(vt["threads"].items())
    keys: dict[str, float] = {}
    for _, t in threads:
        for k, ns in t["by_key"].items():
            keys[k] = keys.get(k, 0.0) + ns
    shown = [k for k, _ in sorted(keys.items(), key=lambda kv: -kv[1])[:top]]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(threads) + 1.8))
    cmap = plt.get_cmap("tab20")
    names = [n for n, _ in threads]
    left = [0.0] * len(threads)
    for i, k in enumerate(shown + ["other"]):
        vals = []
        for _, t in threads:
            by = t["by_key"]
            v = by.get(k, 0.0) if k != "other" else sum(ns for kk, ns in by.items() if kk not in shown)
            vals.append(v / 1e3)
        hatch = "//" if k.startswith("wait") else None
        ax.barh(names, vals, left=left, color=cmap(i % 20), hatch=hatch, label=k, edgecolor="white")
        left = [a + b for a, b in zip(left, vals)]
    ax.invert_yaxis()
    ax.set_xlabel("virtual µs (hatched: blocked, the clock jumped)")
    ax.set_title(f"where virtual time went per thread; makespan {_fmt_ns(vt['makespan_ns'])}, "
                 f"cost table {vt['costs']['source']}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
