"""Mutex: Go's runtime.mutex with lockWithRank, statistics and events.

What a mutex does is chosen once, when it is built, by binding its ``lock``
and ``unlock`` attributes:

* plain (OS scheduler, no rank check, no stats, no events): the bare
  ``threading.Lock().acquire`` / ``.release``.  Zero overhead, and a thread
  blocked here is not interruptible: only the watchdog sees such a hang.
* instrumented: closures built by ``_instrumented`` around two small
  mode adapters, ``fast(False)`` (try to take it at once) and ``slow()``
  (wait for it, report how long and behind how many waiters):
  - OS: fast is the bare lock's own acquire (no Python frame on the
    uncontended path); slow is a timed acquire in a loop that checks the
    scheduler's abort flag.
  - controlled: the lock is logical.  ``owner`` (a thread name) is the lock
    state, read and written only by the baton holder; fast is the
    "{name}.lock" yield point followed by a look at ``owner``; slow marks the
    thread blocked ("mcentral[12].lock held by P0") until owner is None.

Rank check: the thread's held stack (its ThreadState) keeps (mutex, code,
f_lasti) for each lock it holds, so a violation names both acquisition sites.
The comparison is ``top.rank >= new.rank`` on plain ints, which is exactly
lockrank.rank_allows (LEAF is the largest rank).
"""

from __future__ import annotations

import sys
import threading

from .errors import Aborted, LockRankViolation
from .lockrank import Rank, order_violation
from .lockstats import LockStats

_getframe = sys._getframe


class ThreadState(threading.local):
    """Per-thread view of one SyncContext; every field is owned by its thread."""

    def __init__(self):
        self.name = threading.current_thread().name
        self.held: list[tuple] = []     # (mutex, code, lasti), oldest first; rank checking only


class Mutex:
    """A named, ranked runtime mutex.  Build it with SyncContext.mutex."""

    __slots__ = ("name", "lock_class", "rank", "_rank", "owner", "stats", "lock", "unlock")

    def __init__(self, name: str, rank: Rank, lock_class: str | None, ctx):
        self.name = name
        self.lock_class = lock_class or name
        self.rank = rank
        self._rank = int(rank)
        # Name of the holding thread; instrumented mutexes only.  OS mode:
        # written by the holder, read racily by reports.  Controlled mode:
        # the logical lock itself, baton holder only.
        self.owner: str | None = None
        self.stats = LockStats() if ctx.lock_stats_enabled else None
        sched = ctx.scheduler
        if not (ctx.check_ranks or self.stats or ctx.recorder or sched.controlled):
            lk = threading.Lock()
            self.lock, self.unlock = lk.acquire, lk.release
            return
        adapt = _controlled_adapters if sched.controlled else _os_adapters
        fast, slow, give = adapt(self, sched, ctx.recorder)
        self.lock, self.unlock = _instrumented(self, ctx, fast, slow, give)

    def __enter__(self):
        self.lock(2)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not Aborted:     # a stopped run does not tidy up its locks
            self.unlock()

    def __repr__(self) -> str:
        return f"<Mutex {self.name} rank={self.rank.name}>"


def _instrumented(m: Mutex, ctx, fast, slow, give):
    """lock(_depth=1) / unlock() closures; _depth names the frame whose site is recorded."""
    tls = ctx.thread_state
    check = ctx.check_ranks
    stats = m.stats
    clock = ctx.scheduler.clock
    rec = ctx.recorder
    rank = m._rank
    name = m.name

    def lock(_depth=1):
        if check:
            f = _getframe(_depth)
            entry = (m, f.f_code, f.f_lasti)
            held = tls.held
            if held and held[-1][0]._rank >= rank:
                top = held[-1]
                raise order_violation(top[0], top[1:], m, entry[1:])
        waited = None if fast(False) else slow()
        me = m.owner = tls.name
        if stats is not None:       # inline: this is the hot path of lock_stats=True
            stats.acquisitions += 1
            if me != stats.last_owner:
                if stats.last_owner is not None:
                    stats.owner_switches += 1
                stats.last_owner = me
            if waited is not None:
                stats.waited(*waited)
            stats.acquired_at = clock()
        if check:
            held.append(entry)
        if rec is not None:
            rec.emit("lock_acquire", lock=name)

    def unlock():
        if check:
            held = tls.held
            if held and held[-1][0] is m:
                held.pop()
            else:
                _forget(held, m)
        if stats is not None:
            hold = clock() - stats.acquired_at
            stats.hold_total += hold
            if hold > stats.hold_max:
                stats.hold_max = hold
        m.owner = None
        if rec is not None:
            rec.emit("lock_release", lock=name)
        give()

    return lock, unlock


def _forget(held: list, m: Mutex) -> None:
    """Drop m from the held stack when it is not on top (released out of order)."""
    for i in range(len(held) - 1, -1, -1):
        if held[i][0] is m:
            del held[i]
            return
    raise LockRankViolation(f"unlock of {m.name}, which this thread does not hold")


def _contended(m: Mutex, rec, clock, wait):
    """slow(): run wait() (returns once the lock is ours) counted as a waiter;
    returns (time waited, waiters seen including this one)."""
    stats = m.stats

    def slow():
        if rec is not None:
            rec.emit("lock_wait", lock=m.name)
        t0 = clock()
        seen = stats.waiters.add(1) if stats is not None else 0
        try:
            wait()
        finally:
            if stats is not None:
                stats.waiters.add(-1)
        return clock() - t0, seen

    return slow


def _os_adapters(m: Mutex, sched, rec):
    lk = threading.Lock()
    acquire = lk.acquire

    def wait():
        sched.wait_interruptibly(lambda seconds: acquire(True, seconds))

    return acquire, _contended(m, rec, sched.clock, wait), lk.release


def _controlled_adapters(m: Mutex, sched, rec):
    lock_label = f"{m.name}.lock"
    wait_label = f"wait {m.name}.lock"
    unlock_label = f"{m.name}.unlock"

    def free():
        return m.owner is None

    def why():
        return f"{m.name}.lock held by {m.owner}"

    def fast(blocking):
        sched.yield_point(lock_label)
        return m.owner is None

    def wait():
        while m.owner is not None:
            sched.block(wait_label, free, why)

    def give():
        sched.yield_point(unlock_label)

    return fast, _contended(m, rec, sched.clock, wait), give
