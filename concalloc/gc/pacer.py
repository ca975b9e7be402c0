"""gcController: Go 1.19's GC pacer (mgcpacer.go), as a pure component.

The pacer answers three questions for the collector.

1. *When does the next cycle start?*  ``trigger()`` returns ``(trigger,
   heapGoal)``; the allocation slow path starts a cycle once
   ``heapLive >= trigger`` (``test_heap_trigger``).
2. *How hard must mutators help?*  While marking, ``revise()`` keeps the
   assist ratio (``assistWorkPerByte`` scan bytes per allocated byte) such that
   the remaining scan work is done by the time heapLive reaches the goal.
3. *How many background workers?*  ``startCycle`` sizes them to 25% of
   GOMAXPROCS: whole dedicated workers plus a fractional goal.

The heap goal is ``min(GOGC goal, memory-limit goal)``::

    gcPercentHeapGoal = heapMarked + (heapMarked + lastStackScan + globalsScan) * GOGC/100
                        (never below heapMinimum = 4 MiB * GOGC/100; ^uint64(0) if GOGC=off)
    memoryLimitHeapGoal = memoryLimit - nonHeapMemory - overage - 1 MiB  (not below heapMarked)

and the trigger is ``goal - runway``, clamped between 45/64 and 61/64 of the
way from heapMarked to the goal (or ``goal - 4 MiB`` for big heaps), where
``runway = consMark * 3 * (lastHeapScan + lastStackScan + globalsScan)`` and
consMark (allocation rate over scan rate, per CPU) is smoothed by 1.19's PI
controller at the end of each cycle (``endCycle``).  docs/gc-pacer.md has every
formula and a simulated run.

Integers follow Go's types: uint64 and int64 arithmetic wraps, and float to
integer conversions saturate as they do on linux/amd64 (``_f2u64``,
``_f2i64``).  ``^uint64(0)`` is ``MAX_UINT64``.

How the collector drives it (one cycle)::

    allocation slow path : if c.test_heap_trigger(): gcStart(...)
    gcStart (world stopped): c.syncHeapStats(...) (optional); c.startCycle(now, procs)
                           ; c.gcBlackenEnabled = 1
    marking              : counters heapScanWork/stackScanWork/globalsScanWork/
                           bgScanCredit/assistTime/...Time are added atomically;
                           c.update(...) from the allocator calls revise();
                           assists read c.assistWorkPerByte / assistBytesPerWork
    gcMarkDone (stopped) : c.gcBlackenEnabled = 0; c.endCycle(now, procs, userForced)
    gcMark (stopped)     : c.resetLive(bytesMarked)
    gcMarkTermination    : c.lastHeapInUse = c.heapInUse.load()
                           ; trig, goal, scav = c.gcControllerCommit(isSweepDone)

API (GCController methods; all sizes in bytes, times in ns):

    knobs     init(gcPercent, memoryLimit); setGCPercent(p) -> old; setMemoryLimit(b) -> old
              (b < 0 only reads); commit(isSweepDone); gcControllerCommit(isSweepDone)
              -> CommitResult(trigger, heapGoal, ScavengeGoals)
    goal      heapGoal(); heapGoalInternal() -> (goal, minTrigger); memoryLimitHeapGoal();
              triggerBounds() -> (minTrigger, maxTrigger, goal); trigger() -> (trigger, goal);
              test_heap_trigger() -> bool
    a cycle   startCycle(markStartTime, procs, trigger=gcTriggerHeap, gcstoptheworld=0)
              (the caller zeroes each P's gcAssistTime / gcFractionalMarkTime);
              revise(); update(dHeapLive, dHeapScan=0); endCycle(now, procs, userForced=False);
              resetLive(bytesMarked)
    workers   findRunnableGCWorker(p_gcFractionalMarkTime, now) -> gcMarkWorker*Mode;
              pollFractionalWorkerExit(p_gcFractionalMarkTime, p_gcMarkWorkerStartTime, now);
              markWorkerStop(mode, duration); addIdleMarkWorker(); needIdleMarkWorker();
              removeIdleMarkWorker(); setMaxIdleMarkWorkers(max)
    inputs    addScannableStack(bytes); addGlobals(bytes); syncHeapStats(HeapStats.snapshot());
              heapRetained(); gcpacertrace = callable(str) or None
    module    gcPaceScavenger(memoryLimit, heapGoal, lastHeapGoal, *, mappedReady,
              lastHeapInUse, heapRetained) -> ScavengeGoals; verify_pacer(c); readGOGC(s);
              readGOMEMLIMIT(s); printfloat(f); piController

Protection (what a writer must hold), per field below: *atomic* fields are
AtomicInt (``.load()``/``.add()``/``.store()``; the float ratios are AtomicInts
holding a float, like Go's atomic.Float64); *world stopped* fields change only
with the world stopped (``setGCPercent``/``setMemoryLimit``/``commit`` may
also run under mheap.lock, as in Go).  A running cycle is recognised by
``triggered != MAX_UINT64``: it is set by startCycle and reset by resetLive,
both with the world stopped, so every running mutator sees it exactly when
Go's ``gcphase != _GCoff``.

Not modelled here: the GC CPU limiter (mgclimit.go), execution-trace events,
per-P stack-scan slack (addScannableStack always adds at once), and the
scheduling half of findRunnableGCWorker (the worker pool and
gcMarkWorkAvailable belong to the collector).  The heap statistics behind the
memory limit (heapInUse, heapFree, totalAlloc, ...) are copies the collector
refreshes with ``syncHeapStats``, where Go's mheap updates them on every change.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..check.violation import throw
from ..mstats import memstats_from
from ..sync import AtomicInt
from ..sysmem import PHYS_PAGE_SIZE

# --- constants (mgcpacer.go, mgc.go, mgcscavenge.go, Go 1.19) ---

#: Fraction of GOMAXPROCS the background mark workers aim to use.
gcBackgroundUtilization = 0.25
#: Goal CPU utilization of marking; in 1.19 it equals the background one, so
#: assists are only a correction.
gcGoalUtilization = gcBackgroundUtilization
#: Scan work a worker accumulates before adding to heapScanWork/bgScanCredit.
gcCreditSlack = 2000
#: Assist nanoseconds a P accumulates before adding to assistTime.
gcAssistTimeSlack = 5000
#: Extra scan work an assist does, pre-paying future allocation.
gcOverAssistWork = 64 << 10
#: heapMinimum at GOGC=100: the smallest heap goal.
defaultHeapMinimum = 4 << 20
#: Stack bytes a P may allocate or free before adding to maxStackScan.
maxStackScanSlack = 8 << 10
#: Bytes taken off the memory-limit goal for pacing error (fixed in 1.19).
memoryLimitHeapGoalHeadroom = 1 << 20
#: Minimum heap distance the sweeper gets between commit and the trigger (mgc.go).
sweepMinHeapDistance = 1 << 20
#: The trigger's bounds, as 64ths of the runway from heapMarked to the goal.
triggerRatioDen = 64
minTriggerRatioNum = 45   # ~0.70
maxTriggerRatioNum = 61   # ~0.95
#: The goal never comes closer than this to where the cycle triggered
#: (heapGoalInternal's minRunway; GOGC regime only).
minRunway = 64 << 10
#: revise's allowance past the goal once heapLive has passed it.
maxOvershoot = 1.1
#: startCycle adds fractional workers when whole ones miss 25% by more than this.
maxUtilError = 0.3
#: The scavenger keeps this much more than the heap goal needs (mgcscavenge.go).
retainExtraPercent = 10
#: With a memory limit, the scavenger aims this far below it (mgcscavenge.go).
reduceExtraPercent = 5

MAX_UINT64 = (1 << 64) - 1
MAX_INT64 = (1 << 63) - 1
_TWO63 = 1 << 63

# gcTriggerKind (mgc.go)
gcTriggerHeap, gcTriggerTime, gcTriggerCycle = 0, 1, 2
# gcMarkWorkerMode (mgc.go)
gcMarkWorkerNotWorker, gcMarkWorkerDedicatedMode, gcMarkWorkerFractionalMode, gcMarkWorkerIdleMode = 0, 1, 2, 3


# --- Go integer and float semantics ---

def _u64(x: int) -> int:
    """x as Go's uint64 (wrapping)."""
    return x & MAX_UINT64


