"""SyncContext: the one place that builds every blocking primitive of a run.

Allocator and GC code never touch ``threading`` directly for blocking: they ask
their SyncContext for a mutex (and later conditions, parking), so the same code
runs under the free OS scheduler or a controlled one, with or without rank
checking and lock statistics.  What is instrumented is decided here, when the
primitive is built, never by an ``if`` on each acquisition.
"""

from __future__ import annotations

import threading

from .lockrank import Rank, rank_allows


class LockRankViolation(RuntimeError):
    """Go: "lock ordering problem"."""


class _Held(threading.local):
    def __init__(self):
        self.stack: list = []


class Mutex:
    """A named, ranked runtime mutex (Go's runtime.mutex + lockWithRank)."""

    __slots__ = ("name", "lock_class", "rank", "_lk", "lock", "unlock", "_held")

    def __init__(self, name: str, rank: Rank, lock_class: str | None, check_ranks: bool, held: _Held):
        self.name = name
        self.lock_class = lock_class or name
        self.rank = rank
        self._lk = threading.Lock()
        self._held = held
        if check_ranks:
            self.lock = self._lock_ranked
            self.unlock = self._unlock_ranked
        else:
            self.lock = self._lk.acquire
            self.unlock = self._lk.release

    def _lock_ranked(self) -> None:
        stack = self._held.stack
        if stack and not rank_allows(stack[-1].rank, self.rank):
            top = stack[-1]
            raise LockRankViolation(
                f"lock ordering problem: acquiring {self.name} (rank {self.rank.name}) "
                f"while holding {top.name} (rank {top.rank.name})")
        self._lk.acquire()
        stack.append(self)

    def _unlock_ranked(self) -> None:
        stack = self._held.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is self:
                del stack[i]
                break
        else:
            raise LockRankViolation(f"unlock of {self.name}, which this thread does not hold")
        self._lk.release()

    def __enter__(self):
        self.lock()
        return self

    def __exit__(self, *exc):
        self.unlock()

    def __repr__(self) -> str:
        return f"<Mutex {self.name} rank={self.rank.name}>"


class SyncContext:
    def __init__(self, check_ranks: bool = True):
        self.check_ranks = check_ranks
        self._held = _Held()

    def mutex(self, name: str, rank: Rank, lock_class: str | None = None) -> Mutex:
        return Mutex(name, rank, lock_class, self.check_ranks, self._held)

    def held_locks(self) -> list:
        return list(self._held.stack)
