"""Mutex: Go's runtime.mutex, with lock ranking, statistics and events.

What a mutex does is chosen once, when SyncContext builds it:
``Mutex(name, rank, lock_class, ctx)`` returns one of four kinds, all with
the same API (lock(), unlock(), ``with m:``, locked(), name, rank,
lock_class, stats, owner):

* PlainMutex (OS scheduler, no ranks, no stats, no events): the bare
  ``threading.Lock``.  ``lock``/``unlock`` are its acquire/release, and
  ``with m:`` runs the lock's own C ``__enter__``/``__exit__`` (each plain
  mutex gets a one-off subclass holding them), so it costs what ``with
  lock:`` costs.  A thread blocked here is not interruptible: only the
  watchdog sees such a hang.
* StatsMutex (OS, statistics only): try-acquire first, and only when that
  fails take timestamps around an interruptible wait (so waits are exact);
  holds are timed on one acquisition in HOLD_SAMPLE (the first, then at
  random gaps of 64 on average), as Go's mutex profile samples, by swapping
  ``unlock`` for a timed one; acquisitions are counted in batches at those
  samples; no owner is looked up on the uncontended path (a contended
  acquisition records it for its hold).
* RankedMutex (OS, rank checking; statistics optional): the debug mode, like
  Go's static lock ranking.  The locks a thread holds form a chain through
  the mutexes themselves (a mutex is held by one thread at a time, so it can
  carry its own link): the thread's Held record (one thread-local load per
  lock) points at the newest lock held, each held mutex at the one that was
  newest when it was taken (``_below``), and keeps its acquisition site
  (``_site`` frame, ``_lasti``), so a violation names both sites.  Taking and
  releasing a lock in order is a few slot stores, with no tuple or list
  operation; the owner is the Held record, so unlock needs no thread-local
  load.  Its lock is a one-token ``_queue.SimpleQueue`` (a binary semaphore,
  thread-safe by itself): ``get_nowait()`` is the try-acquire, ``put(True)``
  the release, ``empty()`` is locked().  Taking the token costs less than
  ``Lock.acquire(False)``, which spends about 26 ns parsing its argument (a
  take and give back: about 50 ns against 105 on the machine of
  docs/contention.md); a failed take raises Empty, which costs nothing until
  it is raised.
* InstrumentedMutex (any controlled scheduler, or an event recorder): every
  feature behind an ``if``; speed matters less here (a controlled decision
  costs microseconds).  Under a controlled scheduler the lock is logical:
  ``_owner`` is the lock state, read and written only by the baton holder,
  and lock, wait and unlock are yield points ("{name}.lock",
  "wait {name}.lock", "{name}.unlock").

The rank comparison is ``top._rank >= new._rank`` on plain ints, which is
exactly lockrank.rank_allows (LEAF is the largest rank).

Hold is a holding that lets the mutex go for part of it (``with hold:``
around ``with hold.dropped():``), for code that drops a lock in the middle
of a locked region and must not, when it unwinds, take it back or release
it twice.
"""

from __future__ import annotations

import random
import sys
import threading
from _queue import Empty, SimpleQueue

from .errors import Aborted, LockRankViolation
from .lockrank import Rank
from .lockrank import order_violation
from . import lockstats
from .lockstats import LockStats

_getframe = sys._getframe
_gap = random.Random(0x5EED).randrange   # [1, 2n): the gap between two timed holds


class Held:
    """A thread's held locks (rank checking only): `top` is the newest, and each
    held mutex's `_below` the one before it.  A ranked mutex's owner is this
    record, so unlock needs no thread-local lookup.  Owned by its thread."""

    __slots__ = ("name", "top")

    def __init__(self, name: str):
        self.name = name
        self.top = None

    def locks(self) -> list:
        """The locks held, oldest first."""
        out = []
        m = self.top
        while m is not None:
            out.append(m)
            m = m._below
        out.reverse()
        return out


class ThreadState(threading.local):
    """Per-thread view of one SyncContext; every field is owned by its thread."""

    def __init__(self):
        self.name = threading.current_thread().name
        self.held = Held(self.name)