def _i64(x: int) -> int:
    """x as Go's int64 (wrapping)."""
    return ((x + _TWO63) & MAX_UINT64) - _TWO63


def _f2i64(f: float) -> int:
    """Go's int64(f) on amd64: truncation; NaN and out of range give MinInt64."""
    if f != f or not (-9.223372036854775808e18 <= f < 9.223372036854775808e18):
        return -_TWO63
    return int(f)


def _f2u64(f: float) -> int:
    """Go's uint64(f) on amd64 (measured with go1.19.8): below 2^63 it is
    int64(f) reinterpreted; from 2^63 up to 2^64 it is exact; NaN and
    anything larger give 2^63."""
    if f != f:
        return _TWO63
    if f < 9.223372036854775808e18:
        return _u64(_f2i64(f))
    v = _f2i64(f - 9.223372036854775808e18)
    return _TWO63 if v == -_TWO63 else v + _TWO63


def _fdiv(a: float, b: float) -> float:
    """Go's float64 division: dividing by zero gives +-Inf or NaN."""
    if b == 0.0:
        if a == 0.0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _finite(x: float) -> bool:
    return not (math.isinf(x) or math.isnan(x))


def printfloat(v: float) -> str:
    """The runtime's print of a float64 (print.go): "+d.dddddde+ddd"."""
    if v != v:
        return "NaN"
    if v + v == v and v != 0:
        return "+Inf" if v > 0 else "-Inf"
    n = 7
    sign, e = "+", 0
    if v == 0:
        sign = "-" if math.copysign(1.0, v) < 0 else "+"
    else:
        if v < 0:
            v, sign = -v, "-"
        while v >= 10:
            e += 1
            v /= 10
        while v < 1:
            e -= 1
            v *= 10
        h = 5.0
        for _ in range(n):
            h /= 10
        v += h
        if v >= 10:
            e += 1
            v /= 10
    digits = []
    for _ in range(n):
        d = int(v)
        digits.append(chr(d + 48))
        v = (v - float(d)) * 10
    esign = "-" if e < 0 else "+"
    e = abs(e)
    return f"{sign}{digits[0]}.{''.join(digits[1:])}e{esign}{e // 100}{e // 10 % 10}{e % 10}"


# --- piController (mgcpacer.go) ---

