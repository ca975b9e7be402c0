"""`concalloc run`: the whole runtime on sensible defaults.

Four Ps on real threads run a workload for a few seconds (or --steps
allocations each) with a live progress line, then print MemStats, lock
statistics per lock class and the busiest locks, and the stop-the-world
pauses by reason.  --json prints one JSON object instead.  The exit code
says how the run ended (0 ok, 1 violation, 3 deadlock/hang/internal error).
"""

from __future__ import annotations

import json
import sys

from .config import SCHEDULERS, WORKLOADS, Config, ConfigError, parse_bytes
from .report import human_bytes, memstats_table, table
from .runtime import Runtime


def add_run_arguments(p, grid: bool = False) -> None:
    """The run options; with grid (the contention command) --procs and --cache take lists."""
    d = Config()
    g = p.add_argument_group("machine")
    if grid:
        g.add_argument("--procs", dest="procs_list", default="1,2,4,8", help="Ps to try (default 1,2,4,8)")
        g.add_argument("--cache", dest="cache_list", default="on,off", help="on, off or on,off (default)")
        g.add_argument("--out", default="contention-out", help="directory for CSV, JSON and PNG")
    else:
        g.add_argument("--procs", type=int, default=d.procs, help=f"GOMAXPROCS (default {d.procs})")
        g.add_argument("--mutators", type=int, default=None, help="Ps that run mutators (default: all)")
        g.add_argument("--cache", choices=("on", "off"), default="on",
                       help="per-P mcache; off: every small allocation takes its mcentral lock")
    g.add_argument("--reserve", default="64GiB", help="address-space reservation (default 64GiB)")
    w = p.add_argument_group("workload")
    w.add_argument("--workload", choices=WORKLOADS, default=d.workload)
    w.add_argument("--steps", type=int, default=None, help="allocations per mutator")
    w.add_argument("--seconds", type=float, default=None, help="wall-time bound (free scheduler only)")
    w.add_argument("--live", type=int, default=d.live, help=f"live slots per mutator (default {d.live})")
    w.add_argument("--size", type=int, default=d.size, help=f"object size for ring (default {d.size})")
    w.add_argument("--noscan", action="store_true", help="pointer-free objects (ring)")
    s = p.add_argument_group("scheduling")
    s.add_argument("--scheduler", default=d.scheduler,   # a grid has no single schedule to replay
                   choices=[k for k in SCHEDULERS if not grid or k != "replay"])
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--noise", type=float, default=d.noise, help="os: probability a yield point yields")
    s.add_argument("--switch-interval", type=float, default=None, help="os: sys.setswitchinterval")
    s.add_argument("--pct-depth", type=int, default=d.pct_depth)
    s.add_argument("--pct-k", type=int, default=d.pct_k)
    if not grid:  # one run's schedule and trace; a grid has many runs
        s.add_argument("--replay", default=None, metavar="FILE", help="replay a saved schedule")
        s.add_argument("--save-schedule", default=None, metavar="FILE", help="save the controlled schedule")
    s.add_argument("--hang-seconds", type=float, default=d.hang_seconds, help="os: watchdog timeout")
    s.add_argument("--cost", action="append", default=[], metavar="KEY=+500ns|xN|0",
                   help="vtime: change one cost (repeatable), e.g. mheap.lock=+500ns, memclr=0")
    s.add_argument("--cost-table", default=None, metavar="FILE",
                   help="vtime: the cost table (default: the one shipped, measured with Go 1.19)")
    o = p.add_argument_group("checking and output")
    o.add_argument("--godebug", default="", help="e.g. heapcheck=2,invalidptr=1,lockrank=1")
    if not grid:  # the grid measures locks, so their statistics are always on there
        o.add_argument("--no-lock-stats", action="store_true", help="turn lock statistics off")
        o.add_argument("--trace", default=None, metavar="FILE", help="write a Chrome/Perfetto trace")
        o.add_argument("--vtime-report", nargs="?", const="-", default=None, metavar="PNG",
                       help="vtime: where virtual time went per thread (and a PNG if a path is given)")
    o.add_argument("--json", action="store_true", help="print one JSON object")


def config_from_args(args) -> Config:
    replay = getattr(args, "replay", None)
    scheduler = "replay" if replay else args.scheduler
    cfg = Config(procs=args.procs, mutators=args.mutators, reserve_bytes=parse_bytes(args.reserve, "reserve"),
                 workload=args.workload, steps=args.steps, seconds=args.seconds, live=args.live,
                 size=args.size, noscan=args.noscan, scheduler=scheduler, seed=args.seed,
                 noise=args.noise, switch_interval=args.switch_interval, pct_depth=args.pct_depth,
                 pct_k=args.pct_k, replay_file=replay, hang_seconds=args.hang_seconds,
                 lock_stats=not getattr(args, "no_lock_stats", False), trace=getattr(args, "trace", None),
                 cost_table=getattr(args, "cost_table", None), costs=tuple(getattr(args, "cost", ()) or ()))
    return Config.from_godebug(args.godebug, cfg) if args.godebug else cfg


