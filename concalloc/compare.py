"""compare-allocators: the survey's allocation methods beside Go's, measured.

    concalloc compare-allocators --workload churn --procs 1,2 [--methods go,bump,...]
                                 [--seconds S | --steps N] [--json] [--csv F] [--plot DIR]

runs the same workload and seed once per (method, Ps) under the OS
scheduler (real threads, lock statistics on) and reports, per run:

    allocs/s         allocations per second of wall time, all Ps together
    per CPU-s        allocations per second of this process's CPU time (every
                     thread, the collector's too): steadier than wall time on
                     a loaded machine, and under the GIL the Ps share one CPU
    outside GC       the same over the wall time outside stop-the-world
                     pauses: the allocator without its collector
    search mean/max  free blocks visited per allocation (bump: 0; segregated:
                     1 on a class-list hit; Go: not counted, its fast path
                     takes the next free slot of the P's cached span)
    int frag         bytes lost to rounding (and to headers, for the survey's
                     methods) over the bytes handed out, every allocation
    ext frag         1 - largest free block / total free, at the end
    peak heap/live   the most memory the method held (both semispaces for
                     bump) / the most bytes a collection found live
    GCs, pauses      collections, total and longest stop-the-world pause
                     (Go: its two short pauses per cycle; marking runs
                     beside the mutators)
    lock acq, cont   acquisitions of the allocator's locks and the share that
                     found them held (methods: the one global lock; Go: the
                     mcentral and mheap locks behind the per-P caches)
    copied           bytes Cheney's collector copied (bump)

Go's internal fragmentation is counted here too: the requested sizes are
tallied at the Mutator API (the same wrapper runs for every method) and
rounded by Go's size classes.  Progress goes to stderr, one line per run.
With --plot DIR: search.png (search length against live blocks and
against free blocks), fragmentation.png (over the run, at each collection)
and scaling.png (throughput and contention against Ps).
"""

from __future__ import annotations

import csv
import json
import sys
import time

from .config import ALLOCATORS, Config, ConfigError, parse_bytes
from .runtime import Runtime
from .sizeclasses import MAX_SMALL_SIZE, TINY_SIZE, class_to_size, size_to_class
from .sysmem import PAGE_SIZE

FORMAT, VERSION = "concalloc-compare-allocators", 1
COLUMNS = ("method", "procs", "allocs", "seconds", "cpu_seconds", "allocs_per_s", "allocs_per_cpu_s",
           "allocs_per_s_mutator", "search_mean", "search_max",
           "internal_frag", "external_frag", "peak_heap", "peak_live", "collections", "pause_total_ms",
           "pause_max_ms", "lock_acquisitions", "lock_contended", "contention", "bytes_copied")
SEARCH_BINS = 24
DEFAULT_STEPS = 2000      # allocations per mutator: every method makes the same ones


# --- running ----------------------------------------------------------------------------------

