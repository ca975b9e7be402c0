"""`concalloc faults`: inject each catalogued fault, hunt it with the oracles, print the mutation score.

For every fault of concalloc/faults.py (or those named with --only) the
command runs the fault's scenario with the fault injected under a controlled
scheduler, seeds 1, 2, ... up to --runs, until a run ends with an invariant
violation.  The catch counts once the same config without the fault runs
clean on that seed (the control), so a catch is the fault's doing.  It
reports, per fault, the oracle that caught it (and the one the catalogue
expects), the runs and seconds it took, and the command that replays the
catch.  The mutation score is caught / injected; the command exits 1 below
100%.

    concalloc faults                       # every fault, up to 40 seeds each
    concalloc faults --only nonatomic-shade --runs 10 --json
    concalloc faults --scheduler pct       # every search under PCT instead
    concalloc faults --list                # the catalogue, nothing run
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

from . import faults as catalogue
from .runconfig import replay_command
from .runresult import EXIT_OK, EXIT_VIOLATION

FORMAT, FORMAT_VERSION = "concalloc-faults", 1
DEFAULT_RUNS = 40
RUN_BOUND = 300.0              # seconds per run: a hang guard, not a speed target


@dataclass
class Hunt:
    """One fault's search: injected, then caught (or not) after `runs` runs."""
    fault: catalogue.Fault
    runs: int = 0
    seconds: float = 0.0
    seed: int | None = None            # the catching seed
    invariant: str | None = None       # the violation's invariant
    message: str | None = None
    control: str | None = None         # the same seed without the fault: "clean" or what it did
    errors: int = 0                    # runs that ended otherwise (deadlock, hang, internal error)
    first_error: str | None = None
    replay: str | None = None

    @property
    def oracle(self) -> str | None:
        return catalogue.oracle_of(self.invariant) if self.invariant else None

    @property
    def caught(self) -> bool:
        return self.invariant is not None and self.control == "clean"

    def to_json(self) -> dict:
        f = self.fault
        return {"fault": f.name, "breaks": f.breaks, "go": f.go, "where": f.where,
                "expected_oracle": f.oracle, "caught": self.caught, "oracle": self.oracle,
                "invariant": self.invariant, "runs": self.runs, "seconds": round(self.seconds, 2),
                "seed": self.seed, "control": self.control, "errors": self.errors,
                "first_error": self.first_error, "replay": self.replay}


def run_once(cfg):
    """(exit code, invariant, one-line message) of one run; a violation that
    escapes Runtime.run (raised while the run's result is collected) counts too."""
    from .check.violation import Violation
    from .runtime import Runtime
    from .sync.errors import LockRankViolation
    try:
        with Runtime(cfg) as rt:
            res = rt.run_bounded(RUN_BOUND)
    except Violation as v:
        return EXIT_VIOLATION, v.invariant, v.message.splitlines()[0]
    except Exception as e:  # noqa: BLE001 - a run that ends otherwise is counted, not fatal
        return 3, None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if res.exit_code == EXIT_VIOLATION and res.violations:
        v = res.violations[0]
        return EXIT_VIOLATION, v["invariant"], v["message"].splitlines()[0]
    err = res.error
    rank = getattr(err, "error", err)          # a thread's failure carries its exception
    if isinstance(rank, LockRankViolation):    # Go's "lock ordering problem": an oracle too
        return EXIT_VIOLATION, "lock.rank", str(rank).splitlines()[0]
    return res.exit_code, None, None if err is None else f"{type(err).__name__}: {str(err).splitlines()[0]}"


def hunt(fault: catalogue.Fault, runs: int, base=None, runner=run_once, progress=None,
         override: dict | None = None) -> Hunt:
    """Search seeds 1..runs for a run the oracles catch; then run its control."""
    h = Hunt(fault)
    t0 = time.monotonic()
    for seed in range(1, runs + 1):
        cfg = fault.config(base, seed, override=override)
        code, invariant, message = runner(cfg)
        h.runs += 1
        if code == EXIT_VIOLATION:
            h.seed, h.invariant, h.message = seed, invariant, message
            h.seconds = time.monotonic() - t0
            h.replay = replay_command(cfg)
            break
        if code != EXIT_OK:
            h.errors += 1
            h.first_error = h.first_error or f"seed {seed}: {message}"
        if progress and seed % 10 == 0:
            progress(f"  {fault.name}: {seed} runs, {time.monotonic() - t0:.0f} s, not caught yet")
    else:
        h.seconds = time.monotonic() - t0
    if h.invariant is not None:
        code, invariant, message = runner(fault.config(base, h.seed, with_fault=False, override=override))
        h.control = "clean" if code == EXIT_OK else (f"{invariant}: {message}" if invariant else message)
    return h


