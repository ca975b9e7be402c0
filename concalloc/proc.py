"""proc: Ps, safe points, and stopping the world (proc.go).

A P is a processor's worth of runtime state: an id, an mcache and a status.
Mutator Ps run on their own threads; idle Ps just hold an mcache.  The world
is stopped the way Go does it: the stopper takes worldsema, sets gcwaiting
under sched.lock and waits until every running P has parked at its next safe
point (the top of each allocation; a P blocked in a lock is *not* at a safe
point and is waited for).  startTheWorld clears gcwaiting and wakes them.
Each pause is recorded by reason as time-to-stop plus time-stopped, in ns, or
in logical scheduler steps under a controlled scheduler.

Protection: P.status, World.gcwaiting's writes, World.stopwait and the pause
table are guarded by sched.lock (rank SCHED); gcwaiting is read without the
lock at safe points (a single attribute load; the locked re-check decides).
worldsema (rank STW) serialises stoppers.
"""

from __future__ import annotations

from .sync import Rank

P_IDLE, P_RUNNING, P_GCSTOP, P_DEAD = "idle", "running", "gcstop", "dead"


class P:
    __slots__ = ("id", "mcache", "status", "name")

    def __init__(self, pid: int, mcache):
        self.id = pid
        self.mcache = mcache
        self.status = P_IDLE   # sched.lock
        self.name = f"P{pid}"


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
        self.gcwaiting = False     # written under sched.lock
        self.stopwait = 0          # sched.lock
        self.pauses: dict[str, PauseStats] = {}  # sched.lock
        self._reason = None        # the stopper only
        self._t_stopped = 0        # the stopper only
        self._t_request = 0
        self.stopped = False       # the stopper only: the world is stopped now
        self.events = None

    # --- the stopper's side ---
    def stopTheWorld(self, reason: str) -> None:
        clock = self.sched.clock
        self.worldsema.lock()
        self._t_request = clock()
        self._reason = reason
        with self.lock:
            self.gcwaiting = True
            self.stopwait = sum(1 for p in self.allp if p.status == P_RUNNING)
            while self.stopwait > 0:
                self.stopped_cond.wait()
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
            self.pauses.setdefault(self._reason, PauseStats()).add(
                self._t_stopped - self._t_request, now - self._t_stopped)
            self.start_cond.notify_all()
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
            while self.gcwaiting:
                self.start_cond.wait()
            p.status = P_RUNNING
        if self.events:
            self.events.emit("unpark", p=p.id)

    def acquirep(self, p: P) -> None:
        """A P starts running a mutator.  It may not start while the world is
        stopped: it waits for the start, as a P handed work during STW would."""
        with self.lock:
            while self.gcwaiting:
                self.start_cond.wait()
            p.status = P_RUNNING

    def releasep(self, p: P) -> None:
        """A P stops running (its mutator is done): it no longer holds up STW."""
        with self.lock:
            if p.status == P_RUNNING and self.gcwaiting:
                self.stopwait -= 1
                if self.stopwait == 0:
                    self.stopped_cond.notify_all()
            p.status = P_IDLE

    def pause_table(self) -> dict:
        with self.lock:
            out = {r: s.to_dict() for r, s in sorted(self.pauses.items())}
        unit = getattr(self.sched, "clock_unit", "ns")
        for d in out.values():
            d["unit"] = unit
        return out
