"""`concalloc advice`: the design notes' advice to programmers, as experiments.

The seed's advice -- reuse buffers, pool objects with care (sync.Pool),
avoid sudden huge allocations, accept the size classes' tail waste -- each
rests on numbers.  Each experiment runs two arms of one workload on the
whole runtime (Go's design: mcache -> mcentral -> mheap with the concurrent
collector), with the same Config (seed, Ps, GOGC, duration), and prints
both side by side with their ratio:

    pool       pool:fresh vs pool:pooled (sync.Pool, syncpool.py): mallocs,
               GC cycles, allocation rate, heap goal, pool hits and steals
    reuse      reuse:fresh vs reuse:reuse: one []byte per request vs one
               reused buffer per goroutine
    burst      hugealloc:huge vs hugealloc:chunked: a job over --size bytes
               in one allocation, or streamed through one 256 KiB buffer:
               peak heap, peak RSS, pauses
    tailwaste  no run: the size classes' waste for a user's sizes
               (tailwaste.py)

Runs are bounded by --seconds under the os scheduler (real threads), so
figures vary from run to run; the ratios are what the advice rests on.
"""

from __future__ import annotations

import json
import sys
import time

from .check.violation import Violation
from .config import Config

EXPERIMENTS = ("pool", "reuse", "burst", "tailwaste")
#: per experiment: the workload, its two arms (baseline first), and the defaults
ARMS = {
    "pool": ("pool", ("fresh", "pooled"), {"size": 4096}),
    "reuse": ("reuse", ("fresh", "reuse"), {"size": 16384}),
    "burst": ("hugealloc", ("huge", "chunked"), {"size": 32 << 20, "live": 1000}),
}
FORMAT = "concalloc-advice"
FORMAT_VERSION = 1


# --- running the arms -------------------------------------------------------------

def arm_config(experiment: str, arm: str, *, procs=2, seconds=3.0, seed=1, gogc=100, size=None,
               heapcheck=0, **kw) -> Config:
    workload, _arms, defaults = ARMS[experiment]
    return Config(procs=procs, seconds=seconds, seed=seed, gogc=gogc, workload=f"{workload}:{arm}",
                  size=size or defaults["size"], live=kw.pop("live", defaults.get("live", 1000)),
                  heapcheck=heapcheck, scheduler="os", **kw)


def run_arm(cfg: Config, progress=None) -> dict:
    """One arm: run cfg's workload variant, return its figures."""
    from .runtime import EXIT_OK, Runtime
    from .workloads import get as get_workload
    wl = get_workload(cfg.workload)                 # a fresh instance: its counters are this run's
    with Runtime(cfg, workload=wl, progress=progress) as rt:
        res = rt.run()
        if isinstance(res.error, Violation):
            raise res.error                         # exit 1, with the replay command
        if res.exit_code != EXIT_OK:
            raise RuntimeError(f"{cfg.workload}: exit {res.exit_code}: {res.error}")
        pools = rt.gc.pools
        pool = pools.pools[0].counters() if pools and pools.pools else None
        cleanups = pools.cleanups if pools else 0
    return figures(res, wl, pool, cleanups)


def figures(res, wl, pool: dict | None, cleanups: int) -> dict:
    ms = res.memstats
    cycles = res.gc.get("cycles", [])
    secs = max(res.elapsed, 1e-9)
    pauses = ms.get("PauseNs", [])                  # the last 256 pauses (Go's ring)
    f = {"seconds": round(res.elapsed, 3), "mallocs": ms["Mallocs"], "total_alloc": ms["TotalAlloc"],
         "num_gc": ms["NumGC"], "mallocs_per_s": round(ms["Mallocs"] / secs),
         "alloc_bytes_per_s": round(ms["TotalAlloc"] / secs),
         "heap_goal_mean": round(sum(c["heap_goal"] for c in cycles) / len(cycles)) if cycles else ms["NextGC"],
         "heap_goal_max": max((c["heap_goal"] for c in cycles), default=ms["NextGC"]),
         "next_gc": ms["NextGC"], "heap_sys": ms["HeapSys"], "heap_released": ms["HeapReleased"],
         "pause_total_ns": ms["PauseTotalNs"], "pause_max_ns": max(pauses, default=0),
         "gc_cpu_fraction": round(ms["GCCPUFraction"], 4)}
    reqs = getattr(wl, "requests", None)
    if reqs is not None:
        n = sum(reqs)
        f["requests"] = n
        f["requests_per_s"] = round(n / secs)
        f["mallocs_per_request"] = round(ms["Mallocs"] / n, 3) if n else None
        f["bytes_per_request"] = round(ms["TotalAlloc"] / n) if n else None
        f["gc_per_1000_requests"] = round(1000 * ms["NumGC"] / n, 3) if n else None
    if hasattr(wl, "peak_heap"):
        f["jobs"] = sum(wl.jobs)
        f["jobs_per_s"] = round(f["jobs"] / secs, 2)
        f["peak_heap"] = wl.peak_heap
        f["peak_rss"] = wl.peak_rss
    if pool is not None:
        f["pool"] = pool
        f["pool_cleanups"] = cleanups
    return f