def run_catalogue(names, runs: int, base=None, runner=run_once, progress=None,
                  override: dict | None = None) -> list[Hunt]:
    hunts = []
    for i, name in enumerate(names, 1):
        if progress:
            progress(f"[{i}/{len(names)}] {name}")
        h = hunt(catalogue.get(name), runs, base, runner, progress, override)
        if progress:
            progress(f"[{i}/{len(names)}] {name}: " + (
                f"caught by {h.oracle} ({h.invariant}) after {h.runs} runs, {h.seconds:.1f} s"
                if h.caught else "NOT CAUGHT" + (f" (control: {h.control})" if h.control else "")))
        hunts.append(h)
    return hunts


def score(hunts: list[Hunt]) -> dict:
    caught = sum(h.caught for h in hunts)
    return {"caught": caught, "injected": len(hunts),
            "percent": round(100.0 * caught / len(hunts), 1) if hunts else 100.0,
            "runs": sum(h.runs for h in hunts), "seconds": round(sum(h.seconds for h in hunts), 1)}


HEADERS = ["fault", "expected", "caught by", "invariant", "runs", "seconds"]


def _row(h: Hunt) -> list:
    by = h.oracle if h.caught else ("NOT CAUGHT" if h.invariant is None else "control not clean")
    return [h.fault.name, h.fault.oracle, by, h.invariant or "-", h.runs, f"{h.seconds:.1f}"]


def text_report(hunts: list[Hunt]) -> str:
    from .report import table
    sc = score(hunts)
    out = [table(HEADERS, [_row(h) for h in hunts], left=4,
                 title="fault catalogue: injected faults and the oracles that catch them")]
    out.append(f"\nmutation score: {sc['caught']}/{sc['injected']} caught ({sc['percent']}%), "
               f"{sc['runs']} runs, {sc['seconds']} s")
    replays = [f"  {h.fault.name}: {h.replay}" for h in hunts if h.caught]
    if replays:
        out.append("\nreplay each catch:\n" + "\n".join(replays))
    missed = [h for h in hunts if not h.caught]
    for h in missed:
        out.append(f"\n{h.fault.name}: not caught in {h.runs} runs"
                   + (f"; control on seed {h.seed}: {h.control}" if h.control and h.control != "clean" else "")
                   + (f"; {h.errors} runs ended otherwise, first {h.first_error}" if h.errors else ""))
    return "\n".join(out)


def catalogue_table() -> str:
    from .report import table
    rows = [[f.name, f.oracle, f.scenario.get("workload", "-"), f.where, f.go] for f in catalogue.CATALOGUE]
    return table(["fault", "expected oracle", "scenario", "switch in", "Go"], rows, title="fault catalogue", left=5)


def _cmd_faults(args) -> int:
    from .cli import UsageError
    if args.runs < 1:
        raise UsageError(f"--runs: must be at least 1, got {args.runs}")
    names = args.only or list(catalogue.NAMES)
    for n in names:
        if n not in catalogue.BY_NAME:
            raise UsageError(f"--only: unknown fault {n!r}; known: {', '.join(catalogue.NAMES)}")
    if args.list:
        print(json.dumps([{"fault": f.name, "breaks": f.breaks, "go": f.go, "where": f.where,
                           "expected_oracle": f.oracle, "scenario": f.scenario} for f in catalogue.CATALOGUE])
              if args.json else catalogue_table())
        return EXIT_OK
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 - progress, always on stderr
    override = {k: v for k, v in (("scheduler", args.scheduler), ("workload", args.workload)) if v}
    if args.workload:
        from . import workloads
        workloads.get(args.workload)    # a bad one is one line (ConfigError, exit 2) before any hunt
    hunts = run_catalogue(names, args.runs, runner=run_once, progress=None if args.quiet else say,
                          override=override)
    if args.json:
        print(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "runs": args.runs,
                          "score": score(hunts), "faults": [h.to_json() for h in hunts]}))
    else:
        print(text_report(hunts))
    return EXIT_OK if all(h.caught for h in hunts) else EXIT_VIOLATION


def register(sub) -> None:
    """`concalloc faults`: argparse setup (called once from cli.build_parser)."""
    f = sub.add_parser("faults", help="inject each catalogued collector fault, hunt it with the oracles, "
                                      "print the mutation score (see docs/faults.md)")
    f.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                   help=f"seeds searched per fault before it counts as missed (default: {DEFAULT_RUNS})")
    f.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="hunt only this fault (repeatable; default: every fault)")
    f.add_argument("--scheduler", choices=("random", "pct", "sticky-random"), default=None,
                   help="the controlled scheduler of every search (default: each scenario's own, random)")
    f.add_argument("--workload", default=None, metavar="NAME|FILE",
                   help="run every fault on this workload (a built-in, FILE.py or package.module) "
                        "instead of its own scenario (default: each fault's scenario)")
    f.add_argument("--list", action="store_true", help="print the catalogue and run nothing")
    f.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    f.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    f.set_defaults(func=_cmd_faults)
