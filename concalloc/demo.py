"""`concalloc run`: the whole runtime on sensible defaults.

Four Ps on real threads run a workload for a few seconds (or --steps
allocations each) with a live progress line, then print MemStats, lock
statistics per lock class and the busiest locks, and the stop-the-world
pauses by reason.  --json prints one JSON object instead.  The exit code
says how the run ended (0 ok, 1 violation, 3 deadlock/hang/internal error).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

from .config import (ALLOCATORS, BARRIERS, MARK_ORDERS, MAX_INT64, SCHEDULERS, STACK_SCANS, WORKLOADS, Config,
                     ConfigError, parse_bytes)
from .log import LEVELS, logger, shows
from .pct import AUTO, parse_confidence, parse_k
from .report import human_bytes, lock_tables, memstats_table, table
from .runconfig import (DEFAULT_CONTROLLED_STEPS, DEFAULT_SECONDS, FLAGS, format_bytes, replay_command,
                        replay_config)
from .runtime import Runtime
from .sync import ThreadFailure
from .sysmem import OutOfMemory

EXIT_INTERRUPTED = 130      # what a shell reports for a command ended by SIGINT


def add_run_arguments(p, grid: bool = False) -> None:
    """The run options; with grid (the contention command) --procs and --cache take lists.
    One add_argument per flag; every flag says what it does and its default."""
    d = Config()
    g = p.add_argument_group("machine")
    if grid:
        g.add_argument("--procs", dest="procs_list", default="1,2,4,8", metavar="N,N,...",
                       help="numbers of Ps to try, each with every P a mutator (default: %(default)s)")
        g.add_argument("--cache", dest="cache_list", default="on,off", metavar="on,off",
                       help="mcache settings to try: on, off or on,off (default: %(default)s)")
        g.add_argument("--out", default="contention-out", metavar="DIR",
                       help="directory for contention.csv, .json and .png (default: %(default)s)")
        g.add_argument("--repeat", type=int, default=1, metavar="N",
                       help="runs per cell (seeds seed, seed+1, ...); N > 1 draws error bars (default: 1)")
    else:
        g.add_argument("--procs", type=int, default=d.procs, help=f"GOMAXPROCS (default: {d.procs})")
        g.add_argument("--mutators", type=int, default=None, help="Ps that run mutators (default: all)")
        g.add_argument("--cache", choices=("on", "off"), default="on",
                       help="per-P mcache; off: every small allocation takes its mcentral lock "
                            "(default: on)")
    g.add_argument("--reserve", default=format_bytes(d.reserve_bytes), metavar="BYTES",
                   help="address-space reservation, a multiple of 64MiB (default: %(default)s)")
    w = p.add_argument_group("workload")
    w.add_argument("--workload", default=d.workload, metavar="NAME|FILE.py|MODULE[:NAME]",
                   help=f"what each mutator runs: a built-in ({', '.join(WORKLOADS)}) or your own, "
                        "a .py file or package.module[:name] (docs/workloads.md) (default: %(default)s)")
    w.add_argument("--steps", type=int, default=None,
                   help=f"allocations per mutator (default: {DEFAULT_CONTROLLED_STEPS} under a controlled "
                        "scheduler; under os the run is bounded by --seconds)")
    w.add_argument("--seconds", type=float, default=None,
                   help=f"wall-time bound, scheduler os only (default: {DEFAULT_SECONDS:g} when --steps "
                        "is not given)")
    w.add_argument("--live", type=int, default=d.live, help=f"live slots per mutator (default: {d.live})")
    w.add_argument("--size", type=int, default=d.size,
                   help=f"object size in bytes, ring workload (default: {d.size})")
    w.add_argument("--noscan", action="store_true", help="pointer-free objects, ring workload (default: off)")
    s = p.add_argument_group("scheduling")
    s.add_argument("--scheduler", default=d.scheduler,   # a grid has no single schedule to replay
                   choices=[k for k in SCHEDULERS if not grid or k != "replay"],
                   help="os: free threads; random, pct, sticky-random: controlled and reproducible "
                        "from --seed (default: %(default)s)")
    s.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the workloads and the controlled schedulers (default: %(default)s)")
    s.add_argument("--schedule-seed", type=int, default=None, metavar="N",
                   help="controlled schedulers: seed the schedule with N instead of --seed, keeping the "
                        "workload's draws (docs/barrier-study.md) (default: --seed)")
    s.add_argument("--noise", type=float, default=d.noise,
                   help="os: probability that a yield point gives up the CPU (default: %(default)s)")
    s.add_argument("--switch-interval", type=float, default=None, metavar="SECONDS",
                   help="os: sys.setswitchinterval for the run (default: Python's, 0.005)")
    s.add_argument("--pct-depth", "--depth", type=int, default=d.pct_depth,
                   help="pct: bug depth d, d-1 priority change points (default: %(default)s)")
    s.add_argument("--pct-k", type=parse_k, default=AUTO, metavar="K|auto",
                   help="pct: steps over which change points are spread; auto: the steps of a pilot "
                        "run under --scheduler random, same seed (docs/stress.md) (default: %(default)s)")
    s.add_argument("--confidence", type=parse_confidence, default=0.99, metavar="C",
                   help="pct: print the runs (seeds) PCT needs to find a depth-d bug with this "
                        "probability (default: %(default)s)")
    s.add_argument("--sticky", type=float, default=d.sticky, metavar="P",
                   help="sticky-random: probability of switching threads at a decision "
                        "(default: %(default)s)")
    if not grid:  # one run's schedule and trace; a grid has many runs
        s.add_argument("--replay", default=None, metavar="FILE",
                       help="replay a schedule file; it holds the whole configuration (default: none)")
        s.add_argument("--save-schedule", default=None, metavar="FILE",
                       help="save the controlled run's schedule and configuration (default: none)")
    s.add_argument("--hang-seconds", type=float, default=d.hang_seconds,
                   help="os: the watchdog ends a run with no progress for this long (default: %(default)s)")
    s.add_argument("--max-steps", type=int, default=d.max_steps,
                   help="controlled runs: the scheduling-decision cap (default: %(default)s)")
    gc = p.add_argument_group("collector")
    if grid:   # a list: the GC-pressure axis of the grid
        gc.add_argument("--gogc", default=None, metavar="N,...|off",
                        help="GOGC values to try, e.g. 50,100,off: each cell runs once per value and the "
                             "table shows every lock class (default: 100, one value)")
    else:
        gc.add_argument("--gogc", default="100", help="GOGC: heap growth percent per cycle, or off (default: 100)")
    gc.add_argument("--memlimit", default="off", help="GOMEMLIMIT, e.g. 64MiB (default: off)")
    gc.add_argument("--allocator", choices=ALLOCATORS, default=d.allocator,
                    help="allocation method: go (mcache/mcentral/mheap + concurrent GC) or one of the "
                         "survey's, with a stop-the-world collector (docs/allocation-methods.md) "
                         "(default: %(default)s)")
    gc.add_argument("--barrier", choices=BARRIERS, default=d.barrier,
                    help="write barrier (default: %(default)s, as Go ships it)")
    gc.add_argument("--stack-scan", choices=STACK_SCANS, default=d.stack_scan,
                    help="stack-scanning protocol (default: %(default)s)")
    gc.add_argument("--mark-order", choices=MARK_ORDERS, default=d.mark_order,
                    help="the marker's drain order: go (every root job, stacks included, before the heap) "
                         "or weave (go-weave's: roots and grey objects in any order, a scheduler "
                         "decision) (default: %(default)s)")
    gc.add_argument("--gc-workers", type=int, default=None,
                    help="background mark workers (default: 25%% of --procs, at least 1)")
    gc.add_argument("--fault", action="append", default=[], metavar="NAME",
                    help="inject a collector fault from the catalogue (repeatable; `concalloc faults` "
                         "lists them) (default: none)")
    gc.add_argument("--gctrace", action="store_true",
                    help="one line per GC cycle on stderr, as GODEBUG=gctrace=1 (default: off)")
    s.add_argument("--cost", action="append", default=[], metavar="KEY=+500ns|xN|0",
                   help="vtime: change one cost (repeatable), e.g. mheap.lock=+500ns, memclr=0 (default: none)")
    s.add_argument("--cost-table", default=None, metavar="FILE",
                   help="vtime: the cost table (default: the one shipped, measured with Go 1.19)")
    o = p.add_argument_group("checking and output")
    o.add_argument("--godebug", default="", metavar="K=V,...",
                   help="invalidptr=0|1, lockrank=0|1 (the rank-checking debug mode), heapcheck=0|1|2 "
                        "(default: " + ",".join(f"{k}={int(getattr(d, k))}" for k, f in FLAGS.items()
                                                if f.kind == "godebug") + ")")
    if not grid:  # the grid measures locks, so their statistics are always on there
        o.add_argument("--no-lock-stats", action="store_true", help="turn lock statistics off (default: on)")
        o.add_argument("--trace", default=None, metavar="FILE",
                       help="stream a Chrome/Perfetto trace to FILE (default: none)")
        o.add_argument("--vtime-report", nargs="?", const="-", default=None, metavar="PNG",
                       help="vtime: where virtual time went per thread, and a PNG if a path is given (default: off)")
        o.add_argument("--plot", default=None, metavar="FILE",
                       help="draw heap live, trigger and goal over the run, with the GC cycles, "
                            "as a PNG in FILE (default: none)")
    o.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    o.add_argument("--log-level", choices=LEVELS, default="info",
                   help="the tool's log on stderr: progress is info (default: %(default)s)")


def config_from_args(args) -> Config:
    """The single place where flags become a Config."""
    replay = getattr(args, "replay", None)
    scheduler = "replay" if replay else args.scheduler
    cfg = Config(procs=args.procs, mutators=args.mutators, reserve_bytes=parse_bytes(args.reserve, "reserve"),
                 workload=args.workload, steps=args.steps, seconds=args.seconds, live=args.live,
                 size=args.size, noscan=args.noscan, scheduler=scheduler, seed=args.seed,
                 schedule_seed=getattr(args, "schedule_seed", None),
                 noise=args.noise, switch_interval=args.switch_interval, pct_depth=args.pct_depth,
                 pct_k=Config.pct_k if args.pct_k == AUTO else args.pct_k, sticky=args.sticky, replay_file=replay, hang_seconds=args.hang_seconds,
                 lock_stats=not getattr(args, "no_lock_stats", False), trace=getattr(args, "trace", None),
                 cost_table=getattr(args, "cost_table", None), costs=tuple(getattr(args, "cost", ()) or ()),
                 plot=getattr(args, "plot", None))
    cfg = cfg.replace(gogc=parse_gogc(args.gogc), memory_limit=parse_memlimit(args.memlimit),
                      barrier=args.barrier, stack_scan=args.stack_scan, gc_workers=args.gc_workers,
                      mark_order=getattr(args, "mark_order", "go"),
                      gctrace=args.gctrace, max_steps=args.max_steps,
                      faults=tuple(getattr(args, "fault", ()) or ()),
                      allocator=getattr(args, "allocator", "go"))
    if args.godebug:
        for item in filter(None, (x.strip() for x in args.godebug.split(","))):
            if "=" not in item and item in FLAGS and FLAGS[item].kind == "godebug":
                raise ConfigError("GODEBUG", f"{item} needs a value, e.g. {item}=1")
        cfg = Config.from_godebug(args.godebug, cfg)
    if args.pct_k == AUTO and cfg.scheduler == "pct":
        cfg = with_auto_k(cfg, getattr(args, "cache", "on") != "off")
    return cfg


def with_auto_k(cfg: Config, cache: bool) -> Config:
    """--pct-k auto: k is the decision count of a pilot run (concalloc/pct.py)."""
    from .pct import k_from_steps, pilot_steps
    steps, _ = pilot_steps(cfg, cache)
    k = k_from_steps(steps, cfg.pct_depth)
    logger.debug("pct: k = {:,}: a pilot run under --scheduler random, seed {}, took {:,} steps", k, cfg.seed, steps)
    return cfg.replace(pct_k=k)


def parse_gogc(text: str) -> int:
    """GOGC as Go reads it: a percent, or "off" (-1)."""
    t = str(text).strip().lower()
    if t == "off":
        return -1
    try:
        return int(t)
    except ValueError:
        raise ConfigError("gogc", f"expected a percent or off, got {text!r}") from None


def parse_memlimit(text: str) -> int:
    if str(text).strip().lower() == "off":
        return MAX_INT64
    return parse_bytes(text, "memory_limit")


def given_options(argv: list[str], grid: bool = False) -> dict[str, tuple[str, object]]:
    """{dest: (option, value)} for the options actually typed in argv (a run's arguments,
    after `run`): the same parser with no defaults."""
    from .cli import _Parser
    p = _Parser(add_help=False)
    add_run_arguments(p, grid)
    option_of = {}
    for action in p._actions:
        action.default = argparse.SUPPRESS
        if action.option_strings:
            option_of[action.dest] = action.option_strings[0]
    return {dest: (option_of[dest], v) for dest, v in vars(p.parse_args(argv)).items()}


def given_fields(given: dict[str, tuple[str, object]]) -> set[str]:
    """The Config fields typed options set (--godebug: only the keys it names)."""
    fields = set()
    for option, value in given.values():
        if option == "--godebug":
            keys = {item.partition("=")[0].strip() for item in str(value).split(",")}
            fields |= {f for f, flag in FLAGS.items() if flag.kind == "godebug" and f in keys}
        else:
            fields |= {f for f, flag in FLAGS.items() if flag.option == option}
    return fields


def _progress_line(rt, elapsed: float) -> None:
    """The live line: allocations, rate, heapLive, GC cycles, and how far along the run is."""
    cfg = rt.config
    n = rt.progress_counter()
    live = rt.heap.mheap.gcController.heapLive.load()
    if cfg.steps is not None and rt.mutators:
        done = n / (cfg.steps * len(rt.mutators))
    else:
        done = elapsed / cfg.seconds if cfg.seconds else 0.0
    eta = f"{elapsed * (1 - done) / done:4.1f}s" if 0 < done < 1 else "  --"
    line = (f"[{elapsed:5.1f}s {min(done, 1):4.0%} ETA {eta}] allocs {n:>9,}  {n / max(elapsed, 1e-9):>9,.0f}/s  "
            f"heapLive {human_bytes(live):>10}  GCs {rt.nchecks}")
    if sys.stderr.isatty():
        print("\r" + line, end="", file=sys.stderr, flush=True)
    elif int(elapsed * 4) % 4 == 0:
        print(line, file=sys.stderr, flush=True)


def stw_table(stw: dict) -> str:
    from .report import duration
    rows = [[r, d["count"], duration(d["stopping_total"], d["unit"]), duration(d["stopping_max"], d["unit"]),
             duration(d["stopped_total"], d["unit"]), duration(d["stopped_max"], d["unit"])]
            for r, d in stw.items()]
    return table(["reason", "pauses", "time to stop", "max", "time stopped", "max"], rows,
                 title="stop-the-world pauses" + (" (virtual clock)" if any(d.get("clock") == "virtual" for d in stw.values()) else ""),
                 left=1)


def header(res) -> str:
    cfg = res.config
    allocs = sum(m["allocs"] for m in res.mutators.values())
    godebug = ",".join(f"{k}={int(cfg[k])}" for k, f in FLAGS.items() if f.kind == "godebug" and k in cfg)
    return (f"workload {cfg['workload']} on {cfg['procs']} Ps ({len(res.mutators)} mutators), "
            + (f"mcache {'on' if cfg.get('cache', True) else 'off'}" if cfg.get("allocator", "go") == "go"
               else f"allocator {cfg['allocator']}") + f", scheduler {cfg['scheduler']} "
            f"seed {cfg['seed']}, GODEBUG {godebug}\n"
            f"{allocs:,} allocations in {res.elapsed:.2f} s\n" + gc_line(res))


def gc_line(res) -> str:
    """The collector in one line: settings, cycles, pauses, CPU."""
    cfg, gc, ms = res.config, res.gc, res.memstats
    gogc = "off" if cfg["gogc"] < 0 else cfg["gogc"]
    if gc.get("method"):     # a survey method (concalloc/methods): a stop-the-world collector
        pauses = ms.get("PauseTotalNs", 0) if ms else 0
        pauses = f"{pauses / 1e6:.2f} ms" if cfg["scheduler"] == "os" else f"{pauses:,} steps"
        return (f"GC: {gc['method']} allocator, stop-the-world collector, GOGC {gogc}: {gc['num_gc']} "
                f"collections, pauses {pauses} in all")
    line = (f"GC: GOGC {gogc}, {cfg['barrier']} barrier, {cfg['stack_scan']} stack scan, "
            f"{gc.get('workers', 0)} mark worker(s): {gc.get('num_gc', 0)} cycles")
    if ms and gc.get("num_gc"):
        pauses = (f"{ms['PauseTotalNs'] / 1e6:.2f} ms" if cfg["scheduler"] == "os" else
                  f"{ms['PauseTotalNs']:,} {'virtual ns' if cfg['scheduler'] == 'vtime' else 'steps'}")
        line += (f", {ms.get('NumForcedGC', 0)} forced, pauses {pauses} in all, "
                 f"GC CPU {100 * ms['GCCPUFraction']:.1f}%, next goal {human_bytes(ms['NextGC'])}")
    return line


def print_report(res) -> None:
    print("\n" + header(res))
    if res.event_log_hash:
        print(f"event_log_hash {res.event_log_hash}  ({res.sched['steps']:,} scheduling steps)")
    print()
    if res.memstats:
        print(memstats_table(res.memstats))
        print()
    if res.vtime:
        from .vtimereport import summary_line
        print(summary_line(res.vtime, res.mutators))
        print("lock waits, holds and pauses below are in virtual ns (one core per P)\n")
    if res.locks:
        print(lock_tables(res.locks))
        print()
    if res.stw:
        print(stw_table(res.stw))


def check_writable(path: str, name: str) -> None:
    """An output file written at the end must be writable before any work starts
    (probing creates it; a probe that created it removes it again)."""
    import os
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        raise ConfigError(name, f"cannot write {path!r}: {e.strerror or e}") from None
    if not existed:
        os.remove(path)


def refuse_impossible(cfg: Config) -> None:
    """What can never fit is refused before the run: an object larger than the reservation."""
    from .sysmem import PAGE_SIZE
    if cfg.workload == "ring" and -(-cfg.size // PAGE_SIZE) * PAGE_SIZE > cfg.reserve_bytes:
        raise ConfigError("size", f"a {cfg.size:,}-byte object does not fit in the "
                                  f"{format_bytes(cfg.reserve_bytes)} reservation (raise --reserve)")


class Interrupted(RuntimeError):
    """The user pressed Ctrl-C: the run was stopped, what it measured is reported."""


def run_interruptibly(rt):
    """rt.run() on a driver thread; Ctrl-C (KeyboardInterrupt, which only the main
    thread sees) stops the run, which then reports what it measured.
    Returns (result, interrupted)."""
    box: dict = {}
    done = threading.Event()

    def target():
        try:
            box["res"] = rt.run()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["exc"] = e
        finally:
            done.set()

    t = threading.Thread(target=target, name="run-driver", daemon=True)
    t.start()
    interrupted = False
    while not done.is_set():        # (a Thread.join cut short by Ctrl-C may report the thread gone)
        try:
            done.wait(0.1)
        except KeyboardInterrupt:
            if interrupted:
                raise           # a second Ctrl-C gives up on the report
            interrupted = True
            rt.sched.abort(Interrupted("interrupted by Ctrl-C"))
    t.join()
    if "exc" in box:
        raise box["exc"]
    return box["res"], interrupted


def out_of_memory(err) -> OutOfMemory | None:
    """The OutOfMemory that ended a run (raised in one of its threads), if that is what did."""
    if isinstance(err, OutOfMemory):
        return err
    if isinstance(err, ThreadFailure) and isinstance(getattr(err, "error", None), OutOfMemory):
        return err.error
    return None


def ending_line(res, cfg: Config) -> str:
    """One line (or the error's own text) saying how a run that failed ended."""
    oom = out_of_memory(res.error)
    if oom is not None:
        msg = str(oom).splitlines()[0].replace("raise reserve_bytes", "raise --reserve")
        if "--reserve" not in msg:
            msg += f" (the reservation is {format_bytes(cfg.reserve_bytes)}; raise --reserve)"
        where = f" (in {res.error.thread})" if isinstance(res.error, ThreadFailure) else ""
        return f"concalloc: {msg}{where}"
    return f"concalloc: run ended with {type(res.error).__name__}:\n{res.error}"


def pct_guarantee(rt, res, confidence: float):
    """PCT's guarantee for a pct run (n from the threads it ran), else None."""
    cfg = rt.config
    if cfg.scheduler != "pct":
        return None
    from .pct import Guarantee
    return Guarantee(n=len(rt.sched.priorities()), k=cfg.pct_k, d=cfg.pct_depth, confidence=confidence,
                     steps=res.sched.get("steps"))


def run_demo(args) -> int:
    cfg = config_from_args(args)
    cache = args.cache == "on"
    if args.replay:
        given = given_options(getattr(args, "run_argv", []))
        typed = cfg.replace(scheduler=args.scheduler)      # as typed, to compare with the file's
        cfg, cache = replay_config(args.replay, typed, given_fields(given),
                                   args.cache if "cache" in given else None)
    if args.save_schedule and not cfg.controlled():
        raise ConfigError("save_schedule", "only a controlled run has a schedule to save "
                                           "(use --scheduler random or pct, with --steps)")
    if args.save_schedule and cfg.scheduler == "vtime":
        raise ConfigError("save_schedule", "a vtime run is a function of its options and seed: "
                                           "run it again with them instead of saving a schedule")
    report = getattr(args, "vtime_report", None)
    if report and cfg.scheduler != "vtime":
        raise ConfigError("vtime_report", "--vtime-report needs --scheduler vtime")
    for path, name in ((args.trace, "trace"), (args.plot, "plot"), (args.save_schedule, "save_schedule"),
                       (report if report != "-" else None, "vtime_report")):
        if path:
            check_writable(path, name)
    refuse_impossible(cfg)
    progress = None if args.json or not shows("info") else _progress_line
    with Runtime(cfg, cache=cache, progress=progress) as rt:
        res, interrupted = run_interruptibly(rt)
        if args.save_schedule and cfg.controlled():
            rt.save_schedule(args.save_schedule)
        guarantee = pct_guarantee(rt, res, getattr(args, "confidence", 0.99))
    if progress and sys.stderr.isatty():
        print(file=sys.stderr)
    if interrupted:
        res.exit_code = EXIT_INTERRUPTED
    if args.json:
        doc = res.to_json()
        if guarantee:
            doc["pct"] = guarantee.to_json()
        print(json.dumps(doc, default=str))
    else:
        print_report(res)
        if guarantee:
            print("\n" + guarantee.text())
    if report and res.vtime:
        from .vtimereport import breakdown_table, breakdown_png
        if not args.json:
            print("\n" + breakdown_table(res.vtime))
        if report != "-":
            breakdown_png(res.vtime, report)
    if rt.sched.stuck:      # still running: the world-stopped reads were left out
        print(f"concalloc: threads that did not unwind: {', '.join(rt.sched.stuck)} "
              "(MemStats and pauses not read)", file=sys.stderr)
    if interrupted:
        print(f"concalloc: interrupted after {res.elapsed:.1f} s; the report covers the run so far",
              file=sys.stderr)
    elif res.error is not None:
        print(ending_line(res, cfg), file=sys.stderr)
    logger.debug("replay: {}", replay_command(cfg, cache))
    return res.exit_code
