"""gctrace: the one-line summary Go prints per GC cycle (GODEBUG=gctrace=1).

Go prints it in gcMarkTermination (mgc.go), just before it releases
worldsema, and documents it in extern.go:

    gc N @S.SSSs P%: C1+C2+C3 ms clock, U1+A/B/I+U3 ms cpu, H0->H1->H2 MB, G MB goal, K MB stacks, L MB globals, NP P[ (forced)]

N is the cycle number; @S the time the cycle started, in seconds since the
program started (whole milliseconds shown with three decimals); P% the GC's
share of the CPU since the program started (truncated to an integer).  The
clock times are the wall time of the STW sweep termination, the concurrent
mark and the STW mark termination; the cpu times are sweep termination, then
assist / background / idle mark time, then mark termination.  H0 is heapLive
when the cycle started, H1 heapLive at mark termination, H2 the bytes
marked; G the heap goal; K the stack bytes and L the globals bytes to scan;
NP GOMAXPROCS.  Every MB value is bytes >> 20 (MiB, rounded down).

Times go through Go's fmtNSAsMS: 10 ms or more prints whole milliseconds;
less prints two significant digits with at most three decimals, truncating
(1234 us -> "1.2", 57 us -> "0.057", 100 us -> "0.10", under 1 us -> "0").

format_gctrace turns a cycle record (the dict the collector produces per
cycle, keys in RECORD_KEYS) into that line.  parse_gctrace reads a line back
into the same keys, in ns and bytes, each the smallest value that prints the
same, so format_gctrace(parse_gctrace(line)) == line for every line Go
prints.  GCTRACE_RE is the line's grammar, written from Go's print calls.

parse_pacertrace reads the end-of-cycle line of GODEBUG=gcpacertrace=1
(mgcpacer.go endCycle, printed just before the cycle's gctrace line), which
gives the trigger and the heap at mark termination in exact bytes.
"""

from __future__ import annotations

import re
from decimal import Decimal

#: The keys of a cycle record, as the collector produces them.
RECORD_KEYS = ("n", "forced", "start_ns", "end_ns", "clock_ns", "cpu_ns",
               "heap_start", "heap_end", "heap_marked", "heap_goal", "trigger",
               "stacks", "globals", "procs", "gc_cpu_fraction_pct",
               "assist_work", "background_work", "barrier_calls", "num_forced")

_MS = r"\d+(?:\.\d+)?"          # a fmtNSAsMS value

GCTRACE_RE = re.compile(
    r"^gc (?P<n>\d+) @(?P<at>\d+\.\d{3})s (?P<pct>\d+)%: "
    rf"(?P<c1>{_MS})\+(?P<c2>{_MS})\+(?P<c3>{_MS}) ms clock, "
    rf"(?P<u1>{_MS})\+(?P<assist>{_MS})/(?P<background>{_MS})/(?P<idle>{_MS})\+(?P<u3>{_MS}) ms cpu, "
    r"(?P<h0>\d+)->(?P<h1>\d+)->(?P<h2>\d+) MB, (?P<goal>\d+) MB goal, "
    r"(?P<stacks>\d+) MB stacks, (?P<globals>\d+) MB globals, (?P<procs>\d+) P"
    r"(?P<forced> \(forced\))?$")

PACER_END_RE = re.compile(
    r"^pacer: (?P<util>-?\d+)% CPU \((?P<goal_util>\d+) exp\.\) for "
    r"(?P<heap_work>\d+)\+(?P<stack_work>\d+)\+(?P<globals_work>\d+) B work \((?P<expected>\d+) B exp\.\) "
    r"in (?P<trigger>\d+) B -> (?P<heap_live>\d+) B \(∆goal (?P<dgoal>-?\d+), cons/mark (?P<cons_mark>\S+)\)"
    r"(?P<reset>\[controller reset\])?$")

_MB = 20


def itoaDiv(val: int, dec: int) -> str:
    """Go's itoaDiv: val / 10**dec printed with exactly dec decimals.

    Go writes at least one digit left of the point, and with dec == 0 at
    least two digits ("05"); gctrace only ever passes dec == 0 for values
    >= 10, where that quirk cannot show.
    """
    if val < 0:
        raise ValueError(f"itoaDiv: negative value {val}")
    digits = str(val).rjust(dec + 1 if dec else 2, "0")
    return digits if dec == 0 else f"{digits[:-dec]}.{digits[-dec:]}"


