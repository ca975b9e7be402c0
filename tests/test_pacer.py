"""The GC pacer (concalloc/gc/pacer.py) against Go 1.19's own tests and hand arithmetic.

TestGcPacer (runtime/mgcpacer_test.go) is ported whole: the same scenarios
(allocation rate, scan rate, heap growth, scannable fraction, stacks, GOGC and
memory limit per cycle), the same idealised assist model stepping the pacer
through startCycle / revise / endCycle / resetLive / commit every 500 us of
simulated time, and the same pass criteria per scenario.  The only
difference: Go's random(amp, seed) streams draw from math/rand, these from
Python's random.Random(seed).

Run ``python tests/test_pacer.py Steady`` to print a scenario's cycles as a table.
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass, field
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from concalloc.check.violation import Violation
from concalloc.gc import pacer
from concalloc.gc.pacer import (MAX_INT64, MAX_UINT64, PACER_INVARIANTS, GCController, defaultHeapMinimum,
                                gcBackgroundUtilization, gcGoalUtilization, gcMarkWorkerDedicatedMode,
                                gcMarkWorkerFractionalMode, gcMarkWorkerIdleMode, gcMarkWorkerNotWorker,
                                gcPaceScavenger, gcTriggerTime, memoryLimitHeapGoalHeadroom, piController,
                                readGOGC, readGOMEMLIMIT, verify_pacer)

KiB, MiB = 1 << 10, 1 << 20


# ---------------------------------------------------------------- streams
# float64Stream and its combinators, as in mgcpacer_test.go.

class Stream:
    def __init__(self, f: Callable[[], float]):
        self.f = f

    def __call__(self) -> float:
        return self.f()

    def delay(self, cycles: int) -> "Stream":
        zeroes = [0]

        def f():
            if zeroes[0] < cycles:
                zeroes[0] += 1
                return 0.0
            return self()
        return Stream(f)

    def offset(self, amt: float) -> "Stream":
        return Stream(lambda: self() + amt)

    def sum(self, *fs: "Stream") -> "Stream":
        return Stream(lambda: self() + sum(s() for s in fs))

    def quantize(self, mult: float) -> "Stream":
        def f():
            r = self() / mult
            return (math.ceil(r) if r < 0 else math.floor(r)) * mult
        return Stream(f)

    def min(self, lo: float) -> "Stream":
        return Stream(lambda: max(lo, self()))

    def limit(self, lo: float, hi: float) -> "Stream":
        return Stream(lambda: min(max(self(), lo), hi))


def constant(c: float) -> Stream:
    return Stream(lambda: c)


def unit(amp: float) -> Stream:
    dropped = [False]

    def f():
        if dropped[0]:
            return 0.0
        dropped[0] = True
        return amp
    return Stream(f)


def oscillate(amp: float, phase: float, period: int) -> Stream:
    cycle = [0]

    def f():
        p = cycle[0] / period * 2 * math.pi + phase
        cycle[0] = (cycle[0] + 1) % period
        return math.sin(p) * amp
    return Stream(f)


def ramp(height: float, length: int) -> Stream:
    cycle = [0]

    def f():
        h = height * cycle[0] / length
        if cycle[0] < length:
            cycle[0] += 1
        return h
    return Stream(f)


def rnd(amp: float, seed: int) -> Stream:
    r = random.Random(seed)
    return Stream(lambda: (r.random() - 0.5) * 2 * amp)


# ---------------------------------------------------------------- the simulation

@dataclass
class CycleResult:
    cycle: int
    heapLive: int       # heapMarked at the cycle's start (Go's name in gcCycleResult)
    heapTrigger: int
    heapGoal: int
    heapPeak: int
    heapScannable: int
    gcUtilization: float

    def goalRatio(self) -> float:
        return self.heapPeak / self.heapGoal

    def runway(self) -> float:
        return float(self.heapGoal - self.heapTrigger)

    def triggerRatio(self) -> float:
        return (self.heapTrigger - self.heapLive) / (self.heapGoal - self.heapLive)


class Errors(list):
    def in_range(self, name: str, a: float, lo: float, hi: float, n: int) -> None:
        if a < lo or a > hi:
            self.append(f"cycle {n}: {name} not in range ({lo:f}, {hi:f}): {a:f}")

    def in_epsilon(self, name: str, a: float, b: float, eps: float, n: int) -> None:
        self.in_range(name, a, b - eps, b + eps, n)


@dataclass
class GcExecTest:
    name: str
    gcPercent: int
    memoryLimit: int
    globalsBytes: int
    nCores: int
    allocRate: Stream
    scanRate: Stream
    growthRate: Stream
    scannableFrac: Stream
    stackBytes: Stream
    length: int
    checker: Callable[[Errors, list[CycleResult]], None] = field(repr=False)


INITIAL_HEAP_BYTES = 256 << 10
REVISE_PERIOD = 500_000                       # ns (500 us)
RATE_CONV = 1024 * REVISE_PERIOD / 1_000_000  # KiB/cpu-ms -> bytes per revise period
MIN_RATE = 0.0001


def start_cycle(c: GCController, stackSize: int, globalsSize: int, scannableFrac: float, procs: int) -> None:
    """export_test.go's GCController.StartCycle: heapLive jumps to the trigger."""
    trigger, _ = c.trigger()
    trigger = max(trigger, c.heapMarked)
    c.maxStackScan.store(stackSize)
    c.globalsScan.store(globalsSize)
    c.heapLive.store(trigger)
    c.heapScan.add(pacer._f2u64(float(trigger - c.heapMarked) * scannableFrac))
    c.startCycle(0, procs)


def revise(c: GCController, heapLive: int, heapScan: int, heapScanWork: int, stackScanWork: int,
           globalsScanWork: int) -> None:
    """export_test.go's GCController.Revise."""
    c.heapLive.add(heapLive)
    c.heapScan.add(heapScan)
    c.heapScanWork.add(heapScanWork)
    c.stackScanWork.add(stackScanWork)
    c.globalsScanWork.add(globalsScanWork)
    c.revise()


def end_cycle(c: GCController, bytesMarked: int, assistTime: int, elapsed: int, procs: int) -> None:
    """export_test.go's GCController.EndCycle."""
    c.assistTime.store(assistTime)
    c.endCycle(elapsed, procs, False)
    c.resetLive(bytesMarked)
    c.commit(False)


def base_check(errs: Errors, results: list[CycleResult]) -> None:
    """gcExecTest.check's general checks."""
    n = len(results)
    if n == 1 and results[0].cycle != 1:
        errs.append("first cycle has incorrect number")
    if n > 1 and results[-1].cycle != results[-2].cycle + 1:
        errs.append("cycle numbers out of order")
    if not 0 <= results[-1].gcUtilization <= 1:
        errs.append(f"cycle {n}: GC utilization not within acceptable bounds")
    if results[-1].heapScannable < 0:
        errs.append(f"cycle {n}: heapScannable is negative")


