"""The controlled scheduler: real threads, one running at a time.

Each managed thread has a baton: one os.pipe (or, with BATON="lock", a
threading.Lock created held).  Exactly one thread, the baton holder, runs;
it passes the baton at a yield point, when it blocks, and when it exits, by
picking the next thread through its Strategy, writing one byte to that
thread's pipe and (unless exiting) reading one from its own.  No polling, no
sleeps: a handoff is one write and one read.  A pipe hands off about twice
as fast as a Lock pair (os.write drops the GIL before it wakes the reader,
so the woken thread finds the GIL free).  All scheduler state (the worker
list, each worker's blocked predicate, the step count, the decision log, the
strategy's RNG) is touched only by the baton holder, so it needs no lock:
the handoff orders one holder's writes before the next holder's reads.

Since only one managed thread runs at a time, every managed thread pins
itself to one CPU (PIN_CPU; Linux): a handoff then wakes a thread on the
CPU it is leaving, instead of a cross-CPU wakeup that costs about twice as
much (bench: 3.5x a free run pinned against 6-7x unpinned on an idle
2-CPU machine).  The CPU is chosen by process id among the allowed ones,
so parallel campaign jobs spread out.  Timing only: no decision depends
on it.

Blocking is logical: a thread that cannot go on (lock held, condition not
notified, event not set, join target alive) stores a `ready` predicate and a
description and passes the baton; it is enabled again once `ready()` holds.
If no live thread is enabled the run deadlocked: that is known at the very
decision that finds it, raised as Deadlock with every thread's description.

Every decision is a counted step, logged lean as (worker, label, chosen
worker) and formatted as ("{thread}:{label}", chosen) only when read
(schedule(), decisions(), replay, error messages): a decision costs a list
append, not an f-string.  The Recorder takes the decisions from this log
(decision_events) rather than one event each.
On any run-ending error every waiting baton is passed and each thread
raises Aborted at its wait point.
"""

from __future__ import annotations

import os
import threading

from .errors import Aborted, Deadlock, ReplayDivergence, StepLimitExceeded
from .sched import Scheduler
from .strategies import PctStrategy, RandomStrategy, ReplayStrategy, StickyRandomStrategy, Strategy

_RUN_ENDING = (Deadlock, ReplayDivergence, StepLimitExceeded)
BATON = "pipe"      # or "lock" (slower: the woken thread waits for the GIL): bench/bench_sched.py measures both
PIN_CPU = hasattr(os, "sched_setaffinity")  # managed threads share one CPU (see the module comment)


def _pin_cpu() -> None:
    """Pin the calling thread to one of the process's allowed CPUs, by pid."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[os.getpid() % len(cpus)]})
    except OSError:
        pass        # not allowed here: run unpinned


class _PipeBaton:
    """A binary semaphore made of one os.pipe, created empty (held).  release()
    may run more than once before acquire() only when the run aborts (the
    extra byte wakes nobody: the thread raises Aborted at its first wait).
    os.read retries on EINTR (PEP 475); a read that finds the pipe closed
    raises instead of letting a second thread run."""

    __slots__ = ("r", "w")

    def __init__(self):
        self.r, self.w = os.pipe()

    def release(self) -> None:
        w = self.w
        if w >= 0:          # closed: the run is over, nobody waits on it
            os.write(w, b"x")

    def acquire(self) -> None:
        if not os.read(self.r, 1):
            raise RuntimeError("controlled run: a baton pipe was closed under its waiting thread")

    def close(self) -> None:
        r, w = self.r, self.w
        if r >= 0:
            self.r = self.w = -1    # before closing: a late release() skips, not writes a reused fd
            os.close(r)
            os.close(w)

    __del__ = close     # a run that never reached join_all


class _LockBaton:
    """The same on a threading.Lock created held."""

    __slots__ = ("lock", "acquire")

    def __init__(self):
        self.lock = threading.Lock()
        self.lock.acquire()         # held until someone hands this thread the baton
        self.acquire = self.lock.acquire

    def release(self) -> None:
        try:
            self.lock.release()
        except RuntimeError:
            pass    # a handoff to it was already pending (abort from outside the run)

    def close(self) -> None:
        pass


def _label(w, label: str) -> str:
    """A decision's full label: "{thread}:{label}" ("run:start" before any thread runs)."""
    return f"{w.name if w is not None else 'run'}:{label}"


class _Worker:
    """A managed thread.  Every field is protected by the baton holder."""

    __slots__ = ("name", "sem", "done", "ready", "why", "priority")

    def __init__(self, name: str):
        self.name = name
        self.sem = _PipeBaton() if BATON == "pipe" else _LockBaton()
        self.done = False
        self.ready = None           # None: runnable; else a predicate that enables it
        self.why = None             # while blocked: () -> "mcentral[12].lock held by P0"
        self.priority = 0           # PCT only

    def enabled(self) -> bool:
        return not self.done and (self.ready is None or self.ready())


