"""Fidelity: concalloc's collector against Go 1.19's on the same workload.

The `ring` workload was also written in Go (fidelity/ring/main.go) and run
under Go 1.19 with GOMAXPROCS=2 and GODEBUG=gctrace=1,gcpacertrace=1, three
times per experiment; fidelity/run_go119.py did that, kept the raw traces in
fidelity/go119/ and wrote fidelity/go119/summary.json with summarize().
Here each experiment runs once under concalloc (2 Ps, one mutator), its
cycle records (RunResult.gc["cycles"], the keys of gc.gctrace.RECORD_KEYS)
go through the same summarize(), and the two are printed side by side.

Both sides are summarized from cycle records the same way.  Go's records
come from its trace lines: heap_goal, heap_end and trigger in exact bytes
(gcpacertrace), heap_start and heap_marked only in whole MiB (gctrace).  So
the marked heap is compared as gctrace shows it, rounded down to MiB on both
sides (marked_floor_mb); goal and trigger are compared exactly.

A metric whose concalloc/Go ratio is outside 1 +- TOLERANCE is flagged.
Exit status of the CLI: 0 all within tolerance, 1 some metric flagged,
2 bad arguments, 3 nothing to compare (no Go summary, or concalloc recorded
no GC cycle, as before its collector existed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

#: The Go side's summary, written by fidelity/run_go119.py.
GO_SUMMARY = Path(__file__).resolve().parents[1] / "fidelity" / "go119" / "summary.json"
#: A concalloc/Go ratio further than this from 1 is flagged.  Go's own runs
#: differ by a few percent from each other (see the summary's per-run counts);
#: 25% leaves room for that and for the model's coarser timing, and still
#: catches a pacer that is wrong by a term (GOGC, the stack or globals term).
TOLERANCE = 0.25
#: The metrics the table compares: (summary key, label).
COMPARED = (("cycles", "cycles"), ("goal_mean_mb", "mean goal MB"),
            ("marked_floor_mean_mb", "mean marked MB"))

_MiB = 1 << 20
EXIT_OK, EXIT_FLAGGED, EXIT_USAGE, EXIT_NOTHING = 0, 1, 2, 3


@dataclass(frozen=True)
class Experiment:
    """One ring configuration, as both the Go program and concalloc run it.

    cut=True is the ring ring.py runs (a chain of exactly `live` objects;
    the Go program's -cut clears the oldest object's pointer each step).
    The chain experiments (cut=False, not noscan) are the old ring, which
    kept every object reachable: Go's runs of it are kept as a record, and
    nothing in concalloc compares with them.
    """
    live: int
    size: int
    noscan: bool
    gogc: int
    steps: int = 1_000_000
    cut: bool = False

    @property
    def name(self) -> str:
        kind = "noscan" if self.noscan else ("cut" if self.cut else "chain")
        return f"ring-{kind}-L{self.live}-S{self.size}-gogc{self.gogc}"

    def go_args(self) -> list[str]:
        args = [f"-live={self.live}", f"-size={self.size}", f"-steps={self.steps}"]
        return args + ["-noscan"] * self.noscan + ["-cut"] * self.cut

    def config_fields(self, steps: int | None = None) -> dict:
        return dict(procs=2, mutators=1, workload="ring", live=self.live, size=self.size,
                    noscan=self.noscan, steps=steps or self.steps, gogc=self.gogc)


EXPERIMENTS = (
    Experiment(20000, 64, False, 50),
    Experiment(20000, 64, False, 100),
    Experiment(20000, 64, False, 200),
    Experiment(5000, 1024, True, 100),
    Experiment(20000, 64, False, 50, cut=True),
    Experiment(20000, 64, False, 100, cut=True),
    Experiment(20000, 64, False, 200, cut=True),
)


def _mean(xs):
    return round(statistics.fmean(xs), 3) if xs else None


def summarize(runs: list[list[dict]]) -> dict:
    """Cycle records of one or more runs -> the compared numbers (MiB).

    Forced cycles (runtime.GC) are left out: they are not the pacer's.
    Means and medians are over the cycles of all runs pooled; `cycles` is
    the mean count per run.
    """
    cycles = [[r for r in run if not r["forced"]] for run in runs]
    pooled = [r for run in cycles for r in run]

    def mb(key):
        return [r[key] / _MiB for r in pooled if r.get(key) is not None]

    goals = mb("heap_goal")
    return {
        "runs": len(runs),
        "cycles_per_run": [len(run) for run in cycles],
        "cycles": _mean([len(run) for run in cycles]),
        "goal_mean_mb": _mean(goals),
        "goal_median_mb": round(statistics.median(goals), 3) if goals else None,
        "trigger_mean_mb": _mean(mb("trigger")),
        "heap_start_mean_mb": _mean(mb("heap_start")),
        "marked_mean_mb": _mean(mb("heap_marked")),
        "marked_floor_mean_mb": _mean([r["heap_marked"] >> 20 for r in pooled]),
    }


#: Raw Go traces (fidelity/go119/<experiment>.<k>.txt), for the mark-phase view.
GO_TRACES = GO_SUMMARY.parent


def mark_phases(runs: list[list[dict]]) -> dict:
    """What happens during the concurrent mark, per cycle (medians over the
    unforced cycles of all runs): the mark's clock time, the GC CPU spent in
    it (assist + background + idle), that CPU as a share of one P over the
    mark, the heap's growth during it and the marked heap -- sizes in whole
    MiB, as gctrace prints them on both sides.

    With allocate-black, what the mutator allocates during the mark is
    marked: `marked` ~ live + `grown`.  So the marked heap (and the next
    goal) follows the mark's length times the mutator's allocation rate.
    """
    pooled = [r for run in runs for r in run if not r["forced"]]

    def med(xs):
        return round(statistics.median(xs), 3) if xs else None

    clock = [r["clock_ns"][1] / 1e6 for r in pooled]
    cpu = [sum(r["cpu_ns"][1:4]) / 1e6 for r in pooled]
    return {
        "cycles": len(pooled),
        "mark_clock_ms": med(clock),
        "mark_cpu_ms": med(cpu),
        "mark_cpu_share": med([c / t for c, t in zip(cpu, clock) if t > 0]),
        "assist_ms": med([r["cpu_ns"][1] / 1e6 for r in pooled]),
        "grown_mb": med([(r["heap_end"] >> 20) - (r["heap_start"] >> 20) for r in pooled]),
        "marked_mb": med([r["heap_marked"] >> 20 for r in pooled]),
    }


def go_mark_phases(name: str, traces: Path = GO_TRACES) -> dict:
    """mark_phases() of Go's raw traces of one experiment (all its runs)."""
    from .gc.gctrace import parse_trace
    files = sorted(Path(traces).glob(f"{name}.*.txt"))
    if not files:
        raise NothingToCompare(f"no Go traces {name}.*.txt in {traces}")
    return mark_phases([parse_trace(f.read_text()) for f in files])


