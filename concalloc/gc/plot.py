"""A picture of a run's GC cycles: the heap against the pacer's trigger and goal.

plot_gc draws, over time since the run started:

* the live heap (heapLive) as the runtime sampled it;
* the trigger and the heap goal, as steps: a cycle's trigger and goal hold
  from the end of the previous cycle (when Go's gcControllerCommit sets
  them) to the end of this one;
* each cycle: its concurrent mark shaded, its two stop-the-world pauses
  (sweep termination at the start, mark termination at the end of mark) as
  vertical lines, its marked heap as a dot at mark termination, and its
  number above the shading (forced cycles, runtime.GC, in another colour).

Records are the collector's cycle records (gc.gctrace.RECORD_KEYS); only
n, forced, start_ns, clock_ns, heap_marked, heap_goal and trigger are used,
and end_ns if present.  samples are (t_ns, heapLive bytes) pairs; with none,
samples_from_records gives the sawtooth the records imply, which is how a Go
gctrace (parse_trace) can be drawn too.

Matplotlib draws through its Agg canvas on a Figure of our own, never
pyplot's global state, so a plot may be made from any thread.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_MiB = 1 << 20
#: Above this many cycles the cycle numbers are left off (they would overlap).
LABEL_CYCLES = 40

_LIVE, _TRIGGER, _GOAL, _MARKED = "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"
_MARK, _FORCED, _PAUSE = "#9ecae1", "#c7a0e0", "#555555"


def _end_ns(rec: dict) -> int:
    return rec.get("end_ns") or rec["start_ns"] + sum(rec["clock_ns"])


def _mark_span(rec: dict) -> tuple[int, int]:
    """(mark start, mark termination) in ns: after sweep termination's STW."""
    sweep_term, mark, _ = rec["clock_ns"]
    start = rec["start_ns"] + sweep_term
    return start, start + mark


def samples_from_records(records: list[dict]) -> list[tuple[int, int]]:
    """The heapLive a cycle's record implies: heap_start when it starts,
    heap_end at mark termination, then heap_marked (what heapLive becomes
    once the cycle ends)."""
    out = []
    for rec in records:
        out += [(rec["start_ns"], rec["heap_start"]), (_mark_span(rec)[1], rec["heap_end"]),
                (_end_ns(rec), rec["heap_marked"])]
    return out


_NEXT = {"trigger": "next_trigger", "heap_goal": "next_goal"}


def _steps(records: list[dict], key: str, scale: float = 1e9, until: int = 0) -> tuple[list[float], list[float]]:
    """x, y of a step function holding each record's `key` from the previous
    cycle's end to its own end, then the last record's next value (what its
    end committed, if it has it) until `until`."""
    xs, ys, prev_end = [], [], 0
    for rec in records:
        if rec.get(key) is None:
            continue
        xs += [prev_end / scale, _end_ns(rec) / scale]
        ys += [rec[key] / _MiB] * 2
        prev_end = _end_ns(rec)
    nxt = records[-1].get(_NEXT.get(key, "")) if records else None
    if nxt is not None and until > prev_end:
        xs += [prev_end / scale, until / scale]
        ys += [nxt / _MiB] * 2
    return xs, ys