def _progress_line(rt, elapsed: float) -> None:
    n = rt.progress_counter()
    live = rt.heap.mheap.gcController.heapLive.load()
    line = (f"[{elapsed:5.1f}s] allocs {n:>9,}  {n / max(elapsed, 1e-9):>9,.0f}/s  "
            f"heapLive {human_bytes(live):>10}  STW checks {rt.nchecks}")
    if sys.stderr.isatty():
        print("\r" + line, end="", file=sys.stderr, flush=True)
    elif int(elapsed * 4) % 4 == 0:
        print(line, file=sys.stderr, flush=True)


def lock_tables(locks: dict, unit: str, top: int = 8) -> str:
    def rows(d: dict):
        for name, st in d:
            acq = st["acquisitions"]
            rate = 100.0 * st["contended"] / acq if acq else 0.0
            mean = st["wait_total"] / st["contended"] if st["contended"] else 0
            yield [name, acq, st["contended"], f"{rate:.2f}%", f"{mean:,.0f}", f"{st['wait_max']:,}",
                   f"{st['hold_total']:,}", st["owner_switches"], st["max_waiters"]]
    headers = ["lock", "acquired", "contended", "rate", f"mean wait ({unit})", "max wait",
               f"hold total ({unit})", "owner switches", "max waiters"]
    classes = sorted(locks.get("classes", {}).items(), key=lambda kv: -kv[1]["acquisitions"])
    busiest = sorted(((n, st) for n, st in locks.get("locks", {}).items() if st["acquisitions"]),
                     key=lambda kv: (-kv[1]["wait_total"], -kv[1]["acquisitions"]))[:top]
    return (table(headers, list(rows(classes)), title="lock statistics by class") + "\n\n"
            + table(headers, list(rows(busiest)), title=f"top {top} locks by total wait"))


def stw_table(stw: dict) -> str:
    rows = [[r, d["count"], f"{d['stopping_total']:,}", f"{d['stopping_max']:,}",
             f"{d['stopped_total']:,}", f"{d['stopped_max']:,}",
             ("virtual " if d.get("clock") == "virtual" else "") + d["unit"]] for r, d in stw.items()]
    return table(["reason", "pauses", "time to stop", "max", "time stopped", "max", "unit"], rows,
                 title="stop-the-world pauses")


def print_report(res) -> None:
    cfg = res.config
    allocs = sum(m["allocs"] for m in res.mutators.values())
    print(f"\nworkload {cfg['workload']} on {cfg['procs']} Ps ({len(res.mutators)} mutators), "
          f"scheduler {cfg['scheduler']} seed {cfg['seed']}: {allocs:,} allocations in {res.elapsed:.2f} s")
    if res.event_log_hash:
        print(f"event_log_hash {res.event_log_hash}  ({res.sched['steps']:,} scheduling steps)")
    print()
    if res.memstats:
        print(memstats_table(res.memstats))
        print()
    if res.vtime:
        from .vtimereport import summary_line
        print(summary_line(res.vtime, res.mutators) + "\n")
    if res.locks:
        unit = res.locks["unit"] if not res.vtime else "virtual ns"
        print(lock_tables(res.locks, unit))
        print()
    if res.stw:
        print(stw_table(res.stw))


def _check_writable(path: str, field: str) -> None:
    """An output file the run writes at its end must be writable before it starts."""
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        raise ConfigError(field, f"cannot write {path!r}: {e.strerror or e}") from None


def run_demo(args) -> int:
    cfg = config_from_args(args)
    if args.save_schedule and not cfg.controlled():
        raise ConfigError("save_schedule", "only a controlled run has a schedule to save "
                                           "(use --scheduler random or pct, with --steps)")
    if args.save_schedule and cfg.scheduler == "vtime":
        raise ConfigError("save_schedule", "a vtime run is a function of its options and seed: "
                                           "run it again with them instead of saving a schedule")
    report = getattr(args, "vtime_report", None)
    if report and cfg.scheduler != "vtime":
        raise ConfigError("vtime_report", "--vtime-report needs --scheduler vtime")
    for path, field in ((args.trace, "trace"), (args.save_schedule, "save_schedule"),
                        (report if report != "-" else None, "vtime_report")):
        if path:
            _check_writable(path, field)
    progress = None if args.json else _progress_line
    with Runtime(cfg, cache=args.cache == "on", progress=progress) as rt:
        res = rt.run()
        if args.save_schedule and cfg.controlled():
            rt.save_schedule(args.save_schedule)
    if progress and sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(res.to_json(), default=str))
    else:
        print_report(res)
    if report and res.vtime:
        from .vtimereport import breakdown_table, breakdown_png
        if not args.json:
            print("\n" + breakdown_table(res.vtime))
        if report != "-":
            breakdown_png(res.vtime, report)
    if res.error is not None:
        print(f"\nconcalloc: run ended with {type(res.error).__name__}:\n{res.error}", file=sys.stderr)
    return res.exit_code