#: The columns of the mark-phase table: (mark_phases key, label).
MARK_COLUMNS = (("mark_clock_ms", "mark ms"), ("mark_cpu_ms", "GC CPU ms"),
                ("mark_cpu_share", "CPU/mark"), ("assist_ms", "assist ms"),
                ("grown_mb", "grown MB"), ("marked_mb", "marked MB"))


def format_marks(rows: list[tuple[str, str, dict]]) -> str:
    """(experiment, side, mark_phases()) triples -> an aligned table of medians."""
    lines = [("experiment", "side", "cycles") + tuple(label for _, label in MARK_COLUMNS)]
    for name, side, m in rows:
        lines.append((name, side, _num(m["cycles"])) + tuple(_num(m[k]) for k, _ in MARK_COLUMNS))
    widths = [max(len(line[c]) for line in lines) for c in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def compare(go: dict, ours: dict) -> list[dict]:
    """The COMPARED metrics of two summaries, with ratio ours/go and a flag."""
    rows = []
    for key, label in COMPARED:
        g, o = go.get(key), ours.get(key)
        ratio = o / g if g and o is not None else None
        flagged = ratio is None or abs(ratio - 1) > TOLERANCE
        rows.append({"metric": key, "label": label, "go": g, "concalloc": o,
                     "ratio": None if ratio is None else round(ratio, 3), "flagged": flagged})
    return rows


def format_table(results: list[tuple[str, list[dict]]]) -> str:
    """(experiment name, compare() rows) pairs -> an aligned text table."""
    head = ("experiment", "metric", "Go 1.19", "concalloc", "ratio", "")
    lines = [head]
    for name, rows in results:
        for i, row in enumerate(rows):
            lines.append((name if i == 0 else "", row["label"], _num(row["go"]),
                          _num(row["concalloc"]), _num(row["ratio"]),
                          f"<-- outside +-{TOLERANCE:.0%}" if row["flagged"] else ""))
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def _num(x) -> str:
    return "-" if x is None else f"{x:g}" if isinstance(x, int) else f"{x:.2f}"


class NothingToCompare(Exception):
    """No Go summary, or concalloc produced no GC cycle."""


def load_go_summary(path: Path = GO_SUMMARY) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise NothingToCompare(f"no Go summary at {path}: run fidelity/run_go119.py first") from None


def _collector_config_ready() -> bool:
    from .config import Config
    return "gogc" in {f.name for f in dataclasses.fields(Config)}


def _run_concalloc(fields: dict):
    from .config import Config
    from .runtime import Runtime
    return Runtime(Config(**fields)).run()


def concalloc_cycles(exp: Experiment, steps: int | None = None, scheduler: str = "os") -> list[dict]:
    """Run exp under concalloc once (free threads, or in virtual time); its GC cycle records."""
    if not _collector_config_ready():
        raise NothingToCompare("this concalloc has no collector (Config has no gogc): "
                               "no GC cycles to compare with Go")
    fields = exp.config_fields(steps)
    if scheduler != "os":      # a controlled run: allow it every decision it needs
        fields.update(scheduler=scheduler, max_steps=10**12)
    result = _run_concalloc(fields)
    if result.exit_code != 0:
        raise NothingToCompare(f"{exp.name}: the concalloc run failed "
                               f"(exit {result.exit_code}: {result.error})")
    cycles = (getattr(result, "gc", None) or {}).get("cycles") or []
    if not cycles:
        raise NothingToCompare(f"{exp.name}: concalloc recorded no GC cycle "
                               "(RunResult.gc['cycles'] is empty or missing)")
    return cycles


def run(experiments, go: dict, steps: int | None = None, scheduler: str = "os",
        marks: list | None = None) -> list[tuple[str, list[dict]]]:
    """Each experiment under concalloc, compared with go (load_go_summary()).
    If marks is a list, (name, mark_phases()) of each concalloc run is appended to it."""
    results = []
    for exp in experiments:
        ref = go.get("experiments", {}).get(exp.name)
        if ref is None:
            raise NothingToCompare(f"{exp.name}: not in the Go summary")
        cycles = concalloc_cycles(exp, steps, scheduler)
        ours = summarize([cycles])
        if marks is not None:
            marks.append((exp.name, mark_phases([cycles])))
        results.append((exp.name, compare(ref["summary"], ours)))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m concalloc.fidelity",
                                 description="compare concalloc's GC cycles with Go 1.19's on the ring workload")
    ap.add_argument("--json", action="store_true", help="print the comparison as JSON")
    ap.add_argument("--only", metavar="NAME", help="run only the experiment with this name (any variant)")
    ap.add_argument("--steps", type=int, help="override the steps of every experiment (a quick look; "
                                              "the cycle count is then not comparable)")
    ap.add_argument("--scheduler", choices=("os", "vtime"), default="os",
                    help="concalloc's threads: free (os, default) or in virtual time priced from Go 1.19 "
                         "(vtime; minutes per experiment)")
    ap.add_argument("--marks", action="store_true",
                    help="also compare the mark phases (medians per cycle: clock, GC CPU, heap growth, "
                         "marked) with Go's raw traces")
    ap.add_argument("--go-summary", type=Path, default=GO_SUMMARY, help="the Go side's summary.json")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    comparable = [e for e in EXPERIMENTS if e.cut or e.noscan]
    exps = [e for e in comparable if e.name == args.only] if args.only else comparable
    if not exps:
        chain = args.only in {e.name for e in EXPERIMENTS}
        print(f"fidelity: {args.only!r} is " + ("a Go-only record of the old ring, whose chain kept every object "
              "reachable; ring.py cuts its chain, so nothing in concalloc compares with it" if chain
              else "no experiment") + f"; comparable: {', '.join(e.name for e in comparable)}", file=sys.stderr)
        return EXIT_USAGE
    if args.steps is not None and args.steps < 1:
        print(f"fidelity: --steps must be >= 1, got {args.steps}", file=sys.stderr)
        return EXIT_USAGE
    marks = [] if args.marks else None
    try:
        results = run(exps, load_go_summary(args.go_summary), args.steps, args.scheduler, marks)
        if marks is not None:
            marks = [row for name, ours in marks
                     for row in ((name, "Go 1.19", go_mark_phases(name, args.go_summary.parent)),
                                 (name, "concalloc", ours))]
    except NothingToCompare as e:
        print(f"fidelity: {e}", file=sys.stderr)
        return EXIT_NOTHING
    flagged = any(row["flagged"] for _, rows in results for row in rows)
    if args.json:
        out = [{"experiment": name, "rows": rows} for name, rows in results]
        if marks is not None:
            out = {"comparison": out, "marks": [{"experiment": n, "side": side, **m} for n, side, m in marks]}
        print(json.dumps(out, indent=2))
    else:
        print(format_table(results))
        if marks is not None:
            print("\nmark phases (medians per cycle):")
            print(format_marks(marks))
    return EXIT_FLAGGED if flagged else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
