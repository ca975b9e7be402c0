"""The scavenger: return free pages to the OS (mgcscavenge.go).

scavenge releases free, not yet released pages, highest address first as
Go's scavenger prefers, with a real madvise(MADV_DONTNEED) through
sysUnused: heapFree turns into heapReleased and the process RSS falls.  The
pages stay free; the next allocation of them is zero from the OS.

Go 1.19 scavenges on two fronts, and so does this heap:

* the background scavenger (bgscavenge, a thread of its own) brings the
  retained heap (heapInUse + heapFree) down to the goals gcPaceScavenger
  sets at each mark termination:
      gcPercentGoal   = (1 + retainExtraPercent/100) * (heapGoal/lastHeapGoal) * lastHeapInUse
      memoryLimitGoal = (1 - reduceExtraPercent/100) * memoryLimit  (95% of the limit)
  and keeps going while either is not met.  It works in 64 KiB quanta,
  about 1 ms of work at a time, then sleeps so it uses scavengePercent (1%)
  of one CPU; it parks when there is nothing to do and is woken when a
  cycle's sweep is done (sweepone, finishsweep_m).
* the allocator scavenges synchronously in allocSpan (scavenge_for_alloc):
  down to the memory limit whenever mapped-and-ready memory passes it, and by
  the heap's growth when growth would take the retained heap past
  gcPercentGoal.

Protection: the page bitmaps are read and written under mheap.lock (scavenge
takes it for each run it releases, like Go's scavengeOne per chunk); the
goals are atomics written world stopped or under mheap.lock; the scavenger
state is owned by the bgscavenge thread except the wakeup Event (sync
layer) and `released` (atomic).

Model differences: Go's goal uses physical pages (4 KiB) and paces with a PI
controller on measured CPU time; here pages are 8 KiB and the sleep after a
burst is worked * (100/scavengePercent - 1).  Under a controlled scheduler no
wall time enters: the work of a quantum is Go's estimate (10 us per 4 KiB)
and a sleep is one scheduling step.  mappedReady is heapInUse + heapFree (the
heap is all the memory modelled).  Go 1.19.8 computes memoryLimitGoal as
limit * 95 (golang/go#62449, fixed later); the intended 95% is used here.
"""

from __future__ import annotations

import time

from ..sysmem import ARENA_BASE, PAGE_SHIFT

RETAIN_EXTRA_PERCENT = 10        # retainExtraPercent: headroom over the heap goal
REDUCE_EXTRA_PERCENT = 5         # reduceExtraPercent: aim 5% under the memory limit
SCAVENGE_PERCENT = 1             # scavengePercent: CPU share of one P for bgscavenge
SCAVENGE_QUANTUM = 64 << 10      # scavengeQuantum: bytes per scavenge call in run()
MIN_SCAV_WORK_TIME = 1e-3        # minScavWorkTime (1 ms) per burst before sleeping
APPROX_WORKED_PER_PHYS_PAGE = 10e-6  # approxWorkedNSPerPhysicalPage, seconds
PHYS_PAGE_SIZE = 4096
NO_GOAL = (1 << 64) - 1          # ^uint64(0): no goal
MAX_MEMORY_LIMIT = (1 << 63) - 1  # math.MaxInt64: no memory limit

YIELD_QUANTUM = "scavenge.quantum"


def heapRetained(h) -> int:
    """An estimate of the heap's RSS: in-use plus free, not released, pages."""
    st = h.stats
    return st.get("heapInUse") + st.get("heapFree")


def mappedReady(h) -> int:
    """Memory mapped and ready (Go: gcController.mappedReady); heap only here."""
    return heapRetained(h)


class scavengeGoals:
    """Go's global `scavenge`: the background scavenger's goals.

    gcPercentGoal, memoryLimitGoal: atomic; written by gcPaceScavenger
    (world stopped or mheap.lock), read by the scavengers.  NO_GOAL = none.
    memoryLimit: atomic; the limit the last pacing used (Go reads it from
    gcController.memoryLimit; the pacer hands it to gcPaceScavenger here)."""

    def __init__(self):
        from ..sync import AtomicInt
        self.gcPercentGoal = AtomicInt(NO_GOAL)
        self.memoryLimitGoal = AtomicInt(NO_GOAL)
        self.memoryLimit = AtomicInt(MAX_MEMORY_LIMIT)


