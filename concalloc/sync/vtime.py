"""Virtual time: a controlled scheduler that simulates one core per thread.

``--scheduler vtime`` is the controlled scheduler (controlled.py: real
threads, one running at a time, the baton passed at yield points) with a
virtual clock on every managed thread -- each P, the collector and any
thread it starts -- and one rule for who runs next:

    the runnable thread with the smallest clock runs; ties go by the seed.

That is a discrete-event simulation of a machine with one core per thread.
The clocks move in three ways:

* **work**: a yield point ``label`` first charges ``cost(label)`` (costmodel.py),
  then decides; hooks bound when the runtime is built (``attach_runtime``)
  charge what a label cannot say: the size class of an allocation, memclr
  per byte, mheap pages, the write barrier, and each critical section --
  charged once the lock is held, priced by the operation that took it
  (``mcentral.critical.cacheSpan``, ``mcentral.critical.allocObject``) or,
  failing that, by its lock class (``mheap.critical``; the family default
  ``critical`` is 0).  A thread runs from one yield point to the next atomically, and
  its clock at a decision is the time at which what it does next happens.
* **waiting**: a thread blocked in the sync layer (a Mutex held by another,
  a Cond not notified, an Event not set, a join, the stop-the-world
  handshake) is woken at the decision of the thread that made its wait
  condition true, and its clock jumps to that thread's clock.  The jump is
  the wait, in virtual ns: lock statistics, STW pauses and the per-thread
  breakdown all read it.  A waiter whose condition is made false again
  before it ran waits anew.
* **spawn**: a thread started by a managed thread starts at its parent's clock.

Nothing wall-clock enters: a run is a pure function of (config, cost table,
seed), unchanged by ``sys.setswitchinterval``, load or machine.

Protection: every clock, breakdown and wake flag belongs to the baton
holder, like the rest of the controlled scheduler's state.  Clocks are
integer picoseconds (exact sums); ``clock()`` reads them in ns.
"""

from __future__ import annotations

from .mutex import InstrumentedMutex

import random
import re

from .controlled import ControlledScheduler, _Worker
from .strategies import Strategy

_INDEX = re.compile(r"\[[^\]]*\]")


class _VWorker(_Worker):
    """A managed thread with a clock.  Every field: the baton holder."""

    __slots__ = ("clock", "spent", "waiting", "woken", "critical", "timer")

    def __init__(self, name: str, clock: int):
        super().__init__(name)
        self.critical = None        # (ps, key): what the next lock acquisition's critical section costs
        self.timer = None           # in a timed wait: (clock when it began, ready); clock is the deadline
        self.clock = clock          # ps
        self.spent: dict[str, int] = {}   # breakdown key -> ps (work and waits)
        self.waiting = None         # while blocked: the breakdown key of the wait
        self.woken = False          # while blocked: its wake has been timed


def _spend(w: _VWorker, ps: int, key: str) -> None:
    """Advance w's clock by ps, booked under key (baton holder)."""
    w.clock += ps
    w.spent[key] = w.spent.get(key, 0) + ps