class Mutex:
    """A named, ranked runtime mutex.  Build it with SyncContext.mutex."""

    __slots__ = ("name", "lock_class", "rank", "_rank", "stats", "_owner", "_below", "_site", "_lasti")

    def __new__(cls, name: str = "", rank: Rank = Rank.LEAF, lock_class: str | None = None, ctx=None):
        if cls is not Mutex:
            return object.__new__(cls)
        sched = ctx.scheduler
        if sched.controlled or ctx.recorder is not None:
            return object.__new__(InstrumentedMutex)
        if ctx.check_ranks:
            return object.__new__(RankedMutex)
        if ctx.lock_stats_enabled:
            return object.__new__(StatsMutex)
        lk = threading.Lock()
        plain = type("PlainMutex", (PlainMutex,), {
            "__slots__": (), "lock": lk.acquire, "unlock": lk.release,
            "__enter__": lk.__enter__, "__exit__": lk.__exit__, "locked": lk.locked})
        return object.__new__(plain)

    def __init__(self, name: str, rank: Rank, lock_class: str | None, ctx):
        self.name = name
        self.lock_class = lock_class or name
        self.rank = rank
        self._rank = int(rank)
        # The holder's name, where the kind keeps it (see owner).  OS mode: written
        # by the holder, read racily by reports; controlled: the logical lock
        # itself, baton holder only.
        self._owner = None
        # Rank checking: the held chain and acquisition site (see Held); holder only.
        self._below = self._site = None
        self._lasti = 0
        self.stats = LockStats(lockstats.HOLD_SAMPLE if not ctx.scheduler.controlled else 1) \
            if ctx.lock_stats_enabled else None

    @property
    def owner(self) -> str | None:
        """The holding thread's name, where this kind of mutex knows it (racy outside the holder)."""
        return self._owner

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} rank={self.rank.name}>"


class PlainMutex(Mutex):
    """The bare lock (its methods are set per instance, see Mutex.__new__)."""

    __slots__ = ()

    @property
    def owner(self) -> None:
        return None


# --- statistics only ---------------------------------------------------------------------

class _Sampled(Mutex):
    """OS mode with a real lock: acquisitions counted in batches and one hold in
    HOLD_SAMPLE (on average) timed.  _countdown runs down to the next sampled
    acquisition, which adds the batch (_batch acquisitions) to stats.counted, draws
    the next gap, reads the clock and swaps `unlock` for the timed one (which swaps
    it back).  All holder only."""

    __slots__ = ("_try", "_release", "_sched", "_clock", "_t_acq", "_timing", "_countdown", "_batch",
                 "_untimed_unlock", "unlock", "locked")

    def __init__(self, name, rank, lock_class, ctx):
        super().__init__(name, rank, lock_class, ctx)
        self._make_lock()
        self._sched = ctx.scheduler
        self._clock = ctx.scheduler.clock
        self._t_acq = 0
        self._timing = False          # this hold is being timed
        self._countdown = self._batch = 1
        if self.stats is not None:
            self.stats.pending = self._uncounted
        self.unlock = self._untimed_unlock = self._bare_unlock()

    def _make_lock(self) -> None:
        """Build the real lock: _try(blocking, timeout) -> bool, _release(), locked()."""
        lk = threading.Lock()
        self._try, self._release, self.locked = lk.acquire, lk.release, lk.locked

    def _bare_unlock(self):
        return self._release

    def _sample(self) -> None:
        st = self.stats
        st.counted += self._batch
        # The gap to the next sample is random (mean HOLD_SAMPLE), as Go's mutex profile
        # samples at random: a fixed period would alias with periodic work under the lock
        # (a span refill every nelems allocations).
        self._countdown = self._batch = _gap(2 * (st.hold_mask + 1)) if st.hold_mask else 1
        self._timing = True
        self._t_acq = self._clock()
        self.unlock = self._slow_unlock

    def _slow_unlock(self) -> None:
        """unlock() of a hold that asked for more than the bare release (a timed hold)."""
        if self._timing:
            self._timing = False
            self.stats.held(self._clock() - self._t_acq)
        self.unlock = self._untimed_unlock
        self._untimed_unlock()

    def _uncounted(self) -> int:
        return self._batch - self._countdown

    def _wait(self) -> None:
        acquire = self._try
        self._sched.wait_interruptibly(lambda seconds: acquire(True, seconds))


class StatsMutex(_Sampled):
    """OS scheduler, statistics only."""

    __slots__ = ()

    def lock(self, blocking: bool = True) -> bool:
        if not self._try(False):
            if not blocking:
                return False
            self._contended()
        c = self._countdown - 1
        if c:
            self._countdown = c
        else:
            self._sample()
        return True

    def _contended(self) -> None:
        st = self.stats
        st.waited(*_wait_counted(self, self._wait))
        st.owner_switches += 1     # only contended switches are seen in this mode
        self._owner = threading.current_thread().name
        self.unlock = self._slow_unlock     # which forgets the owner again

    def _slow_unlock(self) -> None:
        self._owner = None
        super()._slow_unlock()

    def __enter__(self):
        self.lock()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.unlock()

    @property
    def owner(self) -> str | None:
        """Known only for a hold that began with a contended acquisition."""
        return self._owner


