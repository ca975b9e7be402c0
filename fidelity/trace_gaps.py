"""Silent stretches in a Go execution trace: where Go's marks spend their time.

Input: the text dump of a runtime/trace (`go tool trace -d trace.out`, one
event a line: `<ns> <Kind> p=.. g=.. ...`), e.g. of `fidelity/ring -trace`.
While the ring's mutator runs it emits a HeapAlloc event for every span it
takes (every few µs), so a stretch with no event at all is one in which it did
not run -- Go's threads were off the CPU, or the mutator was parked while a
worker drained (a draining worker emits nothing).  For each concurrent mark
(GCSTWDone of sweep termination -> GCSTWStart of mark termination) this
prints its length and how much of it lay in gaps longer than `--gap` ms; then
the run's longest gaps.  See docs/gc-fidelity.md.

    python fidelity/trace_gaps.py /tmp/t.txt
"""

from __future__ import annotations

import argparse
import sys


def read_events(lines) -> list[tuple[int, str, str]]:
    """(ns, kind, rest of line) of every event line; other lines skipped."""
    events = []
    for line in lines:
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit():
            events.append((int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
    return events


def marks(events) -> list[tuple[int, int]]:
    """(start, end) ns of each concurrent mark phase."""
    out, start, in_cycle = [], None, False
    for t, kind, rest in events:
        if kind == "GCStart":
            in_cycle, start = True, None
        elif kind == "GCSTWDone" and in_cycle and start is None:
            start = t
        elif kind == "GCSTWStart" and in_cycle and start is not None and "mark termination" in rest:
            out.append((start, t))
            in_cycle = False
    return out


def silent_ns(times: list[int], lo: int, hi: int, gap_ns: int) -> int:
    """ns of [lo, hi) that lie in gaps between consecutive events longer than gap_ns."""
    total = 0
    for a, b in zip(times, times[1:]):
        if b - a > gap_ns:
            total += max(0, min(b, hi) - max(a, lo))
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", help="output of `go tool trace -d trace.out`")
    ap.add_argument("--gap", type=float, default=0.3, help="a silent gap is longer than this many ms (0.3)")
    ap.add_argument("--top", type=int, default=12, help="longest gaps to list (12)")
    args = ap.parse_args(argv)
    with open(args.dump) as f:
        events = read_events(f)
    if not events:
        print(f"trace_gaps: no events in {args.dump}", file=sys.stderr)
        return 2
    times = [t for t, _, _ in events]
    gap = int(args.gap * 1e6)
    tot = sil = 0
    for i, (a, b) in enumerate(marks(events), 1):
        s = silent_ns(times, a, b, gap)
        tot, sil = tot + b - a, sil + s
        print(f"mark {i}: {(b - a) / 1e6:6.2f} ms, silent {s / 1e6:6.2f} ms")
    print(f"marks: {tot / 1e6:.2f} ms, silent {sil / 1e6:.2f} ms")
    print(f"run: {(times[-1] - times[0]) / 1e6:.1f} ms, silent {silent_ns(times, times[0], times[-1], gap) / 1e6:.1f} ms")
    longest = sorted(((b - a, a) for a, b in zip(times, times[1:])), reverse=True)[:args.top]
    print("longest gaps: " + ", ".join(f"{g / 1e6:.2f} ms at {a / 1e6:.2f} ms" for g, a in longest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
