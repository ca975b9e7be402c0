"""Schedulers: one interface over free OS threads and controlled runs.

Every runtime thread (a P's mutator, the GC worker, the sweeper) is a real
threading.Thread started through ``Scheduler.start_thread``.  The scheduler
owns how those threads interleave:

* ``os`` (this module): threads run free.  A yield point is a bound no-op,
  or, with ``noise`` p > 0, gives up the CPU with ``time.sleep(0)`` with
  probability p, drawn from a per-thread ``random.Random`` seeded by
  (seed, thread name).  ``switch_interval`` sets sys.setswitchinterval for the
  run.  Every wait of the sync layer in this mode is a timed wait in a loop
  that checks ``aborting``, so a stopped run never hangs.
* ``random`` / ``pct`` / ``replay`` (controlled.py): one thread runs at a time.
* ``vtime`` (vtime.py): controlled, and every thread has a virtual clock;
  the smallest clock runs next (a discrete-event simulation, one core per thread).

Whatever the scheduler, the first run-ending error (a thread's exception,
a deadlock, a replay divergence, a timeout) is kept, the other threads are
unwound with ``Aborted``, and ``join_all`` raises it.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import traceback

from .errors import Aborted, ThreadFailure

POLL = 0.05            # seconds between abort checks in the OS mode's timed waits
ABORT_GRACE = 5.0      # seconds join_all waits for threads to unwind after an abort

CONTROLLED_KINDS = ("random", "pct", "replay", "vtime", "sticky-random")
KINDS = ("os",) + CONTROLLED_KINDS


class _Tls(threading.local):
    worker = None      # controlled: this thread's _Worker (None outside the run)
    rng = None         # os with noise: this thread's noise generator


class Scheduler:
    """The interface and what every scheduler shares: thread registry, failure, join."""

    kind = "?"
    controlled = False

    def __init__(self, seed: int, opts: dict):
        self.seed = seed
        self.opts = dict(opts)
        self.steps = 0                  # decisions taken (controlled only): baton holder
        self.aborting = False           # set once under _reg_lock; read as a plain load
        self.recorder = None            # trace.Recorder, set before the run starts
        self._reg_lock = threading.Lock()
        self._threads: list[threading.Thread] = []   # _reg_lock
        self._error: BaseException | None = None     # _reg_lock (first error wins)
        self._abort_hooks: list = []                  # _reg_lock
        self._tls = _Tls()
        self.stuck: list[str] = []      # threads that did not unwind (joining thread only)

    # -- the interface ------------------------------------------------------

    def start_thread(self, name: str, fn) -> None:
        raise NotImplementedError

    def yield_point(self, label: str) -> None:
        raise NotImplementedError

    def join(self, name: str) -> None:
        """Wait, from a managed thread, until thread `name` has finished."""
        raise NotImplementedError

    def join_all(self, timeout: float | None = None) -> None:
        """Wait for every managed thread; raise the run-ending error if there was one."""
        raise NotImplementedError

    def current_name(self) -> str:
        w = self._tls.worker
        return w.name if w is not None else threading.current_thread().name

    def schedule(self) -> list[tuple[str, str]]:
        """The (yield point label, chosen thread) decisions taken so far."""
        return []

    def config(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, **self.opts}

    # The clock of lock statistics and event ordering: ns here, logical steps when controlled,
    # virtual ns under vtime.  clock_name says which one ("wall", "steps", "virtual").
    clock = staticmethod(time.perf_counter_ns)
    clock_unit = "ns"
    clock_name = "wall"

    def attach_runtime(self, rt) -> None:
        """Called once a Runtime is built on this scheduler, before it runs (vtime binds its costs)."""

    def charge(self, key: str, units: int = 1) -> None:
        """vtime: add cost(key) * units to the calling thread's clock.  A no-op elsewhere."""

    def alive(self) -> list[str]:
        with self._reg_lock:
            return [t.name for t in self._threads if t.is_alive()]

    def add_abort_hook(self, fn) -> None:
        """fn() runs once, in the aborting thread, when the run is stopped."""
        with self._reg_lock:
            self._abort_hooks.append(fn)

    # -- failure and abort ----------------------------------------------------

    def fail(self, error: BaseException) -> bool:
        """Record the run-ending error (the first one wins) and stop the run."""
        with self._reg_lock:
            first = self._error is None
            if first:
                self._error = error
                self.aborting = True
                hooks = list(self._abort_hooks)
        if first:
            self._wake_all()
            for fn in hooks:
                fn()
        return first

    def abort(self, error: BaseException | None = None) -> None:
        """Stop the run from outside (a watchdog, a timeout); join_all raises `error`."""
        self.fail(error if error is not None else RuntimeError("run aborted"))

    def _wake_all(self) -> None:
        """Unblock every managed thread so that it sees `aborting` (mode specific)."""

    def _record_exception(self, name: str) -> None:
        self.fail(ThreadFailure(name, traceback.format_exc(), sys.exc_info()[1]))

    # -- joining ----------------------------------------------------------------

    def _register(self, thread: threading.Thread) -> None:
        with self._reg_lock:
            self._threads.append(thread)

    def _wait_threads(self, timeout: float | None) -> None:
        """Wait for every registered thread (including ones started meanwhile)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        grace_end = None
        while True:
            with self._reg_lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                return
            now = time.monotonic()
            if self.aborting and grace_end is None:
                grace_end = now + ABORT_GRACE
            if grace_end is not None and now > grace_end:
                self.stuck = [t.name for t in alive]
                return
            if deadline is not None and now > deadline:
                self.abort(TimeoutError(f"join_all: threads still running after {timeout} s: "
                                        + ", ".join(t.name for t in alive)))
                deadline = None
            alive[0].join(POLL)

    def _raise_error(self) -> None:
        with self._reg_lock:
            err = self._error
        if err is not None:
            if self.stuck:
                err.add_note("threads that did not unwind: " + ", ".join(self.stuck))
            raise err


class OsScheduler(Scheduler):
    """Free OS threads, with optional noise at yield points."""

    kind = "os"

    def __init__(self, seed: int = 0, noise: float = 0.0, switch_interval: float | None = None):
        super().__init__(seed, {"noise": noise, "switch_interval": switch_interval})
        self.noise = noise
        self.switch_interval = switch_interval
        self._saved_interval = None     # _reg_lock
        # Rebound (once, by the aborting thread) to one that raises Aborted;
        # callers read it with a plain attribute load.
        self.yield_point = self._noisy_yield if noise > 0 else _noop

    def start_thread(self, name: str, fn) -> None:
        if self.switch_interval is not None:
            with self._reg_lock:
                if self._saved_interval is None:
                    self._saved_interval = sys.getswitchinterval()
                    sys.setswitchinterval(self.switch_interval)
        t = threading.Thread(target=self._thread_main, args=(name, fn), name=name, daemon=True)
        self._register(t)
        t.start()

    def _thread_main(self, name: str, fn) -> None:
        if self.noise > 0:
            self._tls.rng = _thread_rng(self.seed, name)
        try:
            fn()
        except Aborted:
            pass
        except BaseException:
            self._record_exception(name)

    def _noisy_yield(self, label: str) -> None:
        if self.aborting:
            raise Aborted
        rng = self._tls.rng
        if rng is None:
            rng = self._tls.rng = _thread_rng(self.seed, threading.current_thread().name)
        if rng.random() < self.noise:
            time.sleep(0)

    def _wake_all(self) -> None:
        # Threads blocked in the sync layer see `aborting` within POLL; threads
        # that only compute see it at their next yield point.
        self.yield_point = _raise_aborted

    def wait_interruptibly(self, wait, timeout: float | None = None) -> bool:
        """Call wait(seconds) -- a timed wait returning True once done -- in POLL
        slices until it succeeds (True), `timeout` passes (False) or the run is
        stopped (raises Aborted).  Every blocking wait of the OS mode goes here."""
        deadline = None if timeout is None else time.monotonic() + timeout
        slice_ = POLL if timeout is None else min(POLL, timeout)
        while not wait(slice_):
            if self.aborting:
                raise Aborted
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                slice_ = min(POLL, left)
        return True

    def join(self, name: str) -> None:
        with self._reg_lock:
            target = [t for t in self._threads if t.name == name]
        for t in target:
            self.wait_interruptibly(lambda s, t=t: t.join(s) or not t.is_alive())

    def join_all(self, timeout: float | None = None) -> None:
        try:
            self._wait_threads(timeout)
        finally:
            with self._reg_lock:
                if self._saved_interval is not None:
                    sys.setswitchinterval(self._saved_interval)
                    self._saved_interval = None
        self._raise_error()


def _noop(label: str) -> None:
    pass


# The os scheduler's yield point when it has no noise: hot loops may compare
# against it and skip the call (the collector's marker does).  After an abort
# the scheduler rebinds yield_point, so the comparison fails and they yield.
QUIET_YIELD = _noop


def _raise_aborted(label: str = "") -> None:
    raise Aborted


def _thread_rng(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


def make_scheduler(kind: str = "os", seed: int = 0, **opts) -> Scheduler:
    """os(noise, switch_interval) | random(max_steps) | pct(depth, pct_k, max_steps)
    | sticky-random(sticky, max_steps)
    | vtime(costs: a costmodel.CostModel, max_steps)
    | replay(schedule, max_steps): `schedule` is a list of (label, thread) or a
    saved schedule file's dict or path."""
    if kind == "os":
        return OsScheduler(seed, **opts)
    if kind == "vtime":
        from .vtime import VtimeScheduler
        return VtimeScheduler(seed, **opts)
    if kind in CONTROLLED_KINDS:
        from .controlled import make_controlled
        return make_controlled(kind, seed, **opts)
    raise ValueError(f"unknown scheduler kind {kind!r} (expected one of {', '.join(KINDS)})")


def save_schedule(sched: Scheduler, path: str, config: dict | None = None) -> None:
    """Write (kind, seed, run config, decisions) as JSON; load_schedule reads it back."""
    doc = {"kind": sched.kind, "seed": sched.seed, "scheduler": sched.config(),
           "config": config or {}, "schedule": [list(d) for d in sched.schedule()]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=0)


def load_schedule(path: str) -> dict:
    with open(path) as f:
        doc = json.load(f)
    doc["schedule"] = [tuple(d) for d in doc["schedule"]]
    return doc
