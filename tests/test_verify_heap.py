"""verify_heap against corruption: one healthy heap per case, verify()
passes, exactly one structure is corrupted, and verify() must name the
invariant that broke.  The table covers every invariant in
concalloc/check/heap.py (a test below reads the module to make sure) and
each of its failure branches that one corruption can reach."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import concalloc.check.heap as checkheap
from concalloc import Config, Heap
from concalloc import mbitmap
from concalloc.check import Violation
from concalloc.gc.sweep import SweepError
from concalloc.sync.atomic import STRIPES
from concalloc.memory import ptr_type
from concalloc.mspan import MSPAN_DEAD, MSPAN_IN_USE, MSpan
from concalloc.sizeclasses import PAGE_SIZE
from concalloc.sysmem import ARENA_BASE

from alloc_helpers import mark_addresses, span_of

T32 = ptr_type(4, name="verify_ptr4")
BIG = ptr_type(6000, [0, 5999], name="verify_big")


@dataclass
class Healthy:
    h: Heap
    full: MSpan        # 64 B noscan, full, uncached: on its mcentral's empty list
    cached: MSpan      # 64 B noscan, cached by P0 (on empty)
    p1: MSpan          # 48 B noscan, cached by P1
    partial: MSpan     # 128 B noscan, uncached with free slots: on nonempty
    s24: MSpan         # 24 B noscan (341 slots: padding bits in allocBits), cached by P0
    scan: MSpan        # 32 B scan, cached by P0
    tiny: MSpan        # the tiny-class span holding P0's current tiny block
    large: MSpan       # a large noscan object
    large_scan: MSpan  # a large scan object
    survivor: MSpan    # a large object that survived a sweep (freeindex 0, alloc bit set)

    @property
    def m(self):
        return self.h.mheap

    def central(self, s):
        return self.m.central[s.spanclass]

    def page(self, s) -> int:
        return (s.startAddr - ARENA_BASE) // PAGE_SIZE


def build_healthy() -> Healthy:
    h = Heap(Config(heapcheck=2), reserve_bytes=1 << 30, nprocs=4)   # 2: the heap bits' type record
    # One sweep first, so sweepgen is not 0 and the heap holds survivors.
    keep = [h.malloc(64) for _ in range(3)] + [h.malloc(100_000)]
    h.sweep_cycle(mark_addresses(h, keep))
    xs64 = [h.malloc(64) for _ in range(200)]
    p1 = [h.malloc(48, p=1) for _ in range(10)]
    part = [h.malloc(128, p=2) for _ in range(5)]
    h.mcaches[2].releaseAll()
    s24 = [h.malloc(24) for _ in range(3)]
    scan = [h.malloc(32, T32) for _ in range(3)]
    t = [h.malloc(5), h.malloc(5)]
    big = h.malloc(40000)
    bigscan = h.malloc(48000, BIG)
    full = span_of(h, keep[0])
    assert full.allocCount == full.nelems and full.cachedBy == -1
    hs = Healthy(h, full, span_of(h, xs64[-1]), span_of(h, p1[0]), span_of(h, part[0]),
                 span_of(h, s24[0]), span_of(h, scan[0]), span_of(h, t[0]),
                 span_of(h, big), span_of(h, bigscan), span_of(h, keep[3]))
    assert hs.cached.cachedBy == 0 and hs.p1.cachedBy == 1 and hs.partial.cachedBy == -1
    assert hs.partial in hs.central(hs.partial).nonempty
    assert h.mcaches[0].tiny == t[0]
    assert hs.survivor.freeindex == 0 and hs.survivor.allocBits[0] == 1
    assert h.mheap.pages.scav[_free_page(hs)] == 1
    return hs


def _free_page(k: Healthy) -> int:
    i = k.m.pages.inuse.find(0)
    assert i >= 0
    return i


def _phantom_on_list(k: Healthy):
    """An in-use span on a central list that the heap never allocated."""
    s = MSpan()
    s.init(ARENA_BASE + _free_page(k) * PAGE_SIZE, 1, k.cached.spanclass)
    s.state = MSPAN_IN_USE
    s.sweepgen = k.m.sweepgen
    k.central(k.cached).nonempty.insert(s)


def _phantom_in_lookup(k: Healthy):
    """The page -> span lookup of a free page names an in-use span that
    covers it, though the heap never allocated one there."""
    page = _free_page(k)
    s = MSpan()
    s.init(ARENA_BASE + page * PAGE_SIZE, 1, k.cached.spanclass)
    s.state = MSPAN_IN_USE
    k.m.arenas[0].spans[page] = s


def _swap_byclass_counts(k: Healthy):
    # 8 + 48 == 24 + 32 bytes and two objects either way: only BySize can tell.
    c = k.m.stats.smallAllocCount
    c[1] += 1
    c[5] += 1
    c[3] -= 1
    c[4] -= 1


def _move(src, s, dst):
    """Move s between mcentral lists behind the mcentral's back."""
    src.remove(s)
    dst.insertBack(s)