class piController:
    """A proportional-integral controller with anti-windup (back-calculation).

    ``next(input, setpoint, period)`` returns the new output and whether it is
    trustworthy; an Inf/NaN input or integral resets the integral, sets an
    error flag and returns ``(min, False)``.  Owned by its user (the pacer's
    consMarkController changes only in endCycle, world stopped).
    """

    __slots__ = ("kp", "ti", "tt", "min", "max", "errIntegral", "errOverflow", "inputOverflow")

    def __init__(self, kp: float, ti: float, tt: float, min: float, max: float):
        self.kp, self.ti, self.tt = kp, ti, tt
        self.min, self.max = min, max
        self.errIntegral = 0.0
        self.errOverflow = False
        self.inputOverflow = False

    def next(self, input: float, setpoint: float, period: float) -> tuple[float, bool]:
        prop = self.kp * (setpoint - input)
        rawOutput = prop + self.errIntegral
        output = rawOutput
        if not _finite(output):
            self.reset()
            self.inputOverflow = True
            return self.min, False
        if output < self.min:
            output = self.min
        elif output > self.max:
            output = self.max
        if self.ti != 0 and self.tt != 0:
            self.errIntegral += (self.kp * period / self.ti) * (setpoint - input) + \
                (period / self.tt) * (output - rawOutput)
            if not _finite(self.errIntegral):
                self.reset()
                self.errOverflow = True
                return self.min, False
        return output, True

    def reset(self) -> None:
        """Forget the integral (not the error flags)."""
        self.errIntegral = 0.0


class ScavengeGoals(NamedTuple):
    """gcPaceScavenger's result: the retained-memory goals the background
    scavenger works toward.  MAX_UINT64 means "no work for this goal"."""
    gcPercentGoal: int     # for heapRetained() = heapInUse + heapFree
    memoryLimitGoal: int   # for mappedReady


class CommitResult(NamedTuple):
    """What gcControllerCommit hands to the sweeper and the scavenger."""
    trigger: int
    heapGoal: int
    scavenge: ScavengeGoals


