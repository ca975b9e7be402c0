"""gcController: the pacer's state (mgcpacer.go).

Interim pacer: the heap goal is GOGC's (heapMarked * (1 + GOGC/100), at
least heapMinimum), the trigger sits at 70% of the runway, and the assist
ratio spreads the remaining scan work over the remaining runway.  Go 1.19's
full pacer (cons/mark estimate, memory limit, trigger bounds) replaces it.

heapLive is counted in whole-span granularity exactly as Go counts it (a
span's free bytes are counted as allocated when an mcache takes the span,
corrected when it gives it back; a large object counts its whole pages).
"""

from __future__ import annotations

from ..sync import AtomicInt

HEAP_MINIMUM = 4 << 20
GC_GOAL_UTILIZATION = 0.25
MAX_INT64 = (1 << 63) - 1


class GCController:
    def __init__(self):
        self.heapLive = AtomicInt(0)   # atomic
        self.heapScan = AtomicInt(0)   # atomic
        self.heapMarked = 0            # world stopped
        self.gcPercent = 100           # world stopped
        self.memoryLimit = MAX_INT64   # world stopped
        self.heapScanWork = AtomicInt(0)
        self.stackScanWork = AtomicInt(0)
        self.globalsScanWork = AtomicInt(0)
        self.bgScanCredit = AtomicInt(0)
        self.assistWorkPerByte = 0.0   # written by revise (racy float reads are fine)
        self.assistBytesPerWork = 0.0
        self.maxStackScan = 0
        self.globalsScan = 0
        self.lastHeapScan = 0
        self.gcTrigger = HEAP_MINIMUM * 7 // 10
        self.blackenEnabled = False

    def init(self, gcPercent: int, memoryLimit: int = MAX_INT64) -> None:
        self.gcPercent = gcPercent
        self.memoryLimit = memoryLimit
        self.commit()

    def update(self, dHeapLive: int, dHeapScan: int = 0) -> None:
        if dHeapLive:
            self.heapLive.add(dHeapLive)
        if dHeapScan:
            self.heapScan.add(dHeapScan)

    def heapGoal(self) -> int:
        if self.gcPercent < 0:
            goal = MAX_INT64
        else:
            goal = self.heapMarked + (self.heapMarked + self.maxStackScan + self.globalsScan) * self.gcPercent // 100
            goal = max(goal, HEAP_MINIMUM * self.gcPercent // 100)
        return min(goal, self.memoryLimit)

    def commit(self) -> None:
        goal = self.heapGoal()
        if goal >= MAX_INT64:
            self.gcTrigger = MAX_INT64
        else:
            self.gcTrigger = self.heapMarked + (goal - self.heapMarked) * 7 // 10

    def trigger(self) -> tuple[int, int]:
        return self.gcTrigger, self.heapGoal()

    def test_heap_trigger(self) -> bool:
        return self.heapLive.load() >= self.gcTrigger

    def startCycle(self, markStartTime: int, procs: int) -> None:
        self.heapScanWork.store(0)
        self.stackScanWork.store(0)
        self.globalsScanWork.store(0)
        self.bgScanCredit.store(0)
        self.revise()

    def revise(self) -> None:
        goal = self.heapGoal()
        live = self.heapLive.load()
        scanExpected = max(self.lastHeapScan + self.maxStackScan + self.globalsScan, 1)
        work = self.heapScanWork.load() + self.stackScanWork.load() + self.globalsScanWork.load()
        remainWork = max(scanExpected - work, 1000)
        remainBytes = max(goal - live, 1)
        self.assistWorkPerByte = remainWork / remainBytes
        self.assistBytesPerWork = remainBytes / remainWork

    def endCycle(self, now: int, procs: int, userForced: bool) -> None:
        pass

    def resetLive(self, bytesMarked: int) -> None:
        self.heapMarked = bytesMarked
        self.lastHeapScan = self.heapScanWork.load()
        self.heapLive.store(bytesMarked)
        self.heapScan.add(self.heapScanWork.load() - self.heapScan.load())
