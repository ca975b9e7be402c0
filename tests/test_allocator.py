"""Allocator unit tests: needzero, large objects, heapLive, MemStats,
spanOf/findObject, the locked mcentral and the page allocator's first fit."""

from __future__ import annotations

import pytest

from concalloc import Config, Heap
from concalloc.check import Violation
from concalloc.gc import sweep as gcsweep
from concalloc.malloc import ZEROBASE
from concalloc.memory import ptr_type
from concalloc.mheap import BadPointer
from concalloc.mspan import MSPAN_DEAD, MSPAN_IN_USE
from concalloc.sizeclasses import PAGE_SIZE, size_to_class
from concalloc.sysmem import ARENA_BASE

from alloc_helpers import mark_addresses, span_of

GARBAGE = b"\xde\xad\xbe\xef" * 2
NODE = ptr_type(8, name="alloc_node8")      # 64 bytes, all pointers
BIGNODE = ptr_type(5000, [0, 4999], name="alloc_node5000")  # 40000 bytes, large


def heap_live(h) -> int:
    return h.mheap.gcController.heapLive.load()


def fill(h, addr, n):
    h.mheap.sysmem.write_bytes(addr, (GARBAGE * (n // 8 + 1))[:n])


def is_zero(h, addr, n) -> bool:
    return h.mheap.sysmem.read_bytes(addr, n) == bytes(n)


# ---------------------------------------------------------------- needzero

def test_fresh_pages_are_not_cleared(heap):
    x = heap.malloc(64)
    s = span_of(heap, x)
    assert s.needzero == 0
    assert is_zero(heap, s.startAddr, s.npages * PAGE_SIZE)
    y = heap.malloc(100_000)
    assert span_of(heap, y).needzero == 0


@pytest.mark.parametrize("typ", [None, NODE], ids=["noscan", "scan"])
def test_reused_dirty_slot_is_zeroed(heap, typ):
    xs = [heap.malloc(64, typ) for _ in range(10)]
    for x in xs:
        fill(heap, x, 64)
    keep = xs[0]
    heap.sweep_cycle(mark_addresses(heap, [keep]))   # slots 1..9 are free and dirty
    s = span_of(heap, keep)
    assert s.needzero == 1 and s.allocCount == 1
    y = heap.malloc(64, typ)
    assert y == xs[1]                                  # the lowest free slot, reused
    assert is_zero(heap, y, 64)
    assert heap.mheap.sysmem.read_bytes(keep, 8) == GARBAGE  # the survivor is untouched
    heap.verify()


def test_dirty_slot_survives_without_needzero(heap):
    """The clearing is conditional: with needzero=False a dirty noscan slot
    comes back as it was (the test above would pass vacuously otherwise)."""
    xs = [heap.malloc(64) for _ in range(4)]
    for x in xs:
        fill(heap, x, 64)
    heap.sweep_cycle(mark_addresses(heap, xs[:1]))
    y = heap.malloc(64, needzero=False)
    assert y == xs[1]
    assert heap.mheap.sysmem.read_bytes(y, 8) == GARBAGE


def test_reused_pages_of_a_freed_span_are_zeroed(heap):
    xs = [heap.malloc(64) for _ in range(20)]
    for x in xs:
        fill(heap, x, 64)
    s = span_of(heap, xs[0])
    heap.sweep_cycle()                                 # the span empties: back to the heap
    assert s.state == MSPAN_DEAD
    y = heap.malloc(64)
    s2 = span_of(heap, y)
    assert s2 is not s and s2.startAddr == s.startAddr  # same pages
    assert s2.needzero == 1                            # below the arena's zeroedBase
    assert all(is_zero(heap, z, 64) for z in [y] + [heap.malloc(64) for _ in range(19)])


def test_reused_large_pages_are_zeroed(heap):
    x = heap.malloc(40000)
    fill(heap, x, 40000)
    heap.sweep_cycle()
    y = heap.malloc(40000, BIGNODE)
    assert y == x and span_of(heap, y).needzero == 1
    assert is_zero(heap, y, 40000)
    z = heap.malloc(12000)   # pages 5-6: never used before, so still zero from the OS
    assert span_of(heap, z).needzero == 0


def test_tiny_block_is_zeroed(heap):
    xs = [heap.malloc(16) for _ in range(8)]   # class 2 noscan slots, the tiny class
    for x in xs:
        fill(heap, x, 16)
    heap.sweep_cycle(mark_addresses(heap, xs[:1]))
    t = heap.malloc(3)
    assert t == xs[1] and is_zero(heap, t, 16)


# ---------------------------------------------------------------- large objects

@pytest.mark.parametrize("size,typ,spc", [(32769, None, 1), (40000, BIGNODE, 0), (1 << 20, None, 1)])
def test_large_object_has_its_own_span(heap, size, typ, spc):
    a = heap.malloc(size, typ)
    b = heap.malloc(size, typ)
    for x in (a, b):
        s = span_of(heap, x)
        assert s.startAddr == x
        assert s.spanclass == spc
        assert s.npages == -(-size // PAGE_SIZE)
        assert s.elemsize == s.npages * PAGE_SIZE
        assert s.nelems == 1 and s.allocCount == 1
        assert s.limit == x + size
        assert s.list is None
        assert all(heap.mheap.spanOf(x + i * PAGE_SIZE) is s for i in range(s.npages))
    assert span_of(heap, a) is not span_of(heap, b)
    heap.verify()


def test_large_object_freed_by_sweep(heap):
    a = heap.malloc(100_000)
    b = heap.malloc(100_000)
    sa, sb = span_of(heap, a), span_of(heap, b)
    heap.sweep_cycle(mark_addresses(heap, [b]))
    assert sa.state == MSPAN_DEAD and sa not in heap.mheap.allspans
    assert sb.state == MSPAN_IN_USE and sb.allocCount == 1
    ms = heap.read_memstats()
    assert ms["Mallocs"] == 2 and ms["Frees"] == 1
    assert ms["HeapAlloc"] == sb.elemsize
    assert ms["HeapInuse"] == sb.npages * PAGE_SIZE
    heap.verify()


# ---------------------------------------------------------------- heapLive

def test_heaplive_counts_whole_span_on_refill(heap):
    assert heap_live(heap) == 0
    heap.malloc(64)
    assert heap_live(heap) == PAGE_SIZE            # 128 slots of 64 B, all counted
    for _ in range(127):
        heap.malloc(64)                            # no refill: no change
    assert heap_live(heap) == PAGE_SIZE
    heap.malloc(64)                                # refill: the full span is uncached...
    assert heap_live(heap) == 2 * PAGE_SIZE        # ...(nothing to correct) and a new one counted


def test_heaplive_release_corrects_unused_slots(heap):
    for _ in range(10):
        heap.malloc(64)
    heap.mcaches[0].releaseAll()
    assert heap_live(heap) == 10 * 64              # 8192 - 118 unused slots * 64


def test_heaplive_refill_of_partly_used_span(heap):
    xs = [heap.malloc(64) for _ in range(10)]
    heap.sweep_cycle(mark_addresses(heap, xs[:3]))  # flushes: heapLive = 640; sweeping lowers nothing
    assert heap_live(heap) == 640
    heap.malloc(64)
    assert heap_live(heap) == 640 + PAGE_SIZE - 3 * 64


def test_heaplive_large_adds_whole_pages(heap):
    heap.malloc(40000)
    assert heap_live(heap) == 5 * PAGE_SIZE
    heap.sweep_cycle()
    assert heap_live(heap) == 5 * PAGE_SIZE        # frees do not lower heapLive between GCs


def test_heaplive_release_skips_stale_spans(heap):
    h = heap.mheap
    for _ in range(10):
        heap.malloc(64)
    live = heap_live(heap)
    gcsweep.gcSweep(h, heap.mcaches)                   # the cached span is now stale (h+1)
    heap.mcaches[0].prepareForSweep()              # uncaches it: swept, not corrected
    assert heap_live(heap) == live
    gcsweep.finishsweep_m(h)
    heap.verify()


def test_heaplive_unchanged_by_zero_and_tiny_in_block(heap):
    heap.malloc(1)
    live = heap_live(heap)
    heap.malloc(0)
    heap.malloc(2)
    heap.malloc(4)
    assert heap_live(heap) == live


# ---------------------------------------------------------------- MemStats

def test_memstats_identities_and_exact_counts(heap):
    for _ in range(10):
        heap.malloc(64)
    for _ in range(10):
        heap.malloc(1)       # one 16-byte block, then 9 more in it (10 bytes)
    heap.malloc(40000)
    heap.malloc(0)
    ms = heap.read_memstats()
    assert ms["HeapSys"] == ms["HeapIdle"] + ms["HeapInuse"]
    assert ms["HeapObjects"] == ms["Mallocs"] - ms["Frees"]
    assert ms["Mallocs"] == 10 + 10 + 1       # tiny allocs count in Mallocs...
    assert ms["Frees"] == 9                   # ...and in Frees (all but the block)
    assert ms["HeapObjects"] == 12
    assert ms["HeapAlloc"] == 10 * 64 + 16 + 5 * PAGE_SIZE
    assert ms["TotalAlloc"] == ms["HeapAlloc"]
    assert ms["HeapInuse"] == (1 + 1 + 5) * PAGE_SIZE   # 64-B span, tiny span, large span
    assert ms["BySize"][size_to_class(64)]["Mallocs"] == 10
    assert ms["BySize"][2]["Mallocs"] == 1

    heap.sweep_cycle()
    ms = heap.read_memstats()
    assert ms["HeapObjects"] == 0 and ms["HeapAlloc"] == 0 and ms["HeapInuse"] == 0
    assert ms["Frees"] == ms["Mallocs"] == 21
    assert ms["HeapSys"] == ms["HeapIdle"] + ms["HeapInuse"]
    assert ms["NumGC"] == 1
    heap.verify()


def test_memstats_released_after_scavenge(heap):
    heap.malloc(1 << 20)
    heap.sweep_cycle()
    ms0 = heap.read_memstats()
    released = heap.scavenge()
    ms = heap.read_memstats()
    assert released >= 1 << 20
    assert ms["HeapReleased"] == ms0["HeapReleased"] + released
    assert ms["HeapSys"] == ms0["HeapSys"] == ms["HeapIdle"] + ms["HeapInuse"]
    heap.verify()


# ---------------------------------------------------------------- spanOf / findObject

def test_find_object_base_and_interior(heap):
    h = heap.mheap
    xs = [heap.malloc(64) for _ in range(5)]
    s = span_of(heap, xs[0])
    for i, x in enumerate(xs):
        for off in (0, 1, 8, 63):
            assert h.findObject(x + off) == (x, s, i)
    big = heap.malloc(100_000)
    bs = span_of(heap, big)
    for off in (0, 8, PAGE_SIZE, 99_999):
        assert h.spanOf(big + off) is bs
        assert h.findObject(big + off) == (big, bs, 0)


def test_find_object_bad_pointer_into_freed_span(heap):
    h = heap.mheap
    big = heap.malloc(100_000)
    heap.sweep_cycle()
    assert h.spanOf(big) is not None and h.spanOf(big).state == MSPAN_DEAD
    with pytest.raises(BadPointer, match="found bad pointer in Go heap") as ei:
        h.findObject(big + 16, refBase=0xC000001000, refOff=8)
    assert isinstance(ei.value, Violation) and ei.value.invariant == "heap.bad_pointer"
    assert ei.value.address == big + 16 and "*(0xc000001000+0x8)" in ei.value.message


def test_bad_pointer_ends_a_run_with_exit_1():
    """Go's badPointer is a throw: a Violation, exit code 1."""
    from concalloc.runtime import EXIT_VIOLATION, Runtime

    class FindFreed:
        def slots(self, cfg):
            return 1

        def run(self, m, cfg):
            x = m.alloc(24)
            h = m.rt.heap.mheap
            h.findObject(h.spanOf(x).limit)       # the tail past the span's last slot

    with Runtime(Config(procs=1, steps=10, reserve_bytes=1 << 30), workload=FindFreed()) as rt:
        res = rt.run()
    assert res.exit_code == EXIT_VIOLATION and res.violations[0]["invariant"] == "heap.bad_pointer"


def test_find_object_bad_pointer_past_limit(heap):
    h = heap.mheap
    x = heap.malloc(24)             # class 3: 341 slots, 8 bytes of tail
    s = span_of(heap, x)
    with pytest.raises(BadPointer, match="found bad pointer in Go heap"):
        h.findObject(s.limit)
    big = heap.malloc(40000)
    with pytest.raises(BadPointer):
        h.findObject(big + 40000)   # past the object, inside its last page


def test_find_object_invalidptr_off(heaps):
    h = Heap(Config(invalidptr=False), reserve_bytes=1 << 30)
    heaps.append(h)
    big = h.malloc(100_000)
    h.sweep_cycle()
    assert h.mheap.findObject(big + 16) == (0, None, 0)


@pytest.mark.parametrize("p", [0, 0x1000, ZEROBASE, ARENA_BASE - 1, ARENA_BASE + (1 << 40)])
def test_find_object_outside_heap(heap, p):
    heap.malloc(64)
    assert heap.mheap.spanOf(p) is None
    assert heap.mheap.findObject(p) == (0, None, 0)


def test_find_object_never_used_page(heap):
    heap.malloc(64)
    p = ARENA_BASE + 100 * PAGE_SIZE      # mapped (the heap grows by 4 MiB) but never a span
    assert heap.mheap.spanOf(p) is None
    assert heap.mheap.findObject(p) == (0, None, 0)


# ---------------------------------------------------------------- the locked mcentral

def _central(h, x):
    s = span_of(h, x)
    return s, h.mheap.central[s.spanclass]


def test_cache_span_sweeps_unswept_span_on_nonempty(heap):
    h = heap.mheap
    xs = [heap.malloc(64) for _ in range(10)]
    heap.flush_mcaches()
    s, central = _central(heap, xs[0])
    assert s in central.nonempty
    for i in range(5):
        s.setMarked(i)
    gcsweep.gcSweep(h, heap.mcaches)
    sg = h.sweepgen
    assert s.sweepgen == sg - 2
    y = heap.malloc(64)                 # refill: cacheSpan finds s, sweeps it, uses it
    assert span_of(heap, y) is s
    assert y == s.startAddr + 5 * 64    # the first slot the sweep freed
    assert s.sweepgen == sg + 3 and s.allocCount == 6
    assert s in central.empty           # cached spans sit on empty
    assert h.stats.snapshot()["smallFreeCount"][size_to_class(64)] == 5
    gcsweep.finishsweep_m(h)
    heap.verify()


def test_cache_span_sweeps_unswept_span_on_empty(heap):
    h = heap.mheap
    xs = [heap.malloc(64) for _ in range(128)]   # exactly one full span
    heap.flush_mcaches()
    s, central = _central(heap, xs[0])
    assert s in central.empty and not central.nonempty
    for i in range(0, 128, 2):
        s.setMarked(i)
    gcsweep.gcSweep(h, heap.mcaches)
    y = heap.malloc(64)
    assert span_of(heap, y) is s and y == s.startAddr + 64   # slot 1, freed by the sweep
    assert s.sweepgen == h.sweepgen + 3 and s.allocCount == 65
    gcsweep.finishsweep_m(h)
    heap.verify()


def test_cache_span_retries_when_sweep_frees_nothing(heap):
    h = heap.mheap
    xs = [heap.malloc(64) for _ in range(128)]
    heap.flush_mcaches()
    s, central = _central(heap, xs[0])
    for i in range(128):
        s.setMarked(i)
    gcsweep.gcSweep(h, heap.mcaches)
    y = heap.malloc(64)
    assert span_of(heap, y) is not s            # still full after the sweep: grow
    assert s.sweepgen == h.sweepgen and s in central.empty and s.allocCount == 128
    gcsweep.finishsweep_m(h)
    heap.verify()


def test_stale_cached_span_swept_when_uncached(heap):
    h = heap.mheap
    xs = [heap.malloc(64) for _ in range(10)]
    s, central = _central(heap, xs[0])
    for i in range(3):
        s.setMarked(i)
    gcsweep.gcSweep(h, heap.mcaches)                # without flushing: s goes stale
    sg = h.sweepgen
    assert s.sweepgen == sg + 1
    heap.verify()                               # stale and cached is a legal state
    heap.mcaches[0].prepareForSweep()
    assert heap.mcaches[0].flushGen == sg
    assert s.sweepgen == sg and s.allocCount == 3 and s.freeindex == 0
    assert s in central.nonempty
    gcsweep.finishsweep_m(h)
    heap.verify()
    assert heap.read_memstats()["HeapObjects"] == 3


def test_emptied_span_goes_back_to_heap(heap):
    h = heap.mheap
    xs = [heap.malloc(64) for _ in range(10)]
    s, central = _central(heap, xs[0])
    first_page = (s.startAddr - ARENA_BASE) // PAGE_SIZE
    heap.sweep_cycle()
    assert s.state == MSPAN_DEAD and s not in h.allspans and s.list is None
    assert s not in central.nonempty and s not in central.empty
    assert h.pages.inuse[first_page] == 0
    assert heap.read_memstats()["HeapInuse"] == 0
    heap.verify()


def test_uncached_partial_span_is_reused_before_growing(heap):
    xs = [heap.malloc(64, p=1) for _ in range(10)]
    heap.mcaches[1].releaseAll()
    y = heap.malloc(64, p=2)                    # another P picks up the partial span
    assert span_of(heap, y) is span_of(heap, xs[0]) and y == xs[-1] + 64
    assert len(heap.mheap.allspans) == 1
    heap.verify()


# ---------------------------------------------------------------- first fit

def test_lowest_address_first_fit(heap):
    a = heap.malloc(3 * PAGE_SIZE)
    b = heap.malloc(3 * PAGE_SIZE)
    c = heap.malloc(3 * PAGE_SIZE)
    assert (a, b, c) == (ARENA_BASE, ARENA_BASE + 3 * PAGE_SIZE, ARENA_BASE + 6 * PAGE_SIZE)
    heap.sweep_cycle(mark_addresses(heap, [b, c]))   # frees a's pages, the lowest
    x = heap.malloc(64)
    assert span_of(heap, x).startAddr == ARENA_BASE        # a one-page span in the lowest page
    d = heap.malloc(2 * PAGE_SIZE)
    assert d == ARENA_BASE + PAGE_SIZE                     # the rest of the hole
    e = heap.malloc(2 * PAGE_SIZE)
    assert e == ARENA_BASE + 9 * PAGE_SIZE                 # no hole left below c's end
    heap.sweep_cycle(mark_addresses(heap, [x, c, e]))      # frees d and b: pages 1..5
    f = heap.malloc(5 * PAGE_SIZE)
    assert f == ARENA_BASE + PAGE_SIZE                     # coalesced
    heap.verify()


def test_first_fit_across_growth(heaps):
    h = Heap(reserve_bytes=1 << 30)
    heaps.append(h)
    a = h.malloc(4 << 20)                 # exactly one 4 MiB growth step
    b = h.malloc(1 << 20)
    h.sweep_cycle(mark_addresses(h, [b]))
    x = h.malloc(2 << 20)
    assert x == a                         # back into the hole at the bottom
    h.verify()


# ---------------------------------------------------------------- heapScan

T32 = ptr_type(4, name="alloc_ptr4")   # 32 bytes: class 4, 256 slots per span


def heap_scan(h) -> int:
    return h.mheap.gcController.heapScan.load()


def test_heapscan_flushed_at_refill(heap):
    """mcache.refill hands scanAlloc to gcController.update with the span's
    heapLive delta and clears it (Go 1.19 mcache.refill)."""
    for _ in range(256):
        heap.malloc(32, T32)
    assert heap_scan(heap) == 0                    # still in the mcache's scanAlloc
    heap.malloc(32, T32)                           # refill: the 256 objects' bytes are flushed
    assert heap_scan(heap) == 256 * 32
    assert heap.mcaches[0].scanAlloc == 32
    heap.mcaches[0].releaseAll()
    assert heap_scan(heap) == 257 * 32 and heap.mcaches[0].scanAlloc == 0


def test_heapscan_noscan_adds_nothing(heap):
    for _ in range(300):
        heap.malloc(32)
    heap.malloc(5)
    heap.flush_mcaches()
    assert heap_scan(heap) == 0


def test_cache_off_scan_allocation_counts_scan_bytes(heap):
    from concalloc.malloc import mallocgc_nocache
    c = heap.mcaches[0]
    before = c.scanAlloc
    mallocgc_nocache(c, 64, ptr_type(8))
    assert c.scanAlloc - before == 64