class RankedMutex(_Sampled):
    """OS scheduler, rank checking on (statistics optional, no events).  The owner
    is the holder's Held record, so unlock needs no thread-local lookup; the lock
    is a one-token queue (see the module comment)."""

    __slots__ = ("_tls", "_take", "_give", "_get")

    def __init__(self, name, rank, lock_class, ctx):
        super().__init__(name, rank, lock_class, ctx)
        self._tls = ctx.thread_state

    def _make_lock(self) -> None:
        token = SimpleQueue()       # thread-safe by itself; holds the token while the lock is free
        token.put(True)
        self._take, self._give, self._get, self.locked = token.get_nowait, token.put, token.get, token.empty

    def _wait(self) -> None:
        get = self._get
        self._sched.wait_interruptibly(lambda seconds: _timed_take(get, seconds))

    def _bare_unlock(self):
        return self._ranked_unlock

    def lock(self, _depth: int = 1) -> None:
        """Take the lock; _depth names the frame whose site a rank violation reports."""
        held = self._tls.held
        top = held.top
        f = _getframe(_depth)
        if top is not None and top._rank >= self._rank:
            _refuse(top, self, f)
        try:
            self._take()
        except Empty:
            self._contended(held)
        if self.stats is not None:
            c = self._countdown - 1
            if c:
                self._countdown = c
            else:
                self._sample()
        self._site = f
        self._lasti = f.f_lasti
        self._below = top
        self._owner = held
        held.top = self

    def _contended(self, held) -> None:
        waited = _wait_counted(self, self._wait)
        st = self.stats
        if st is not None:
            st.waited(*waited)
            st.owner_switches += 1     # only contended switches are counted in this mode

    def _ranked_unlock(self) -> None:
        held = self._owner
        if held is None:
            raise LockRankViolation(f"unlock of {self.name}, which this thread does not hold")
        if held.top is self:
            held.top = self._below
        else:
            _forget(held, self)
        self._owner = None
        self._give(True)

    def __enter__(self):
        self.lock(2)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.unlock()

    @property
    def owner(self) -> str | None:
        held = self._owner
        return None if held is None else held.name


# --- ranks, events, controlled scheduling ------------------------------------------------

class InstrumentedMutex(Mutex):
    __slots__ = ("_tls", "_check", "_rec", "_clock", "_try", "_wait", "_give", "_t_acq", "_sched",
                 "_lock_label", "_unlock_label", "_wait_label")

    def __init__(self, name, rank, lock_class, ctx):
        super().__init__(name, rank, lock_class, ctx)
        sched = self._sched = ctx.scheduler
        self._tls = ctx.thread_state
        self._check = ctx.check_ranks
        if self.stats is not None:
            self.stats.hold_mask = 0        # the debug mode times every hold
        self._rec = ctx.recorder
        self._clock = sched.clock
        self._t_acq = 0
        if sched.controlled:
            self._lock_label, self._unlock_label = f"{name}.lock", f"{name}.unlock"
            self._wait_label = f"wait {name}.lock"
            self._try, self._wait, self._give = self._try_logical, self._wait_logical, self._give_logical
        else:
            lk = threading.Lock()
            acquire = lk.acquire
            self._try, self._give = acquire, lk.release
            self._wait = lambda: sched.wait_interruptibly(lambda seconds: acquire(True, seconds))

    def lock(self, _depth: int = 1) -> bool:
        """Take the lock; _depth names the frame whose site a rank violation reports."""
        ts = self._tls
        if self._check:
            f = _getframe(_depth)
            held = ts.held
            top = held.top
            if top is not None and top._rank >= self._rank:
                _refuse(top, self, f)
        if self._try(False):
            waited = None
        else:
            if self._rec is not None:
                self._rec.emit("lock_wait", lock=self.name)
            waited = _wait_counted(self, self._wait)
        me = ts.name
        st = self.stats
        if st is not None:
            st.counted += 1
            if me != st.last_owner:
                if st.last_owner is not None:
                    st.owner_switches += 1
                st.last_owner = me
            if waited is not None:
                st.waited(*waited)
            self._t_acq = self._clock()
        self._owner = me
        if self._check:
            self._site, self._lasti, self._below = f, f.f_lasti, top
            held.top = self
        if self._rec is not None:
            self._rec.emit("lock_acquire", lock=self.name)
        return True

    def unlock(self) -> None:
        if self._check:
            held = self._tls.held
            if held.top is self:
                held.top = self._below
            else:
                _forget(held, self)
        st = self.stats
        if st is not None:
            st.held(self._clock() - self._t_acq)
        self._owner = None
        if self._rec is not None:
            self._rec.emit("lock_release", lock=self.name)
        self._give()

    def __enter__(self):
        self.lock(2)
        return self

    def __exit__(self, exc_type, exc, tb):
        # A thread unwinding from a stopped run gives the lock back under free
        # threads, as every other kind's with does: the run's own thread reads
        # the heap after join_all (read_memstats takes mcentral locks).  Under a
        # controlled scheduler unlock is a decision, which a stopped run cannot
        # take: there the lock stays with the unwound thread.
        if exc_type is not Aborted or not self._sched.controlled:
            self.unlock()

    def locked(self) -> bool:
        return self._owner is not None

    # controlled adapters: the baton holder reads and writes _owner
    def _free(self) -> bool:
        return self._owner is None

    def _try_logical(self, blocking=False) -> bool:
        self._sched.yield_point(self._lock_label)
        return self._free()

    def _wait_logical(self) -> None:
        while not self._free():
            self._sched.block(self._wait_label, self._free, self._why)

    def _why(self) -> str:
        return f"{self.name}.lock held by {self.owner}"

    def _give_logical(self) -> None:
        self._sched.yield_point(self._unlock_label)