def run_scenario(e: GcExecTest, *, check: bool = True, verify: bool = True) -> tuple[list[CycleResult], Errors]:
    """TestGcPacer's loop for one scenario; returns the results and every failed check."""
    c = GCController(e.gcPercent, e.memoryLimit)
    errs = Errors()
    results: list[CycleResult] = []
    bytesAllocatedBlackLast = 0
    for i in range(e.length):
        allocRate = max(MIN_RATE, e.allocRate())
        scanRate = max(MIN_RATE, e.scanRate())
        growthRate = max(MIN_RATE, e.growthRate())
        scannableFrac = min(max(e.scannableFrac(), 0.0), 1.0)
        sb = e.stackBytes() / 2048
        stackBytes = int(max(0.0, (math.ceil(sb) if sb < 0 else math.floor(sb)) * 2048))

        start_cycle(c, stackBytes, e.globalsBytes, scannableFrac, e.nCores)
        c.gcBlackenEnabled = 1
        if verify:
            verify_pacer(c)
        if i == 0:
            nextHeapMarked = INITIAL_HEAP_BYTES
        else:
            nextHeapMarked = pacer._f2i64(float(c.heapMarked - bytesAllocatedBlackLast) * growthRate)
        left = [e.globalsBytes, stackBytes, pacer._f2i64(float(nextHeapMarked) * scannableFrac)]

        def doWork(work: int) -> list[int]:
            deltas = [0, 0, 0]   # globals first, then stacks, then heap
            for k in range(3):
                if left[k] == 0:
                    continue
                if left[k] > work:
                    deltas[k] += work
                    left[k] -= work
                    break
                deltas[k] += left[k]
                work -= left[k]
                left[k] = 0
            return deltas

        gcDuration = assistTime = bytesAllocatedBlack = 0
        while sum(left) > 0:
            # The assist ratio fixes scanned/allocated bytes over the period,
            # which fixes the GC's CPU share u (never below the 25% of workers).
            assistRatio = c.assistWorkPerByte.load()
            utilization = assistRatio * allocRate / (assistRatio * allocRate + scanRate)
            utilization = max(utilization, gcBackgroundUtilization)
            bytesScanned = pacer._f2i64(scanRate * RATE_CONV * float(e.nCores) * utilization)
            bytesAllocated = pacer._f2i64(allocRate * RATE_CONV * float(e.nCores) * (1 - utilization))
            g, s, h = doWork(bytesScanned)
            actualElapsed, actualAllocated = REVISE_PERIOD, bytesAllocated
            actualScanned = g + s + h
            if actualScanned < bytesScanned:
                # The cycle ends inside this period.
                actualElapsed = pacer._f2i64(float(actualScanned) * float(REVISE_PERIOD) /
                                             (scanRate * RATE_CONV * float(e.nCores) * utilization))
                actualAllocated = pacer._f2i64(allocRate * RATE_CONV * float(actualElapsed) / float(REVISE_PERIOD) *
                                               float(e.nCores) * (1 - utilization))
            revise(c, actualAllocated, pacer._f2i64(float(actualAllocated) * scannableFrac), h, s, g)
            assistTime += pacer._f2i64(float(actualElapsed) * float(e.nCores) *
                                       (utilization - gcBackgroundUtilization))
            gcDuration += actualElapsed
            bytesAllocatedBlack += actualAllocated

        result = CycleResult(
            cycle=i + 1, heapLive=c.heapMarked,
            heapScannable=pacer._f2i64(float(c.heapMarked - bytesAllocatedBlackLast) * scannableFrac),
            heapTrigger=c.triggered, heapPeak=c.heapLive.load(), heapGoal=c.heapGoal(),
            gcUtilization=float(assistTime) / (float(gcDuration) * float(e.nCores)) + gcBackgroundUtilization)
        results.append(result)
        if check:
            base_check(errs, results)
            e.checker(errs, results)
        c.gcBlackenEnabled = 0
        end_cycle(c, nextHeapMarked + bytesAllocatedBlack, assistTime, gcDuration, e.nCores)
        if verify:
            verify_pacer(c)
        bytesAllocatedBlackLast = bytesAllocatedBlack
    return results, errs


# ---------------------------------------------------------------- Go's scenarios and criteria

GOAL = gcGoalUtilization


def steady_checker(goal_ratio: bool = True):
    def check(t: Errors, c: list[CycleResult]) -> None:
        n = len(c)
        if n >= 25:
            t.in_epsilon("GC utilization", c[n - 1].gcUtilization, GOAL, 0.005, n)
            t.in_epsilon("GC utilization", c[n - 1].gcUtilization, c[n - 2].gcUtilization, 0.005, n)
            if goal_ratio:
                t.in_range("goal ratio", c[n - 1].goalRatio(), 0.95, 1.05, n)
    return check


def step_checker(t: Errors, c: list[CycleResult]) -> None:
    n = len(c)
    if 25 <= n < 50 or n >= 75:
        t.in_epsilon("GC utilization", c[n - 1].gcUtilization, c[n - 2].gcUtilization, 0.005, n)
        t.in_range("goal ratio", c[n - 1].goalRatio(), 0.95, 1.05, n)


def high_gogc_checker(t: Errors, c: list[CycleResult]) -> None:
    n = len(c)
    if n > 12:
        if n == 26:
            # The heap grows 14x at cycle 26: overshoot, but never past GOGC of the next cycle.
            t.in_range("goal ratio", c[n - 1].goalRatio(), 0.90, 15, n)
        else:
            t.in_range("goal ratio", c[n - 1].goalRatio(), 0.90, 1.05, n)
        t.in_epsilon("GC utilization", c[n - 1].gcUtilization, GOAL, GOAL + 0.03, n)
        t.in_epsilon("GC utilization", c[n - 1].gcUtilization, c[n - 2].gcUtilization, 0.03, n)


def osc_checker(t: Errors, c: list[CycleResult]) -> None:
    n = len(c)
    if n > 12:
        t.in_range("goal ratio", c[n - 1].goalRatio(), 0.95, 1.05, n)
        t.in_range("GC utilization", c[n - 1].gcUtilization, 0.25, 0.3, n)


def heavy_jitter_checker(t: Errors, c: list[CycleResult]) -> None:
    n = len(c)
    if n > 13:
        t.in_range("goal ratio", c[n - 1].goalRatio(), 0.95, 1.05, n)
        t.in_epsilon("GC utilization", c[n - 1].gcUtilization, c[n - 2].gcUtilization, 0.05, n)
        t.in_epsilon("GC utilization", c[n - 1].gcUtilization, c[11].gcUtilization, 0.05, n)


def slow_alloc_checker(settled: int):
    def check(t: Errors, c: list[CycleResult]) -> None:
        n = len(c)
        if n > settled:
            t.in_range("goal ratio", c[n - 1].goalRatio(), 0.925, 1.025, n)
            t.in_range("trigger ratio", c[n - 1].triggerRatio(), 0.925, 0.975, n)
        slow_alloc_util(t, c)
    return check


def slow_alloc_util(t: Errors, c: list[CycleResult]) -> None:
    n = len(c)
    if n > 25:
        t.in_epsilon("GC utilization", c[n - 1].gcUtilization, GOAL, 0.005, n)
        t.in_epsilon("GC utilization", c[n - 1].gcUtilization, c[n - 2].gcUtilization, 0.05, n)
        t.in_epsilon("GC utilization", c[n - 1].gcUtilization, c[11].gcUtilization, 0.05, n)


def large_heap_checker(t: Errors, c: list[CycleResult]) -> None:
    n = len(c)
    if n > 13:
        t.in_range("goal ratio", c[n - 1].goalRatio(), 0.95, 1.05, n)
        # The runway settles at the minimum heap size (maxTrigger = goal - 4 MiB).
        t.in_range("runway", c[n - 1].runway(), defaultHeapMinimum - (64 << 10), defaultHeapMinimum + (64 << 10), n)
    slow_alloc_util(t, c)