def _flip_bit(span_fn, word, bit):
    """Flip one heap-bitmap bit of word `word` of the span's first object."""
    def corrupt(k):
        s = span_fn(k)
        bm, w = mbitmap._bitmap_for(s, s.startAddr + 8 * word)
        bm[w >> 2] ^= bit << (w & 3)
    return corrupt


def _set(obj, attr, value_fn):
    return lambda k: setattr(obj(k), attr, value_fn(k))


# (case id, invariant, text the message must contain, corruption)
CASES = [
    # spans.disjoint
    ("allspans-dead", "spans.disjoint", "not in use", lambda k: setattr(k.large, "state", MSPAN_DEAD)),
    ("span-outside-heap", "spans.disjoint", "outside the mapped heap",
     lambda k: setattr(k.large, "startAddr", k.m.curArenaEnd)),
    ("spans-overlap", "spans.disjoint", "spans overlap",
     lambda k: setattr(k.p1, "startAddr", k.cached.startAddr)),
    ("page-inuse-no-span", "spans.disjoint", "in use but in no span",
     lambda k: k.m.pages.inuse.__setitem__(_free_page(k), 1)),
    ("span-page-free", "spans.disjoint", "inside a span but free",
     lambda k: k.m.pages.inuse.__setitem__(k.page(k.cached), 0)),
    ("search-addr-too-high", "spans.disjoint", "searchAddr",
     lambda k: setattr(k.m.pages, "searchAddr", k.m.pages.npages())),
    # spans.lookup
    ("lookup-missing", "spans.lookup", "does not cover an in-use page",
     lambda k: k.m.arenas[0].spans.__setitem__(k.page(k.cached), None)),
    ("lookup-wrong-span", "spans.lookup", "does not cover an in-use page",
     lambda k: k.m.arenas[0].spans.__setitem__(k.page(k.large) + 1, k.cached)),
    ("lookup-free-page-in-use", "spans.lookup", "the page is free", _phantom_in_lookup),
    ("pageinuse-bit-cleared", "spans.lookup", "pageInUse",
     lambda k: k.m.arenas[0].pageInUse.__setitem__(k.page(k.cached) >> 3,
                                                   k.m.arenas[0].pageInUse[k.page(k.cached) >> 3]
                                                   ^ (1 << (k.page(k.cached) & 7)))),
    ("pageinuse-bit-inside-span", "spans.lookup", "pageInUse",
     lambda k: k.m.arenas[0].pageInUse.__setitem__((k.page(k.large) + 1) >> 3,
                                                   k.m.arenas[0].pageInUse[(k.page(k.large) + 1) >> 3]
                                                   | (1 << ((k.page(k.large) + 1) & 7)))),
    # spans.one_place
    ("cached-by-two-ps", "spans.one_place", "cached by P0 and P1",
     lambda k: k.h.mcaches[1].alloc.__setitem__(k.cached.spanclass, k.cached)),
    ("cached-in-wrong-slot", "spans.one_place", "caches a wrong span",
     lambda k: k.h.mcaches[3].alloc.__setitem__(k.cached.spanclass ^ 1, k.partial)),
    ("cached-by-mismatch", "spans.one_place", "caches a wrong span", _set(lambda k: k.cached, "cachedBy", lambda k: 3)),
    ("on-two-lists", "spans.one_place", "has list=",
     lambda k: (setattr(k.partial, "list", None), k.central(k.partial).empty.insertBack(k.partial))),
    ("list-link-wrong", "spans.one_place", "has list=",
     _set(lambda k: k.partial, "list", lambda k: k.central(k.partial).empty)),
    ("large-on-a-list", "spans.one_place", "large span on an mcentral list",
     _set(lambda k: k.large, "list", lambda k: k.central(k.partial).empty)),
    ("small-on-no-list", "spans.one_place", "on no mcentral list",
     lambda k: k.central(k.partial).nonempty.remove(k.partial)),
    ("cached-on-nonempty", "spans.one_place", "not on its mcentral's empty list",
     lambda k: _move(k.central(k.cached).empty, k.cached, k.central(k.cached).nonempty)),
    ("claims-cached", "spans.one_place", "which does not hold it",
     _set(lambda k: k.partial, "cachedBy", lambda k: 2)),
    ("phantom-listed", "spans.one_place", "does not have in use", _phantom_on_list),
    ("list-prev-link-broken", "spans.one_place", "links",
     lambda k: _move(k.central(k.full).empty, k.full, k.central(k.full).nonempty)
     or setattr(k.full, "prev", k.full)),
    ("list-count-wrong", "spans.one_place", "links",
     lambda k: setattr(k.central(k.partial).nonempty, "n", k.central(k.partial).nonempty.n + 1)),
    # spans.sweepgen
    ("sweepgen-out-of-range", "spans.sweepgen", "sweepgen",
     _set(lambda k: k.partial, "sweepgen", lambda k: k.m.sweepgen + 2)),
    ("being-swept-outside-sweep", "spans.sweepgen", "sweepgen",
     _set(lambda k: k.full, "sweepgen", lambda k: k.m.sweepgen - 1)),
    ("cached-looks-uncached", "spans.sweepgen", "span cached but sweepgen",
     _set(lambda k: k.cached, "sweepgen", lambda k: k.m.sweepgen)),
    ("uncached-looks-cached", "spans.sweepgen", "span not cached but sweepgen",
     _set(lambda k: k.partial, "sweepgen", lambda k: k.m.sweepgen + 3)),
    # spans.lists
    ("full-on-nonempty", "spans.lists", "nonempty has no free slot",
     lambda k: _move(k.central(k.full).empty, k.full, k.central(k.full).nonempty)),
    ("partial-on-empty", "spans.lists", "empty has free slots",
     lambda k: _move(k.central(k.partial).nonempty, k.partial, k.central(k.partial).empty)),
    # span.alloc_count
    ("allocbit-past-nelems", "span.alloc_count", "past nelems",
     lambda k: k.s24.allocBits.__setitem__(len(k.s24.allocBits) - 1, 0x80)),
    ("freeindex-past-nelems", "span.alloc_count", "freeindex",
     _set(lambda k: k.partial, "freeindex", lambda k: k.partial.nelems + 1)),
    ("alloccount-too-high", "span.alloc_count", "allocCount",
     _set(lambda k: k.partial, "allocCount", lambda k: k.partial.allocCount + 1)),
    ("alloccount-too-low-large", "span.alloc_count", "allocCount",
     _set(lambda k: k.large, "allocCount", lambda k: 0)),
    ("allocbit-lost", "span.alloc_count", "allocCount",   # a survivor's bit: freeindex is 0 after sweep
     lambda k: k.survivor.allocBits.__setitem__(0, k.survivor.allocBits[0] & 0xFE)),
    # span.alloc_cache
    ("alloccache-bit-flipped", "span.alloc_cache", "allocCache",
     _set(lambda k: k.cached, "allocCache", lambda k: k.cached.allocCache ^ 1)),
    ("alloccache-of-uncached", "span.alloc_cache", "allocCache",
     _set(lambda k: k.partial, "allocCache", lambda k: k.partial.allocCache >> 1)),
    # span.mark_lock
    ("marklock-stale", "span.mark_lock", "gcmarkLock",
     _set(lambda k: k.partial, "gcmarkLock",
          lambda k: next(lk for lk in STRIPES if lk is not k.partial.gcmarkLock))),
    # span.geometry
    ("elemsize-misaligned", "span.geometry", "elemsize", _set(lambda k: k.partial, "elemsize", lambda k: 20)),
    ("small-limit", "span.geometry", "limit", _set(lambda k: k.partial, "limit", lambda k: k.partial.limit + 8)),
    ("large-limit", "span.geometry", "large span limit",
     _set(lambda k: k.large, "limit", lambda k: k.large.startAddr + k.large.elemsize + 8)),
    ("objects-past-pages", "span.geometry", "past the span's pages", _set(lambda k: k.large, "nelems", lambda k: 2)),
    # heap.accounting
    ("page-inuse-and-released", "heap.accounting", "both in use and released",
     lambda k: k.m.pages.scav.__setitem__(k.page(k.cached), 1)),
    ("released-page-forgotten", "heap.accounting", "HeapReleased",
     lambda k: k.m.pages.scav.__setitem__(_free_page(k), 0)),
    ("heapinuse", "heap.accounting", "HeapInuse", lambda k: k.m.stats.add(heapInUse=PAGE_SIZE)),
    ("pagesinuse", "heap.accounting", "pagesInUse", lambda k: k.m.stats.add(pagesInUse=1)),
    ("heapreleased", "heap.accounting", "HeapReleased", lambda k: k.m.stats.add(heapReleased=PAGE_SIZE)),
    ("heapfree", "heap.accounting", "heapFree", lambda k: k.m.stats.add(heapFree=-PAGE_SIZE)),
    ("heapsys", "heap.accounting", "HeapSys",
     _set(lambda k: k.m, "curArenaEnd", lambda k: k.m.curArenaEnd + (4 << 20))),
    ("os-ready", "heap.accounting", "sysmem Ready", lambda k: k.m.sysmem.state.add(ready=PAGE_SIZE)),
    ("os-prepared", "heap.accounting", "sysmem Prepared", lambda k: k.m.sysmem.state.add(prepared=-PAGE_SIZE)),
    ("os-reserved", "heap.accounting", "sysmem Reserved", lambda k: k.m.sysmem.state.add(reserved=PAGE_SIZE)),
    # heap.objects
    ("heapalloc", "heap.objects", "HeapAlloc", lambda k: k.m.stats.add(largeAlloc=PAGE_SIZE)),
    ("unflushed-count", "heap.objects", "HeapAlloc",
     _set(lambda k: k.cached, "allocCountBeforeCache", lambda k: k.cached.allocCountBeforeCache - 1)),
    ("heapobjects", "heap.objects", "HeapObjects", lambda k: k.m.stats.add(largeAllocCount=1)),
    ("small-free-lost", "heap.objects", "HeapAlloc",
     lambda k: k.m.stats.add_small_free(k.partial.spanclass >> 1, -1)),
    ("bysize", "heap.objects", "BySize", _swap_byclass_counts),
    # mcache.tiny
    ("tinyoffset", "mcache.tiny", "tinyoffset", _set(lambda k: k.h.mcaches[0], "tinyoffset", lambda k: 17)),
    ("tinyallocs-negative", "mcache.tiny", "tinyAllocs", _set(lambda k: k.h.mcaches[0], "tinyAllocs", lambda k: -1)),
    ("tiny-misaligned", "mcache.tiny", "not a 16-byte slot",
     _set(lambda k: k.h.mcaches[0], "tiny", lambda k: k.h.mcaches[0].tiny + 8)),
    ("tiny-in-other-class", "mcache.tiny", "not a 16-byte slot",
     _set(lambda k: k.h.mcaches[0], "tiny", lambda k: k.cached.startAddr)),
    ("tiny-outside-heap", "mcache.tiny", "not a 16-byte slot",
     _set(lambda k: k.h.mcaches[0], "tiny", lambda k: k.m.curArenaEnd - 16)),
    ("tiny-free-slot", "mcache.tiny", "free slot",
     _set(lambda k: k.h.mcaches[1], "tiny", lambda k: k.tiny.startAddr + 16 * (k.tiny.nelems - 1))),
    # span.heap_bits
    ("heapbits-pointer-without-scan", "span.heap_bits", "word 1 has its pointer bit set but its scan bit clear",
     _flip_bit(lambda k: k.scan, 1, mbitmap.BIT_SCAN)),
    ("heapbits-last-pointer-cleared", "span.heap_bits", "word 5999 has its scan bit set but no pointer",
     _flip_bit(lambda k: k.large_scan, 5999, mbitmap.BIT_POINTER)),
    ("heapbits-pointer-on-scalar", "span.heap_bits", "word 1's pointer bit is 1, its type says 0",
     _flip_bit(lambda k: k.large_scan, 1, mbitmap.BIT_POINTER)),
    ("heapbits-wrong-bitmap", "span.heap_bits", "not those of the arenas",
     _set(lambda k: k.scan, "heapBits", lambda k: bytearray(len(k.scan.heapBits)))),
    # sweep.state
    ("sweeper-in-flight", "sweep.state", "sweepers in flight", lambda k: k.m.sweep.active.state.add(1)),
    ("unswept-after-done", "sweep.state", "sweep is done",
     _set(lambda k: k.partial, "sweepgen", lambda k: k.m.sweepgen - 2)),
    ("unswept-span-lost", "sweep.state", "not in the unswept queues",
     lambda k: (k.m.sweep.active.state.store(0), setattr(k.partial, "sweepgen", k.m.sweepgen - 2))),
]


