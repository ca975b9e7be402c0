"""mheap: pages, spans and arenas (mheap.go, mpagealloc.go, malloc.go).

The heap hands out runs of 8 KiB pages.  Memory comes from the reservation in
sysmem: the heap grows by mapping 4 MiB-aligned steps of it (sysMap, pages
start free and released) and keeps a heapArena record per 64 MiB arena with
the page -> span lookup, so spanOf(addr) is two list indexes for any address,
interior pointers included.

The page allocator is address-ordered first fit, as Go's radix-tree
allocator picks: a bytearray with one byte per page (0 free, 1 in use) and a
second one marking released (scavenged) pages; the lowest run of n free pages
is ``inuse.find(bytes(n), searchAddr)``.  Freed pages coalesce by
construction.

Before the heap grows, alloc runs the span reclaimer (reclaim): while a
cycle's sweep is not done it sweeps in-use spans that hold no marked object
(pageInUse &^ pageMarks, 512 pages per claimed chunk) until as many pages as
the allocation needs have come back, so freed spans are reused before new
pages are mapped.  allocSpan then scavenges synchronously toward the memory
limit and the retained-heap goal (gc/scavenge.py scavenge_for_alloc).

Protection: mheap.lock (rank MHEAP) guards the page bitmaps, the arena list,
curArena, allspans, the spans lookup writes and the heapInUse/heapFree/
heapReleased accounting.  sweepgen changes only with the world stopped.
Reading the spans lookup (spanOf) takes no lock, as in Go: entries are
single stores and callers check the span's state and bounds.  The sweep
and reclaim fields state their protection where they are set up.
"""

from __future__ import annotations

from .check.violation import Violation, throw
from .mbitmap import HEAP_ARENA_BITMAP_BYTES, initSpan
from .mcentral import MCentral
from .mspan import MSPAN_DEAD, MSPAN_IN_USE, MSpan
from .mstats import HeapStats
from .gc.pacer import GCController
from .gc.scavenge import scavengeGoals, scavengerState, scavenge_for_alloc
from .gc.sweep import isSweepDone, sweepdata
from .sizeclasses import NUM_SPAN_CLASSES
from .sync import AtomicInt, Hold, Rank, SyncContext
from .sysmem import (ARENA_BASE, HEAP_ARENA_SHIFT, PAGE_SHIFT, PAGE_SIZE,
                     PAGES_PER_ARENA, OutOfMemory, SysMem)

PALLOC_CHUNK_PAGES = 512  # growth unit: 4 MiB
PAGES_PER_RECLAIMER_CHUNK = 512  # pagesPerReclaimerChunk: pages one reclaim claim scans
RECLAIM_DONE = 1 << 63           # reclaimIndex once every arena has been scanned
_ONE = b"\x01"


class BadPointer(Violation):
    """Go's badPointer throw: "found bad pointer in Go heap (incorrect use of
    unsafe or cgo?)" (invariant heap.bad_pointer, exit code 1)."""

    def __init__(self, message: str, *, address: int | None = None, span=None, **kw):
        super().__init__("heap.bad_pointer", message, address=address, span=span, **kw)

    def __reduce__(self):
        return (_rebuild_bad_pointer, (self.message, self.replay))


def _rebuild_bad_pointer(message, replay):
    return BadPointer(message, replay=replay)