def plot_gc(records: list[dict], samples: list[tuple[int, int]] | None, path, title: str = "",
            unit: str = "s", stops: list[tuple[int, int]] = ()) -> None:
    """Draw the run's heap, trigger, goal and cycles to `path` (a PNG).  Times
    are ns (unit "s"), or scheduler steps (unit "steps", a controlled run).
    stops: (start, end) of the verify_heap stops, drawn hatched."""
    scale = 1e9 if unit == "s" else 1.0
    records = sorted(records, key=lambda r: r["n"])
    samples = sorted(samples) if samples else samples_from_records(records)
    fig = Figure(figsize=(11, 5.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    for rec in records:
        mark_start, mark_end = _mark_span(rec)
        colour = _FORCED if rec["forced"] else _MARK
        ax.axvspan(mark_start / scale, mark_end / scale, color=colour, alpha=0.45, lw=0)
        for t in (rec["start_ns"], mark_end):
            ax.axvline(t / scale, color=_PAUSE, lw=0.6, alpha=0.7)
        ax.axvspan(mark_end / scale, _end_ns(rec) / scale, color=_PAUSE, alpha=0.35, lw=0)  # mark termination
        if len(records) <= LABEL_CYCLES:
            ax.annotate(f"{rec['n']}{'F' if rec['forced'] else ''}", (mark_start / scale, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(1, -10),
                        textcoords="offset points", fontsize=7, color="#333333")

    if samples:
        # heapLive holds its value until the next sample (it moves at refills and cycle ends)
        ax.plot([t / scale for t, _ in samples], [b / _MiB for _, b in samples],
                color=_LIVE, lw=1.2, drawstyle="steps-post", label="heap live")
    for key, colour, style, label in (("trigger", _TRIGGER, "--", "trigger"),
                                      ("heap_goal", _GOAL, "-", "heap goal")):
        xs, ys = _steps(records, key, scale, samples[-1][0] if samples else 0)
        if xs:
            ax.plot(xs, ys, color=colour, ls=style, lw=1.4, label=label)
    ax.plot([_mark_span(r)[1] / scale for r in records], [r["heap_marked"] / _MiB for r in records],
            "o", color=_MARKED, ms=3.5, label="marked (at mark termination)")

    # Legend entries for the shading and the pause lines.
    ax.axvspan(0, 0, color=_MARK, alpha=0.45, lw=0, label="concurrent mark")
    if any(r["forced"] for r in records):
        ax.axvspan(0, 0, color=_FORCED, alpha=0.45, lw=0, label="forced cycle (runtime.GC)")
    ax.plot([], [], color=_PAUSE, lw=0.6, label="STW pause (sweep term / mark term)")
    for i, (a, b) in enumerate(stops):
        ax.axvspan(a / scale, b / scale, facecolor="none", edgecolor=_PAUSE, hatch="///", lw=0,
                   alpha=0.5, label="verify_heap stop (heapcheck=1)" if i == 0 else None)

    ax.set_xlabel("time since start (s)" if unit == "s" else "scheduler steps since start")
    ax.set_ylabel("MiB")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)    # room for the cycle numbers
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize=8, frameon=False)
    ax.set_title(title or f"GC cycles: {len(records)}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, format="png")


def plot_run(rt, path, elapsed: float) -> None:
    """--plot: draw a finished run (elapsed seconds long): its cycles and the
    heapLive its Ps sampled (gc.heapsamples), with the records' exact points."""
    gc, cfg = rt.gc, rt.config
    samples = (gc.samples.samples() if gc.samples is not None else []) + samples_from_records(gc.cycles)
    unit = "steps" if rt.sched.controlled else "s"
    length = f"{elapsed:.1f} s" if unit == "s" else f"{rt.sched.steps:,} scheduler steps"
    gogc = "off" if cfg.gogc < 0 else cfg.gogc
    title = (f"{cfg.workload} on {cfg.procs} Ps, GOGC {gogc}, {cfg.barrier} barrier: "
             f"{len(gc.cycles)} GC cycle{'' if len(gc.cycles) == 1 else 's'} in {length}")
    plot_gc(gc.cycles, samples, path, title, unit, gc.samples.verify_stops if gc.samples is not None else ())


def main(argv: list[str] | None = None) -> int:
    """python -m concalloc.gc.plot TRACE OUT.png [TITLE]: draw a Go gctrace."""
    import sys
    from .gctrace import parse_trace
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m concalloc.gc.plot TRACE OUT.png [TITLE]", file=sys.stderr)
        return 2
    try:
        records = parse_trace(open(args[0]).read())
    except OSError as e:
        print(f"plot: {e}", file=sys.stderr)
        return 2
    if not records:
        print(f"plot: no gctrace lines in {args[0]}", file=sys.stderr)
        return 2
    plot_gc(records, None, args[1], args[2] if len(args) == 3 else args[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