def gcPaceScavenger(h, memoryLimit: int, heapGoal: int, lastHeapGoal: int) -> None:
    """Set the scavenger's goals after the pacer has its new heap goal
    (world stopped or mheap.lock).  lastHeapGoal 0 (the first cycle) means
    no gcPercent goal yet.  Uses h.lastHeapInUse, recorded by gcSweep."""
    goals = h.scavenge
    goals.memoryLimit.store(memoryLimit)
    limitGoal = memoryLimit * (100 - REDUCE_EXTRA_PERCENT) // 100
    goals.memoryLimitGoal.store(NO_GOAL if mappedReady(h) <= limitGoal else limitGoal)
    if lastHeapGoal == 0:
        goals.gcPercentGoal.store(NO_GOAL)
        return
    goal = int(h.lastHeapInUse * (heapGoal / lastHeapGoal))
    goal += goal * RETAIN_EXTRA_PERCENT // 100
    goal = (goal + PHYS_PAGE_SIZE - 1) & ~(PHYS_PAGE_SIZE - 1)
    retained = heapRetained(h)
    if retained <= goal or retained - goal < PHYS_PAGE_SIZE:
        goals.gcPercentGoal.store(NO_GOAL)
    else:
        goals.gcPercentGoal.store(goal)


def goals_met(h, goal=None) -> bool:
    """The scavenger's shouldStop: retained <= gcPercentGoal and
    mappedReady <= memoryLimitGoal.  goal() -> (gcPercentGoal,
    memoryLimitGoal) overrides the goals gcPaceScavenger set."""
    if goal is not None:
        pct, lim = goal()
    else:
        pct, lim = h.scavenge.gcPercentGoal.load(), h.scavenge.memoryLimitGoal.load()
    return heapRetained(h) <= pct and mappedReady(h) <= lim


# ---------------------------------------------------------------- releasing pages

def _highest_free_unscavenged(pages, below: int):
    """(start, npages) of the highest run of free, unreleased pages that
    ends at or below page index `below`, or None (mheap.lock held)."""
    inuse, scav = pages.inuse, pages.scav
    j = below
    while j > 0:
        last = inuse.rfind(0, 0, j)                 # highest free page below j
        if last < 0:
            return None
        first = inuse.rfind(1, 0, last) + 1         # its free run is [first, last]
        top = scav.rfind(0, first, last + 1)        # highest unreleased page in the run
        if top >= 0:
            k = scav.rfind(1, first, top)           # highest released page below it
            start = k + 1 if k >= 0 else first
            return start, top + 1 - start
        j = first
    return None


def scavenge(h, nbytes: int) -> int:
    """Release up to nbytes (rounded up to pages), highest address first;
    returns the bytes released.  Takes mheap.lock."""
    want = -(-nbytes >> PAGE_SHIFT)
    released = 0
    with h.lock:
        below = h.pages.npages()
        while released < want:
            run = _highest_free_unscavenged(h.pages, below)
            if run is None:
                break
            start, npages = run
            take = min(npages, want - released)
            first = start + npages - take
            h.pages.scav[first:first + take] = b"\x01" * take
            h.sysmem.sysUnused(ARENA_BASE + (first << PAGE_SHIFT), take << PAGE_SHIFT)
            released += take
            below = first
        nb = released << PAGE_SHIFT
        if nb:
            h.stats.add(heapFree=-nb, heapReleased=nb)
    return nb


def scavenge_all(h) -> int:
    """debug.FreeOSMemory's second half: release every free page."""
    return scavenge(h, 1 << 62)