class ControlledScheduler(Scheduler):
    controlled = True
    sparse_memory = True        # heap loads/stores are decisions only while the GC marks (mutator.py)
    clock_unit = "steps"
    clock_name = "steps"

    def __init__(self, kind: str, seed: int, strategy: Strategy, opts: dict, max_steps: int = 1_000_000):
        super().__init__(seed, {**opts, "max_steps": max_steps})
        self.kind = kind
        self.max_steps = max_steps
        self.strategy = strategy
        self._workers: list[_Worker] = []         # baton holder (the starter before the run)
        self._live: list[_Worker] = []            # baton holder: _workers less those that exited, in order
        self._log: list[tuple] = []               # baton holder: (worker or None, label, chosen worker)
        self._started = False                     # the thread calling join_all
        self._baton_lock = threading.RLock()      # orders _wake_all (any thread, even a signal handler) and _close_batons

    # -- threads --------------------------------------------------------------

    def start_thread(self, name: str, fn) -> None:
        parent = self._tls.worker
        if parent is None and self._started:
            raise RuntimeError("controlled run: start threads before join_all or from a managed thread")
        if any(w.name == name for w in self._workers):
            raise ValueError(f"thread name {name!r} already used in this run")
        w = self._new_worker(name, parent)
        self._workers.append(w)
        self._live.append(w)
        self.strategy.on_spawn(w, self._workers)
        t = threading.Thread(target=self._thread_main, args=(w, fn), name=name, daemon=True)
        self._register(t)
        t.start()
        if self.aborting:
            w.sem.release()     # an abort's _wake_all may have run before w was listed
        if parent is not None:
            self._decide(parent, f"spawn {name}")

    def _new_worker(self, name: str, parent: _Worker | None) -> _Worker:
        """The worker of a new thread (vtime gives it a clock, started at its parent's)."""
        return _Worker(name)

    def _thread_main(self, w: _Worker, fn) -> None:
        self._tls.worker = w
        if PIN_CPU:
            _pin_cpu()
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
        """The last decision of a thread: pass the baton on (or end the run).
        Whatever goes wrong here ends the run: a thread that died holding
        the baton would leave every other one waiting."""
        w.done = True
        try:
            self._live.remove(w)
            if not any(not x.done for x in self._workers):
                self.strategy.finish(self.steps)
                return
            nxt = self._choose(w, "exit")
        except Aborted:
            return
        except ReplayDivergence as e:
            self.fail(e)
            return
        except BaseException:
            self._record_exception(w.name)
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
        self._close_batons()
        self._raise_error()

    def _close_batons(self) -> None:
        """Close every baton once no managed thread can touch one (a thread that
        did not unwind keeps them all: a leak, not a crash)."""
        if self.alive():
            return
        with self._baton_lock:
            for w in self._workers:
                if w.sem is not None:
                    w.sem.close()
                    w.sem = None

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
        """Count a step, pick the next thread, log the decision (baton holder only)."""
        if self.aborting:
            raise Aborted
        self.steps = step = self.steps + 1
        try:
            if step > self.max_steps:
                raise StepLimitExceeded(f"controlled run exceeded max_steps={self.max_steps} at {_label(w, label)}")
            enabled = self._runnable(w)
            if not enabled:
                raise Deadlock({x.name: x.why() for x in self._workers if not x.done}, step, _label(w, label))
            nxt = self.strategy.choose(step, label, w, enabled)
        except _RUN_ENDING as e:
            self.fail(e)
            raise Aborted from None
        self._log.append((w, label, nxt))
        return nxt

    def _runnable(self, current: _Worker | None) -> list[_Worker]:
        """The enabled workers, in registration order (vtime also sees who woke).

        Read from _live, not _workers: a decision need not test `done` for
        every thread that ever ran.  A thread that ends other than through
        _exit (an exception, Aborted) ends the run, and _choose looks at
        `aborting` before it gets here."""
        return [x for x in self._live if x.ready is None or x.ready()]

    def _wake_all(self) -> None:
        """Pass every waiting thread its baton (an abort, from any thread)."""
        with self._baton_lock:
            for w in self._workers:
                if not w.done and w.sem is not None:
                    w.sem.release()

    # -- results --------------------------------------------------------------

    def schedule(self) -> list[tuple[str, str]]:
        """The decisions as ("{thread}:{label}", chosen thread), in step order."""
        return [(_label(w, label), nxt.name) for w, label, nxt in self._log]

    def decision_events(self) -> list[tuple[int, str, str, str]]:
        """The decisions as (step, deciding thread or "run", label, chosen thread):
        what the Recorder merges into its log and hashes."""
        return [(i, w.name if w is not None else "run", label, nxt.name)
                for i, (w, label, nxt) in enumerate(self._log, 1)]

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
    elif kind == "sticky-random":
        p = opts.pop("sticky", 0.2)
        strategy, shown = StickyRandomStrategy(seed, p), {"sticky": p}
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
