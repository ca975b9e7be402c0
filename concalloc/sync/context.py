"""SyncContext: the one place that builds every blocking primitive of a run.

Allocator and GC code never touch ``threading`` directly for blocking: they
ask their SyncContext for mutexes, conditions and events, and call its
yield_point, so the same code runs under the free OS scheduler or a
controlled one, with or without rank checking, lock statistics and event
recording.  What is instrumented is decided here, when the primitive is
built, never by an ``if`` on each acquisition.

``yield_point`` is the scheduler's own bound method (a no-op under a quiet
OS scheduler).  When an OS run is stopped it is rebound to one that raises
Aborted, so compute-only threads unwind at their next yield point at no
cost before that; look it up on the context rather than caching it for long.
"""

from __future__ import annotations

import threading

from . import lockstats
from .errors import LockRankViolation  # noqa: F401  (re-exported, historical home)
from .lockrank import Rank
from .mutex import Mutex, ThreadState
from .sched import Scheduler, make_scheduler
from .waits import Cond, Event, make_event


class SyncContext:
    def __init__(self, scheduler: Scheduler | None = None, check_ranks: bool = True,
                 lock_stats: bool = False, events=None):
        self.scheduler = scheduler if scheduler is not None else make_scheduler("os", 0)
        self.check_ranks = check_ranks
        self.lock_stats_enabled = lock_stats
        self.events = events                     # what callers test with `if rec:`
        self.recorder = events if events else None
        if self.recorder is not None:
            self.recorder.bind(self.scheduler)
            self.scheduler.recorder = self.recorder
        self.thread_state = ThreadState()
        self._registry_lock = threading.Lock()
        self._mutexes: list[Mutex] = []          # _registry_lock
        self.yield_point = self.scheduler.yield_point
        if not self.scheduler.controlled:
            self.scheduler.add_abort_hook(self._rebind_yield_point)

    def _rebind_yield_point(self) -> None:
        self.yield_point = self.scheduler.yield_point

    # -- factories --------------------------------------------------------------

    def mutex(self, name: str, rank: Rank, lock_class: str | None = None) -> Mutex:
        m = Mutex(name, rank, lock_class, self)
        on_mutex = getattr(self.scheduler, "on_mutex", None)
        if on_mutex is not None:     # vtime: a decision before each release, a critical-section price
            on_mutex(m)
        with self._registry_lock:
            self._mutexes.append(m)
        return m

    def cond(self, mutex: Mutex, name: str) -> Cond:
        return Cond(mutex, name, self.scheduler)

    def event(self, name: str) -> Event:
        return make_event(name, self.scheduler)

    # -- reports ------------------------------------------------------------------

    def all_mutexes(self) -> list[Mutex]:
        with self._registry_lock:
            return list(self._mutexes)

    def held_locks(self) -> list[Mutex]:
        """Locks the calling thread holds, oldest first (rank checking mode only)."""
        return self.thread_state.held.locks()

    def lock_stats(self) -> dict:
        return lockstats.report(self.all_mutexes(), self.scheduler.clock_unit)