class _Tally:
    """Wraps a workload: every mutator's allocations are tallied by requested size
    (each mutator its own dict, merged when the run is over)."""

    def __init__(self, inner):
        self.inner = inner
        self.per_mutator: dict[str, dict] = {}    # mutator name -> its tally (one store per mutator)
        for name in ("slots", "validate", "setup"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def run(self, m, cfg):
        sizes: dict[int, int] = {}
        self.per_mutator[m.name] = sizes    # owned by m's P from here on; read when the run is over
        orig = m.alloc

        def alloc(size, typ=None):
            sizes[size] = sizes.get(size, 0) + 1
            return orig(size, typ)
        m.alloc = alloc
        self.inner.run(m, cfg)

    def sizes(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for d in self.per_mutator.values():
            for k, n in d.items():
                out[k] = out.get(k, 0) + n
        return out


def go_rounded(size: int) -> int:
    """The bytes Go hands out for a request (tiny requests share 16-byte blocks: no rounding)."""
    if size <= 0 or size < TINY_SIZE:
        return max(size, 0)
    if size <= MAX_SMALL_SIZE:
        return class_to_size[size_to_class(size)]
    return -(-size // PAGE_SIZE) * PAGE_SIZE


def run_one(base: Config, method: str, procs: int) -> dict:
    from .workloads import get
    cfg = base.replace(allocator=method, procs=procs, mutators=None, lock_stats=True)
    tally = _Tally(get(cfg.workload))
    with Runtime(cfg, workload=tally) as rt:
        cpu0 = time.process_time()
        res = rt.run()
        cpu = time.process_time() - cpu0
        if res.error is not None:
            raise RuntimeError(f"{method} at {procs} Ps: {res.error}")
        row = _row(rt, res, method, procs, tally.sizes())
        row["cpu_seconds"] = round(cpu, 3)
        row["allocs_per_cpu_s"] = round(row["allocs"] / cpu) if cpu > 0 else 0
        series = rt.method.metrics() if rt.method is not None else {}
    return {"row": row, "samples": series.get("samples", []), "frag": series.get("frag", [])}


def _row(rt, res, method: str, procs: int, sizes: dict[int, int]) -> dict:
    allocs = sum(m["allocs"] for m in res.mutators.values())
    classes = res.locks.get("classes", {})
    lock_names = [f"alloc.{method}"] if method != "go" else ["mcentral", "mheap"]
    acq = sum(classes.get(c, {}).get("acquisitions", 0) for c in lock_names)
    cont = sum(classes.get(c, {}).get("contended", 0) for c in lock_names)
    req = sum(k * n for k, n in sizes.items())
    row = {"method": method, "procs": procs, "allocs": allocs, "seconds": round(res.elapsed, 3),
           "allocs_per_s": round(allocs / res.elapsed) if res.elapsed else 0,
           "lock_acquisitions": acq, "lock_contended": cont,
           "contention": round(cont / acq, 4) if acq else 0.0}
    if rt.method is not None:
        m = rt.method.metrics()
        row.update(search_mean=round(m["search_mean"], 2), search_max=m["search_max"],
                   internal_frag=round(m["internal_frag"], 4), external_frag=round(m["external_frag"], 4),
                   peak_heap=m["peak_heap"], peak_live=m["peak_live"], collections=m["collections"],
                   pause_total_ms=round(m["pause_total"] / 1e6, 3), pause_max_ms=round(m["pause_max"] / 1e6, 3),
                   bytes_copied=m["bytes_copied"])
    else:
        ms, cycles = res.memstats or {}, res.gc.get("cycles", [])
        rounded = sum(go_rounded(k) * n for k, n in sizes.items())
        gc_pauses = [d for r, d in res.stw.items() if r.startswith("GC")]
        row.update(search_mean=None, search_max=None,
                   internal_frag=round(1 - req / rounded, 4) if rounded else 0.0, external_frag=None,
                   peak_heap=max([ms.get("HeapInuse", 0)] + [max(c["heap_start"], c["heap_end"])
                                                              for c in cycles]),
                   peak_live=max([c["heap_marked"] for c in cycles], default=0),
                   collections=res.gc.get("num_gc", 0),
                   pause_total_ms=round(sum(d["stopping_total"] + d["stopped_total"] for d in gc_pauses) / 1e6, 3),
                   pause_max_ms=round(max((d["stopped_max"] for d in gc_pauses), default=0) / 1e6, 3),
                   bytes_copied=0)
    mutator_s = res.elapsed - row["pause_total_ms"] / 1e3
    row["allocs_per_s_mutator"] = round(allocs / mutator_s) if mutator_s > 0 else 0
    return row


def compare(base: Config, methods, procs_list, progress=None) -> dict:
    runs: dict[str, dict] = {}
    rows = []
    for method in methods:
        for procs in procs_list:
            t0 = time.monotonic()
            ps = f"{procs} P{'s' if procs > 1 else ''}"
            if progress:
                progress(f"compare-allocators: {method} at {ps} ...")
            out = run_one(base, method, procs)
            rows.append(out["row"])
            if procs == procs_list[0]:
                runs[method] = {"search": _bin_search(out["samples"]), "frag": out["frag"]}
            if progress:
                r = out["row"]
                progress(f"compare-allocators: {method} at {ps}: {r['allocs']:,} allocations, "
                         f"{r['collections']} GCs ({time.monotonic() - t0:.1f} s)")
    return {"format": FORMAT, "format_version": VERSION, "config": base.to_dict(),
            "procs": list(procs_list), "methods": list(methods), "rows": rows, "series": runs}


def _bin_search(samples) -> dict:
    """Mean search length per bin of live blocks, and per bin of free blocks."""
    out = {}
    for key, idx in (("by_live", 0), ("by_free", 1)):
        if not samples:
            out[key] = []
            continue
        hi = max(s[idx] for s in samples) + 1
        width = max(1, -(-hi // SEARCH_BINS))
        acc: dict[int, list[int]] = {}
        for s in samples:
            b = s[idx] // width
            a = acc.setdefault(b, [0, 0])
            a[0] += s[2]
            a[1] += 1
        out[key] = [[(b + 0.5) * width, a[0] / a[1], a[1]] for b, a in sorted(acc.items())]
    return out


# --- output -----------------------------------------------------------------------------------

def _fmt_bytes(n) -> str:
    if n is None:
        return "-"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}{unit}"
    return f"{n}B"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def format_table(result: dict) -> str:
    head = ("method", "Ps", "allocs/s", "per CPU-s", "outside GC", "search", "max", "int frag", "ext frag", "peak heap", "peak live",
            "GCs", "pause ms", "max ms", "lock acq", "contended", "copied")
    lines = [head]
    for r in result["rows"]:
        lines.append((r["method"], str(r["procs"]), f"{r['allocs_per_s']:,}", f"{r['allocs_per_cpu_s']:,}",
                      f"{r['allocs_per_s_mutator']:,}",
                      "-" if r["search_mean"] is None else f"{r['search_mean']:.2f}",
                      "-" if r["search_max"] is None else str(r["search_max"]),
                      _pct(r["internal_frag"]), _pct(r["external_frag"]), _fmt_bytes(r["peak_heap"]),
                      _fmt_bytes(r["peak_live"]), str(r["collections"]), f"{r['pause_total_ms']:.1f}",
                      f"{r['pause_max_ms']:.1f}", f"{r['lock_acquisitions']:,}", _pct(r["contention"]),
                      _fmt_bytes(r["bytes_copied"]) if r["bytes_copied"] else "-"))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = []
    for k, row in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_markdown(result: dict) -> str:
    table = format_table(result).splitlines()
    cells = [[c for c in line.split("  ") if c] for line in table if not set(line) <= {"-", " "}]
    md = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    md += ["| " + " | ".join(c.strip() for c in row) + " |" for row in cells[1:]]
    return "\n".join(md)


def write_csv(result: dict, path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in result["rows"]:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})


def plot(result: dict, outdir: str) -> list[str]:
    import os

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(outdir, exist_ok=True)
    wl = result["config"]["workload"]
    made = []
    series = result["series"]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, xlabel in ((axes[0], "by_live", "live blocks (allocated, not yet collected)"),
                            (axes[1], "by_free", "free blocks (length of the lists)")):
        for method, s in series.items():
            pts = [p for p in s.get("search", {}).get(key, []) if key == "by_live" or p[0] >= 1]
            if pts:
                ax.plot([p[0] for p in pts], [max(p[1], 0.01) for p in pts], marker="o", ms=3, label=method,
                        color=_color(method))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("blocks visited per allocation (mean)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[1].set_xscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"search length, workload {wl} (bump: 0, drawn at 0.01)")
    fig.tight_layout()
    made.append(_save(fig, plt, os.path.join(outdir, "search.png")))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, s in series.items():
        frag = s.get("frag", [])
        if frag:
            axes[0].plot([f[0] for f in frag], [100 * f[1] for f in frag], marker=".", label=method,
                         color=_color(method))
            axes[1].plot([f[0] for f in frag], [100 * f[2] for f in frag], marker=".", label=method,
                         color=_color(method))
    axes[0].set_title("external: 1 - largest free block / total free")
    axes[1].set_title("internal: bytes lost to rounding and headers")
    for ax in axes:
        ax.set_xlabel("allocations (at each collection)")
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"fragmentation over the run, workload {wl}")
    fig.tight_layout()
    made.append(_save(fig, plt, os.path.join(outdir, "fragmentation.png")))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in result["methods"]:
        rows = sorted((r for r in result["rows"] if r["method"] == method), key=lambda r: r["procs"])
        ps = [r["procs"] for r in rows]
        axes[0].plot(ps, [r["allocs_per_cpu_s"] for r in rows], marker="o", label=method, color=_color(method))
        axes[1].plot(ps, [100 * r["contention"] for r in rows], marker="o", label=method, color=_color(method))
    axes[0].set_ylabel("allocations per CPU second")
    axes[1].set_ylabel("% of lock acquisitions contended")
    for ax in axes:
        ax.set_xlabel("Ps (GOMAXPROCS)")
        ax.set_xticks(result["procs"])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"throughput and contention against Ps, workload {wl}")
    fig.tight_layout()
    made.append(_save(fig, plt, os.path.join(outdir, "scaling.png")))
    return made


def _color(method: str) -> str:
    """One colour per method in every plot."""
    return f"C{ALLOCATORS.index(method)}"


def _save(fig, plt, path: str) -> str:
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --- the command ------------------------------------------------------------------------------

def _int_list(text: str, flag: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        vals = []
    if not vals or any(v < 1 or v > 256 for v in vals):
        raise ConfigError(flag, f"expected a comma-separated list of Ps in [1, 256], got {text!r}")
    return sorted(set(vals))


def _methods(text: str) -> list[str]:
    vals = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in vals if v not in ALLOCATORS]
    if not vals or bad:
        from .cli import UsageError
        raise UsageError(f"--methods: unknown method {bad[0] if bad else text!r}; "
                         f"choose from {', '.join(ALLOCATORS)}")
    return list(dict.fromkeys(vals))


def _cmd(args) -> int:
    from .cli import EXIT_OK
    methods = _methods(args.methods)
    procs = _int_list(args.procs, "procs")
    if args.steps is not None and args.seconds is not None:
        raise ConfigError("seconds", "give --steps or --seconds, not both")
    steps = args.steps if args.steps is not None or args.seconds is not None else DEFAULT_STEPS
    base = Config(workload=args.workload, steps=steps, seconds=args.seconds, live=args.live, size=args.size,
                  seed=args.seed, gogc=-1 if str(args.gogc).lower() == "off" else _gogc(args.gogc),
                  reserve_bytes=parse_bytes(args.reserve, "reserve"), heapcheck=args.heapcheck,
                  procs=procs[0])
    for path in filter(None, (args.csv,)):
        from .demo import check_writable
        check_writable(path, "csv")

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
    result = compare(base, methods, procs, progress)
    if args.csv:
        write_csv(result, args.csv)
    if args.plot:
        for p in plot(result, args.plot):
            progress(f"compare-allocators: wrote {p}")
    if args.json:
        print(json.dumps(result, indent=1))
    elif args.markdown:
        print(format_markdown(result))
    else:
        print(format_table(result))
    return EXIT_OK


def _gogc(text) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError("gogc", f"expected a percent or off, got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser("compare-allocators", help="the survey's allocation methods beside Go's, measured on "
                                                  "one workload (table, CSV, JSON, PNG)")
    p.add_argument("--workload", default="churn", help="built-in name, FILE.py or module[:name] (default: churn)")
    p.add_argument("--procs", default="1,2", help="comma-separated Ps to run each method at (default: 1,2)")
    p.add_argument("--methods", default=",".join(ALLOCATORS),
                   help=f"comma-separated methods (default: all: {','.join(ALLOCATORS)})")
    p.add_argument("--steps", type=int, default=None,
                   help=f"allocations per mutator, the same sequence for every method (default: {DEFAULT_STEPS})")
    p.add_argument("--seconds", type=float, default=None,
                   help="bound each run by wall time instead (methods then make different numbers of allocations)")
    p.add_argument("--live", type=int, default=1000, help="live slots per mutator (default: 1000)")
    p.add_argument("--size", type=int, default=64, help="object size, ring workload (default: 64)")
    p.add_argument("--gogc", default="100", help="GOGC for every method's collector, or off (default: 100)")
    p.add_argument("--seed", type=int, default=1, help="the workloads' seed (default: 1)")
    p.add_argument("--reserve", default="4GiB", help="address-space reservation per run (default: 4GiB)")
    p.add_argument("--heapcheck", type=int, default=0, choices=(0, 1, 2),
                   help="GODEBUG heapcheck for every run (default: 0, so checks do not weigh on the figures)")
    p.add_argument("--json", action="store_true", help="one JSON object (rows and plotted series)")
    p.add_argument("--markdown", action="store_true", help="the table as Markdown")
    p.add_argument("--csv", default=None, metavar="FILE", help="also write the rows as CSV")
    p.add_argument("--plot", default=None, metavar="DIR", help="write search.png, fragmentation.png, scaling.png")
    p.set_defaults(func=_cmd)