LIMIT = 512 << 20
LIMIT_GOAL = LIMIT - memoryLimitHeapGoalHeadroom


def steady_limit_checker(t: Errors, c: list[CycleResult]) -> None:
    n = len(c)
    if c[n - 1].heapPeak >= LIMIT_GOAL:
        t.append(f"cycle {n}: peak heap size reaches heap limit: {c[n - 1].heapPeak}")
    steady_checker()(t, c)


def limit_is_goal_checker(from_cycle: int):
    def check(t: Errors, c: list[CycleResult]) -> None:
        n = len(c)
        if n > from_cycle and c[n - 1].heapGoal != LIMIT_GOAL:
            t.append(f"cycle {n}: heap goal is not the heap limit: {c[n - 1].heapGoal}")
        steady_checker()(t, c)
    return check


def exceed_limit_checker(no_gc_percent: bool):
    def check(t: Errors, c: list[CycleResult]) -> None:
        n = len(c)
        if no_gc_percent and n < 10 and c[n - 1].heapGoal != LIMIT_GOAL:
            t.append(f"cycle {n}: heap goal is not the heap limit: {c[n - 1].heapGoal}")
        if n > 12 and c[n - 1].heapGoal != c[n - 1].heapLive:
            t.append(f"cycle {n}: heap goal is not equal to live heap: {c[n - 1].heapGoal} != {c[n - 1].heapLive}")
        if n >= 25:
            # Over the limit the pacer asks for 100% GC CPU (the CPU limiter is not its job).
            t.in_epsilon("GC utilization", c[n - 1].gcUtilization, 1.0, 0.005, n)
            t.in_epsilon("GC utilization", c[n - 1].gcUtilization, c[n - 2].gcUtilization, 0.005, n)
    return check


def scenarios() -> dict[str, Callable[[], GcExecTest]]:
    """Go's TestGcPacer cases, built fresh each call (streams have state)."""
    def base(name, alloc, growth=None, *, gcPercent=100, memoryLimit=MAX_INT64, globalsBytes=32 << 10,
             scan=1024.0, frac=None, stack=None, length=50, checker=None):
        return GcExecTest(name, gcPercent, memoryLimit, globalsBytes, 8, alloc, constant(scan),
                          growth or constant(2.0).sum(ramp(-1.0, 12)), frac or constant(1.0),
                          stack or constant(8192), length, checker)
    return {
        "Steady": lambda: base("Steady", constant(33.0), checker=steady_checker()),
        "SteadyBigStacks": lambda: base("SteadyBigStacks", constant(132.0),
                                        stack=constant(2048).sum(ramp(128 << 20, 8)), checker=steady_checker()),
        "SteadyBigGlobals": lambda: base("SteadyBigGlobals", constant(132.0), globalsBytes=128 << 20,
                                         checker=steady_checker()),
        "StepAlloc": lambda: base("StepAlloc", constant(33.0).sum(ramp(66.0, 1).delay(50)), length=100,
                                  checker=step_checker),
        "HeavyStepAlloc": lambda: base("HeavyStepAlloc", constant(33).sum(ramp(330, 1).delay(50)), length=100,
                                       checker=step_checker),
        "StepScannableFrac": lambda: base("StepScannableFrac", constant(128.0),
                                          frac=constant(0.2).sum(unit(0.5).delay(50)), length=100,
                                          checker=step_checker),
        "HighGOGC": lambda: base("HighGOGC", rnd(7, 0x53).offset(165), gcPercent=1500,
                                 growth=constant(2.0).sum(ramp(-1.0, 12), rnd(0.01, 0x1), unit(14).delay(25)),
                                 checker=high_gogc_checker),
        "OscAlloc": lambda: base("OscAlloc", oscillate(13, 0, 8).offset(67), checker=osc_checker),
        "JitterAlloc": lambda: base("JitterAlloc", rnd(13, 0xf).offset(132),
                                    growth=constant(2.0).sum(ramp(-1.0, 12), rnd(0.01, 0xe)), checker=osc_checker),
        "HeavyJitterAlloc": lambda: base("HeavyJitterAlloc", rnd(33.0, 0x0).offset(330),
                                         growth=constant(2.0).sum(ramp(-1.0, 12), rnd(0.01, 0x152)),
                                         checker=heavy_jitter_checker),
        "SmallHeapSlowAlloc": lambda: base("SmallHeapSlowAlloc", constant(1.0), constant(2.0).sum(ramp(-1.0, 3)),
                                           scan=2048.0, frac=constant(0.01), checker=slow_alloc_checker(4)),
        "MediumHeapSlowAlloc": lambda: base("MediumHeapSlowAlloc", constant(1.0), constant(2.0).sum(ramp(-1.0, 8)),
                                            scan=2048.0, frac=constant(0.01), checker=slow_alloc_checker(9)),
        "LargeHeapSlowAlloc": lambda: base("LargeHeapSlowAlloc", constant(1.0), constant(4.0).sum(ramp(-3.0, 12)),
                                           scan=2048.0, frac=constant(0.01), checker=large_heap_checker),
        "SteadyMemoryLimit": lambda: base("SteadyMemoryLimit", constant(33.0), memoryLimit=LIMIT,
                                          checker=steady_limit_checker),
        "SteadyMemoryLimitNoGCPercent": lambda: base("SteadyMemoryLimitNoGCPercent", constant(33.0), gcPercent=-1,
                                                     memoryLimit=LIMIT, checker=limit_is_goal_checker(0)),
        "ExceedMemoryLimit": lambda: base("ExceedMemoryLimit", constant(33.0), constant(3.5).sum(ramp(-2.5, 12)),
                                          memoryLimit=LIMIT, checker=exceed_limit_checker(False)),
        "ExceedMemoryLimitNoGCPercent": lambda: base("ExceedMemoryLimitNoGCPercent", constant(33.0),
                                                     constant(3.5).sum(ramp(-2.5, 12)), gcPercent=-1,
                                                     memoryLimit=LIMIT, checker=exceed_limit_checker(True)),
        "MaintainMemoryLimit": lambda: base("MaintainMemoryLimit", constant(33.0), constant(3.0).sum(ramp(-2.0, 12)),
                                            memoryLimit=LIMIT, checker=limit_is_goal_checker(12)),
        "MaintainMemoryLimitNoGCPercent": lambda: base("MaintainMemoryLimitNoGCPercent", constant(33.0),
                                                       constant(3.0).sum(ramp(-2.0, 12)), gcPercent=-1,
                                                       memoryLimit=LIMIT, checker=limit_is_goal_checker(0)),
    }


_RUNS: dict[str, tuple[list[CycleResult], Errors]] = {}


def scenario_run(name: str) -> tuple[list[CycleResult], Errors]:
    """One run per scenario per session (runs are deterministic)."""
    if name not in _RUNS:
        _RUNS[name] = run_scenario(scenarios()[name]())
    return _RUNS[name]


@pytest.mark.parametrize("name", list(scenarios()))
def test_gc_pacer_scenario_meets_go_criteria(name):
    """TestGcPacer: each scenario passes Go's own checks at every cycle."""
    results, errs = scenario_run(name)
    assert len(results) == scenarios()[name]().length
    assert not errs, f"{name}: {len(errs)} failed checks, first: " + "; ".join(errs[:5])


