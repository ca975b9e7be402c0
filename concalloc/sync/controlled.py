"""The controlled scheduler: real threads, one running at a time.

Each managed thread has a binary semaphore (a threading.Lock created held).
Exactly one thread, the baton holder, runs; it passes the baton at a yield
point, when it blocks, and when it exits, by picking the next thread through
its Strategy, releasing that thread's semaphore and (unless exiting)
acquiring its own.  No polling, no sleeps: a handoff is one release and one
acquire.  All scheduler state (the worker list, each worker's blocked
predicate, the step count, the decision log, the strategy's RNG) is touched
only by the baton holder, so it needs no lock: the semaphore handoff orders
one holder's writes before the next holder's reads.

Blocking is logical: a thread that cannot go on (lock held, condition not
notified, event not set, join target alive) stores a `ready` predicate and a
description and passes the baton; it is enabled again once `ready()` holds.
If no live thread is enabled the run deadlocked: that is known at the very
decision that finds it, raised as Deadlock with every thread's description.

Every decision is a counted step, recorded as ("{thread}:{label}", chosen).
On any run-ending error every waiting semaphore is released and each thread
raises Aborted at its wait point.
"""

from __future__ import annotations

import threading

from .errors import Aborted, Deadlock, ReplayDivergence, StepLimitExceeded
from .sched import Scheduler
from .strategies import PctStrategy, RandomStrategy, ReplayStrategy, Strategy

_RUN_ENDING = (Deadlock, ReplayDivergence, StepLimitExceeded)


class _Worker:
    """A managed thread.  Every field is protected by the baton holder."""

    __slots__ = ("name", "sem", "done", "ready", "why", "priority")

    def __init__(self, name: str):
        self.name = name
        self.sem = threading.Lock()
        self.sem.acquire()          # held until someone hands this thread the baton
        self.done = False
        self.ready = None           # None: runnable; else a predicate that enables it
        self.why = None             # while blocked: () -> "mcentral[12].lock held by P0"
        self.priority = 0           # PCT only

    def enabled(self) -> bool:
        return not self.done and (self.ready is None or self.ready())


