"""Condition variables and events that every scheduler can control.

Cond keeps a list of waiter tokens, protected by the cond's mutex (wait,
notify and notify_all are called with it held).  A token is what the waiter
blocks on and what a notifier flips:

* OS mode: a threading.Lock created held; notify releases it; the waiter
  takes it back with timed acquires in a loop that checks ``aborting``.
  A wait stopped that way (Aborted) takes the mutex back before it unwinds,
  as threading.Condition's wait does, so the ``with`` around it releases a
  mutex this thread holds, never one another thread took meanwhile.
* controlled: a one-element list; notify sets it; the waiter blocks on the
  predicate ``token[0]`` (baton holder only).

Event is a flag: a threading.Event waited on in timed slices (OS), or a
plain bool read and written by the baton holder (controlled).  A timed wait
in a controlled run is one scheduling step followed by a look at the flag:
no wall time may enter a controlled run.
"""

from __future__ import annotations

import threading

from .errors import Aborted


class Cond:
    """wait() releases the mutex, blocks until notified, re-acquires it."""

    def __init__(self, mutex, name: str, sched):
        self.mutex = mutex
        self.name = name
        self._sched = sched
        self._waiters: list = []        # tokens; protected by self.mutex
        if sched.controlled:
            self._park = self._park_controlled
            self._token, self._wake = _new_flag, _set_flag
        else:
            self._park = self._park_os
            self._token, self._wake = _new_held_lock, _release_lock

    def wait(self) -> None:
        token = self._token()
        self._waiters.append(token)
        self.mutex.unlock()
        self._park(token)
        self.mutex.lock(2)

    def notify(self) -> None:
        if self._waiters:
            self._wake(self._waiters.pop(0))

    def notify_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for token in waiters:
            self._wake(token)

    def _park_os(self, token) -> None:
        try:
            self._sched.wait_interruptibly(lambda seconds: token.acquire(True, seconds))
        except Aborted:
            self._relock_unwinding(token)
            raise

    def _relock_unwinding(self, token) -> None:
        """(OS mode, the wait was stopped) Take the mutex back, however long
        its holder takes to unwind and give it up, and drop the token.  A
        lock attempt raises Aborted only before it has taken the lock.  Under
        a controlled scheduler nothing is taken back: unlock is a decision a
        stopped run cannot take, so the mutexes' `with` exits keep theirs."""
        m = self.mutex
        while True:
            try:
                m.lock(4)          # a rank violation names wait's caller
                break
            except Aborted:
                continue
        if token in self._waiters:
            self._waiters.remove(token)

    def _park_controlled(self, token) -> None:
        name = self.name
        self._sched.block(f"wait {name}", lambda: token[0], lambda: f"cond {name} not notified")


def _new_flag() -> list:
    return [False]


def _set_flag(token: list) -> None:
    token[0] = True


def _new_held_lock() -> threading.Lock:
    lk = threading.Lock()
    lk.acquire()
    return lk


def _release_lock(lk: threading.Lock) -> None:
    lk.release()


class Event:
    """set / clear / is_set / wait(timeout=None) -> bool.  Build it with make_event."""

    name: str


def make_event(name: str, sched) -> Event:
    return (_ControlledEvent if sched.controlled else _OsEvent)(name, sched)


class _OsEvent(Event):
    def __init__(self, name: str, sched):
        self.name = name
        self._sched = sched
        self._ev = threading.Event()    # thread-safe by itself
        self.set = self._ev.set
        self.clear = self._ev.clear
        self.is_set = self._ev.is_set

    def wait(self, timeout: float | None = None) -> bool:
        return self._sched.wait_interruptibly(self._ev.wait, timeout)


class _ControlledEvent(Event):
    def __init__(self, name: str, sched):
        self.name = name
        self._sched = sched
        self._flag = False              # baton holder

    def set(self) -> None:
        self._flag = True

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        label = f"wait event {self.name}"
        timed = getattr(self._sched, "block_until", None)   # vtime: a timeout is virtual time
        if timed is not None and timeout is not None and not self._flag:
            name = self.name
            timed(label, self.is_set, lambda: f"event {name} not set", timeout)
            return self._flag
        if timeout is not None or self._flag:
            self._sched.yield_point(label)
        else:
            name = self.name
            self._sched.block(label, self.is_set, lambda: f"event {name} not set")
        return self._flag