class HeapArena:
    """Metadata of one 64 MiB arena (heapArena in mheap.go)."""

    __slots__ = ("base", "bitmap", "spans", "pageInUse", "pageMarks", "zeroedBase")

    def __init__(self, base: int):
        self.base = base
        self.bitmap = bytearray(HEAP_ARENA_BITMAP_BYTES)  # 2 bits per word: mbitmap.py (its protection)
        self.spans: list = [None] * PAGES_PER_ARENA   # page -> *mspan (stale for free pages)
        self.pageInUse = bytearray(PAGES_PER_ARENA // 8)  # bit per span *start* page
        self.pageMarks = bytearray(PAGES_PER_ARENA // 8)
        self.zeroedBase = 0  # bytes from base known to have been used (below: may be dirty)


class PageAlloc:
    """Address-ordered first-fit page allocator.  Guarded by mheap.lock."""

    def __init__(self):
        self.inuse = bytearray()   # one byte per mapped page: 1 = allocated
        self.scav = bytearray()    # one byte per mapped page: 1 = released to the OS
        self.searchAddr = 0        # no free page below this page index
        self._zeros: dict[int, bytes] = {}

    def npages(self) -> int:
        return len(self.inuse)

    def grow(self, npages: int) -> None:
        """New pages are free and scavenged (sysMap leaves them Prepared)."""
        self.inuse.extend(bytes(npages))
        self.scav.extend(b"\x01" * npages)

    def alloc(self, npages: int) -> tuple[int, int]:
        """Return (first page index, scavenged pages in the run) or (-1, 0)."""
        z = self._zeros.get(npages)
        if z is None:
            z = self._zeros[npages] = bytes(npages)
        i = self.inuse.find(z, self.searchAddr)
        if i < 0:
            return -1, 0
        end = i + npages
        self.inuse[i:end] = b"\x01" * npages
        scav = self.scav.count(_ONE, i, end)
        if scav:
            self.scav[i:end] = z
        if i == self.searchAddr:
            nxt = self.inuse.find(0, end)
            self.searchAddr = nxt if nxt >= 0 else len(self.inuse)
        return i, scav

    def free(self, i: int, npages: int) -> None:
        self.inuse[i:i + npages] = bytes(npages)
        if i < self.searchAddr:
            self.searchAddr = i


class MHeap:
    def __init__(self, sync: SyncContext | None = None, reserve_bytes: int = 64 << 30,
                 sysmem: SysMem | None = None):
        self.sync = sync or SyncContext()
        self.sysmem = sysmem or SysMem(reserve_bytes)
        self.lock = self.sync.mutex("mheap", Rank.MHEAP)
        self.pages = PageAlloc()            # mheap.lock
        self.arenas: list[HeapArena] = []   # mheap.lock to append; index = arena number
        self.curArenaEnd = ARENA_BASE       # mheap.lock: end of the mapped heap
        self.allspans: dict[MSpan, None] = {}  # in-use spans; mheap.lock
        self.sweepgen = 0                   # world stopped
        self.gcphase = 0                    # world stopped: the collector's phase (0 off, 1 mark, 2 marktermination)
        self.stats = HeapStats()            # atomic helper (pagesInUse, pagesSwept too)
        # Sweeping (gc/sweep.py).  sweep: its own protections (atomics, events).
        self.sweep = sweepdata(self)
        # Proportional sweep, set by gcPaceSweeper (world stopped or mheap.lock);
        # deductSweepCredit reads them racily and may store 0.0 to the rate, as Go.
        self.sweepPagesPerByte = 0.0
        self.sweepHeapLiveBasis = 0
        self.pagesSweptBasis = AtomicInt(0)  # atomic; written last by gcPaceSweeper
        # The span reclaimer: claims chunks with reclaimIndex, banks spare pages
        # in reclaimCredit (both atomic); sweepArenas is the arena count at the
        # flip (world stopped).
        self.reclaimIndex = AtomicInt(0)
        self.reclaimCredit = AtomicInt(0)
        self.sweepArenas = 0
        self.lastHeapInUse = 0              # world stopped: heapInUse at the last gcSweep
        # Scavenging (gc/scavenge.py): goals (atomics) and bgscavenge's state.
        self.scavenge = scavengeGoals()
        self.scavenger = scavengerState(self)
        self.gcController = GCController()  # atomic fields
        self.invalidptr = True              # GODEBUG invalidptr=1
        self.recordTypes = False            # heapcheck=2: the debug type record (mbitmap); set before use
        self.faults = frozenset()           # injected faults (concalloc/faults.py); set before use
        # Hooks the collector binds (None: no GC).  Set before Ps start.
        self.on_refill = None               # called after an mcache refill (trigger test)
        self.on_large_alloc = None          # called after a large allocation
        self.central = [MCentral(self, spc) for spc in range(NUM_SPAN_CLASSES)]

    # --- address -> span ---
    def spanOf(self, p: int) -> MSpan | None:
        ai = (p - ARENA_BASE) >> HEAP_ARENA_SHIFT
        if p < ARENA_BASE or ai >= len(self.arenas):
            return None
        return self.arenas[ai].spans[(p >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1)]

    def spanOfHeap(self, p: int) -> MSpan | None:
        s = self.spanOf(p)
        if s is None or s.state != MSPAN_IN_USE or p < s.startAddr or p >= s.limit:
            return None
        return s

    def findObject(self, p: int, refBase: int = 0, refOff: int = 0):
        """(object base, span, object index) for a heap pointer, or (0, None, 0).

        A pointer into the heap's pages that is not inside an allocated span's
        object area is a bad pointer (GODEBUG=invalidptr=1, the default)."""
        s = self.spanOf(p)
        if s is None:
            return 0, None, 0
        if s.state != MSPAN_IN_USE or p < s.startAddr or p >= s.limit:
            if self.invalidptr:
                raise BadPointer(
                    f"runtime: pointer {p:#x} to unallocated span; found in object at "
                    f"*({refBase:#x}+{refOff:#x}): "
                    "found bad pointer in Go heap (incorrect use of unsafe or cgo?)", address=p, span=s)
            return 0, None, 0
        idx = s.objIndex(p)
        return s.startAddr + idx * s.elemsize, s, idx

    # --- growth ---
    def grow(self, npage: int) -> int:
        """Map more of the reservation (mheap.lock held); returns the bytes mapped."""
        ask_pages = -(-npage // PALLOC_CHUNK_PAGES) * PALLOC_CHUNK_PAGES
        nbytes = ask_pages << PAGE_SHIFT
        base = self.curArenaEnd
        if base + nbytes > self.sysmem.end:
            inuse = self.stats.get("heapInUse")
            raise OutOfMemory(f"runtime: out of memory: cannot allocate {npage << PAGE_SHIFT}-byte block "
                              f"({inuse} in use): the {self.sysmem.reserve_bytes >> 20} MiB reservation "
                              "is exhausted (raise reserve_bytes)")
        self.sysmem.sysMap(base, nbytes)
        self.curArenaEnd = base + nbytes
        while (len(self.arenas) << HEAP_ARENA_SHIFT) + ARENA_BASE < self.curArenaEnd:
            self.arenas.append(HeapArena(ARENA_BASE + (len(self.arenas) << HEAP_ARENA_SHIFT)))
        self.pages.grow(ask_pages)
        self.stats.add(heapReleased=nbytes)
        return nbytes

    # --- span allocation ---
    def allocSpan(self, npages: int, spanclass: int) -> MSpan:
        if npages <= 0:
            raise ValueError(f"allocSpan of {npages} pages")
        growth = 0
        with self.lock:
            i, scav = self.pages.alloc(npages)
            if i < 0:
                growth = self.grow(npages)
                i, scav = self.pages.alloc(npages)
                if i < 0:
                    throw("mheap", "grew heap, but no adequate free space found")
            base = ARENA_BASE + (i << PAGE_SHIFT)
            nbytes = npages << PAGE_SHIFT
            s = MSpan()
            s.init(base, npages, spanclass)
            s.needzero = int(self.allocNeedsZero(base, npages))
            s.sweepgen = self.sweepgen
            s.state = MSPAN_IN_USE
            self.setSpans(base, npages, s)
            self._set_page_bit(base, True)
            self.allspans[s] = None
            if scav:
                self.sysmem.sysUsed(base, scav << PAGE_SHIFT)
            self.stats.add(heapReleased=-(scav << PAGE_SHIFT),
                           heapFree=-(nbytes - (scav << PAGE_SHIFT)),
                           heapInUse=nbytes, pagesInUse=npages)
        if growth or self.scavenge.memoryLimit.load() < (1 << 63) - 1:
            scavenge_for_alloc(self, scav << PAGE_SHIFT, growth)
        initSpan(self, s)   # as Go's mcentral.grow / allocLarge: no object exists yet
        return s

    def freeSpan(self, s: MSpan) -> None:
        with self.lock:
            self.freeSpanLocked(s)

    def freeSpanLocked(self, s: MSpan) -> None:
        if s.state != MSPAN_IN_USE or s.allocCount != 0 or s.sweepgen != self.sweepgen:
            throw("mheap", 
                f"mheap.freeSpanLocked - span {s.startAddr:#x} allocCount {s.allocCount} "
                f"sweepgen {s.sweepgen}/{self.sweepgen}: mheap.freeSpanLocked - invalid free")
        nbytes = s.npages << PAGE_SHIFT
        self._set_page_bit(s.startAddr, False)
        self.pages.free((s.startAddr - ARENA_BASE) >> PAGE_SHIFT, s.npages)
        s.state = MSPAN_DEAD
        del self.allspans[s]
        self.stats.add(heapFree=nbytes, heapInUse=-nbytes, pagesInUse=-s.npages)

    def allocNeedsZero(self, base: int, npages: int) -> bool:
        """Go's zeroedBase watermark: pages above it were never handed out,
        so they are still zero from the OS (mheap.lock held)."""
        needzero = False
        p, end = base, base + (npages << PAGE_SHIFT)
        while p < end:
            ha = self.arenas[(p - ARENA_BASE) >> HEAP_ARENA_SHIFT]
            arena_end = ha.base + (1 << HEAP_ARENA_SHIFT)
            stop = min(end, arena_end)
            if p - ha.base < ha.zeroedBase:
                needzero = True
            if stop - ha.base > ha.zeroedBase:
                ha.zeroedBase = stop - ha.base
            p = stop
        return needzero

    def setSpans(self, base: int, npages: int, s: MSpan | None) -> None:
        page = (base - ARENA_BASE) >> PAGE_SHIFT
        end = page + npages
        while page < end:
            ai, off = divmod(page, PAGES_PER_ARENA)
            n = min(end - page, PAGES_PER_ARENA - off)
            self.arenas[ai].spans[off:off + n] = [s] * n
            page += n

    def setPageMark(self, base: int) -> None:
        """Mark the span starting at base as holding a marked object (world
        stopped: gcSweep derives pageMarks from the mark bits)."""
        page = (base - ARENA_BASE) >> PAGE_SHIFT
        ai, off = divmod(page, PAGES_PER_ARENA)
        self.arenas[ai].pageMarks[off >> 3] |= 1 << (off & 7)

    def _set_page_bit(self, base: int, on: bool) -> None:
        page = (base - ARENA_BASE) >> PAGE_SHIFT
        ai, off = divmod(page, PAGES_PER_ARENA)
        bits = self.arenas[ai].pageInUse
        if on:
            bits[off >> 3] |= 1 << (off & 7)
        else:
            bits[off >> 3] &= ~(1 << (off & 7)) & 0xFF

    # --- what mcentral and large allocation call ---
    def alloc(self, npages: int, spanclass: int) -> MSpan:
        """mheap_.alloc: a fresh span; while sweeping is not done, first
        sweep and reclaim at least npages, so the heap grows only if
        sweeping could not free enough."""
        if not isSweepDone(self):
            self.reclaim(npages)
        return self.allocSpan(npages, spanclass)

    # --- the span reclaimer ---
    def reclaim(self, npage: int) -> None:
        """Sweep and free spans with no marked object until npage pages have
        come back to the heap (or every arena was scanned).  Pages freed by
        other sweepers count first (reclaimCredit).  mheap.lock not held; it
        is taken at the first chunk and held across chunks, except while
        reclaimChunk sweeps a span (a Hold: unwinding from that sweep
        neither takes it back nor releases it)."""
        if self.reclaimIndex.load() >= RECLAIM_DONE:
            return
        arenas = self.sweepArenas
        npage, idx = self._reclaimNextChunk(npage, arenas)
        if idx < 0:
            return
        with Hold(self.lock) as hold:
            while idx >= 0:
                nfound = self.reclaimChunk(idx, PAGES_PER_RECLAIMER_CHUNK, hold)
                if nfound <= npage:
                    npage -= nfound
                else:
                    self.reclaimCredit.add(nfound - npage)
                    npage = 0
                npage, idx = self._reclaimNextChunk(npage, arenas)

    def _reclaimNextChunk(self, npage: int, arenas: int) -> tuple[int, int]:
        """Pay what reclaimCredit can of npage, then claim the next chunk:
        (pages still needed, the chunk's first page index), or index -1 when
        nothing is needed or every arena has been claimed."""
        while npage > 0:
            credit = self.reclaimCredit.load()
            if credit > 0:
                take = min(credit, npage)
                if self.reclaimCredit.cas(credit, credit - take):
                    npage -= take
                continue
            idx = self.reclaimIndex.add(PAGES_PER_RECLAIMER_CHUNK) - PAGES_PER_RECLAIMER_CHUNK
            if idx // PAGES_PER_ARENA >= arenas:
                self.reclaimIndex.store(RECLAIM_DONE)
                return npage, -1
            return npage, idx
        return npage, -1

    def reclaimChunk(self, pageIdx: int, n: int, hold: Hold) -> int:
        """Sweep the unmarked in-use spans that start in pages [pageIdx,
        pageIdx+n); returns the pages freed.  Called with mheap.lock held
        (`hold`); drops it around each sweep (sweeping takes mcentral locks,
        which rank below)."""
        with self.sweep.active.begin() as sl:      # its exit is sweep.active.end, unwinding too
            if not sl.valid:
                return 0
            nfreed = 0
            while n > 0:
                ha = self.arenas[pageIdx // PAGES_PER_ARENA]
                arenaPage = pageIdx % PAGES_PER_ARENA
                lo = arenaPage >> 3
                hi = min(lo + (n >> 3), len(ha.pageInUse))
                inUse, marked = ha.pageInUse, ha.pageMarks
                for i in range(lo, hi):
                    inUseUnmarked = inUse[i] & ~marked[i]
                    if not inUseUnmarked:
                        continue
                    for j in range(8):
                        if inUseUnmarked & (1 << j):
                            s = ha.spans[(i << 3) + j]
                            ss = sl.tryAcquire(s)
                            if ss is not None:
                                npages = s.npages
                                with hold.dropped():
                                    if ss.sweep(False):
                                        nfreed += npages
                                # spans nearby may have been freed meanwhile: reload
                                inUseUnmarked = inUse[i] & ~marked[i]
                pageIdx += (hi - lo) << 3
                n -= (hi - lo) << 3
        return nfreed

    def close(self) -> None:
        self.sysmem.close()