@pytest.fixture
def healthy():
    k = build_healthy()
    try:
        yield k
    finally:
        k.h.close()


def test_healthy_heap_verifies(healthy):
    healthy.h.verify()
    healthy.h.read_memstats()
    healthy.h.verify()


@pytest.mark.parametrize("invariant,needle,corrupt", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_corruption_is_caught(healthy, invariant, needle, corrupt):
    healthy.h.verify()
    for c in healthy.m.central:      # the corruption bypasses the locks on purpose: no ownership check
        c.nonempty.guard = c.empty.guard = None
    corrupt(healthy)
    with pytest.raises(Violation) as ei:
        healthy.h.verify()
    v = ei.value
    assert v.invariant == invariant, str(v)
    assert needle in v.message, str(v)
    text = str(v)
    assert text.startswith(f"invariant violated: {invariant}")
    assert "replay:" in text


def _invariants_in_checker() -> set[str]:
    src = Path(checkheap.__file__).read_text()
    return set(re.findall(r'_fail\(\s*"([a-z_]+\.[a-z_]+)"', src))


def test_every_invariant_has_a_case():
    named = _invariants_in_checker()
    assert len(named) >= 11
    covered = {c[1] for c in CASES}
    assert named - covered == set(), f"invariants with no corruption case: {sorted(named - covered)}"
    assert covered - named == set(), f"cases for invariants the checker does not have: {sorted(covered - named)}"


def test_every_check_runs():
    """Every check function the module defines is in INVARIANTS (a check that
    is written but never called cannot fail)."""
    defined = {name for name in vars(checkheap) if name.startswith("check_")}
    listed = {fn.__name__ for _name, fn in checkheap.INVARIANTS}
    assert defined == listed


# ---------------------------------------------------------------- sweep's own checks

def test_sweep_mark_on_free_slot_is_pointer_to_free_object(heap):
    xs = [heap.malloc(64) for _ in range(3)]
    s = span_of(heap, xs[0])

    def mark(span):
        if span is s:
            span.setMarked(0)
            span.setMarked(10)      # never allocated
    with pytest.raises(SweepError, match="found pointer to free object"):
        heap.sweep_cycle(mark)


def test_sweep_mark_on_freed_slot_behind_freeindex_is_caught_next_time(heap):
    xs = [heap.malloc(64) for _ in range(5)]
    heap.sweep_cycle(mark_addresses(heap, xs[:2]))   # slots 2..4 freed; freeindex back to 0
    s = span_of(heap, xs[0])

    def mark(span):
        if span is s:
            span.setMarked(0)
            span.setMarked(3)
    with pytest.raises(SweepError, match="found pointer to free object"):
        heap.sweep_cycle(mark)


def test_sweep_increased_allocation_count(heap):
    xs = [heap.malloc(64) for _ in range(3)]
    s = span_of(heap, xs[0])
    heap.flush_mcaches()
    s.allocCount = 1                 # three slots allocated and marked, one counted

    def mark(span):
        if span is s:
            for i in range(3):
                span.setMarked(i)
    with pytest.raises(SweepError, match="sweep increased allocation count"):
        heap.sweep_cycle(mark)


def test_sweep_bad_span_state(heap):
    from concalloc.gc.sweep import sweepLocked
    x = heap.malloc(64)
    s = span_of(heap, x)
    heap.flush_mcaches()
    with pytest.raises(SweepError, match="bad span state"):
        sweepLocked(heap.mheap, s).sweep(False)   # not acquired: sweepgen is h, not h-1