def run_experiment(experiment: str, say=None, **kw) -> dict:
    """Both arms of an experiment, baseline first; the document --json prints."""
    _wl, arms, _d = ARMS[experiment]
    out = {"format": FORMAT, "format_version": FORMAT_VERSION, "experiment": experiment, "arms": {}}
    for arm in arms:
        cfg = arm_config(experiment, arm, **kw)
        out.setdefault("config", {k: v for k, v in cfg.to_dict().items() if k != "workload"})
        if say:
            say(f"advice {experiment}: {cfg.workload} for {cfg.seconds} s on {cfg.procs} Ps ...")
        t = time.monotonic()
        out["arms"][arm] = run_arm(cfg, progress=_progress_line if say and sys.stderr.isatty() else None)
        if say:
            a = out["arms"][arm]
            say(f"advice {experiment}: {cfg.workload} done in {time.monotonic() - t:.1f} s: "
                f"{a['mallocs']} mallocs, {a['num_gc']} GC cycles")
    base, other = (out["arms"][a] for a in arms)
    out["ratio"] = {k: ratio(other[k], base[k]) for k in base
                    if isinstance(base[k], (int, float)) and isinstance(other.get(k), (int, float))}
    return out


def ratio(a, b):
    """a / b, rounded; None where b is 0 (and a is not)."""
    if b == 0:
        return 1.0 if a == 0 else None
    return round(a / b, 3)


def _progress_line(rt, elapsed: float) -> None:
    print(f"\r  {elapsed:5.1f} s  {rt.progress_counter():>9} allocations  {rt.gc.numgc:>4} GC cycles",
          end="", file=sys.stderr, flush=True)
    if rt.config.seconds and elapsed + 0.25 >= rt.config.seconds:
        print(file=sys.stderr)


# --- reports ------------------------------------------------------------------------

ROWS = {   # (key, label, how to show it)
    "pool": [("requests", "requests", "n"), ("requests_per_s", "requests/s", "n"),
             ("mallocs", "mallocs", "n"), ("mallocs_per_request", "mallocs/request", "f"),
             ("mallocs_per_s", "allocation rate (mallocs/s)", "n"),
             ("alloc_bytes_per_s", "allocation rate (bytes/s)", "b"),
             ("bytes_per_request", "bytes allocated/request", "b"), ("num_gc", "GC cycles", "n"),
             ("gc_per_1000_requests", "GC cycles/1000 requests", "f"),
             ("heap_goal_mean", "heap goal (mean over cycles)", "b"), ("next_gc", "heap goal at end (NextGC)", "b"),
             ("pause_total_ns", "GC pauses, total", "t"), ("gc_cpu_fraction", "GCCPUFraction", "f")],
    "burst": [("jobs", "jobs done", "n"), ("jobs_per_s", "jobs/s", "f"), ("peak_heap", "peak heap (heapLive)", "b"),
              ("peak_rss", "peak RSS (heap mapping)", "b"), ("heap_goal_max", "heap goal, max", "b"),
              ("heap_sys", "HeapSys at end", "b"), ("heap_released", "HeapReleased at end", "b"),
              ("num_gc", "GC cycles", "n"), ("pause_total_ns", "GC pauses, total", "t"),
              ("pause_max_ns", "GC pause, max", "t"), ("mallocs_per_s", "allocation rate (mallocs/s)", "n"),
              ("alloc_bytes_per_s", "allocation rate (bytes/s)", "b")],
}
ROWS["reuse"] = ROWS["pool"]
POOL_ROWS = ("gets", "private", "shared", "steals", "victim", "news")


def _show(v, how: str) -> str:
    from .report import human_bytes
    if v is None:
        return "-"
    if how == "b":
        return human_bytes(v)
    if how == "t":
        return f"{v / 1e6:.2f} ms"
    if how == "f":
        return f"{v:g}"
    return f"{v:,}"


def text_report(doc: dict) -> str:
    from .report import table
    exp = doc["experiment"]
    (a, b) = doc["arms"]
    fa, fb = doc["arms"][a], doc["arms"][b]
    rows = [[label, _show(fa.get(k), how), _show(fb.get(k), how), _show(doc["ratio"].get(k), "f")]
            for k, label, how in ROWS[exp] if k in fa or k in fb]
    for k in POOL_ROWS:
        if "pool" in fb:
            rows.append([f"pool: {k}", "-", f"{fb['pool'][k]:,}", "-"])
    cfg = doc["config"]
    title = (f"advice {exp}: {ARMS[exp][0]}:{a} vs {ARMS[exp][0]}:{b}, {cfg['seconds']} s each, {cfg['procs']} Ps, "
             f"seed {cfg['seed']}, GOGC {cfg['gogc']}, size {cfg['size']} B")
    return table(["", a, b, f"{b}/{a}"], rows, title=title)


def tailwaste_doc(hist: dict, shrink: int) -> dict:
    from .tailwaste import free_growth, report
    r = report(hist, shrink)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "experiment": "tailwaste", **r,
            "free_growth": free_growth(hist)}