class ControlledScheduler(Scheduler):
    controlled = True
    clock_unit = "steps"
    clock_name = "steps"

    def __init__(self, kind: str, seed: int, strategy: Strategy, opts: dict, max_steps: int = 1_000_000):
        super().__init__(seed, {**opts, "max_steps": max_steps})
        self.kind = kind
        self.max_steps = max_steps
        self.strategy = strategy
        self._workers: list[_Worker] = []         # baton holder (the starter before the run)
        self._log: list[tuple[str, str]] = []     # baton holder
        self._started = False                     # the thread calling join_all

    # -- threads --------------------------------------------------------------

    def start_thread(self, name: str, fn) -> None:
        parent = self._tls.worker
        if parent is None and self._started:
            raise RuntimeError("controlled run: start threads before join_all or from a managed thread")
        if any(w.name == name for w in self._workers):
            raise ValueError(f"thread name {name!r} already used in this run")
        w = self._new_worker(name, parent)
        self._workers.append(w)
        self.strategy.on_spawn(w, self._workers)
        t = threading.Thread(target=self._thread_main, args=(w, fn), name=name, daemon=True)
        self._register(t)
        t.start()
        if parent is not None:
            self._decide(parent, f"spawn {name}")

    def _new_worker(self, name: str, parent: _Worker | None) -> _Worker:
        """The worker of a new thread (vtime gives it a clock, started at its parent's)."""
        return _Worker(name)

    def _thread_main(self, w: _Worker, fn) -> None:
        self._tls.worker = w
        try:
            w.sem.acquire()
            if self.aborting:
                raise Aborted
            fn()
        except Aborted:
            w.done = True
            return
        except BaseException:
            w.done = True
            self._record_exception(w.name)
            return
        self._exit(w)

    def _exit(self, w: _Worker) -> None:
        w.done = True
        if not any(not x.done for x in self._workers):
            try:
                self.strategy.finish(self.steps)
            except ReplayDivergence as e:
                self.fail(e)
            return
        try:
            nxt = self._choose(w, "exit")
        except Aborted:
            return
        nxt.sem.release()

    def join_all(self, timeout: float | None = None) -> None:
        if not self._started:
            self._started = True
            if self._workers:
                try:
                    self._choose(None, "start").sem.release()
                except Aborted:
                    pass
        self._wait_threads(timeout)
        self._raise_error()

    # -- decisions ------------------------------------------------------------

    def yield_point(self, label: str) -> None:
        w = self._tls.worker
        if w is not None:
            self._decide(w, label)

    def block(self, label: str, ready, why) -> None:
        """Pass the baton until ready() holds; `why()` describes the wait for deadlock reports.

        Outside the run (no managed thread) nothing else could make ready()
        true, so waiting there is an error.
        """
        w = self._tls.worker
        if w is None:
            raise RuntimeError(f"{why()}: would block outside the controlled run")
        w.ready, w.why = ready, why
        try:
            self._decide(w, label)
        finally:
            w.ready = w.why = None

    def join(self, name: str) -> None:
        target = [w for w in self._workers if w.name == name]
        if target:
            t = target[0]
            self.block(f"join {name}", lambda: t.done, lambda: f"join {name}")

    def _decide(self, w: _Worker, label: str) -> None:
        nxt = self._choose(w, label)
        if nxt is not w:
            nxt.sem.release()
            w.sem.acquire()
            if self.aborting:
                raise Aborted

    def _choose(self, w: _Worker | None, label: str) -> _Worker:
        """Count a step, pick the next thread, record the decision (baton holder only)."""
        if self.aborting:
            raise Aborted
        self.steps = step = self.steps + 1
        full = f"{w.name if w is not None else 'run'}:{label}"
        try:
            if step > self.max_steps:
                raise StepLimitExceeded(f"controlled run exceeded max_steps={self.max_steps} at {full}")
            enabled = self._runnable(w)
            if not enabled:
                raise Deadlock({x.name: x.why() for x in self._workers if not x.done}, step, full)
            nxt = self.strategy.choose(step, full, w, enabled)
        except _RUN_ENDING as e:
            self.fail(e)
            raise Aborted from None
        self._log.append((full, nxt.name))
        rec = self.recorder
        if rec is not None:
            rec.emit("sched_decision", label=full, chosen=nxt.name)
        return nxt

    def _runnable(self, current: _Worker | None) -> list[_Worker]:
        """The enabled workers, in registration order (vtime also sees who woke)."""
        return [x for x in self._workers if x.enabled()]

    def _wake_all(self) -> None:
        for w in self._workers:
            if not w.done:
                try:
                    w.sem.release()
                except RuntimeError:
                    pass    # a handoff to it was already pending (abort from outside the run)

    # -- results --------------------------------------------------------------

    def schedule(self) -> list[tuple[str, str]]:
        return list(self._log)

    def clock(self) -> int:
        return self.steps

    def priorities(self) -> dict[str, int]:
        return {w.name: w.priority for w in self._workers}


def make_controlled(kind: str, seed: int, max_steps: int = 1_000_000, **opts) -> ControlledScheduler:
    if kind == "random":
        strategy, shown = RandomStrategy(seed), {}
    elif kind == "pct":
        depth, k = opts.pop("depth", 2), opts.pop("pct_k", 2000)
        strategy, shown = PctStrategy(seed, depth, k), {"depth": depth, "pct_k": k}
    elif kind == "replay":
        schedule = opts.pop("schedule")
        if isinstance(schedule, str):
            from .sched import load_schedule
            schedule = load_schedule(schedule)
        if isinstance(schedule, dict):
            schedule = schedule["schedule"]
        strategy, shown = ReplayStrategy(schedule), {}
    else:
        raise ValueError(f"not a controlled scheduler kind: {kind!r}")
    if opts:
        raise TypeError(f"unknown options for {kind} scheduler: {', '.join(opts)}")
    return ControlledScheduler(kind, seed, strategy, shown, max_steps)