def scavenge_for_alloc(h, scav: int, growth: int) -> int:
    """allocSpan's synchronous scavenging, after a span of which scav bytes
    were released memory was allocated and the heap grew by growth bytes
    (mheap.lock not held).  Returns the bytes released."""
    todo = 0
    limit = h.scavenge.memoryLimit.load()
    ready = mappedReady(h)                      # already counts the span's scav bytes
    if ready > limit:
        todo = ready - limit
    goal = h.scavenge.gcPercentGoal.load()
    if goal != NO_GOAL and growth > 0:
        retained = heapRetained(h) - scav       # as Go measures it, before the commit
        if retained + growth > goal:
            todo = max(todo, min(growth, retained + growth - goal))
    return scavenge(h, todo) if todo > 0 else 0


# ---------------------------------------------------------------- the background scavenger

class scavengerState:
    """bgscavenge's state (Go's `scavenger`).

    wakeup    sync-layer Event: set by ready()/wake(), cleared by the
              scavenger before it re-checks its goal and parks or sleeps
    released  AtomicInt: bytes bgscavenge released (Go: pages.scav.released)
    nsleep    owned by the bgscavenge thread: sleeps taken (read racily)
    """

    def __init__(self, h):
        from ..sync import AtomicInt
        self.h = h
        self.wakeup = h.sync.event("scavenger.wakeup")
        self.released = AtomicInt(0)
        self.nsleep = 0

    def ready(self) -> None:
        """A cycle's sweep is done: there is work.  (Go sets a flag sysmon
        acts on; here the scavenger is woken at once.)"""
        self.wakeup.set()

    def wake(self) -> None:
        self.wakeup.set()

    def run(self, goal=None, yield_point=None) -> tuple[int, float]:
        """Release 64 KiB quanta until the goals are met, nothing is left, or
        about 1 ms of work was done: (bytes released, seconds worked).
        Yields ("scavenge.quantum") after each quantum."""
        h = self.h
        timed = not h.sync.scheduler.controlled
        released, worked = 0, 0.0
        while worked < MIN_SCAV_WORK_TIME:
            if goals_met(h, goal):
                break
            t0 = time.perf_counter() if timed else 0.0
            r = scavenge(h, SCAVENGE_QUANTUM)
            if timed:
                worked += time.perf_counter() - t0
            else:
                worked += APPROX_WORKED_PER_PHYS_PAGE * (r // PHYS_PAGE_SIZE)
            released += r
            (yield_point or h.sync.yield_point)(YIELD_QUANTUM)
            if r < SCAVENGE_QUANTUM:
                break
        return released, worked

    def park(self) -> None:
        """Wait for wake()/ready().  The caller cleared wakeup before it last
        looked for work, so a wake-up since then is not lost."""
        self.wakeup.wait()

    def sleep(self, worked: float, percent: float) -> None:
        """Sleep so that scavenging takes `percent`% of one CPU; a wake()
        cuts the sleep short."""
        self.nsleep += 1
        worked = max(worked, MIN_SCAV_WORK_TIME)
        self.wakeup.wait(worked * (100.0 / percent - 1.0))


def bgscavenge(h, should_stop, goal=None, yield_point=None, percent: float = SCAVENGE_PERCENT,
               gate=None) -> None:
    """The background scavenger's loop (run it on a thread of its own).

    Works toward goal() -> (gcPercentGoal, memoryLimitGoal), or by default
    toward the goals gcPaceScavenger stored in h.scavenge; yields
    ("scavenge.quantum") after each 64 KiB quantum.  Returns when should_stop() is
    true; whoever makes it true calls h.scavenger.wake().  The scavenger is no
    P and does not stop with the world: `gate`, a mutex held around each
    burst of work, is what a stop-the-world check takes to keep it out."""
    sc = h.scavenger
    while not should_stop():
        sc.wakeup.clear()
        if gate is not None:
            with gate:
                released, worked = sc.run(goal, yield_point)
        else:
            released, worked = sc.run(goal, yield_point)
        if released:
            sc.released.add(released)
        if should_stop():
            return
        if released == 0:
            sc.park()
            continue
        sc.sleep(worked, percent)