def fmtNSAsMS(ns: int) -> str:
    """Go's fmtNSAsMS: ns as milliseconds, as gctrace prints them."""
    if ns < 0:
        raise ValueError(f"fmtNSAsMS: negative duration {ns} ns")
    if ns >= 10_000_000:
        return itoaDiv(ns // 1_000_000, 0)
    x = ns // 1000
    if x == 0:
        return "0"
    dec = 3
    while x >= 100:
        x //= 10
        dec -= 1
    return itoaDiv(x, dec)


def format_gctrace(rec: dict) -> str:
    """The gctrace line (without the newline) Go would print for `rec`."""
    c1, c2, c3 = rec["clock_ns"]
    u1, assist, background, idle, u3 = rec["cpu_ns"]
    line = (f"gc {rec['n']} @{itoaDiv(rec['start_ns'] // 1_000_000, 3)}s "
            f"{rec['gc_cpu_fraction_pct']}%: "
            f"{fmtNSAsMS(c1)}+{fmtNSAsMS(c2)}+{fmtNSAsMS(c3)} ms clock, "
            f"{fmtNSAsMS(u1)}+{fmtNSAsMS(assist)}/{fmtNSAsMS(background)}/{fmtNSAsMS(idle)}"
            f"+{fmtNSAsMS(u3)} ms cpu, "
            f"{rec['heap_start'] >> _MB}->{rec['heap_end'] >> _MB}->{rec['heap_marked'] >> _MB} MB, "
            f"{rec['heap_goal'] >> _MB} MB goal, {rec['stacks'] >> _MB} MB stacks, "
            f"{rec['globals'] >> _MB} MB globals, {rec['procs']} P")
    return line + " (forced)" if rec["forced"] else line


def _ms_to_ns(text: str) -> int:
    return int(Decimal(text) * 1_000_000)


def parse_gctrace(line: str) -> dict:
    """A gctrace line -> a cycle record's printed keys (ns and bytes).

    Each value is the smallest that prints as the line does (a time or a
    size Go truncated is a lower bound).  end_ns, trigger and the work
    counters are not in the line and are absent.  Raises ValueError for a
    line that is not gctrace.
    """
    m = GCTRACE_RE.match(line.rstrip("\n"))
    if m is None:
        raise ValueError(f"not a gctrace line: {line!r}")
    g = m.group
    return {
        "n": int(g("n")),
        "forced": g("forced") is not None,
        "start_ns": int(Decimal(g("at")) * 1_000_000_000),
        "clock_ns": [_ms_to_ns(g(k)) for k in ("c1", "c2", "c3")],
        "cpu_ns": [_ms_to_ns(g(k)) for k in ("u1", "assist", "background", "idle", "u3")],
        "heap_start": int(g("h0")) << _MB,
        "heap_end": int(g("h1")) << _MB,
        "heap_marked": int(g("h2")) << _MB,
        "heap_goal": int(g("goal")) << _MB,
        "stacks": int(g("stacks")) << _MB,
        "globals": int(g("globals")) << _MB,
        "procs": int(g("procs")),
        "gc_cpu_fraction_pct": int(g("pct")),
    }


def parse_pacertrace(line: str) -> dict | None:
    """gcpacertrace's end-of-cycle line -> exact bytes, or None for other lines.

    trigger is heapLive when the cycle was triggered (gcController.triggered),
    heap_end heapLive at mark termination, heap_goal heap_end - ∆goal (the
    cycle's lastHeapGoal); the *_work fields are the bytes scanned.
    """
    m = PACER_END_RE.match(line.rstrip("\n"))
    if m is None:
        return None
    heap_end = int(m.group("heap_live"))
    return {"trigger": int(m.group("trigger")), "heap_end": heap_end,
            "heap_goal": heap_end - int(m.group("dgoal")),
            "heap_work": int(m.group("heap_work")), "stack_work": int(m.group("stack_work")),
            "globals_work": int(m.group("globals_work"))}


def parse_trace(text: str) -> list[dict]:
    """A program's stderr -> one record per gctrace line, in order.

    Lines that are neither gctrace nor gcpacertrace are skipped.  When
    gcpacertrace=1 was on too, the end-of-cycle pacer line printed just
    before a gctrace line replaces that record's heap_end and heap_goal with
    their exact bytes and adds trigger; heap_start and heap_marked stay as
    the gctrace line gives them (MiB, rounded down).
    """
    records, pacer = [], None
    for line in text.splitlines():
        if line.startswith("pacer: "):
            pacer = parse_pacertrace(line) or pacer
        elif GCTRACE_RE.match(line):
            rec = parse_gctrace(line)
            if pacer is not None:
                rec.update(heap_end=pacer["heap_end"], heap_goal=pacer["heap_goal"],
                           trigger=pacer["trigger"])
            records.append(rec)
            pacer = None
    return records
