"""Violation: what every checker raises, as a structured record.

A violation names the invariant (its `kind`), uses Go's own error text where
Go has one, and carries what is needed to understand and replay it:

    kind / invariant   the broken invariant ("gc.checkmark", "span.alloc_count", ...)
    message            the whole report, Go's text where Go has one
    go_text            Go's one-line fatal error ("fatal error: ..." / throw's text), if Go has one
    address, span      the object and its span (base, limit, span class, size class, elemsize, ...)
    cycle, phase       the GC cycle in progress (or the last one started) and gcphase
    thread             the thread that found it
    events             the last events of every thread, oldest first
    config, seed,      the run's whole Config (and cache setting), its seed and scheduler
    scheduler
    replay_command     the exact command that repeats the run

The run in progress supplies the context (cycle, phase, events, config):
Runtime.run installs a provider with run_context(); a violation raised
outside any run (a library Heap.verify()) has those fields empty and its
replay command is the current process's own command line, which replays a
single-threaded program.  The record is read once, when the violation is
made, on the thread that found it: under a controlled scheduler only that
thread runs then, so the record is a function of (config, seed) and a replay
gives the same record, field for field (tests/test_violation_record.py).
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import threading

# Set before a run's threads start, read-only while they run.
_global_replay: list[str | None] = [None]
_context: list = [None]          # fn() -> dict of run context, or None outside a run

EVENTS_PER_THREAD = 12           #: events of each thread a violation keeps


def set_replay_command(cmd: str | None) -> None:
    _global_replay[0] = cmd


@contextlib.contextmanager
def replay_context(cmd: str):
    old = _global_replay[0]
    _global_replay[0] = cmd
    try:
        yield
    finally:
        _global_replay[0] = old


@contextlib.contextmanager
def run_context(provider):
    """While a run is in progress: provider() returns the context a violation
    records ({"cycle", "phase", "events", "config", "seed", "scheduler"}, any subset)."""
    old = _context[0]
    _context[0] = provider
    try:
        yield
    finally:
        _context[0] = old


def current_replay_command() -> str:
    return _global_replay[0] or shlex.join([sys.executable] + sys.argv)


def span_info(s) -> dict | None:
    """What a record keeps of a span: plain values, so it pickles and prints."""
    if s is None:
        return None
    if not hasattr(s, "startAddr"):
        return {"describe": str(s)}
    from ..sizeclasses import span_class_name
    return {"base": hex(s.startAddr), "limit": hex(s.limit), "npages": s.npages,
            "spanclass": span_class_name(s.spanclass), "sizeclass": s.spanclass >> 1,
            "noscan": bool(s.spanclass & 1), "elemsize": s.elemsize, "nelems": s.nelems,
            "allocCount": s.allocCount, "freeindex": s.freeindex, "sweepgen": s.sweepgen,
            "describe": s.describe()}


def go_text_of(message: str) -> str | None:
    """Go's fatal-error line in a message, if it has one."""
    for line in reversed(message.splitlines()):
        line = line.strip()
        if line.startswith("fatal error: "):
            return line
    return None


class Violation(AssertionError):
    def __init__(self, invariant: str, message: str, *, address: int | None = None, span=None,
                 cycle: int | None = None, phase: str | None = None, thread: str | None = None,
                 events: dict | None = None, replay: str | None = None, go_text: str | None = None,
                 with_context: bool = True):
        self.invariant = invariant
        self.message = message
        self.go_text = go_text or go_text_of(message)
        self.address = address
        self.span = span
        self.span_info = span_info(span)
        self.thread = thread or threading.current_thread().name
        self.cycle, self.phase = cycle, phase
        self.events = events or {}
        self.config = self.seed = self.scheduler = None
        if with_context and _context_provider() is not None:
            self._fill(_context_provider()())
        self.replay = replay or current_replay_command()
        super().__init__(self.render())

    @property
    def kind(self) -> str:
        return self.invariant

    @property
    def replay_command(self) -> str:
        return self.replay

    def _fill(self, ctx: dict) -> None:
        """Take what the run knows and the raiser did not say."""
        if self.cycle is None:
            self.cycle = ctx.get("cycle")
        if self.phase is None:
            self.phase = ctx.get("phase")
        if not self.events:
            self.events = ctx.get("events") or {}
        self.config = ctx.get("config")
        self.seed = ctx.get("seed")
        self.scheduler = ctx.get("scheduler")

    def render(self) -> str:
        lines = [f"invariant violated: {self.invariant}", f"  {self.message}"]
        if self.address is not None:
            lines.append(f"  address: {self.address:#x}")
        if self.span_info is not None:
            lines.append(f"  span: {self.span_info['describe']}")
        ctx = [f"{k}={v}" for k, v in (("cycle", self.cycle), ("phase", self.phase), ("thread", self.thread),
                                       ("scheduler", self.scheduler), ("seed", self.seed))
               if v is not None]
        lines.append("  " + " ".join(ctx))
        for th, evs in self.events.items():
            lines.append(f"  last events of {th}:")
            lines.extend(f"    {format_event(e)}" for e in evs)
        lines.append(f"  replay: {self.replay}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The record, JSON-ready (what `run --json` lists under "violations")."""
        return {"kind": self.invariant, "invariant": self.invariant, "message": self.message,
                "go_text": self.go_text,
                "address": None if self.address is None else hex(self.address),
                "span": self.span_info,
                "sizeclass": None if self.span_info is None else self.span_info.get("sizeclass"),
                "cycle": self.cycle, "phase": self.phase, "thread": self.thread,
                "events": self.events, "config": self.config, "seed": self.seed,
                "scheduler": self.scheduler, "replay_command": self.replay, "replay": self.replay}

    def __reduce__(self):
        return (_rebuild, (type(self).__name__, self.to_dict()))


def _context_provider():
    return _context[0]


def format_event(e: dict) -> str:
    """One recorded event for people: 'step 812 lock_acquire lock=mheap'."""
    fields = " ".join(f"{k}={_show(v)}" for k, v in e.get("fields", {}).items())
    return f"{e.get('seq')} {e.get('kind')}" + (f" {fields}" if fields else "")


def _show(v) -> str:
    return hex(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 1 << 32 else str(v)


def throw(invariant: str, message: str, span=None, address: int | None = None):
    """Go's throw() for a broken runtime invariant: raise it as a Violation."""
    raise Violation(invariant, message, span=span, address=address)


def _rebuild(_cls: str, d: dict) -> Violation:
    """A Violation back from another process: the record, without live objects."""
    v = Violation(d["invariant"], d["message"], cycle=d["cycle"], phase=d["phase"], thread=d["thread"],
                  events=d["events"], replay=d["replay"], go_text=d["go_text"], with_context=False)
    v.address = None if d["address"] is None else int(d["address"], 16)
    v.span_info = d["span"]
    v.config, v.seed, v.scheduler = d["config"], d["seed"], d["scheduler"]
    v.args = (v.render(),)
    return v
