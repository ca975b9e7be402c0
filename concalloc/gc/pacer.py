"""gcController: the pacer's state (mgcpacer.go).

For now it carries what the allocator feeds it: heapLive, in whole-span
granularity exactly as Go counts it (a span's free bytes are counted as
allocated when an mcache takes the span, corrected when it gives it back;
a large object counts its whole pages), and heapScan.  heapMarked is set at
mark termination with the world stopped.
"""

from __future__ import annotations

from ..sync import AtomicInt


class GCController:
    def __init__(self):
        self.heapLive = AtomicInt(0)   # atomic
        self.heapScan = AtomicInt(0)   # atomic
        self.heapMarked = 0            # world stopped

    def update(self, dHeapLive: int, dHeapScan: int = 0) -> None:
        if dHeapLive:
            self.heapLive.add(dHeapLive)
        if dHeapScan:
            self.heapScan.add(dHeapScan)