# --- a holding that lets go for a while -------------------------------------------------

class Hold:
    """One holding of a mutex that is let go for part of it (mheap.reclaim
    drops mheap.lock while it sweeps).  ``with hold:`` takes the mutex and
    gives it back as ``with m:`` does; inside, ``with hold.dropped():``
    releases it for a block and takes it back after the block.  If that
    block raises (a stopped run's Aborted), the mutex is not taken back and
    the outer exit does not release it: an unwinding thread neither waits
    for a lock it is about to give up nor releases one that another thread
    may hold by then.  Normal runs take exactly the lock and unlock calls of
    the bare pairs.  Owned by its thread (`held` is whether it holds m now)."""

    __slots__ = ("m", "held")

    def __init__(self, m: Mutex):
        self.m = m
        self.held = False

    def __enter__(self) -> "Hold":
        self.m.lock(2)
        self.held = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.held:
            self.held = False
            self.m.__exit__(exc_type, exc, tb)

    def dropped(self) -> "_Dropped":
        return _Dropped(self)


class _Dropped:
    __slots__ = ("hold",)

    def __init__(self, hold: Hold):
        self.hold = hold

    def __enter__(self) -> None:
        hold = self.hold
        hold.held = False          # first: a controlled unlock may raise once the lock is given
        hold.m.unlock()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            hold = self.hold
            hold.m.lock(2)
            hold.held = True


def _timed_take(get, seconds: float) -> bool:
    """Take a one-token queue's token, waiting up to `seconds`; True once taken."""
    try:
        get(True, seconds)
    except Empty:
        return False
    return True


def _wait_counted(m: Mutex, wait) -> tuple[int, int]:
    """Run wait() (returns once the lock is ours) counted as a waiter:
    (time waited, waiters seen including this one)."""
    st = m.stats
    clock = m._clock
    t0 = clock()
    seen = st.waiters.add(1) if st is not None else 0
    try:
        wait()
    finally:
        if st is not None:
            st.waiters.add(-1)
    return clock() - t0, seen


def _refuse(top: Mutex, m: Mutex, frame) -> None:
    """Taking m at `frame` while `top` is the newest lock this thread holds."""
    raise order_violation(top, (top._site.f_code, top._lasti), m, (frame.f_code, frame.f_lasti))


def _forget(held: Held, m: Mutex) -> None:
    """Unlink m from the thread's held chain when it is not on top (released out of
    order).  Every link touched belongs to a lock this thread holds."""
    above = None
    x = held.top
    while x is not None:
        if x is m:
            if above is None:
                held.top = m._below
            else:
                above._below = m._below
            return
        above, x = x, x._below
    raise LockRankViolation(f"unlock of {m.name}, which this thread does not hold")