#: Go's own trace of each deterministic scenario: `go test -run TestGcPacer -v
#: runtime` with go1.19.8 linux/amd64 logs "GC <cycle> <util>% <marked>-><trigger>
#: -><peak> (goal: <goal>)" per cycle; the first 32 hex digits of the SHA-256
#: of those lines joined by newlines, and the last line.  The random-stream
#: scenarios (HighGOGC, JitterAlloc, HeavyJitterAlloc) are absent: Go draws
#: them from math/rand.
GO_TRACES = {
    "Steady": ("d3d359034355574d6ce45c83404494d1", "50 25.0% 20884992->39967328->41810943 (goal: 41810944)"),
    "SteadyBigStacks": ("affc4340b75f588caabedc68b5f1b18b", "50 25.0% 78276440->231564449->290805423 (goal: 290805424)"),
    "SteadyBigGlobals": ("9d758be04529d50e16b7d14d0571c3cd", "50 25.0% 78266152->231527537->290758223 (goal: 290758224)"),
    "StepAlloc": ("3ff34f3c7996cb760bd9ea98dbf392fe", "100 25.0% 24572896->43654986->49186751 (goal: 49186752)"),
    "HeavyStepAlloc": ("bb7c5e60a080b1df1f819c089c368938", "100 45.6% 27098636->46181156->54238231 (goal: 54238232)"),
    "StepScannableFrac": ("671bf4fedd6578f86b2cc9481c6d06b5", "100 25.0% 20485026->39567541->41011011 (goal: 41011012)"),
    "OscAlloc": ("17e1a4ace5e1e2c6d0863fe99c1ed6f2", "50 27.2% 22559772->41351584->45160503 (goal: 45160504)"),
    "SmallHeapSlowAlloc": ("092a8a9931792fd1941fa70770e41c72", "50 25.0% 582609->4024961->4025029 (goal: 4194304)"),
    "MediumHeapSlowAlloc": ("ca9e859d25b53a920fc030cb9f8cc940", "50 25.0% 4054169->7957315->7957434 (goal: 8149298)"),
    "LargeHeapSlowAlloc": ("c989e3c6b534415290846ffa62bde52e", "50 25.0% 3405451943->6806750542->6806800485 (goal: 6810944846)"),
    "SteadyMemoryLimit": ("d3d359034355574d6ce45c83404494d1", "50 25.0% 20884992->39967328->41810943 (goal: 41810944)"),
    "SteadyMemoryLimitNoGCPercent": ("41141c2db5e34c98c7859994baad9776", "50 25.0% 20886447->531628032->533472923 (goal: 535822336)"),
    "ExceedMemoryLimit": ("fcc721328ff74edfae8bf0d919b1bd4b", "50 100.0% 1174734432->1174734432->1174734432 (goal: 1174734432)"),
    "ExceedMemoryLimitNoGCPercent": ("d619dc8d85aefe79351c3be8968e990b", "50 100.0% 1174734432->1174734432->1174734432 (goal: 1174734432)"),
    "MaintainMemoryLimit": ("47cac34a31d32cdf59541de118e4ca21", "50 25.0% 391440624->501332056->535822335 (goal: 535822336)"),
    "MaintainMemoryLimitNoGCPercent": ("4ac50459fd5f48747bfcddb9c0d3a215", "50 25.0% 391440626->501332055->535822335 (goal: 535822336)"),
}


def go_trace_line(r: CycleResult) -> str:
    """gcCycleResult.String()."""
    return f"{r.cycle} {r.gcUtilization * 100:2.1f}% {r.heapLive}->{r.heapTrigger}->{r.heapPeak} (goal: {r.heapGoal})"


@pytest.mark.parametrize("name", list(GO_TRACES))
def test_gc_pacer_scenario_matches_go_trace_bit_for_bit(name):
    """Every cycle's marked heap, trigger, peak, goal and utilization equal Go 1.19's."""
    import hashlib
    lines = [go_trace_line(r) for r in scenario_run(name)[0]]
    digest, last = GO_TRACES[name]
    assert lines[-1] == last
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32] == digest


def test_scenario_checker_catches_a_broken_pacer(monkeypatch):
    """The scenario criteria can fail: halve the cons/mark estimate after every
    cycle and Steady's trigger comes too late, so utilization leaves 25% +- 0.5%."""
    real_endCycle = GCController.endCycle

    def endCycle(self, now, procs, userForced=False):
        real_endCycle(self, now, procs, userForced)
        self.consMark *= 0.5
    monkeypatch.setattr(GCController, "endCycle", endCycle)
    _, errs = run_scenario(scenarios()["Steady"]())
    assert any("GC utilization" in e for e in errs)


# ---------------------------------------------------------------- the named regimes

