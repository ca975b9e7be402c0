"""The errors a run of the sync layer can end with.

Every run-ending error (a thread's exception, a deadlock, a replay that
diverged, a step budget exhausted) is raised to whoever calls
``Scheduler.join_all``; the managed threads themselves are unwound with the
internal ``Aborted``, a BaseException so that ``except Exception`` in runtime
code cannot swallow it.
"""

from __future__ import annotations


class LockRankViolation(RuntimeError):
    """Go: "lock ordering problem"."""


class ThreadFailure(RuntimeError):
    """A managed thread raised; carries its name, formatted traceback and the exception."""

    def __init__(self, thread: str, traceback_text: str, error: BaseException | None = None):
        super().__init__(f"thread {thread} failed:\n{traceback_text}")
        self.thread = thread
        self.traceback_text = traceback_text
        self.error = error


class Deadlock(RuntimeError):
    """Every live thread of a controlled run is blocked."""

    def __init__(self, blocked: dict[str, str], step: int, label: str):
        lines = "\n".join(f"  {t}: {why}" for t, why in blocked.items())
        super().__init__(f"deadlock at step {step} ({label}): all live threads are blocked\n{lines}")
        self.blocked = blocked
        self.step = step
        self.label = label


class ReplayDivergence(RuntimeError):
    """A replayed run did not follow its recorded schedule."""

    def __init__(self, step: int, expected: str, got: str):
        super().__init__(f"replay diverged at step {step}: expected {expected}, got {got}")
        self.step = step
        self.expected = expected
        self.got = got


class StepLimitExceeded(RuntimeError):
    """A controlled run took more scheduling steps than its max_steps (a livelock guard)."""


class Aborted(BaseException):
    """Internal: unwinds a managed thread once its run has been stopped."""
