"""Violation: what every checker raises.

It names the invariant, uses Go's own error text where Go has one, and
carries the context needed to understand and replay it: address, span,
cycle, phase, thread, the last events of each thread, and the exact
command that replays the run.  The replay command comes from the run that
is in progress (the CLI and the runtime set it); outside any run it is the
current process's own command line, which replays a single-threaded program.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import threading

_ctx = threading.local()
_global_replay: list[str | None] = [None]  # set before threads start; read-only during a run


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


def current_replay_command() -> str:
    return _global_replay[0] or shlex.join([sys.executable] + sys.argv)


class Violation(AssertionError):
    def __init__(self, invariant: str, message: str, *, address: int | None = None, span=None,
                 cycle: int | None = None, phase: str | None = None, thread: str | None = None,
                 events: dict | None = None, replay: str | None = None):
        self.invariant = invariant
        self.message = message
        self.address = address
        self.span = span
        self.cycle = cycle
        self.phase = phase
        self.thread = thread or threading.current_thread().name
        self.events = events or {}
        self.replay = replay or current_replay_command()
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"invariant violated: {self.invariant}", f"  {self.message}"]
        if self.address is not None:
            lines.append(f"  address: {self.address:#x}")
        if self.span is not None:
            lines.append(f"  span: {self.span.describe() if hasattr(self.span, 'describe') else self.span}")
        ctx = [f"{k}={v}" for k, v in (("cycle", self.cycle), ("phase", self.phase), ("thread", self.thread))
               if v is not None]
        lines.append("  " + " ".join(ctx))
        for th, evs in self.events.items():
            lines.append(f"  last events of {th}:")
            lines.extend(f"    {e}" for e in evs)
        lines.append(f"  replay: {self.replay}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"invariant": self.invariant, "message": self.message,
                "address": None if self.address is None else hex(self.address),
                "span": None if self.span is None else repr(self.span),
                "cycle": self.cycle, "phase": self.phase, "thread": self.thread,
                "replay": self.replay}

    def __reduce__(self):
        return (_rebuild, (self.invariant, self.message, self.replay))


def throw(invariant: str, message: str, span=None, address: int | None = None):
    """Go's throw() for a broken runtime invariant: raise it as a Violation."""
    raise Violation(invariant, message, span=span, address=address)


def _rebuild(invariant, message, replay):
    return Violation(invariant, message, replay=replay)