class GCController:
    """gcControllerState.  ``GCController()`` is ``init(100, MaxInt64)``."""

    def __init__(self, gcPercent: int = 100, memoryLimit: int = MAX_INT64):
        # Knobs.
        self.gcPercent = AtomicInt(100)           # atomic; written under mheap.lock or world stopped
        self.memoryLimit = AtomicInt(MAX_INT64)   # atomic; same writers
        self.heapMinimum = defaultHeapMinimum     # world stopped or mheap.lock
        # Pacing state computed by commit and endCycle.
        self.runway = AtomicInt(0)                # atomic (written by commit)
        self.consMark = 0.0                       # world stopped (endCycle)
        self.consMarkController = piController(0.9, 4.0, 1000, -1000, 1000)  # world stopped
        self.gcPercentHeapGoal = AtomicInt(0)     # atomic (written by commit)
        self.sweepDistMinTrigger = AtomicInt(0)   # atomic (written by commit)
        self.triggered = MAX_UINT64               # world stopped; heapLive when this cycle started
        self.lastHeapGoal = 0                     # world stopped or mheap.lock
        # The heap.  heapLive counts whole cached spans (see mcentral.cacheSpan).
        self.heapLive = AtomicInt(0)              # atomic; call update(), which revises while marking
        self.heapScan = AtomicInt(0)              # atomic; fixed while gcBlackenEnabled
        self.lastHeapScan = 0                     # world stopped (resetLive)
        self.lastStackScan = 0                    # world stopped (resetLive)
        self.maxStackScan = AtomicInt(0)          # atomic: bytes of stack slots (set by the runtime)
        self.globalsScan = AtomicInt(0)           # atomic: bytes of scannable globals (set by the runtime)
        self.heapMarked = 0                       # world stopped (resetLive)
        # Per-cycle work and time counters: zeroed by startCycle, added atomically by the marker.
        self.heapScanWork = AtomicInt(0)
        self.stackScanWork = AtomicInt(0)
        self.globalsScanWork = AtomicInt(0)
        self.bgScanCredit = AtomicInt(0)
        self.assistTime = AtomicInt(0)            # ns
        self.dedicatedMarkTime = AtomicInt(0)     # ns
        self.fractionalMarkTime = AtomicInt(0)    # ns
        self.idleMarkTime = AtomicInt(0)          # ns
        self.markStartTime = 0                    # world stopped (startCycle), ns
        # Workers, sized by startCycle.
        self.dedicatedMarkWorkersNeeded = AtomicInt(0)  # atomic (claimed with decIfPositive)
        self.idleMarkWorkers = AtomicInt((0, 0))  # atomic (n running, max), changed by CAS only
        self.fractionalUtilizationGoal = 0.0      # world stopped (startCycle)
        # Assist ratio (floats), written by revise; the two may be briefly inconsistent.
        self.assistWorkPerByte = AtomicInt(0.0)   # atomic (a float64)
        self.assistBytesPerWork = AtomicInt(0.0)  # atomic (a float64)
        # Go's global gcBlackenEnabled: 1 while mark workers and assists run.
        self.gcBlackenEnabled = 0                 # world stopped (the collector writes it)
        # Heap memory statistics for the memory limit and the scavenger (Go's
        # gcController copies of heapStats).  The collector refreshes them with
        # syncHeapStats; the model's heap is the whole of mapped memory.
        self.heapInUse = AtomicInt(0)
        self.heapFree = AtomicInt(0)
        self.heapReleased = AtomicInt(0)
        self.totalAlloc = AtomicInt(0)
        self.totalFree = AtomicInt(0)
        self.mappedReady = AtomicInt(0)
        self.lastHeapInUse = 0                    # memstats.lastHeapInUse; world stopped
        # GODEBUG=gcpacertrace=1: a callable given each "pacer: ..." line; set before Ps start.
        self.gcpacertrace = None
        self.init(gcPercent, memoryLimit)

    # ------------------------------------------------------------------ knobs

    def init(self, gcPercent: int, memoryLimit: int) -> None:
        """Initialise from GOGC and GOMEMLIMIT (gcinit).  No sweep phase precedes
        the first cycle, so commit runs with isSweepDone."""
        self.heapMinimum = defaultHeapMinimum
        self.triggered = MAX_UINT64
        # Tuned by Ziegler-Nichols in simulation, then ti by hand (Go's comment).
        self.consMarkController = piController(kp=0.9, ti=4.0, tt=1000, min=-1000, max=1000)
        self.setGCPercent(gcPercent)
        self.setMemoryLimit(memoryLimit)
        self.commit(True)

    def setGCPercent(self, in_: int) -> int:
        """Set GOGC (negative: off, stored as -1); returns the old value.
        heapMinimum follows in Go's uint64 arithmetic.  Call commit after.
        World stopped or mheap.lock."""
        out = self.gcPercent.load()
        if in_ < 0:
            in_ = -1
        self.heapMinimum = _u64(defaultHeapMinimum * _u64(in_)) // 100
        self.gcPercent.store(in_)
        return out

    def setMemoryLimit(self, in_: int) -> int:
        """Set GOMEMLIMIT in bytes (negative: only read it); returns the old
        value.  Call commit after.  World stopped or mheap.lock."""
        out = self.memoryLimit.load()
        if in_ >= 0:
            self.memoryLimit.store(in_)
        return out

    def commit(self, isSweepDone: bool) -> None:
        """Recompute the GOGC goal, the sweep-distance bound and the runway.
        Needs heapMarked, heapLive and gcPercent up to date; call revise after
        it if a cycle is marking.  World stopped or mheap.lock."""
        if isSweepDone:
            self.sweepDistMinTrigger.store(0)
        else:
            self.sweepDistMinTrigger.store(_u64(self.heapLive.load() + sweepMinHeapDistance))
        goal = MAX_UINT64
        gcPercent = self.gcPercent.load()
        if gcPercent >= 0:
            roots = _u64(self.heapMarked + self.lastStackScan + self.globalsScan.load())
            goal = _u64(self.heapMarked + _u64(roots * gcPercent) // 100)
        if goal < self.heapMinimum:
            goal = self.heapMinimum
        self.gcPercentHeapGoal.store(goal)
        expected = self.lastHeapScan + self.lastStackScan + self.globalsScan.load()
        self.runway.store(_f2u64((self.consMark * (1 - gcGoalUtilization) / gcGoalUtilization) * float(_u64(expected))))

    def gcControllerCommit(self, isSweepDone: bool, physPageSize: int = PHYS_PAGE_SIZE) -> CommitResult:
        """commit, revise if a cycle is running, then the numbers the sweeper
        (gcPaceSweeper(trigger)) and the scavenger need.  World stopped or
        mheap.lock.  Uses lastHeapInUse and the heap statistics as last synced."""
        self.commit(isSweepDone)
        if self.triggered != MAX_UINT64:
            self.revise()
        trigger, heapGoal = self.trigger()
        goals = gcPaceScavenger(self.memoryLimit.load(), heapGoal, self.lastHeapGoal,
                                mappedReady=self.mappedReady.load(), lastHeapInUse=self.lastHeapInUse,
                                heapRetained=self.heapRetained(), physPageSize=physPageSize)
        return CommitResult(trigger, heapGoal, goals)

    # ------------------------------------------------------------ goal, trigger

    def heapGoal(self) -> int:
        """The current heap goal (bytes of heapLive at which the cycle should end)."""
        return self.heapGoalInternal()[0]

    def heapGoalInternal(self) -> tuple[int, int]:
        """(goal, minTrigger): the smaller of the GOGC and memory-limit goals.
        Only in the GOGC regime is the goal pushed up, to the sweep distance and
        to at least minRunway past where this cycle triggered.  minTrigger <= goal."""
        goal = self.gcPercentHeapGoal.load()
        minTrigger = 0
        newGoal = self.memoryLimitHeapGoal()
        if newGoal < goal:
            return newGoal, minTrigger
        sweepDistTrigger = self.sweepDistMinTrigger.load()
        if sweepDistTrigger > goal:
            goal = sweepDistTrigger
        minTrigger = sweepDistTrigger
        triggered = self.triggered
        if triggered != MAX_UINT64 and goal < _u64(triggered + minRunway):
            goal = _u64(triggered + minRunway)
        return goal, minTrigger

    def memoryLimitHeapGoal(self) -> int:
        """The heap goal the memory limit allows: the limit minus memory that is
        not, and cannot become, heap objects, minus any overage, minus 1 MiB of
        headroom (or 1 MiB when that would go below it), never below heapMarked."""
        for _ in range(1000):
            heapFree = self.heapFree.load()
            heapAlloc = _u64(self.totalAlloc.load() - self.totalFree.load())
            mappedReady = self.mappedReady.load()
            if heapFree + heapAlloc <= mappedReady:
                break
        else:
            # Go retries forever: only a torn read is transient.
            throw("pacer.heap_stats", f"memoryLimitHeapGoal: heapFree={heapFree} + heapAlloc={heapAlloc} "
                  f"> mappedReady={mappedReady}")
        memoryLimit = _u64(self.memoryLimit.load())
        nonHeapMemory = mappedReady - heapFree - heapAlloc
        overage = mappedReady - memoryLimit if mappedReady > memoryLimit else 0
        if nonHeapMemory + overage >= memoryLimit:
            return self.heapMarked
        goal = memoryLimit - (nonHeapMemory + overage)
        if goal < memoryLimitHeapGoalHeadroom or goal - memoryLimitHeapGoalHeadroom < memoryLimitHeapGoalHeadroom:
            goal = memoryLimitHeapGoalHeadroom
        else:
            goal -= memoryLimitHeapGoalHeadroom
        return max(goal, self.heapMarked)

    def triggerBounds(self) -> tuple[int, int, int]:
        """(minTrigger, maxTrigger, goal) exactly as trigger() clamps; if
        heapMarked >= goal the bounds are both the goal."""
        goal, minTrigger = self.heapGoalInternal()
        heapMarked = self.heapMarked
        if heapMarked >= goal:
            return goal, goal, goal
        minTrigger = max(minTrigger, heapMarked)
        span = goal - heapMarked
        minTrigger = max(minTrigger, span // triggerRatioDen * minTriggerRatioNum + heapMarked)
        maxTrigger = span // triggerRatioDen * maxTriggerRatioNum + heapMarked
        if goal > defaultHeapMinimum and goal - defaultHeapMinimum > maxTrigger:
            maxTrigger = goal - defaultHeapMinimum
        maxTrigger = max(maxTrigger, minTrigger)
        return minTrigger, maxTrigger, goal

    def trigger(self) -> tuple[int, int]:
        """(trigger, heapGoal): a cycle should start once heapLive >= trigger.
        trigger = goal - runway, clamped to [minTrigger, maxTrigger]."""
        minTrigger, maxTrigger, goal = self.triggerBounds()
        if self.heapMarked >= goal:
            return goal, goal
        runway = self.runway.load()
        trigger = minTrigger if runway > goal else goal - runway
        trigger = min(max(trigger, minTrigger), maxTrigger)
        if trigger > goal:
            throw("pacer.trigger", f"produced a trigger greater than the heap goal: trigger={trigger} "
                  f"heapGoal={goal} minTrigger={minTrigger} maxTrigger={maxTrigger}")
        return trigger, goal

    def test_heap_trigger(self) -> bool:
        """gcTrigger{kind: gcTriggerHeap}.test(): heapLive >= trigger, and no
        cycle running (Go: gcphase == _GCoff).  With GOGC=off and no memory
        limit the trigger is near 2^63, so it never fires."""
        if self.triggered != MAX_UINT64:
            return False
        trigger, _ = self.trigger()
        return self.heapLive.load() >= trigger

    # ------------------------------------------------------------------ a cycle

    def startCycle(self, markStartTime: int, procs: int, trigger: int = gcTriggerHeap,
                   gcstoptheworld: int = 0) -> None:
        """Reset the cycle's counters, record where it triggered, size the
        workers, and compute the first assist ratio.  The collector also zeroes
        each P's gcAssistTime and gcFractionalMarkTime.  Caller holds worldsema,
        world stopped."""
        if procs < 1:
            raise ValueError(f"startCycle: procs={procs} (GOMAXPROCS must be >= 1)")
        for ctr in (self.heapScanWork, self.stackScanWork, self.globalsScanWork, self.bgScanCredit,
                    self.assistTime, self.dedicatedMarkTime, self.fractionalMarkTime, self.idleMarkTime):
            ctr.store(0)
        self.markStartTime = markStartTime
        initialHeapLive = self.heapLive.load()   # work.initialHeapLive, for the trace
        # 1.19 records the computed trigger, not heapLive (golang/go#53738).
        self.triggered, heapGoal = self.trigger()
        self.dedicatedMarkWorkersNeeded.store(self._dedicatedAndFractional(procs))
        if gcstoptheworld > 0:
            self.dedicatedMarkWorkersNeeded.store(procs)
            self.fractionalUtilizationGoal = 0.0
        dedicated = self.dedicatedMarkWorkersNeeded.load()
        if trigger == gcTriggerTime:
            self.setMaxIdleMarkWorkers(0 if dedicated > 0 else 1)
        else:
            self.setMaxIdleMarkWorkers(procs - dedicated)
        self.revise()
        if self.gcpacertrace:
            self.gcpacertrace(f"pacer: assist ratio={printfloat(self.assistWorkPerByte.load())} "
                              f"(scan {self.heapScan.load() >> 20} MB in {initialHeapLive >> 20}->{heapGoal >> 20} MB) "
                              f"workers={dedicated}+{printfloat(self.fractionalUtilizationGoal)}")

    def _dedicatedAndFractional(self, procs: int) -> int:
        """Round 25% of procs to whole dedicated workers; if that is more than
        30% off, make up the rest with fractionalUtilizationGoal per P."""
        totalUtilizationGoal = float(procs) * gcBackgroundUtilization
        dedicated = int(totalUtilizationGoal + 0.5)
        utilError = float(dedicated) / totalUtilizationGoal - 1
        if utilError < -maxUtilError or utilError > maxUtilError:
            if float(dedicated) > totalUtilizationGoal:
                dedicated -= 1
            self.fractionalUtilizationGoal = (totalUtilizationGoal - float(dedicated)) / float(procs)
        else:
            self.fractionalUtilizationGoal = 0.0
        return dedicated

    def revise(self) -> None:
        """Recompute assistWorkPerByte/assistBytesPerWork from the scan work
        left and the heap distance left.  Call whenever heapLive, heapScan or a
        goal input changes while gcBlackenEnabled.  Safe concurrently: racing
        calls may leave the two ratios from different calls, as in Go."""
        gcPercent = self.gcPercent.load()
        if gcPercent < 0:
            gcPercent = 100000   # a forced cycle with GOGC=off: act as if GOGC were huge
        live = self.heapLive.load()
        scan = self.heapScan.load()
        work = self.heapScanWork.load() + self.stackScanWork.load() + self.globalsScanWork.load()
        globalsScan = self.globalsScan.load()
        heapGoal = _i64(self.heapGoal())
        scanWorkExpected = _i64(_u64(self.lastHeapScan + self.lastStackScan + globalsScan))
        maxScanWork = _i64(_u64(scan + self.maxStackScan.load() + globalsScan))
        if work > scanWorkExpected:
            # More work than last cycle's: the heap is growing.  Stretch the
            # runway in proportion to the worst-case work, up to GOGC more.
            triggered = _i64(self.triggered)
            ext = _f2i64(_fdiv(float(_i64(heapGoal - triggered)), float(scanWorkExpected)) * float(maxScanWork))
            extHeapGoal = _i64(ext + triggered)
            scanWorkExpected = maxScanWork
            hardGoal = _f2i64((1.0 + float(gcPercent) / 100.0) * float(heapGoal))
            if extHeapGoal > hardGoal:
                extHeapGoal = hardGoal
            heapGoal = extHeapGoal
        if _i64(live) > heapGoal:
            heapGoal = _f2i64(float(heapGoal) * maxOvershoot)
            scanWorkExpected = maxScanWork
        scanWorkRemaining = _i64(scanWorkExpected - work)
        if scanWorkRemaining < 1000:
            scanWorkRemaining = 1000
        heapRemaining = _i64(heapGoal - _i64(live))
        if heapRemaining <= 0:
            heapRemaining = 1
        self.assistWorkPerByte.store(float(scanWorkRemaining) / float(heapRemaining))
        self.assistBytesPerWork.store(float(heapRemaining) / float(scanWorkRemaining))

    def update(self, dHeapLive: int, dHeapScan: int = 0) -> None:
        """The allocator's heapLive/heapScan change.  heapScan is fixed while
        marking; then the change revises the assist ratio instead."""
        if dHeapLive:
            self.heapLive.add(dHeapLive)
        if not self.gcBlackenEnabled:
            if dHeapScan:
                self.heapScan.add(dHeapScan)
        else:
            self.revise()

    def endCycle(self, now: int, procs: int, userForced: bool = False) -> None:
        """At mark completion: remember the goal (for the scavenger) and feed
        this cycle's cons/mark into the PI controller.  World stopped."""
        self.lastHeapGoal = self.heapGoal()
        assistDuration = now - self.markStartTime
        utilization = gcBackgroundUtilization
        if assistDuration > 0:
            utilization += _fdiv(float(self.assistTime.load()), float(assistDuration * procs))
        live = self.heapLive.load()
        if live <= self.triggered:
            return   # a cycle too short to learn from
        idleUtilization = 0.0
        if assistDuration > 0:
            idleUtilization = _fdiv(float(self.idleMarkTime.load()), float(assistDuration * procs))
        scanWork = self.heapScanWork.load() + self.stackScanWork.load() + self.globalsScanWork.load()
        currentConsMark = _fdiv(float(live - self.triggered) * (utilization + idleUtilization),
                                float(scanWork) * (1 - utilization))
        oldConsMark = self.consMark
        self.consMark, ok = self.consMarkController.next(self.consMark, currentConsMark, 1.0)
        if not ok:
            self.consMark = 0.0   # the controller blew up: start over
        if self.gcpacertrace:
            self.gcpacertrace(
                f"pacer: {int(utilization * 100)}% CPU ({int(gcGoalUtilization * 100)} exp.) for "
                f"{self.heapScanWork.load()}+{self.stackScanWork.load()}+{self.globalsScanWork.load()} B work "
                f"({self.lastHeapScan + self.lastStackScan + self.globalsScan.load()} B exp.) "
                f"in {self.triggered} B -> {live} B (\u2206goal {_i64(live) - _i64(self.lastHeapGoal)}, "
                f"cons/mark {printfloat(oldConsMark)})" + ("" if ok else "[controller reset]"))

    def resetLive(self, bytesMarked: int) -> None:
        """At mark termination, after endCycle and before commit: the marked
        bytes become the live heap, this cycle's scan work the next estimate.
        World stopped."""
        self.heapMarked = bytesMarked
        self.heapLive.store(bytesMarked)
        heapScanWork = self.heapScanWork.load()
        self.heapScan.store(heapScanWork)
        self.lastHeapScan = heapScanWork
        self.lastStackScan = self.stackScanWork.load()
        self.triggered = MAX_UINT64

    # ------------------------------------------------------------------ workers

    def findRunnableGCWorker(self, gcFractionalMarkTime: int, now: int) -> int:
        """The pacer's half of findRunnableGCWorker for one P: dedicated if one
        is still needed (claimed atomically), else fractional if this P is
        behind fractionalUtilizationGoal, else gcMarkWorkerNotWorker.  The
        caller has checked gcBlackenEnabled, the worker pool and available work;
        an idle worker is its own path (addIdleMarkWorker)."""
        if self._decIfPositive(self.dedicatedMarkWorkersNeeded):
            return gcMarkWorkerDedicatedMode
        if self.fractionalUtilizationGoal == 0:
            return gcMarkWorkerNotWorker
        delta = now - self.markStartTime
        if delta > 0 and float(gcFractionalMarkTime) / float(delta) > self.fractionalUtilizationGoal:
            return gcMarkWorkerNotWorker
        return gcMarkWorkerFractionalMode

    def pollFractionalWorkerExit(self, gcFractionalMarkTime: int, gcMarkWorkerStartTime: int, now: int) -> bool:
        """mgc.go's test a fractional worker makes: has this P done 1.2x its share?"""
        delta = now - self.markStartTime
        if delta <= 0:
            return True
        selfTime = gcFractionalMarkTime + (now - gcMarkWorkerStartTime)
        return float(selfTime) / float(delta) > 1.2 * self.fractionalUtilizationGoal

    @staticmethod
    def _decIfPositive(a: AtomicInt) -> bool:
        while True:
            v = a.load()
            if v <= 0:
                return False
            if a.cas(v, v - 1):
                return True

    def markWorkerStop(self, mode: int, duration: int) -> None:
        """A mark worker stopped after duration ns: account its time and give
        back its slot.  Any time."""
        if mode == gcMarkWorkerDedicatedMode:
            self.dedicatedMarkTime.add(duration)
            self.dedicatedMarkWorkersNeeded.add(1)
        elif mode == gcMarkWorkerFractionalMode:
            self.fractionalMarkTime.add(duration)
        elif mode == gcMarkWorkerIdleMode:
            self.idleMarkTime.add(duration)
            self.removeIdleMarkWorker()
        else:
            throw("pacer.worker_mode", f"markWorkerStop: unknown mark worker mode {mode}")

    def addIdleMarkWorker(self) -> bool:
        """Claim an idle-worker slot; False if n >= max (n > max is tolerated)."""
        while True:
            old = self.idleMarkWorkers.load()
            n, mx = old
            if n >= mx:
                return False
            if n < 0:
                throw("pacer.idle_workers", f"n={n} max={mx}: negative idle mark workers")
            if self.idleMarkWorkers.cas(old, (n + 1, mx)):
                return True

    def needIdleMarkWorker(self) -> bool:
        """A hint: is an idle-worker slot free?"""
        n, mx = self.idleMarkWorkers.load()
        return n < mx

    def removeIdleMarkWorker(self) -> None:
        while True:
            old = self.idleMarkWorkers.load()
            n, mx = old
            if n - 1 < 0:
                throw("pacer.idle_workers", f"n={n} max={mx}: negative idle mark workers")
            if self.idleMarkWorkers.cas(old, (n - 1, mx)):
                return

    def setMaxIdleMarkWorkers(self, max_: int) -> None:
        """Set the cap; running workers above it are expected to deschedule."""
        while True:
            old = self.idleMarkWorkers.load()
            n = old[0]
            if n < 0:
                throw("pacer.idle_workers", f"n={n} max={max_}: negative idle mark workers")
            if self.idleMarkWorkers.cas(old, (n, max_)):
                return

    # ------------------------------------------------------- runtime inputs

    def addScannableStack(self, amount: int) -> None:
        """Stack bytes allocated (+) or freed (-); Go batches per P, this adds at once."""
        self.maxStackScan.add(amount)

    def addGlobals(self, amount: int) -> None:
        self.globalsScan.add(amount)

    def heapRetained(self) -> int:
        """heapInUse + heapFree: heap memory the OS has not been given back."""
        return self.heapInUse.load() + self.heapFree.load()

    def syncHeapStats(self, snap: dict) -> None:
        """Copy heap statistics from a HeapStats.snapshot() (mstats.py) into
        Go's gcController fields.  The model maps nothing but the heap, so
        mappedReady = heapInUse + heapFree.  World stopped or mheap.lock
        (readers on the allocation path may see a torn copy and retry)."""
        ms = memstats_from(snap)
        self.heapInUse.store(snap["heapInUse"])
        self.heapFree.store(snap["heapFree"])
        self.heapReleased.store(snap["heapReleased"])
        self.totalAlloc.store(ms["TotalAlloc"])
        self.totalFree.store(ms["TotalAlloc"] - ms["HeapAlloc"])
        self.mappedReady.store(snap["heapInUse"] + snap["heapFree"])


# --- the scavenger's goals (mgcscavenge.go) ---

def gcPaceScavenger(memoryLimit: int, heapGoal: int, lastHeapGoal: int, *, mappedReady: int,
                    lastHeapInUse: int, heapRetained: int, physPageSize: int = PHYS_PAGE_SIZE) -> ScavengeGoals:
    """The scavenger's two retained-memory goals after a pacing change.

    memoryLimitGoal: keep mappedReady at (100-reduceExtraPercent)% of the
    limit.  Go 1.19 multiplies by 95 instead of 0.95 (golang/go#62449, fixed
    in a later release); reproduced here, so this goal is MAX_UINT64 ("no work")
    unless mappedReady exceeds 95x the limit.  The allocator's own scavenging
    is what holds the limit in 1.19.

    gcPercentGoal: keep heapRetained at lastHeapInUse scaled by
    heapGoal/lastHeapGoal, plus retainExtraPercent, rounded up to a physical
    page; MAX_UINT64 before the first cycle ends or when within a page of it.
    """
    memoryLimitGoal = _f2u64(float(memoryLimit) * (100.0 - reduceExtraPercent))
    memoryLimitGoal = MAX_UINT64 if mappedReady <= memoryLimitGoal else memoryLimitGoal
    if lastHeapGoal == 0:
        return ScavengeGoals(MAX_UINT64, memoryLimitGoal)
    goalRatio = float(heapGoal) / float(lastHeapGoal)
    gcPercentGoal = _f2u64(float(lastHeapInUse) * goalRatio)
    gcPercentGoal = _u64(gcPercentGoal + gcPercentGoal // (100 // retainExtraPercent))
    gcPercentGoal = _u64(gcPercentGoal + physPageSize - 1) & ~(physPageSize - 1)
    if heapRetained <= gcPercentGoal or heapRetained - gcPercentGoal < physPageSize:
        gcPercentGoal = MAX_UINT64
    return ScavengeGoals(gcPercentGoal, memoryLimitGoal)


# --- GOGC and GOMEMLIMIT (readGOGC, readGOMEMLIMIT) ---

def atoi64(s: str) -> int | None:
    """runtime.atoi64: an optional '-' then ASCII digits ("-" alone is 0);
    None if malformed or outside int64."""
    if not s:
        return None
    neg = s[0] == "-"
    body = s[1:] if neg else s
    if any(not "0" <= ch <= "9" for ch in body):
        return None
    un = int(body) if body else 0
    if un > MAX_INT64 + neg:
        return None
    return -un if neg else un


def readGOGC(p: str | None) -> int:
    """GOGC: "off" is -1, an int32 is itself, anything else 100."""
    if p == "off":
        return -1
    n = atoi64(p or "")
    if n is not None and -(1 << 31) <= n < (1 << 31):
        return n
    return 100


def readGOMEMLIMIT(p: str | None) -> int:
    """GOMEMLIMIT: unset or "off" is MaxInt64, else ^[0-9]+(([KMGT]i)?B)?$.
    Raises ValueError with Go's text for anything else."""
    if not p or p == "off":
        return MAX_INT64
    n = parseByteCount(p)
    if n is None:
        raise ValueError(f"GOMEMLIMIT={p}: malformed GOMEMLIMIT; see `go doc runtime/debug.SetMemoryLimit`")
    return n


def parseByteCount(s: str) -> int | None:
    """runtime.parseByteCount: a byte count with an optional B, KiB, MiB, GiB
    or TiB suffix; None if malformed, negative or above MaxInt64."""
    if not s:
        return None
    if "0" <= s[-1] <= "9":
        digits, mult = s, 1
    elif s[-1] != "B" or len(s) < 2:
        return None
    elif "0" <= s[-2] <= "9":
        digits, mult = s[:-1], 1
    elif s[-2] != "i" or len(s) < 4 or s[-3] not in "KMGT":
        return None
    else:
        digits, mult = s[:-3], 1 << (10 * ("KMGT".index(s[-3]) + 1))
    n = atoi64(digits)
    if n is None or n < 0 or n * mult > MAX_INT64:
        return None
    return n * mult


# --- the checker ---

#: Every invariant verify_pacer checks, by name.
PACER_INVARIANTS = (
    "pacer.gc_percent", "pacer.heap_minimum", "pacer.percent_goal", "pacer.goal_below_marked",
    "pacer.trigger", "pacer.assist_ratio", "pacer.workers", "pacer.idle_workers",
    "pacer.heap_stats", "pacer.cons_mark",
)


def verify_pacer(c: GCController) -> None:
    """Check the pacer's invariants from scratch; raise a Violation on the
    first broken one.  World stopped (or no concurrent writers)."""
    gcPercent = c.gcPercent.load()
    if gcPercent < -1:
        throw("pacer.gc_percent", f"gcPercent={gcPercent} < -1 (setGCPercent stores -1 for off)")
    want = _u64(defaultHeapMinimum * _u64(gcPercent)) // 100
    if c.heapMinimum != want:
        throw("pacer.heap_minimum", f"heapMinimum={c.heapMinimum}, want 4 MiB*gcPercent/100 = {want}")
    pg = c.gcPercentHeapGoal.load()
    if pg < c.heapMinimum or (gcPercent < 0 and pg != MAX_UINT64):
        throw("pacer.percent_goal", f"gcPercentHeapGoal={pg} heapMinimum={c.heapMinimum} gcPercent={gcPercent}")
    heapFree, mappedReady = c.heapFree.load(), c.mappedReady.load()
    heapAlloc = c.totalAlloc.load() - c.totalFree.load()
    if heapAlloc < 0 or heapFree + heapAlloc > mappedReady:
        throw("pacer.heap_stats", f"heapFree={heapFree} + heapAlloc={heapAlloc} > mappedReady={mappedReady}")
    goal = c.heapGoal()
    if goal < c.heapMarked:
        throw("pacer.goal_below_marked", f"heapGoal={goal} < heapMarked={c.heapMarked}")
    trigger, _ = c.trigger()
    lo = hi = goal
    if c.heapMarked < goal:
        # Recomputed here, not taken from triggerBounds: 45/64 and 61/64 of the runway.
        _, minTrigger = c.heapGoalInternal()
        span = goal - c.heapMarked
        lo = max(minTrigger, c.heapMarked + span // triggerRatioDen * minTriggerRatioNum)
        hi = max(c.heapMarked + span // triggerRatioDen * maxTriggerRatioNum,
                 goal - defaultHeapMinimum if goal > defaultHeapMinimum else 0, lo)
    if not (lo <= trigger <= hi and trigger <= goal):
        throw("pacer.trigger", f"trigger={trigger} outside [{lo}, {hi}] or above heapGoal={goal}")
    if c.gcBlackenEnabled:
        w, b = c.assistWorkPerByte.load(), c.assistBytesPerWork.load()
        if not (w > 0 and b > 0 and _finite(w) and _finite(b)):
            throw("pacer.assist_ratio", f"assistWorkPerByte={w} assistBytesPerWork={b} while marking")
    if c.dedicatedMarkWorkersNeeded.load() < 0 or not (0 <= c.fractionalUtilizationGoal <= gcBackgroundUtilization):
        throw("pacer.workers", f"dedicatedMarkWorkersNeeded={c.dedicatedMarkWorkersNeeded.load()} "
              f"fractionalUtilizationGoal={c.fractionalUtilizationGoal}")
    n, mx = c.idleMarkWorkers.load()
    if n < 0:
        throw("pacer.idle_workers", f"n={n} max={mx}: negative idle mark workers")
    if not _finite(c.consMark) or not c.consMarkController.min <= c.consMark <= c.consMarkController.max:
        throw("pacer.cons_mark", f"consMark={c.consMark} outside the controller's output range")