class VtimeStrategy(Strategy):
    """The smallest clock runs; among equal clocks, a uniform draw from the seed."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def choose(self, step, label, current, enabled):
        best = enabled[0]
        low = best.clock
        ties = 1
        for x in enabled[1:]:
            c = x.clock
            if c < low:
                best, low, ties = x, c, 1
            elif c == low:
                ties += 1
                if self.rng.randrange(ties) == 0:
                    best = x
        return best


class VtimeScheduler(ControlledScheduler):
    clock_unit = "ns"
    clock_name = "virtual"
    sparse_memory = True        # outside marking most loads/stores are charged without a decision
    prices_yield_points = True  # so Mutator._mem_decision charges the loads/stores it does not decide

    def __init__(self, seed: int, costs=None, max_steps: int = 1_000_000):
        from .. import costmodel
        self.costs = costs if costs is not None else costmodel.load()
        super().__init__("vtime", seed, VtimeStrategy(seed), {"costs": self.costs.digest()}, max_steps)
        self._labels: dict[str, tuple[int, str]] = {}   # label -> (ps, breakdown key); baton holder

    # -- clocks -----------------------------------------------------------------

    def _new_worker(self, name: str, parent: _Worker | None) -> _Worker:
        return _VWorker(name, parent.clock if parent is not None else 0)

    def clock(self) -> int:
        """The calling thread's virtual clock in ns (outside the run: the latest clock)."""
        w = self._tls.worker
        if w is not None:
            return w.clock // 1000
        return self.makespan_ps() // 1000

    def makespan_ps(self) -> int:
        return max((w.clock for w in self._workers), default=0)

    def _price(self, label: str) -> tuple[int, str]:
        got = self._labels.get(label)
        if got is None:
            got = self._labels[label] = (self.costs.ps(label), _INDEX.sub("", label))
        return got

    def charge(self, key: str, units: int = 1) -> None:
        """Add cost(key) * units to the calling thread's clock (no decision)."""
        w = self._tls.worker
        if w is not None:
            ps, k = self._price(key)
            if ps and units:
                _spend(w, ps * units, k)

    def charge_ps(self, ps: int, key: str) -> None:
        w = self._tls.worker
        if w is not None and ps:
            _spend(w, ps, key)

    # -- decisions --------------------------------------------------------------

    def yield_point(self, label: str) -> None:
        w = self._tls.worker
        if w is not None:
            ps, k = self._price(label)
            if ps:
                _spend(w, ps, k)
            self._decide(w, label)

    def block(self, label: str, ready, why) -> None:
        w = self._tls.worker
        if w is not None:
            ps, k = self._price(label)
            if ps:
                _spend(w, ps, k)
            w.waiting, w.woken = k, False
        try:
            super().block(label, ready, why)
        finally:
            if w is not None:
                w.waiting = None

    def block_until(self, label: str, ready, why, timeout_s: float) -> None:
        """A timed wait: resume when ready() holds or `timeout_s` virtual
        seconds have passed, whichever comes first in virtual time.  While it
        waits the thread is a timer: enabled, its clock at the deadline, so
        it runs then unless a waker makes ready() true earlier (then its
        clock is the waker's)."""
        w = self._tls.worker
        if w is None:
            raise RuntimeError(f"{why()}: would block outside the controlled run")
        ps, key = self._price(label)
        start = w.clock + ps
        w.clock = start + max(0, round(timeout_s * 1e12))
        w.timer, w.woken = (start, ready), False
        try:
            self._decide(w, label)
        finally:
            w.timer = None
        w.spent[key] = w.spent.get(key, 0) + (w.clock - start) + ps

    def _runnable(self, current):
        """Enabled workers; a blocked one seen enabled for the first time is
        woken now, at the clock of the thread that just ran (`current`)."""
        now = current.clock if current is not None else 0
        out = []
        for x in self._workers:
            if x.done:
                continue
            if x.ready is None:
                t = x.timer
                if t is not None and not x.woken and t[1]():
                    x.woken = True      # woken before its deadline: at the waker's clock
                    start = t[0]
                    x.clock = start if x is current else max(start, min(now, x.clock))
                out.append(x)
            elif x.ready():
                if not x.woken:
                    x.woken = True
                    jump = now - x.clock
                    if jump > 0:
                        x.clock = now
                        x.spent[x.waiting] = x.spent.get(x.waiting, 0) + jump
                out.append(x)
            else:
                x.woken = False
        return out

    # -- binding the runtime's costs ------------------------------------------------

    def on_mutex(self, m) -> None:
        """Give m its vtime behaviour (a _VtimeMutex): a decision just before
        each release, and the critical section's cost charged once m is held:
        the price an operation set (``critical_section``), else the lock
        class's.

        The release needs its decision: the controlled mutex yields only
        after it (``X.unlock``), and a thread's segment between decisions is
        atomic, so without one no other thread could ever see m held while
        the holder's clock moved.  With it, every thread whose clock is
        below the release time runs first, and finds m held.
        """
        if type(m) is InstrumentedMutex:
            m.__class__ = _VtimeMutex

    def _after_lock(self, m) -> None:
        w = self._tls.worker
        if w is None:
            return
        crit = w.critical
        if crit is not None:
            w.critical = None
            p, k = crit
        else:
            k = f"{m.lock_class}.critical"
            p = self.costs.ps(k)
        if p:
            _spend(w, p, k)

    def critical_section(self, obj, method: str, key: str) -> None:
        """Wrap obj.method so that the first lock it takes charges cost(key)
        as its critical section (instead of the lock class's price)."""
        inner = getattr(obj, method)
        price = (self.costs.ps(key), key)
        tls = self._tls

        def wrapped(*args, **kw):
            w = tls.worker
            if w is None:
                return inner(*args, **kw)
            w.critical = price
            try:
                return inner(*args, **kw)
            finally:
                w.critical = None
        setattr(obj, method, wrapped)

    def attach_runtime(self, rt) -> None:
        """Bind the charges no yield label can carry (the runtime is built, not running)."""
        from ..vtimebind import bind_runtime
        bind_runtime(self, rt)

    # -- results ------------------------------------------------------------------

    def summary(self, mutators: dict, procs: int) -> dict:
        """Per thread: clock, busy and waiting time, the breakdown by key; run totals."""
        threads = {}
        for w in self._workers:
            by = {k: v / 1000 for k, v in sorted(w.spent.items(), key=lambda kv: -kv[1])}
            wait = sum(v for k, v in w.spent.items() if k.startswith("wait"))
            threads[w.name] = {"clock_ns": w.clock / 1000, "busy_ns": (sum(w.spent.values()) - wait) / 1000,
                               "wait_ns": wait / 1000, "by_key": by}
        span = self.makespan_ps() / 1000
        rates = {}
        for name, m in mutators.items():
            t = threads.get(name, {}).get("clock_ns", 0)
            rates[name] = m["allocs"] / (t * 1e-9) if t else 0.0
        total = sum(m["allocs"] for m in mutators.values())
        gc_busy = sum(t["busy_ns"] for n, t in threads.items() if not n.startswith("P"))
        return {"clock": "virtual", "unit": "ns", "costs": self.costs.to_dict(),
                "makespan_ns": span,
                "allocs_per_vs": total / (span * 1e-9) if span else 0.0,
                "allocs_per_vs_by_p": rates,
                "gc_cpu_fraction": gc_busy / (procs * span) if span else 0.0,
                "threads": threads}


class _VtimeMutex(InstrumentedMutex):
    """The controlled mutex under vtime (see VtimeScheduler.on_mutex)."""

    __slots__ = ()

    def lock(self, _depth: int = 1) -> bool:
        r = InstrumentedMutex.lock(self, _depth + 1)
        self._sched._after_lock(self)
        return r

    def unlock(self) -> None:
        self._sched.yield_point(f"{self.name}.release")
        InstrumentedMutex.unlock(self)
