"""The outcome of a run: exit codes, run-ending errors and RunResult.

Exit codes are the CLI's: 0 ok; 1 an invariant violation (a failed check or a
runtime throw); 2 bad arguments or config; 3 deadlock, hang or internal error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .check.violation import Violation

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class Hang(RuntimeError):
    """The watchdog saw no progress."""


class RunTimeout(RuntimeError):
    """Runtime.run_bounded: the run did not end within its bound."""


@dataclass
class RunResult:
    config: dict
    exit_code: int = EXIT_OK
    error: BaseException | None = None
    memstats: dict = field(default_factory=dict)
    locks: dict = field(default_factory=dict)
    stw: dict = field(default_factory=dict)
    violations: list = field(default_factory=list)
    event_log_hash: str | None = None
    sched: dict = field(default_factory=dict)
    mutators: dict = field(default_factory=dict)
    gc: dict = field(default_factory=dict)
    elapsed: float = 0.0
    vtime: dict | None = None          # --scheduler vtime: clocks and their breakdown

    def to_json(self) -> dict:
        from .runconfig import RUN_FORMAT, RUN_VERSION
        d = {"format": RUN_FORMAT, "format_version": RUN_VERSION, "config": self.config, "exit_code": self.exit_code, "memstats": self.memstats,
             "locks": self.locks, "stw": self.stw, "violations": self.violations,
             "sched": self.sched, "mutators": self.mutators, "gc": self.gc,
             "elapsed_s": round(self.elapsed, 3)}
        if self.vtime is not None:
            d["vtime"] = self.vtime
        if self.event_log_hash is not None:
            d["event_log_hash"] = self.event_log_hash
        if self.error is not None and not isinstance(self.error, Violation):
            d["error"] = {"type": type(self.error).__name__, "message": str(self.error)}
        return d


def exit_code_for(err: BaseException | None) -> int:
    if err is None:
        return EXIT_OK
    if isinstance(err, Violation):
        return EXIT_VIOLATION
    return EXIT_INTERNAL