def tailwaste_text(doc: dict, top: int = 10) -> str:
    from .report import human_bytes, table
    rows = [[r["class"] or "large", r["slot"], r["sizes"], f"{r['objects']:,}", human_bytes(r["requested"]),
             human_bytes(r["allocated"]), human_bytes(r["rounding"]), human_bytes(r["tail_share"]),
             f"{r['waste_pct']:.2f}%"] for r in doc["classes"]]
    t = doc["total"]
    rows.append(["total", "", "", f"{t['objects']:,}", human_bytes(t["requested"]), human_bytes(t["allocated"]),
                 human_bytes(t["rounding"]), human_bytes(t["tail_share"]), f"{t['waste_pct']:.2f}%"])
    out = [table(["class", "slot B", "sizes", "objects", "requested", "in slots", "rounding", "span tail",
                  "waste"], rows, title="size-class waste for these sizes (rounding + share of span tails)")]
    mv = doc["moves"][:top]
    if mv:
        out.append("")
        out.append(table(["size", "objects", "trim to", "bytes trimmed", "class", "saved/object", "saved"],
                         [[m["size"], f"{m['count']:,}", m["to"], m["trim"], f"{m['class']} -> {m['to_class']}",
                           m["saved_per_object"], human_bytes(m["saved"])] for m in mv],
                         title=f"moving a size a few bytes (at most {doc['shrink']} B above the class below)"))
    else:
        out.append(f"\nno size lies within {doc['shrink']} B above a class boundary: nothing to trim")
    return "\n".join(out)


# --- the command ----------------------------------------------------------------------

def register(sub) -> None:
    a = sub.add_parser("advice", help="the seed's advice as experiments: pool, reuse, burst, tailwaste "
                                      "(both arms side by side; see docs/advice.md)")
    a.add_argument("--experiment", required=True, choices=EXPERIMENTS, help="which piece of advice to measure")
    a.add_argument("--seconds", type=float, default=3.0, help="each arm's duration (default 3)")
    a.add_argument("--procs", type=int, default=2, help="GOMAXPROCS, every P a mutator (default 2)")
    a.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    a.add_argument("--gogc", default="100", help="GOGC: a percent or off (default 100)")
    a.add_argument("--size", default=None, help="pool: buffer bytes (4096); reuse: largest buffer (16384); "
                                                "burst: the job's bytes (32MiB)")
    a.add_argument("--sizes", default=None, metavar="FILE",
                   help="tailwaste: sizes, one per line or 'size count' per line (or inline: 24,100x5)")
    a.add_argument("--shrink", type=int, default=None, help="tailwaste: how many bytes a size may be trimmed (16)")
    a.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    a.set_defaults(func=cmd_advice)


def cmd_advice(args) -> int:
    from .cli import EXIT_OK, UsageError
    if args.experiment == "tailwaste":
        return _cmd_tailwaste(args)
    from .config import parse_bytes
    from .demo import parse_gogc
    if not 0 < args.seconds <= 3600:
        raise UsageError(f"--seconds: must be in (0, 3600], got {args.seconds}")
    kw = {"procs": args.procs, "seconds": args.seconds, "seed": args.seed, "gogc": parse_gogc(args.gogc)}
    if args.size is not None:
        kw["size"] = parse_bytes(args.size, "size")
        if kw["size"] < 1:
            raise UsageError(f"--size: must be at least 1 byte, got {args.size}")
    arm_config(args.experiment, ARMS[args.experiment][1][0], **kw)    # a bad value: exit 2 before any run
    say = lambda msg: print(msg, file=sys.stderr, flush=True)   # noqa: E731
    doc = run_experiment(args.experiment, say=say, **kw)
    print(json.dumps(doc) if args.json else text_report(doc))
    return EXIT_OK


def _cmd_tailwaste(args) -> int:
    import os
    from .cli import EXIT_OK, UsageError
    from .tailwaste import SHRINK, SizesError, parse_sizes
    if not args.sizes:
        raise UsageError("--sizes: tailwaste needs a size list or histogram (FILE, or inline 24,100x5)")
    shrink = SHRINK if args.shrink is None else args.shrink
    if shrink < 0:
        raise UsageError(f"--shrink: must be >= 0, got {shrink}")
    try:
        if os.path.exists(args.sizes):
            with open(args.sizes) as f:
                hist = parse_sizes(f.read(), args.sizes)
        elif any(c.isdigit() for c in args.sizes) and "/" not in args.sizes and not args.sizes.endswith(".txt"):
            hist = parse_sizes(args.sizes, "--sizes")
        else:
            raise UsageError(f"--sizes: no such file {args.sizes!r}")
    except SizesError as e:
        raise UsageError(str(e)) from None
    doc = tailwaste_doc(hist, shrink)
    print(json.dumps(doc) if args.json else tailwaste_text(doc))
    return EXIT_OK


__all__ = ["EXPERIMENTS", "ARMS", "arm_config", "run_arm", "run_experiment", "register"]