def run_cycles(c: GCController, n: int, marked: Callable[[int], int], procs: int = 4,
               sweepDone: bool = False) -> list[tuple[int, int, int]]:
    """Drive n whole cycles by hand: allocate to the trigger, mark, terminate.
    Returns (heapMarked, trigger, goal) seen at each cycle's start."""
    seen = []
    for i in range(n):
        trigger, goal = c.trigger()
        seen.append((c.heapMarked, trigger, goal))
        c.update(trigger - c.heapLive.load(), (trigger - c.heapLive.load()) // 2)
        assert c.test_heap_trigger()
        c.startCycle(0, procs)
        c.gcBlackenEnabled = 1
        assert not c.test_heap_trigger(), "a running cycle must not trigger another"
        live = marked(i)
        c.heapScanWork.add(live // 2)
        c.update(64 << 10)
        c.gcBlackenEnabled = 0
        c.endCycle(1_000_000, procs)
        c.resetLive(live)
        c.commit(sweepDone)
        verify_pacer(c)
    return seen


def test_steady_heap_goal_is_gogc_over_marked_plus_roots():
    """Steady live heap: every cycle's goal is marked + (marked + stacks + globals) * GOGC/100."""
    c = GCController(100)
    c.globalsScan.store(32 << 10)
    c.stackScanWork.store(0)
    seen = run_cycles(c, 10, lambda i: 32 * MiB)
    for marked, trigger, goal in seen[1:]:
        assert goal == marked + (marked + 32 * KiB) * 100 // 100
        assert marked + (goal - marked) // 64 * 45 <= trigger <= goal


def test_growing_heap_goal_tracks_marked_heap():
    """A growing live heap: the goal grows with it, always GOGC% over the marked heap."""
    c = GCController(50)
    seen = run_cycles(c, 12, lambda i: (8 * MiB) * (3 ** i) // (2 ** i))
    goals = [g for _, _, g in seen]
    assert goals == sorted(goals) and goals[-1] > 8 * goals[1]
    for marked, trigger, goal in seen[1:]:
        assert goal == marked + marked * 50 // 100
        assert marked < trigger < goal


def test_growing_heap_revise_extends_goal_but_not_past_hard_goal():
    """Inside one cycle, scan work beyond last cycle's stretches the goal
    (extHeapGoal), capped at (1 + GOGC/100) * goal."""
    c = GCController(100)
    c.resetLive(16 * MiB)
    c.lastHeapScan = 16 * MiB
    c.commit(True)                      # goal 32 MiB; no runway yet: trigger at 61/64 = 31.25 MiB
    c.heapLive.store(c.trigger()[0])
    c.startCycle(0, 4)
    assert (c.triggered, c.heapGoal()) == (31 * MiB + MiB // 4, 32 * MiB)
    c.heapScanWork.store(17 * MiB)      # more than the 16 MiB expected: the heap grows
    c.heapScan.store(40 * MiB)
    c.revise()
    # extHeapGoal = (32 - 31.25) / 16 * 40 + 31.25 = 33.125 MiB
    assert c.assistWorkPerByte.load() == (23 * MiB) / (33.125 * MiB - 31.25 * MiB)
    c.heapScan.store(1 << 30)
    c.revise()
    # extHeapGoal = 0.75 / 16 * 1024 + 31.25 = 79.25 MiB > hard goal 64 MiB
    assert c.assistWorkPerByte.load() == ((1 << 30) - 17 * MiB) / (64 * MiB - 31.25 * MiB)


def test_gogc_off_never_triggers_without_memory_limit():
    c = GCController(-1)
    assert c.gcPercent.load() == -1 and c.gcPercentHeapGoal.load() == MAX_UINT64
    for marked in (0, 1 * MiB, 1 << 40):
        c.resetLive(marked)
        c.commit(False)
        c.heapLive.store(1 << 50)
        assert not c.test_heap_trigger()
        assert c.trigger()[0] > 1 << 62


def test_gogc_off_triggers_at_memory_limit():
    c = GCController(-1, 64 * MiB)
    c.resetLive(8 * MiB)
    c.commit(True)
    trigger, goal = c.trigger()
    assert goal == 64 * MiB - memoryLimitHeapGoalHeadroom
    c.heapLive.store(trigger - 1)
    assert not c.test_heap_trigger()
    c.heapLive.store(trigger)
    assert c.test_heap_trigger()


def test_gogc_zero_triggers_back_to_back():
    """GOGC=0: heapMinimum is 0 and the goal is the marked heap, so every cycle
    triggers again at once (after the sweeper's 1 MiB when sweeping is not done)."""
    c = GCController(0)
    assert c.heapMinimum == 0
    for live in (1 * MiB, 5 * MiB, 3 * MiB):
        c.startCycle(0, 2)
        c.endCycle(1000, 2)
        c.resetLive(live)
        c.commit(True)
        assert c.trigger() == (live, live)
        assert c.test_heap_trigger(), "GOGC=0 must trigger with no allocation"
    c.commit(False)
    assert c.trigger() == (3 * MiB + (1 << 20), 3 * MiB + (1 << 20))
    assert not c.test_heap_trigger()


def test_memory_limit_holds_goal_under_limit():
    """GOGC would allow 80 MiB; a 64 MiB limit caps the goal (and so the trigger) below it."""
    c = GCController(100, 64 * MiB)
    c.resetLive(40 * MiB)
    c.commit(True)
    trigger, goal = c.trigger()
    assert goal == 64 * MiB - memoryLimitHeapGoalHeadroom < c.gcPercentHeapGoal.load()
    assert 40 * MiB < trigger < goal


def test_memory_limit_goal_subtracts_non_heap_memory_and_overage():
    c = GCController(100, 64 * MiB)
    c.resetLive(10 * MiB)
    # mappedReady 70 MiB, 5 MiB free, 50 MiB of objects: 15 MiB non-heap, 6 MiB over.
    c.mappedReady.store(70 * MiB)
    c.heapFree.store(5 * MiB)
    c.totalAlloc.store(80 * MiB)
    c.totalFree.store(30 * MiB)
    assert c.memoryLimitHeapGoal() == 64 * MiB - 15 * MiB - 6 * MiB - 1 * MiB
    c.resetLive(45 * MiB)
    assert c.memoryLimitHeapGoal() == 45 * MiB, "never below heapMarked"
    c.setMemoryLimit(10 * MiB)
    assert c.memoryLimitHeapGoal() == 45 * MiB, "non-heap memory over the limit: heapMarked"
    c2 = GCController(100, 3 * MiB // 2)
    assert c2.memoryLimitHeapGoal() == memoryLimitHeapGoalHeadroom, "a small limit keeps 1 MiB"


def test_heap_minimum_floor():
    for gogc, floor in ((100, 4 * MiB), (50, 2 * MiB), (200, 8 * MiB)):
        c = GCController(gogc)
        assert c.heapMinimum == floor
        c.resetLive(1 * MiB)
        c.commit(True)
        assert c.heapGoal() == floor
    c = GCController(100)
    c.resetLive(3 * MiB)
    c.commit(True)
    assert c.heapGoal() == 6 * MiB, "above the floor, the GOGC formula wins"


def test_first_trigger_is_95_percent_of_heap_minimum():
    c = GCController()
    assert c.trigger() == (4 * MiB // 64 * 61, 4 * MiB)


def test_set_gc_percent_and_memory_limit_return_old_values():
    c = GCController(100, 1 << 30)
    assert c.setGCPercent(-7) == 100 and c.gcPercent.load() == -1
    assert c.setGCPercent(50) == -1
    assert c.setMemoryLimit(-1) == 1 << 30 and c.memoryLimit.load() == 1 << 30
    assert c.setMemoryLimit(5 << 20) == 1 << 30 and c.memoryLimit.load() == 5 << 20


def test_sweep_distance_raises_goal_and_trigger():
    c = GCController(100)
    c.resetLive(1 * MiB)
    c.heapLive.store(4 * MiB)
    c.commit(False)
    goal, minTrigger = c.heapGoalInternal()
    assert minTrigger == 5 * MiB and goal == 5 * MiB


def test_goal_keeps_min_runway_past_triggered():
    c = GCController(100)
    c.resetLive(1 * MiB)
    c.commit(True)
    c.triggered = c.heapGoal() - 1000
    assert c.heapGoal() == c.triggered + (64 << 10)


# ---------------------------------------------------------------- hand-computed arithmetic

def marking_controller() -> GCController:
    """8 MiB marked, 4 MiB of it scannable, 64 KiB stacks, 32 KiB globals:
    goal = 8 MiB + (8 MiB + 96 KiB) = 16875520; expected work 4292608."""
    c = GCController(100)
    c.heapMarked = 8 * MiB
    c.lastHeapScan = 4 * MiB
    c.lastStackScan = 64 * KiB
    c.globalsScan.store(32 * KiB)
    c.maxStackScan.store(128 * KiB)
    c.commit(True)
    c.heapLive.store(12 * MiB)
    c.triggered = 12 * MiB
    return c


def test_assist_ratio_steady_hand_computed():
    c = marking_controller()
    assert c.heapGoal() == 16875520
    c.revise()
    # (4292608 - 0) work over (16875520 - 12582912) = 4292608 bytes.
    assert c.assistWorkPerByte.load() == 1.0 and c.assistBytesPerWork.load() == 1.0
    c.heapScanWork.store(1 * MiB)
    c.revise()
    assert c.assistWorkPerByte.load() == 3244032 / 4292608
    assert c.assistBytesPerWork.load() == 4292608 / 3244032


def test_assist_ratio_growing_heap_hand_computed():
    c = marking_controller()
    c.heapScan.store(10 * MiB)
    c.heapScanWork.store(5 * MiB)       # > 4292608 expected: extrapolate
    c.revise()
    # maxScanWork = 10485760 + 131072 + 32768 = 10649600
    # extHeapGoal = 4292608/4292608 * 10649600 + 12582912 = 23232512
    assert c.assistWorkPerByte.load() == (10649600 - 5242880) / (23232512 - 12582912)


def test_assist_ratio_hard_goal_hand_computed():
    c = marking_controller()
    c.heapScan.store(40 * MiB)
    c.heapScanWork.store(5 * MiB)
    c.revise()
    # maxScanWork 42106880, extHeapGoal 54689792 > hardGoal 2 * 16875520 = 33751040
    assert c.assistWorkPerByte.load() == (42106880 - 5242880) / (33751040 - 12582912)


def test_assist_ratio_past_goal_hand_computed():
    c = marking_controller()
    c.heapScan.store(10 * MiB)
    c.heapLive.store(20 * MiB)
    c.revise()
    # live > goal: goal*1.1 = 18563072 still below live, so heapRemaining = 1 and
    # the work is maxScanWork = 10649600.
    assert c.assistWorkPerByte.load() == 10649600.0
    c.heapLive.store(17 * MiB)
    c.revise()
    assert c.assistWorkPerByte.load() == 10649600 / (18563072 - 17825792)


def test_assist_ratio_floor_of_1000_work():
    c = marking_controller()
    c.heapScanWork.store(4292608)       # exactly the expected work: nothing left
    c.revise()
    assert c.assistWorkPerByte.load() == 1000 / 4292608


def test_end_cycle_cons_mark_hand_computed():
    c = marking_controller()
    c.markStartTime = 0
    c.assistTime.store(2_000_000)       # utilization 0.25 + 2e6/(1e7*4) = 0.30
    c.idleMarkTime.store(4_000_000)     # idle 0.10
    c.heapLive.store(16 * MiB)          # 4 MiB allocated since the trigger
    c.heapScanWork.store(8 * MiB)
    c.endCycle(10_000_000, 4)
    current = 4194304 * (0.30 + 0.10) / (8388608 * (1 - 0.30))
    assert c.lastHeapGoal == 16875520
    # PI controller from 0: output kp * current; integral kp/ti * current.
    assert c.consMark == pytest.approx(0.9 * current, rel=1e-12)
    assert c.consMarkController.errIntegral == pytest.approx(0.9 / 4.0 * current, rel=1e-12)
    c.resetLive(10 * MiB)
    c.commit(True)
    assert c.runway.load() == int(c.consMark * 0.75 / 0.25 * float(8 * MiB + 0 + 32 * KiB))


def test_end_cycle_ignores_cycle_without_allocation():
    c = marking_controller()
    c.heapScanWork.store(1 * MiB)
    c.endCycle(10_000_000, 4)           # heapLive == triggered
    assert c.consMark == 0.0 and c.lastHeapGoal == 16875520


@pytest.mark.parametrize("procs, dedicated, fractional", [
    (1, 0, 0.25), (2, 0, 0.25), (3, 0, 0.25), (4, 1, 0.0), (5, 1, 0.0), (6, 1, 0.5 / 6), (8, 2, 0.0), (16, 4, 0.0)])
def test_worker_utilization(procs, dedicated, fractional):
    """25% of GOMAXPROCS: whole dedicated workers, fractional ones when rounding is >30% off."""
    c = GCController()
    c.startCycle(0, procs)
    assert c.dedicatedMarkWorkersNeeded.load() == dedicated
    assert c.fractionalUtilizationGoal == pytest.approx(fractional, abs=1e-15)
    assert abs((dedicated + fractional * procs) / procs / 0.25 - 1) <= 0.3
    assert c.idleMarkWorkers.load() == (0, procs - dedicated)


def test_worker_modes_and_periodic_cycle():
    c = GCController()
    c.startCycle(0, 4, gcTriggerTime)
    assert c.idleMarkWorkers.load() == (0, 0)
    assert c.findRunnableGCWorker(0, 100) == gcMarkWorkerDedicatedMode
    assert c.findRunnableGCWorker(0, 100) == gcMarkWorkerNotWorker     # one dedicated, no fractional
    c.markWorkerStop(gcMarkWorkerDedicatedMode, 50)
    assert c.dedicatedMarkWorkersNeeded.load() == 1 and c.dedicatedMarkTime.load() == 50
    c.startCycle(1000, 2, gcTriggerTime)
    assert c.idleMarkWorkers.load() == (0, 1), "no dedicated worker: keep one idle worker"
    assert c.findRunnableGCWorker(0, 2000) == gcMarkWorkerFractionalMode
    assert c.findRunnableGCWorker(300, 2000) == gcMarkWorkerNotWorker   # 30% > 25% goal
    assert c.pollFractionalWorkerExit(250, 1900, 2000)                   # 350/1000 > 1.2*0.25
    assert not c.pollFractionalWorkerExit(0, 1900, 2000)
    c.startCycle(0, 8, gcstoptheworld=1)
    assert c.dedicatedMarkWorkersNeeded.load() == 8 and c.fractionalUtilizationGoal == 0
    with pytest.raises(Violation, match="unknown mark worker mode"):
        c.markWorkerStop(7, 1)


def test_idle_mark_worker_count():
    """TestIdleMarkWorkerCount."""
    workers = 10
    c = GCController()
    c.setMaxIdleMarkWorkers(workers)
    for _ in range(workers):
        assert c.needIdleMarkWorker() and c.addIdleMarkWorker()
    assert not c.needIdleMarkWorker() and not c.addIdleMarkWorker()
    for _ in range(workers):
        c.removeIdleMarkWorker()
        assert c.needIdleMarkWorker()
    for _ in range(workers - 1):
        assert c.addIdleMarkWorker()
    for _ in range(10):
        assert c.addIdleMarkWorker()
        assert not c.addIdleMarkWorker()
        c.removeIdleMarkWorker()
    c.setMaxIdleMarkWorkers(0)
    assert not c.needIdleMarkWorker() and not c.addIdleMarkWorker()
    for _ in range(workers - 1):
        c.removeIdleMarkWorker()
    assert not c.needIdleMarkWorker() and not c.addIdleMarkWorker()
    c.setMaxIdleMarkWorkers(1)
    assert c.needIdleMarkWorker() and c.addIdleMarkWorker()
    c.markWorkerStop(gcMarkWorkerIdleMode, 10)
    assert c.idleMarkTime.load() == 10 and c.idleMarkWorkers.load() == (0, 1)
    with pytest.raises(Violation, match="negative idle mark workers"):
        c.removeIdleMarkWorker()


# ---------------------------------------------------------------- update(), the allocator's entry

def test_update_adds_heap_scan_only_outside_marking():
    c = marking_controller()
    c.update(4096, 1024)
    assert c.heapLive.load() == 12 * MiB + 4096 and c.heapScan.load() == 1024
    assert c.assistWorkPerByte.load() == 0.0, "no revise while not marking"
    c.gcBlackenEnabled = 1
    c.update(8192, 512)
    assert c.heapScan.load() == 1024, "heapScan is fixed during a cycle"
    live = 12 * MiB + 4096 + 8192
    assert c.assistWorkPerByte.load() == 4292608 / (16875520 - live), "update revised the assist ratio"


def test_concurrent_updates_while_marking_lose_no_bytes():
    """update() from many threads while marking: heapLive is an exact sum (atomic
    adds), heapScan stays fixed, and the racing revise calls leave a sane ratio."""
    import threading
    c = marking_controller()
    c.gcBlackenEnabled = 1
    start = c.heapLive.load()

    def alloc():
        for _ in range(2000):
            c.update(8192, 4096)
    threads = [threading.Thread(target=alloc) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.heapLive.load() == start + 4 * 2000 * 8192
    assert c.heapScan.load() == 0
    c.revise()
    verify_pacer(c)


def test_start_cycle_records_trigger_not_heap_live():
    """1.19 records the computed trigger as triggered (golang/go#53738)."""
    c = GCController()
    trigger, _ = c.trigger()
    c.heapLive.store(trigger + 3 * MiB)
    c.startCycle(0, 4)
    assert c.triggered == trigger
    c.resetLive(1 * MiB)
    assert c.triggered == MAX_UINT64


# ---------------------------------------------------------------- the scavenger's goals

def test_gc_pace_scavenger_gc_percent_goal():
    # lastHeapInUse 10 MiB * (16/8) = 20 MiB, +10% = 22 MiB (page aligned already)
    g = gcPaceScavenger(MAX_INT64, 16 * MiB, 8 * MiB, mappedReady=30 * MiB, lastHeapInUse=10 * MiB,
                        heapRetained=30 * MiB, physPageSize=4096)
    assert g.gcPercentGoal == 22 * MiB and g.memoryLimitGoal == MAX_UINT64
    near = gcPaceScavenger(MAX_INT64, 16 * MiB, 8 * MiB, mappedReady=0, lastHeapInUse=10 * MiB,
                           heapRetained=22 * MiB + 4095, physPageSize=4096)
    assert near.gcPercentGoal == MAX_UINT64, "within one page of the goal: no work"
    first = gcPaceScavenger(MAX_INT64, 16 * MiB, 0, mappedReady=0, lastHeapInUse=0, heapRetained=1 << 40)
    assert first.gcPercentGoal == MAX_UINT64, "before the first cycle ends: no work"
    odd = gcPaceScavenger(MAX_INT64, 3, 2, mappedReady=0, lastHeapInUse=1000, heapRetained=1 << 30,
                          physPageSize=4096)
    assert odd.gcPercentGoal == 4096, "1500 + 150 rounds up to a page"


def test_gc_pace_scavenger_memory_limit_goal_has_go119_factor():
    """1.19 computes limit * 95 (golang/go#62449); Go's own output for 512 MiB is 51002736640."""
    g = gcPaceScavenger(512 * MiB, 16 * MiB, 8 * MiB, mappedReady=600 * MiB, lastHeapInUse=0, heapRetained=0)
    assert g.memoryLimitGoal == MAX_UINT64
    g = gcPaceScavenger(512 * MiB, 16 * MiB, 8 * MiB, mappedReady=51002736641, lastHeapInUse=0, heapRetained=0)
    assert g.memoryLimitGoal == 51002736640


def test_gc_controller_commit_passes_goals_to_scavenger():
    c = GCController(100)
    c.resetLive(8 * MiB)
    c.commit(True)
    c.lastHeapGoal = 8 * MiB
    c.lastHeapInUse = 10 * MiB
    c.heapInUse.store(10 * MiB)
    c.heapFree.store(40 * MiB)
    c.mappedReady.store(50 * MiB)
    res = c.gcControllerCommit(True, physPageSize=4096)
    assert (res.trigger, res.heapGoal) == c.trigger()
    assert res.heapGoal == 16 * MiB
    assert res.scavenge.gcPercentGoal == 22 * MiB


def test_sync_heap_stats_from_heap(heap):
    heap.malloc(100 * KiB, None)
    heap.flush_mcaches()
    c = heap.mheap.gcController
    c.syncHeapStats(heap.mheap.stats.snapshot())
    ms = heap.read_memstats()
    assert c.heapInUse.load() == ms["HeapInuse"]
    assert c.totalAlloc.load() - c.totalFree.load() == ms["HeapAlloc"] > 0
    assert c.mappedReady.load() == ms["HeapInuse"] + ms["HeapIdle"] - ms["HeapReleased"]
    verify_pacer(c)


# ---------------------------------------------------------------- Go's number semantics

@pytest.mark.parametrize("f, u, i", [
    # Printed by go1.19.8 linux/amd64 for uint64(f), int64(f).
    (-1.5, 18446744073709551615, -1), (-1e30, 9223372036854775808, -9223372036854775808), (0.7, 0, 0),
    (1e19, 10000000000000000000, -9223372036854775808), (1.9e19, 9223372036854775808, -9223372036854775808),
    (math.inf, 9223372036854775808, -9223372036854775808), (math.nan, 9223372036854775808, -9223372036854775808),
    (9.2e18, 9200000000000000000, 9200000000000000000)])
def test_float_conversions_match_go_amd64(f, u, i):
    assert pacer._f2u64(f) == u and pacer._f2i64(f) == i


@pytest.mark.parametrize("f, want", [
    # Printed by go1.19.8's println(float64).
    (0.005086263020833333, "+5.086263e-003"), (0.25, "+2.500000e-001"), (0.0, "+0.000000e+000"),
    (1.0, "+1.000000e+000"), (123456789.123, "+1.234568e+008"), (9.99999996, "+1.000000e+001"),
    (1e-300, "+1.000000e-300"), (-2.5e10, "-2.500000e+010"), (0.08333333333333333, "+8.333333e-002"),
    (math.nan, "NaN"), (-math.inf, "-Inf")])
def test_printfloat_matches_go_println(f, want):
    assert pacer.printfloat(f) == want


def test_gcpacertrace_lines():
    """GODEBUG=gcpacertrace=1's two lines, in Go 1.19's format."""
    lines: list[str] = []
    c = GCController()
    c.gcpacertrace = lines.append
    c.heapLive.store(c.trigger()[0])
    c.startCycle(0, 4)
    # No scan work expected yet: 1000 / (4194304 - 3997696) = 0.005086263...
    assert lines == ["pacer: assist ratio=+5.086263e-003 (scan 0 MB in 3->4 MB) workers=1++0.000000e+000"]
    c = marking_controller()
    c.gcpacertrace = lines.append
    c.assistTime.store(2_000_000)
    c.heapLive.store(16 * MiB)
    c.heapScanWork.store(8 * MiB)
    c.endCycle(10_000_000, 4)
    assert lines[-1] == ("pacer: 30% CPU (25 exp.) for 8388608+0+0 B work (4292608 B exp.) "
                         "in 12582912 B -> 16777216 B (\u2206goal -98304, cons/mark +0.000000e+000)")


def test_gogc_off_heap_minimum_wraps_like_go():
    # 4 MiB * uint64(-1) wraps to 2^64 - 4 MiB, then / 100.
    assert GCController(-1).heapMinimum == ((1 << 64) - (4 << 20)) // 100


@pytest.mark.parametrize("s, want", [("off", -1), ("100", 100), ("0", 0), ("-5", -5), ("-", 0), ("", 100),
                                     ("+5", 100), ("5x", 100), ("2147483648", 100)])
def test_read_gogc(s, want):
    assert readGOGC(s) == want


@pytest.mark.parametrize("s, want", [("", MAX_INT64), ("off", MAX_INT64), ("512MiB", 512 * MiB), ("10", 10),
                                     ("10B", 10), ("1KiB", 1024), ("2TiB", 2 << 40), ("-0", 0),
                                     ("9223372036854775807", MAX_INT64)])
def test_read_gomemlimit(s, want):
    assert readGOMEMLIMIT(s) == want


@pytest.mark.parametrize("s", ["1KB", "1iB", "B", "-5", "5Ki", "8EiB", "8388608TiB", "1 MiB"])
def test_read_gomemlimit_malformed(s):
    with pytest.raises(ValueError, match="malformed GOMEMLIMIT"):
        readGOMEMLIMIT(s)


# ---------------------------------------------------------------- properties

u64s = st.integers(min_value=0, max_value=1 << 44)


@settings(max_examples=300, deadline=None)
@given(heapMarked=u64s, gcPercent=st.integers(min_value=-1, max_value=2000),
       memoryLimit=st.one_of(st.just(MAX_INT64), st.integers(min_value=0, max_value=1 << 45)),
       consMark=st.floats(min_value=0, max_value=50), lastHeapScan=u64s, lastStackScan=u64s,
       globalsScan=st.integers(min_value=0, max_value=1 << 30), heapLive=u64s, sweepDone=st.booleans(),
       triggeredOffset=st.one_of(st.none(), u64s), nonHeap=st.integers(min_value=0, max_value=1 << 40))
def test_trigger_between_bounds_and_below_goal(heapMarked, gcPercent, memoryLimit, consMark, lastHeapScan,
                                               lastStackScan, globalsScan, heapLive, sweepDone, triggeredOffset,
                                               nonHeap):
    """For any pacer state: heapMarked <= goal; trigger <= goal; and when the
    GOGC goal wins and heapMarked < goal, the trigger sits between 45/64 of the
    runway and max(61/64 of it, goal - 4 MiB)."""
    c = GCController(gcPercent, memoryLimit)
    c.resetLive(heapMarked)
    c.heapLive.store(heapLive)
    c.lastHeapScan, c.lastStackScan = lastHeapScan, lastStackScan
    c.globalsScan.store(globalsScan)
    c.mappedReady.store(nonHeap)
    c.consMark = consMark
    c.commit(sweepDone)
    if triggeredOffset is not None:
        c.triggered = heapMarked + triggeredOffset
    trigger, goal = c.trigger()
    assert heapMarked <= goal and trigger <= goal
    if heapMarked < goal and goal == c.gcPercentHeapGoal.load():
        span = goal - heapMarked
        assert trigger >= heapMarked + span // 64 * 45
        assert trigger <= max(heapMarked + span // 64 * 61, goal - 4 * MiB, c.sweepDistMinTrigger.load())
    verify_pacer(c)


finite = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-300, max_value=1e300)


@settings(max_examples=200, deadline=None)
@given(kp=positive, ti=positive, tt=positive, lo=finite, hi=finite, setPoint=finite,
       inputs=st.lists(st.integers(min_value=0, max_value=MAX_UINT64), min_size=1, max_size=100))
def test_pi_controller_output_always_finite(kp, ti, tt, lo, hi, setPoint, inputs):
    """FuzzPIController: any finite parameters and any input bits give a finite output."""
    import struct
    if lo > hi:
        lo, hi = hi, lo
    p = piController(kp, ti, tt, lo, hi)
    for bits in inputs:
        x = struct.unpack("<d", struct.pack("<Q", bits))[0]
        out, _ = p.next(x, setPoint, 1.0)
        assert not (math.isinf(out) or math.isnan(out))


def test_pi_controller_resets_on_bad_input():
    p = piController(0.9, 4.0, 1000, -1000, 1000)
    p.next(0.0, 1.0, 1.0)
    assert p.errIntegral != 0
    assert p.next(math.nan, 1.0, 1.0) == (-1000, False)
    assert p.inputOverflow and p.errIntegral == 0


# ---------------------------------------------------------------- the checker

def _corrupt_gc_percent(c): c.gcPercent.store(-2)
def _corrupt_heap_minimum(c): c.heapMinimum += 1
def _corrupt_percent_goal(c): c.gcPercentHeapGoal.store(c.heapMinimum - 1)
def _corrupt_goal_below_marked(c): c.heapMarked = c.gcPercentHeapGoal.load() + 1; c.triggered = MAX_UINT64 - 1  # noqa: E702
def _corrupt_trigger(c):
    # A broken bound computation: trigger() clamps into it, verify_pacer recomputes the bounds.
    goal = c.heapGoal()
    c.triggerBounds = lambda: (goal - 1, goal - 1, goal)



def _corrupt_assist_ratio(c): c.gcBlackenEnabled = 1; c.assistWorkPerByte.store(-1.0)  # noqa: E702
def _corrupt_workers(c): c.dedicatedMarkWorkersNeeded.store(-1)
def _corrupt_idle_workers(c): c.idleMarkWorkers.store((-1, 4))
def _corrupt_heap_stats(c): c.heapFree.store(10); c.mappedReady.store(5)  # noqa: E702
def _corrupt_cons_mark(c): c.consMark = math.nan


CORRUPTIONS = {
    "pacer.gc_percent": _corrupt_gc_percent,
    "pacer.heap_minimum": _corrupt_heap_minimum,
    "pacer.percent_goal": _corrupt_percent_goal,
    "pacer.goal_below_marked": _corrupt_goal_below_marked,
    "pacer.trigger": _corrupt_trigger,
    "pacer.assist_ratio": _corrupt_assist_ratio,
    "pacer.workers": _corrupt_workers,
    "pacer.idle_workers": _corrupt_idle_workers,
    "pacer.heap_stats": _corrupt_heap_stats,
    "pacer.cons_mark": _corrupt_cons_mark,
}


def test_every_pacer_invariant_has_a_corruption_case():
    assert set(CORRUPTIONS) == set(PACER_INVARIANTS)


@pytest.mark.parametrize("invariant", PACER_INVARIANTS)
def test_verify_pacer_catches_corruption(invariant):
    c = GCController(100)
    c.resetLive(8 * MiB)
    c.commit(True)
    verify_pacer(c)
    CORRUPTIONS[invariant](c)
    with pytest.raises(Violation) as ei:
        verify_pacer(c)
    assert ei.value.invariant == invariant


def test_trigger_throws_go_text_when_above_goal(monkeypatch):
    c = GCController(100)
    monkeypatch.setattr(c, "triggerBounds", lambda: (5 * MiB, 5 * MiB, 4 * MiB))
    with pytest.raises(Violation, match="produced a trigger greater than the heap goal"):
        c.trigger()


# ---------------------------------------------------------------- a table for docs

def format_table(name: str) -> str:
    results, errs = run_scenario(scenarios()[name](), check=True)
    rows = [f"| cycle | GC CPU | heapMarked | trigger | peak heapLive | goal | goal ratio | trigger ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r.cycle} | {r.gcUtilization * 100:.1f}% | {r.heapLive} | {r.heapTrigger} | {r.heapPeak} "
                    f"| {r.heapGoal} | {r.goalRatio():.3f} | {r.triggerRatio():.3f} |")
    rows.append(f"\n{name}: {len(errs)} failed checks")
    return "\n".join(rows)


if __name__ == "__main__":
    print(format_table(sys.argv[1] if len(sys.argv) > 1 else "Steady"))
