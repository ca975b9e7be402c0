"""proc: Ps, safe points, and stopping the world (proc.go).

A P is a processor's worth of runtime state: an id, an mcache and a status.
Mutator Ps run on their own threads; idle Ps just hold an mcache.  The world
is stopped the way Go does it: the stopper takes worldsema, sets gcwaiting
under sched.lock and waits until every running P has parked at its next safe
point (the top of each allocation; a P blocked in a lock is *not* at a safe
point and is waited for).  startTheWorld clears gcwaiting and wakes them.
Each pause is recorded by reason as time-to-stop plus time-stopped, in ns, or
in logical scheduler steps under a controlled scheduler.

Safe-point functions (Go's forEachP and suspendG): run_at_safepoint(p, fn)
has p run fn(p) on its own thread at its next safe point, or runs it at once
in the caller when p runs no mutator (idle, parked for stop-the-world, or
blocked in runtime.GC), holding p "borrowed" so that it cannot start running
meanwhile.  The collector scans stacks and flushes write-barrier buffers
this way, so a stack is never read while its owner runs.  `p.preempt` is the
one flag a mutator tests at each safe point: set while a stop-the-world or a
safe-point function is pending.

Protection: P.status, P.preempt's writes, P.safePointFns, P.borrowed,
World.gcwaiting's writes, World.stopwait and the pause table are guarded by
sched.lock (rank SCHED); gcwaiting and preempt are read without the lock at
safe points (a single attribute load; the locked re-check decides).
worldsema (rank STW) serialises stoppers; World.stopper is the thread that
holds it.  The world stays stopped across functions (gcStart stops it,
gcMarkTermination starts it), so no single `with` holds worldsema: a thread
that unwinds (a stopped run's Aborted) gives it back with giveBackWorldsema,
which stopTheWorld calls on its own unwind and the threads that stop the
world (the collector, the mutators) call as they end.  The GC fields of a P (wbBuf, gcw,
gcscandone, wbCalls) are owned by the P's thread, and by the
collector while the world is stopped or the P is borrowed.
"""

from __future__ import annotations

import threading

from .sync import Rank

P_IDLE, P_RUNNING, P_GCSTOP, P_DEAD = "idle", "running", "gcstop", "dead"
_REQ_PENDING, _REQ_TAKEN, _REQ_DONE, _REQ_HANDED_BACK = 0, 1, 2, 3


class _SafePointReq:
    """One function a P is asked to run at its next safe point (sched.lock)."""

    __slots__ = ("fn", "state")

    def __init__(self, fn):
        self.fn = fn
        self.state = _REQ_PENDING


class P:
    __slots__ = ("id", "mcache", "status", "name", "m", "preempt", "safePointFns", "borrowed",
                 "wbBuf", "gcw", "gcscandone", "wbCalls", "wbShaded")

    def __init__(self, pid: int, mcache):
        self.id = pid
        self.mcache = mcache
        self.status = P_IDLE   # sched.lock
        self.name = f"P{pid}"
        self.m = None          # the Mutator running on this P, if any (set before threads start)
        self.preempt = False   # sched.lock to write: a safe point has something to do
        self.safePointFns: list = []   # sched.lock: [fn, done] requests
        self.borrowed = False  # sched.lock: the collector is running a safe-point fn for this idle P
        self.wbBuf: list[int] = []     # owned by the P: buffered write-barrier pointers
        self.gcw = None        # owned by the P: its gcWork (assists, barrier flushes, stack scans)
        self.gcscandone = False  # this cycle's stack scan is done (stack black)
        self.wbCalls = 0       # owned by the P: write-barrier calls
        self.wbShaded: set[int] = set()   # owned by the P: pointers its flushes shaded this cycle


