"""mcache: a P's private cache of spans, one per span class (mcache.go).

Allocation from the cached span needs no lock; when it is full, refill hands
it back to its mcentral and takes another.  releaseAll returns every cached
span (when the P stops, for ReadMemStats, and before each sweep cycle), and
flushes the per-span allocation counts into the heap statistics exactly as
Go 1.19 does (allocCount - allocCountBeforeCache per uncached span).

Protection: every field is owned by the mcache's P; only that P's thread
touches them, except with the world stopped and while the P is stopped at a
safe point or borrowed by the collector (a stack scan reads `allocating`).
During mark a refill records where the span's new objects start
(MSpan.markFrom, allocate-black) and runs up assist debt (gcAssistBytes).
"""

from __future__ import annotations

from .mbitmap import heapBitsSetType, heapBitsSetTypeRecorded
from .mspan import make_emptymspan
from .sync import store_attr
from .sizeclasses import NUM_SPAN_CLASSES, TINY_SPAN_CLASS
from .trace import emit_heap_counter
from .check.violation import throw
from .gc.mark import gcmarknewobjects


class MCache:
    __slots__ = ("heap", "pid", "alloc", "tiny", "tinyoffset", "tinyAllocs",
                 "scanAlloc", "flushGen", "emptymspan", "nrefill", "gcAssistBytes", "markedBlack", "allocating",
                 "heapBitsSetType", "assistCharged", "allocBlack", "chargeAssist")

    def __init__(self, heap, pid: int = 0):
        self.heap = heap
        self.pid = pid
        self.emptymspan = make_emptymspan()
        self.alloc = [self.emptymspan] * NUM_SPAN_CLASSES
        self.tiny = 0          # base of the current 16-byte tiny block
        self.tinyoffset = 0
        self.tinyAllocs = 0
        self.scanAlloc = 0     # scannable bytes allocated since the last flush
        self.flushGen = heap.sweepgen
        self.nrefill = 0
        self.gcAssistBytes = 0  # assist credit in bytes, negative = debt (Go keeps it per G)
        self.markedBlack = 0    # bytes allocated black this cycle (gcmarknewobject)
        self.assistCharged = 0  # bytes of assist debt charged this cycle (>= markedBlack: the check)
        faults = heap.faults    # injected faults (concalloc/faults.py)
        self.allocBlack = "no-allocate-black" not in faults
        self.chargeAssist = "assist-debt-uncharged" not in faults
        self.allocating = 0     # the object a slow path is returning while the GC hook runs (a root)
        # mallocgc writes heap bits through this (set once): the recording
        # variant only when the heap keeps the heapcheck=2 type record.
        self.heapBitsSetType = heapBitsSetTypeRecorded if heap.recordTypes else heapBitsSetType

    def nextFree(self, spc: int):
        """Slow path: (address, span, refilled) for the next free slot of spc."""
        s = self.alloc[spc]
        refilled = False
        freeIndex = s.nextFreeIndex()
        if freeIndex == s.nelems:
            if s.allocCount != s.nelems:
                throw("mcache", f"s.allocCount != s.nelems && freeIndex == s.nelems: {s.describe()}")
            self.refill(spc)
            refilled = True
            s = self.alloc[spc]
            freeIndex = s.nextFreeIndex()
        if freeIndex >= s.nelems:
            throw("mcache", f"freeIndex is not valid: {freeIndex} of {s.describe()}")
        s.allocCount += 1
        if s.allocCount > s.nelems:
            throw("mcache", f"s.allocCount > s.nelems: {s.describe()}")
        return s.startAddr + freeIndex * s.elemsize, s, refilled

    def refill(self, spc: int) -> None:
        """Give back the full span of spc and cache one with free space."""
        h = self.heap
        s = self.alloc[spc]
        if s.allocCount != s.nelems:
            throw("mcache", f"refill of span with free space remaining: {s.describe()}")
        if s is not self.emptymspan:
            if s.sweepgen != h.sweepgen + 3:
                throw("mcache", f"bad sweepgen in refill: {s.describe()} mheap.sweepgen={h.sweepgen}")
            self._flush_span_stats(s, spc)
            if s.markFrom >= 0:
                self.markedBlack += gcmarknewobjects(s)
            h.central[spc].uncacheSpan(s)
            # s is no longer ours: if cacheSpan fails (out of memory) the
            # mcache must not keep holding it.
            self.alloc[spc] = self.emptymspan
        s = h.central[spc].cacheSpan()
        if s.allocCount == s.nelems:
            throw("mcache", f"span has no free space: {s.describe()}")
        store_attr(s, "sweepgen", h.sweepgen + 3)  # swept, then cached: the P owns it now
        s.allocCountBeforeCache = s.allocCount
        s.cachedBy = self.pid
        if h.gcphase:  # allocate-black: what this span hands out from here on is black
            if self.allocBlack:
                s.markFrom = s.freeindex
            if self.chargeAssist:
                debt = (s.nelems - s.allocCount) * s.elemsize
                self.gcAssistBytes -= debt
                self.assistCharged += debt
        self.alloc[spc] = s
        self.nrefill += 1
        if self.scanAlloc:  # Go flushes scanAlloc with refill's heapLive update
            h.gcController.update(0, self.scanAlloc)
            self.scanAlloc = 0
        rec = h.sync.events
        if rec:
            rec.emit("refill", spanclass=spc, span=s.startAddr)
            emit_heap_counter(rec, h.gcController, HeapInuse=h.stats.get("heapInUse"))

    def _flush_span_stats(self, s, spc: int) -> None:
        used = s.allocCount - s.allocCountBeforeCache
        tiny = 0
        if spc == TINY_SPAN_CLASS:
            tiny, self.tinyAllocs = self.tinyAllocs, 0
        if used or tiny:
            self.heap.stats.add_small_alloc(spc >> 1, used, tiny)
        s.allocCountBeforeCache = s.allocCount

    def releaseAll(self) -> None:
        """Return every cached span to its mcentral and drop the tiny block."""
        h = self.heap
        empty = self.emptymspan
        for spc in range(NUM_SPAN_CLASSES):
            s = self.alloc[spc]
            if s is not empty:
                self._flush_span_stats(s, spc)
                if s.markFrom >= 0:
                    self.markedBlack += gcmarknewobjects(s)
                self.alloc[spc] = empty
                h.central[spc].uncacheSpan(s)
        self.tiny = 0
        self.tinyoffset = 0
        if self.tinyAllocs:
            h.stats.add_small_alloc(0, 0, self.tinyAllocs)
            self.tinyAllocs = 0
        if self.scanAlloc:
            h.gcController.update(0, self.scanAlloc)
            self.scanAlloc = 0

    def prepareForSweep(self) -> None:
        """Flush the cache once per sweep cycle (mcache.prepareForSweep)."""
        sg = self.heap.sweepgen
        if self.flushGen == sg:
            return
        if self.flushGen != sg - 2:
            throw("mcache", f"bad flushGen {self.flushGen} in prepareForSweep; sweepgen {sg}")
        self.releaseAll()
        self.flushGen = sg

    def cached_spans(self) -> list:
        return [s for s in self.alloc if s is not self.emptymspan]

    def unflushed_allocs(self) -> tuple[list[int], int]:
        """Per-class slots allocated from cached spans not yet in the stats,
        and the unflushed tiny count (for checkers that must not flush)."""
        per = [0] * (NUM_SPAN_CLASSES >> 1)
        for s in self.cached_spans():
            per[s.spanclass >> 1] += s.allocCount - s.allocCountBeforeCache
        return per, self.tinyAllocs
