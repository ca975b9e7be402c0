"""The concalloc command.

Subcommands:
    run           the demo: the whole runtime on sensible defaults
    contention    the contention experiment: Ps x mcache on/off (x GOGC) -> table, CSV, JSON, PNG
    sizeclasses   Go's size-class table, as sizeclasses.go prints it (--json)
    calibrate     measure Go 1.19 here and write the virtual-time cost table
    barrier-matrix  every write barrier x stack-scan protocol, searched for lost objects
    faults        inject each catalogued collector fault; the mutation score
    version

Exit codes: 0 ok; 1 an invariant violation; 2 bad arguments or config (one
line naming the flag and the problem, no traceback); 3 deadlock, hang, out of
memory or internal error; 130 interrupted by Ctrl-C (after reporting what
was measured so far).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .check.violation import Violation
from .config import ConfigError
from .runconfig import flag_for

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(message)


def _cmd_sizeclasses(args) -> int:
    from .sizeclasses import format_table, table_rows
    if args.json:
        from .runconfig import SIZECLASSES_FORMAT, SIZECLASSES_VERSION
        print(json.dumps({"format": SIZECLASSES_FORMAT, "format_version": SIZECLASSES_VERSION,
                          "classes": table_rows()}, indent=1))
    else:
        print(format_table())
    return EXIT_OK


VERSION = f"concalloc {__version__} (models Go 1.19 with the Go <= 1.14 locked mcentral)"


def _cmd_version(args) -> int:
    print(VERSION)
    return EXIT_OK


def _cmd_run(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def _int_list(text: str) -> list[int]:
    """--procs 2,1,2 -> [1, 2]: sorted, each value once (a repeated value is said, not run twice)."""
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--procs: expected a comma-separated list of integers, got {text!r}") from None
    if not vals or any(v < 1 or v > 256 for v in vals):
        raise UsageError(f"--procs: each value must be in [1, 256], got {text!r}")
    return _once(sorted(vals), "--procs")


def _cache_list(text: str) -> list[bool]:
    vals = [x.strip() for x in text.split(",") if x.strip()]
    if not vals or any(v not in ("on", "off") for v in vals):
        raise UsageError(f"--cache: expected on, off or on,off, got {text!r}")
    return [v == "on" for v in _once(vals, "--cache")]


def _gogc_list(text: str) -> list[int]:
    """--gogc 100,50,off -> [50, 100, -1]: more GC pressure first, off last, each value once."""
    from .contention import gogc_order
    from .demo import parse_gogc
    from .log import logger
    vals = [parse_gogc(x) for x in text.split(",") if x.strip()]
    if not vals:
        raise UsageError(f"--gogc: expected a comma-separated list of percents or off, got {text!r}")
    out = list(dict.fromkeys(vals))
    if len(out) < len(vals):
        logger.warning("--gogc: each value is run once (got {})", text)
    return sorted(out, key=gogc_order)


def _once(vals: list, flag: str) -> list:
    from .log import logger
    out = list(dict.fromkeys(vals))
    if len(out) < len(vals):
        logger.warning("{}: each value is run once (got {})", flag, ",".join(map(str, vals)))
    return out


def _cmd_contention(args) -> int:
    from .contention import (CLASSES, all_classes, check_outputs, grid_table, plot_classes, run_grid,
                             write_outputs)
    from .demo import EXIT_INTERRUPTED, config_from_args
    procs = _int_list(args.procs_list)
    caches = _cache_list(args.cache_list)
    if args.repeat < 1 or args.repeat > 100:
        raise UsageError(f"--repeat: must be an integer in [1, 100], got {args.repeat}")
    gc_axis = args.gogc is not None            # --gogc given: GC pressure is an axis
    gogcs = _gogc_list(args.gogc) if gc_axis else None
    args.procs, args.mutators, args.cache = max(procs), None, "on"
    args.gogc = str(gogcs[0]) if gc_axis else "100"
    cfg = config_from_args(args)
    for g in gogcs or ():
        cfg.replace(gogc=g)                    # each value valid before any work
    paths = check_outputs(args.out)           # before any work: a bad --out loses nothing
    rows, interrupted = run_grid(cfg, procs, caches, repeat=args.repeat, progress=not args.json, gogc_list=gogcs)
    title = (f"{cfg.workload} workload, {cfg.steps or cfg.seconds} {'steps' if cfg.steps else 's'} per run, "
             f"scheduler {cfg.scheduler}, seed {cfg.seed}"
             + (", clock: virtual ns (one core per P)" if cfg.scheduler == "vtime" else
                ", clock: wall ns" if cfg.scheduler == "os" else ", clock: scheduler steps")
             + (f", costs {' '.join(cfg.costs)}" if cfg.costs else "")
             + (f", {args.repeat} runs per point" if args.repeat > 1 else ""))
    classes = all_classes(rows) if gc_axis else CLASSES
    if rows:
        write_outputs(rows, cfg, paths, title, plot_classes(rows) if gc_axis else CLASSES)
    if args.json:
        from .contention import json_doc
        print(json.dumps({**json_doc(rows, cfg), "files": paths if rows else {}}))
    else:
        print(grid_table(rows, classes, scheduler=cfg.scheduler, gc_axis=gc_axis))
        if rows:
            print("\nwrote " + ", ".join(paths.values()))
    if interrupted:
        print("concalloc: interrupted; the table has the cells that finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _cmd_barrier_matrix(args) -> int:
    from .barriermatrix import markdown_table, run_matrix, screen_for, text_table
    from .config import Config, parse_bytes
    from .runtime import Runtime
    if args.runs < 1:
        raise UsageError(f"--runs: must be at least 1, got {args.runs}")
    base = Config(procs=args.procs, workload=args.workload, steps=args.steps, live=args.live,
                  scheduler=args.scheduler, reserve_bytes=parse_bytes(args.reserve, "reserve"),
                  max_steps=args.max_steps, gc_workers=args.gc_workers, mark_order=args.mark_order)

    def runner(cfg):
        with Runtime(cfg) as rt:
            return rt.run()
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    from .barriermatrix import parse_cells
    try:
        only = parse_cells(args.cells) if args.cells else None
    except ValueError as e:
        raise UsageError(f"--cells: {e}") from None
    cells = run_matrix(base, args.runs, runner, stop_at_first=not args.all, progress=say, cells=only,
                       screen=screen_for(args.screen))
    if args.json:
        print(json.dumps({"format": "concalloc-barrier-matrix", "format_version": 1,
                          "config": base.to_dict(), "runs": args.runs, "screen": args.screen,
                          "cells": [c.to_json() for c in cells]}))
    elif args.markdown:
        print(markdown_table(cells))
    else:
        print(text_table(cells))
    return EXIT_VIOLATION if any(c.surprise for c in cells) else EXIT_OK


def _cmd_calibrate(args) -> int:
    from .calibrate import calibrate
    if not args.json and not args.from_output:
        print("running the Go benchmarks (GOMAXPROCS=1); this takes a minute or two ...", file=sys.stderr)
    r = calibrate(args.out, go=args.go, benchtime=args.benchtime, raw_in=args.from_output,
                  raw_out=args.save_output)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"wrote {args.out}: {len(r['ns'])} prices, {r['meta']['go']} on {r['meta']['machine']}")
        for k in ("lock", "load", "store", "store.wb", "memclr", "alloc.tiny", "alloc.small.5",
                  "mcentral.critical", "mheap.alloc.page", "gc.mark.object", "gc.mark.ptr"):
            if k in r["ns"]:
                print(f"  {k:18} {r['ns'][k]:10.4g} ns")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="concalloc", description="A model of Go's allocator and concurrent GC on real threads.")
    p.add_argument("--version", action="version", version=VERSION)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    sc = sub.add_parser("sizeclasses", help="print Go's size-class table")
    sc.add_argument("--json", action="store_true", help="a JSON object (format, classes) instead of the table")
    sc.set_defaults(func=_cmd_sizeclasses)
    v = sub.add_parser("version", help="print the version")
    v.set_defaults(func=_cmd_version)
    r = sub.add_parser("run", help="run the demo: Ps on real threads allocating (see docs/cli.md)")
    from .demo import add_run_arguments
    add_run_arguments(r)
    r.set_defaults(func=_cmd_run)
    c = sub.add_parser("contention", help="lock contention vs Ps, mcache on and off (table, CSV, JSON, PNG)")
    add_run_arguments(c, grid=True)
    c.set_defaults(func=_cmd_contention)
    b = sub.add_parser("barrier-matrix", help="every write barrier x stack-scan protocol, searched for "
                                              "lost objects with checkmark (see docs/barriers.md)")
    b.add_argument("--workload", default="graph", help="built-in name (graph, weave, hide-pointer, "
                   "random-program, ...), FILE.py or module[:name] (default: graph)")
    b.add_argument("--runs", type=int, default=6, help="seeds per cell (default: 6)")
    b.add_argument("--procs", type=int, default=2, help="GOMAXPROCS (default: 2)")
    b.add_argument("--steps", type=int, default=150, help="allocations per mutator (default: 150)")
    b.add_argument("--live", type=int, default=32, help="live slots per mutator (default: 32)")
    b.add_argument("--scheduler", choices=("random", "pct", "sticky-random", "vtime"), default="random",
                   help="a controlled scheduler, so every loss replays (default: random)")
    b.add_argument("--gc-workers", type=int, default=None,
                   help="background mark workers (default: 25%% of --procs, at least 1)")
    b.add_argument("--mark-order", choices=("go", "weave"), default="go",
                   help="the marker's drain order: go (root jobs first) or weave (go-weave's: any order, "
                        "which lets yuasa + concurrent lose) (default: go)")
    b.add_argument("--max-steps", type=int, default=1_000_000, help="decision cap per run (default: 1000000)")
    b.add_argument("--reserve", default="1GiB", help="address-space reservation per run (default: 1GiB)")
    b.add_argument("--all", action="store_true", help="run every seed, not only up to a cell's first loss")
    b.add_argument("--cells", default=None, metavar="B+S,...",
                   help="only these cells, e.g. hybrid+concurrent,dijkstra+rescan (default: all 15)")
    b.add_argument("--screen", nargs="?", const="sound", choices=("sound", "likely"),
                   help="skip the seeds whose program the workload's screen rules out (weave: cannot lose "
                   "under the cell's barrier); the table counts them.  'likely': the screen's heuristic "
                   "tier, to find a first loss fast (a safe cell must be checked without it)")
    b.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    b.add_argument("--markdown", action="store_true", help="the table as Markdown")
    b.set_defaults(func=_cmd_barrier_matrix)
    k = sub.add_parser("calibrate", help="measure Go 1.19 on this machine and write the vtime cost table")
    from .calibrate import GO
    k.add_argument("--out", default="costs.toml", help="the table to write (default costs.toml)")
    k.add_argument("--go", default=GO, help=f"the go command (default {GO})")
    k.add_argument("--benchtime", default="100ms", help="go test -benchtime (default 100ms, 5 runs each)")
    k.add_argument("--from-output", default=None, metavar="FILE",
                   help="fit a saved `go test -bench` output instead of running Go")
    k.add_argument("--save-output", default=None, metavar="FILE", help="keep the Go output")
    k.add_argument("--json", action="store_true", help="print the meta and prices as JSON")
    k.set_defaults(func=_cmd_calibrate)
    __import__("concalloc.faultscmd", fromlist=["register"]).register(sub)   # concalloc faults
    __import__("concalloc.advice", fromlist=["register"]).register(sub)
    __import__("concalloc.stress", fromlist=["register"]).register(sub)      # stress, stress-report
    __import__("concalloc.compare", fromlist=["register"]).register(sub)     # compare-allocators
    __import__("concalloc.explain", fromlist=["register"]).register(sub)     # explain
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        from .log import setup
        setup(getattr(args, "log_level", "info"))
        if args.cmd == "run":        # the typed options, for --replay's checks
            args.run_argv = argv[argv.index("run") + 1:]
        return args.func(args)
    except UsageError as e:
        print(f"concalloc: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as e:
        message = str(e)[len(e.field) + 2:] if str(e).startswith(f"{e.field}: ") else str(e)
        print(f"concalloc: {flag_for(e.field)}: {message}", file=sys.stderr)
        return EXIT_USAGE
    except Violation as v:
        print(f"concalloc: {v}", file=sys.stderr)
        return EXIT_VIOLATION
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        print("concalloc: interrupted", file=sys.stderr)
        return 130
    except Exception:  # an internal error: show it whole, exit 3
        import traceback
        traceback.print_exc()
        print("concalloc: internal error (above)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