class PauseStats:
    __slots__ = ("count", "stopping_total", "stopped_total", "stopping_max", "stopped_max")

    def __init__(self):
        self.count = 0
        self.stopping_total = self.stopped_total = 0
        self.stopping_max = self.stopped_max = 0

    def add(self, stopping: int, stopped: int) -> None:
        self.count += 1
        self.stopping_total += stopping
        self.stopped_total += stopped
        self.stopping_max = max(self.stopping_max, stopping)
        self.stopped_max = max(self.stopped_max, stopped)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class World:
    def __init__(self, sync, allp: list[P]):
        self.sync = sync
        self.sched = sync.scheduler
        self.allp = allp
        self.worldsema = sync.mutex("worldsema", Rank.STW)
        self.lock = sync.mutex("sched", Rank.SCHED)
        self.stopped_cond = sync.cond(self.lock, "sched.stopnote")
        self.start_cond = sync.cond(self.lock, "sched.start")
        self.safepoint_cond = sync.cond(self.lock, "sched.safepoint")
        self.gcwaiting = False     # written under sched.lock
        self.stopwait = 0          # sched.lock
        self.pauses: dict[str, PauseStats] = {}  # sched.lock
        self._reason = None        # the stopper only
        self._t_stopped = 0        # the stopper only
        self._t_request = 0
        self.stopped = False       # the stopper only: the world is stopped now
        # The thread ident holding worldsema: written by that thread only,
        # while it holds worldsema; others only compare it with their own.
        self.stopper = None
        self.events = None

    # --- the stopper's side ---
    def stopTheWorld(self, reason: str) -> None:
        clock = self.sched.clock
        self.worldsema.lock()
        self.stopper = threading.get_ident()
        self._t_request = clock()
        self._reason = reason
        try:
            with self.lock:
                self.gcwaiting = True
                for p in self.allp:
                    p.preempt = True
                self.safepoint_cond.notify_all()      # Ps parked in an assist stop for it too
                self.stopwait = sum(1 for p in self.allp if p.status == P_RUNNING)
                while self.stopwait > 0:
                    self.stopped_cond.wait()
        except BaseException:
            self.giveBackWorldsema()
            raise
        self._t_stopped = clock()
        self.stopped = True
        if self.events:
            self.events.emit("stw_start", reason=reason)

    def startTheWorld(self) -> None:
        clock = self.sched.clock
        now = clock()
        self.stopped = False
        if self.events:
            self.events.emit("stw_stop", reason=self._reason)
        with self.lock:
            self.gcwaiting = False
            for p in self.allp:
                p.preempt = bool(p.safePointFns)
            self.pauses.setdefault(self._reason, PauseStats()).add(
                self._t_stopped - self._t_request, now - self._t_stopped)
            self.start_cond.notify_all()
        self.stopper = None
        self.worldsema.unlock()

    def giveBackWorldsema(self) -> None:
        """For a thread that unwinds (a stopped run's Aborted, or its own
        error): give worldsema back if this thread holds it, so the run ends
        with no lock held.  Under a controlled scheduler unlock is a
        decision, which a stopped run cannot take: the lock is kept there, as
        the mutexes' `with` exits keep theirs.  A no-op for any other thread."""
        if self.stopper != threading.get_ident():
            return
        self.stopper = None
        if not self.sched.controlled:
            self.worldsema.unlock()

    # --- the Ps' side ---
    def park(self, p: P) -> None:
        """Called by a P at a safe point after seeing gcwaiting."""
        with self.lock:
            if not self.gcwaiting:
                return
            p.status = P_GCSTOP
            self.stopwait -= 1
            if self.stopwait == 0:
                self.stopped_cond.notify_all()
            if self.events:
                self.events.emit("park", p=p.id)
            while self.gcwaiting or p.borrowed:
                self.start_cond.wait()
            p.status = P_RUNNING
        if self.events:
            self.events.emit("unpark", p=p.id)

    def acquirep(self, p: P) -> None:
        """A P starts running a mutator.  It may not start while the world is
        stopped: it waits for the start, as a P handed work during STW would."""
        with self.lock:
            while self.gcwaiting or p.borrowed:
                self.start_cond.wait()
            p.status = P_RUNNING
            p.preempt = bool(p.safePointFns)

    def releasep(self, p: P) -> None:
        """A P stops running (its mutator is done): it no longer holds up STW."""
        with self.lock:
            if p.status == P_RUNNING and self.gcwaiting:
                self.stopwait -= 1
                if self.stopwait == 0:
                    self.stopped_cond.notify_all()
            p.status = P_IDLE
            self._hand_over_requests(p)

    # --- safe-point functions (forEachP, suspendG) ---
    def safepoint(self, p: P) -> None:
        """A mutator saw p.preempt at a safe point: run the safe-point
        functions asked of it, then park if the world is being stopped."""
        while True:
            with self.lock:
                reqs, p.safePointFns = p.safePointFns, []
                for r in reqs:
                    r.state = _REQ_TAKEN
                if not reqs:
                    p.preempt = self.gcwaiting
                    if not self.gcwaiting:
                        return
            if not reqs:
                self.park(p)
                continue
            try:
                for r in reqs:
                    r.fn(p)
            finally:
                with self.lock:
                    for r in reqs:
                        r.state = _REQ_DONE
                    self.safepoint_cond.notify_all()

    def park_at_safepoint(self, p: P, ready) -> None:
        """p's mutator waits, at a safe point, until ready() holds (checked
        under sched.lock; whoever makes it true notifies safepoint_cond).
        Meanwhile it serves safe-point functions and stops with the world,
        as a parked goroutine is scannable (Go's gcParkAssist)."""
        while True:
            with self.lock:
                while not (ready() or p.safePointFns or self.gcwaiting):
                    self.safepoint_cond.wait()
                done = ready() and not p.safePointFns and not self.gcwaiting
            if done:
                return
            self.safepoint(p)

    def wake_parked(self) -> None:
        """Wake every P parked in park_at_safepoint to look at its ready() again."""
        with self.lock:
            self.safepoint_cond.notify_all()

    def _hand_over_requests(self, p: P) -> None:
        """(sched.lock held) p stopped running with requests pending: their
        requesters run them themselves, p being idle."""
        if p.safePointFns:
            for r in p.safePointFns:
                r.state = _REQ_HANDED_BACK
            p.safePointFns = []
            self.safepoint_cond.notify_all()

    def run_at_safepoint(self, p: P, fn) -> None:
        """Run fn(p) with p's mutator stopped at a safe point (Go's suspendG);
        return when it has run."""
        self.forEachP(fn, [p])

    def forEachP(self, fn, ps: list[P] | None = None) -> None:
        """Run fn(p) for every P (or those given) at its next safe point, or
        directly for a P that runs no mutator; return when all have run."""
        ps = self.allp if ps is None else ps
        reqs, direct = [], []
        with self.lock:
            for p in ps:
                if p.status == P_RUNNING:
                    r = _SafePointReq(fn)
                    p.safePointFns.append(r)
                    p.preempt = True
                    reqs.append((p, r))
                else:
                    direct.append(p)
            if reqs:
                self.safepoint_cond.notify_all()  # a P parked in an assist serves requests
        for p in direct:
            self._run_borrowed(p, fn)
        for p, r in reqs:
            with self.lock:
                while r.state < _REQ_DONE:
                    self.safepoint_cond.wait()
            if r.state == _REQ_HANDED_BACK:
                self._run_borrowed(p, fn)

    def _run_borrowed(self, p: P, fn) -> None:
        """Run fn(p) for a P that is not running, holding it so it cannot start."""
        with self.lock:
            while p.borrowed:
                self.safepoint_cond.wait()
            if p.status == P_RUNNING:       # it started meanwhile: ask it instead
                borrowed = False
            else:
                borrowed = p.borrowed = True
        if not borrowed:
            self.run_at_safepoint(p, fn)
            return
        try:
            fn(p)
        finally:
            with self.lock:
                p.borrowed = False
                self.start_cond.notify_all()
                self.safepoint_cond.notify_all()

    def pause_table(self) -> dict:
        with self.lock:
            out = {r: s.to_dict() for r, s in sorted(self.pauses.items())}
        unit = getattr(self.sched, "clock_unit", "ns")
        for d in out.values():
            d["unit"] = unit
        return out
