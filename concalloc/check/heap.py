"""verify_heap: every allocator invariant, recomputed from scratch.

Run with the world stopped (or single-threaded).  Each check below is one
named invariant; the first one that fails raises a Violation naming it,
with Go's own error text where Go has one.  Nothing here trusts a counter
it can recount from the structures themselves.

    spans.disjoint        in-use spans never overlap; they cover exactly the
                          pages the page allocator marks in use
    spans.lookup          the per-arena page -> span lookup agrees with the
                          span ranges for every mapped page; pageInUse marks
                          exactly the start pages of in-use spans
    spans.one_place       every small in-use span is on exactly one list of
                          its own mcentral and cached by at most one mcache
                          (a cached span sits on `empty`); large spans are on
                          no list; no dead span is reachable
    spans.sweepgen        sweepgen is one of h-2, h, h+1, h+3 and agrees with
                          being cached (h-1 only while a sweep is running)
    spans.lists           swept spans on nonempty have a free slot; swept
                          uncached spans on empty have none
    span.alloc_count      allocCount == freeindex + popcount(allocBits at and
                          after freeindex); no bit set past nelems
    span.alloc_cache      allocCache is the complement of allocBits from freeindex
    span.mark_lock        gcmarkLock is the striped lock or8 takes for
                          gcmarkBits (scanobject sets mark bits under it)
    span.geometry         page-aligned base, limit = base + nelems*elemsize
                          within the span, objects 8-byte aligned
    heap.accounting       HeapInuse, heapFree, HeapReleased, HeapSys agree with
                          the pages; OS memory states agree with them
    heap.objects          HeapAlloc, HeapObjects (Mallocs - Frees, by
                          definition) and each BySize class agree with the
                          allocated slots (mcaches' unflushed counts
                          included, nothing flushed)
    mcache.tiny           each P's tiny block is an allocated 16-byte slot of a
                          tiny-class span, tinyoffset <= 16
    span.heap_bits        a scan span points at its arenas' bitmaps, and every
                          allocated object's heap bits have Go 1.19's shape:
                          word 0's scan bit set, no pointer bit without its
                          scan bit, scan bits set up to the last pointer word
                          and clear from there to the object's end.  With the
                          heapcheck=2 type record (mbitmap), each object's
                          bits equal its type's exactly
    sweep.state           no sweeper in flight (sweep.active); once the cycle's
                          sweep is done no span needs sweeping; before that,
                          every uncached span that needs sweeping is still on
                          an unswept queue (none was lost)
"""

from __future__ import annotations

from ..mbitmap import array_bits, bitmap_bytes, object_bits, object_words, recorded_type
from ..mspan import MASK64, MSPAN_IN_USE
from ..mstats import memstats_from
from ..sizeclasses import NUM_SIZE_CLASSES, TINY_SIZE, TINY_SPAN_CLASS, class_to_size
from ..sysmem import ARENA_BASE, HEAP_ARENA_SHIFT, PAGE_SHIFT, PAGE_SIZE, PAGES_PER_ARENA
from ..sync.atomic import _stripe
from .violation import Violation


def _fail(invariant: str, message: str, **kw):
    raise Violation(invariant, message, **kw)


def check_spans_disjoint(heap) -> None:
    h = heap.mheap
    covered = bytearray(h.pages.npages())
    for s in h.allspans:
        if s.state != MSPAN_IN_USE:
            _fail("spans.disjoint", f"span in allspans is not in use: {s.describe()}", span=s)
        first = (s.startAddr - ARENA_BASE) >> PAGE_SHIFT
        if first < 0 or first + s.npages > len(covered):
            _fail("spans.disjoint", "span outside the mapped heap", span=s, address=s.startAddr)
        if covered.find(1, first, first + s.npages) >= 0:
            _fail("spans.disjoint", "spans overlap", span=s, address=s.startAddr)
        covered[first:first + s.npages] = b"\x01" * s.npages
    if covered != h.pages.inuse:
        i = next(i for i, (a, b) in enumerate(zip(covered, h.pages.inuse)) if a != b)
        what = "in use but in no span" if h.pages.inuse[i] else "inside a span but free"
        _fail("spans.disjoint", f"page {i} is {what}", address=ARENA_BASE + (i << PAGE_SHIFT))
    first_free = h.pages.inuse.find(0)
    if first_free >= 0 and h.pages.searchAddr > first_free:
        _fail("spans.disjoint", f"page allocator searchAddr {h.pages.searchAddr} is above free page {first_free}")


def check_spans_lookup(heap) -> None:
    h = heap.mheap
    inuse = h.pages.inuse
    for ai, ha in enumerate(h.arenas):
        starts = bytearray(PAGES_PER_ARENA // 8)
        for off, s in enumerate(ha.spans):
            page = ai * PAGES_PER_ARENA + off
            addr = ARENA_BASE + (page << PAGE_SHIFT)
            covers = s is not None and s.state == MSPAN_IN_USE and s.startAddr <= addr < s.end()
            if page < len(inuse) and inuse[page]:
                if not covers:
                    _fail("spans.lookup", f"spanOf({addr:#x}) = {s!r} does not cover an in-use page",
                          address=addr, span=s)
                if s.startAddr == addr:
                    starts[off >> 3] |= 1 << (off & 7)
            elif covers:
                _fail("spans.lookup", f"spanOf({addr:#x}) is an in-use span but the page is free",
                      address=addr, span=s)
        if starts != ha.pageInUse:
            _fail("spans.lookup", f"arena {ai}: pageInUse bits differ from the in-use spans' start pages",
                  address=ha.base)


def check_spans_one_place(heap) -> None:
    h = heap.mheap
    cached: dict = {}
    for c in heap.mcaches:
        for spc, s in enumerate(c.alloc):
            if s is c.emptymspan:
                continue
            if s in cached:
                _fail("spans.one_place", f"span cached by P{cached[s]} and P{c.pid}", span=s)
            cached[s] = c.pid
            if s.spanclass != spc or s.state != MSPAN_IN_USE or s.cachedBy != c.pid:
                _fail("spans.one_place", f"P{c.pid} caches a wrong span in slot {spc}", span=s)
    listed: dict = {}
    for central in h.central:
        for lst in (central.nonempty, central.empty):
            _check_list_links(lst)
            for s in lst:  # a span has one next/prev: _check_list_links rules out a second list
                listed[s] = lst.name
                if s.list is not lst or s.spanclass != central.spanclass or s.state != MSPAN_IN_USE:
                    _fail("spans.one_place", f"span on {lst.name} has list={getattr(s.list, 'name', None)} "
                          f"spanclass={s.spanclass} state={s.state}", span=s)
    for s in h.allspans:
        large = s.spanclass >> 1 == 0
        if large:
            if s in listed or s in cached or s.list is not None:
                _fail("spans.one_place", "large span on an mcentral list or in an mcache", span=s)
            continue
        if s not in listed:
            _fail("spans.one_place", "small in-use span on no mcentral list", span=s)
        if s in cached and s.list is not h.central[s.spanclass].empty:
            _fail("spans.one_place", "cached span is not on its mcentral's empty list", span=s)
        if s not in cached and s.cachedBy != -1:
            _fail("spans.one_place", f"span says it is cached by P{s.cachedBy}, which does not hold it", span=s)
    for s in list(listed) + list(cached):
        if s not in h.allspans:
            _fail("spans.one_place", "a list or mcache holds a span the heap does not have in use", span=s)


def _check_list_links(lst) -> None:
    """The doubly linked list is whole: prev mirrors next, first/last and the count agree."""
    prev, n = None, 0
    s = lst.first
    while s is not None and n <= lst.n:
        if s.prev is not prev:
            _fail("spans.one_place", f"{lst.name}: prev/next links disagree at span {s.startAddr:#x}", span=s)
        prev, s, n = s, s.next, n + 1
    if n != lst.n or lst.last is not prev:
        _fail("spans.one_place", f"{lst.name}: list links hold {n} spans, count says {lst.n}"
              + ("" if lst.last is prev else ", last is wrong"))


def check_spans_sweepgen(heap, sweeping: bool = False) -> None:
    h = heap.mheap
    sg = h.sweepgen
    cached = {s for c in heap.mcaches for s in c.cached_spans()}
    allowed = {sg - 2, sg, sg + 1, sg + 3} | ({sg - 1} if sweeping else set())
    for s in h.allspans:
        if s.sweepgen not in allowed:
            _fail("spans.sweepgen", f"sweepgen {s.sweepgen} with mheap.sweepgen {sg}", span=s)
        if (s in cached) != (s.sweepgen in (sg + 1, sg + 3)):
            state = "cached" if s in cached else "not cached"
            _fail("spans.sweepgen", f"span {state} but sweepgen is {s.sweepgen} (mheap {sg})", span=s)


def check_spans_lists(heap) -> None:
    h = heap.mheap
    sg = h.sweepgen
    for central in h.central:
        for s in central.nonempty:
            if s.sweepgen == sg and s.allocCount >= s.nelems:
                _fail("spans.lists", "swept span on nonempty has no free slot", span=s)
        for s in central.empty:
            if s.sweepgen == sg and s.cachedBy == -1 and s.allocCount != s.nelems:
                _fail("spans.lists", "swept, uncached span on empty has free slots", span=s)


def check_span_bits(heap) -> None:
    for s in heap.mheap.allspans:
        _check_one_span(s)


def _check_one_span(s) -> None:
    n, fi = s.nelems, s.freeindex
    bits = int.from_bytes(s.allocBits, "little")
    if bits >> n:
        _fail("span.alloc_count", "allocBits has bits set past nelems", span=s)
    if not 0 <= fi <= n:
        _fail("span.alloc_count", f"freeindex {fi} outside [0, nelems]", span=s)
    want = fi + (bits >> fi).bit_count()
    if s.allocCount != want:
        _fail("span.alloc_count", f"allocCount {s.allocCount} but {want} slots are allocated "
              "(freeindex + allocBits at/after freeindex)", span=s)
    if s.spanclass >> 1 and fi < n:
        word = int.from_bytes(s.allocBits[(fi >> 6) << 3:((fi >> 6) << 3) + 8], "little")
        expect = (~word & MASK64) >> (fi & 63)
        if s.allocCache != expect:
            _fail("span.alloc_cache", f"allocCache {s.allocCache:#x} != complement of allocBits "
                  f"from freeindex {fi} ({expect:#x})", span=s)
    if s.gcmarkLock is not _stripe(s.gcmarkBits):
        _fail("span.mark_lock", "gcmarkLock is not or8's striped lock for gcmarkBits", span=s)
    if s.startAddr % PAGE_SIZE or s.elemsize % 8 or s.elemsize <= 0:
        _fail("span.geometry", "span base not page-aligned or elemsize not a multiple of 8", span=s)
    small_limit = s.startAddr + s.nelems * s.elemsize
    if s.spanclass >> 1:
        if s.limit != small_limit:
            _fail("span.geometry", f"limit {s.limit:#x} != base + nelems*elemsize", span=s)
    elif not s.startAddr < s.limit <= small_limit:
        _fail("span.geometry", f"large span limit {s.limit:#x} outside its pages", span=s)
    if small_limit > s.end():
        _fail("span.geometry", "objects extend past the span's pages", span=s)


def _flushed_and_pending(heap):
    snap = heap.mheap.stats.snapshot()
    for c in heap.mcaches:
        per, tiny = c.unflushed_allocs()
        for sc, n in enumerate(per):
            snap["smallAllocCount"][sc] += n
        snap["tinyAllocCount"] += tiny
    return snap


def check_heap_accounting(heap) -> None:
    h = heap.mheap
    snap = h.stats.snapshot()
    ms = memstats_from(snap)
    inuse_pages = sum(s.npages for s in h.allspans)
    released_pages = h.pages.scav.count(1)
    mapped = h.curArenaEnd - ARENA_BASE
    free_pages = h.pages.npages() - h.pages.inuse.count(1) - released_pages
    if int.from_bytes(h.pages.inuse, "little") & int.from_bytes(h.pages.scav, "little"):
        _fail("heap.accounting", "a page is both in use and released")
    checks = [
        ("HeapInuse", ms["HeapInuse"], inuse_pages * PAGE_SIZE),
        ("pagesInUse", snap["pagesInUse"], inuse_pages),
        ("HeapReleased", ms["HeapReleased"], released_pages * PAGE_SIZE),
        ("heapFree", snap["heapFree"], free_pages * PAGE_SIZE),
        ("HeapSys", ms["HeapSys"], mapped),
    ]
    st = h.sysmem.state.snapshot()
    checks += [
        ("sysmem Ready", st["ready"], (inuse_pages + free_pages) * PAGE_SIZE),
        ("sysmem Prepared", st["prepared"], released_pages * PAGE_SIZE),
        ("sysmem Reserved", st["reserved"], h.sysmem.reserve_bytes - mapped),
    ]
    for name, got, want in checks:
        if got != want:
            _fail("heap.accounting", f"{name} is {got} but the pages say {want}")


def check_heap_objects(heap) -> None:
    h = heap.mheap
    ms = memstats_from(_flushed_and_pending(heap))
    alloc_bytes = objects = 0
    per_class = [0] * NUM_SIZE_CLASSES
    for s in h.allspans:
        if s.spanclass >> 1:
            per_class[s.spanclass >> 1] += s.allocCount
            alloc_bytes += s.allocCount * s.elemsize
        else:
            alloc_bytes += s.elemsize * s.allocCount
        objects += s.allocCount
    if ms["HeapAlloc"] != alloc_bytes:
        _fail("heap.objects", f"HeapAlloc is {ms['HeapAlloc']} but allocated slots hold {alloc_bytes} bytes")
    if ms["HeapObjects"] != objects:
        _fail("heap.objects", f"HeapObjects is {ms['HeapObjects']} but {objects} slots are allocated")
    for sc in range(1, NUM_SIZE_CLASSES):
        b = ms["BySize"][sc] if sc < len(ms["BySize"]) else None
        if b is not None and b["Mallocs"] - b["Frees"] != per_class[sc]:
            _fail("heap.objects", f"BySize[{sc}] ({class_to_size[sc]} B): Mallocs - Frees = "
                  f"{b['Mallocs'] - b['Frees']} but {per_class[sc]} slots are allocated")


def check_mcache_tiny(heap) -> None:
    h = heap.mheap
    for c in heap.mcaches:
        if not 0 <= c.tinyoffset <= TINY_SIZE or c.tinyAllocs < 0:
            _fail("mcache.tiny", f"P{c.pid}: tinyoffset {c.tinyoffset}, tinyAllocs {c.tinyAllocs}")
        if not c.tiny:
            continue
        s = h.spanOfHeap(c.tiny)
        if s is None or s.spanclass != TINY_SPAN_CLASS or (c.tiny - s.startAddr) % TINY_SIZE:
            _fail("mcache.tiny", f"P{c.pid}'s tiny block is not a 16-byte slot of a tiny span",
                  address=c.tiny, span=s)
        if s.isFree(s.objIndex(c.tiny)):
            _fail("mcache.tiny", f"P{c.pid}'s tiny block is a free slot", address=c.tiny, span=s)


def check_heap_bits(heap) -> None:
    h = heap.mheap
    for s in h.allspans:
        if s.spanclass & 1:
            continue                    # noscan: bits not maintained
        _check_bitmap_link(h, s)
        rec = s.typeRecord
        seen: set = set()               # (phase, bytes, record) of objects already found right
        for idx in s.allocated_indices():
            x = s.startAddr + idx * s.elemsize
            n = object_words(s, x)
            raw, sh = bitmap_bytes(s, x, n)
            key = (sh, raw, rec[idx] if rec is not None else 0)
            if key in seen:
                continue
            _check_bits_shape(s, x, n, raw, sh)
            typed = recorded_type(s, x) if rec is not None else None
            if typed is not None:
                _check_bits_type(s, x, n, raw, sh, *typed)
            if s.spanclass >> 1:
                seen.add(key)


def _check_bitmap_link(h, s) -> None:
    first = (s.startAddr - ARENA_BASE) >> HEAP_ARENA_SHIFT
    last = (s.end() - 1 - ARENA_BASE) >> HEAP_ARENA_SHIFT
    want = [h.arenas[i].bitmap for i in range(first, last + 1)]
    have = [s.heapBits, *s.heapBitsMore]
    if len(have) != len(want) or any(a is not b for a, b in zip(have, want)):
        _fail("span.heap_bits", "the span's heap bitmaps are not those of the arenas it covers", span=s)


def _word_of(p: int, sh: int) -> int:
    """Object word index of bit position p of a bitmap int (8 bits per byte)."""
    return ((p >> 3) << 2) + (p & 3) - sh


def _object_range(n: int, sh: int, nbytes: int) -> int:
    """Positions of the object's pointer bits in the int of its bitmap bytes."""
    e = sh + n
    low = int.from_bytes(b"\x0f" * nbytes, "little")
    return ((1 << (((e >> 2) << 3) + (e & 3))) - (1 << sh)) & low


def _check_bits_shape(s, x: int, n: int, raw: bytes, sh: int) -> None:
    r = int.from_bytes(raw, "little")
    rng = _object_range(n, sh, len(raw))
    ptr, scan = r & rng, (r >> 4) & rng
    where = f"object {x:#x} ({n} words)"
    bad = ptr & ~scan
    if bad:
        _fail("span.heap_bits", f"{where}: word {_word_of((bad & -bad).bit_length() - 1, sh)} has its "
              "pointer bit set but its scan bit clear", span=s, address=x)
    if not scan >> sh & 1:
        _fail("span.heap_bits", f"{where}: word 0's scan bit is clear in a scan object", span=s, address=x)
    dead = rng & ~scan
    if dead:
        cut = (dead & -dead) - 1
        late = scan & ~cut
        if late:
            _fail("span.heap_bits", f"{where}: word {_word_of((late & -late).bit_length() - 1, sh)} has its "
                  f"scan bit set after dead word {_word_of((dead & -dead).bit_length() - 1, sh)}",
                  span=s, address=x)
    top = scan.bit_length() - 1
    if not ptr >> top & 1:
        _fail("span.heap_bits", f"{where}: word {_word_of(top, sh)} has its scan bit set but no pointer "
              "at or after it (the scan bit must clear after the last pointer word)", span=s, address=x)


def _check_bits_type(s, x: int, n: int, raw: bytes, sh: int, typ, size: int) -> None:
    if s.spanclass >> 1:
        want = object_bits(typ, size, n, sh)[5]
    else:
        want = array_bits(typ, size)
    rng = _object_range(n, sh, len(raw))
    diff = (int.from_bytes(raw, "little") ^ int.from_bytes(want, "little")) & (rng | rng << 4)
    if diff:
        p = (diff & -diff).bit_length() - 1
        which = "scan" if p & 4 else "pointer"
        have = int.from_bytes(raw, "little") >> p & 1
        _fail("span.heap_bits", f"object {x:#x} ({size} bytes of type {typ.name}, pointer words "
              f"{list(typ.ptrwords)}): word {_word_of(p & ~4, sh)}'s {which} bit is {have}, its type says "
              f"{1 - have}", span=s, address=x)
def check_sweep_state(heap) -> None:
    h = heap.mheap
    sw = h.sweep
    n = sw.active.sweepers()
    if n:
        _fail("sweep.state", f"{n} sweepers in flight at a stop-the-world check")
    unswept = [s for s in h.allspans if s.sweepgen == h.sweepgen - 2]
    if not unswept:
        return
    if sw.active.isDone():
        _fail("sweep.state", "sweep is done but a span still needs sweeping", span=unswept[0])
    queued = {id(s) for q in sw.unswept for s in q.spans[q.head.load():]}
    for s in unswept:
        if id(s) not in queued:
            _fail("sweep.state", "a span that needs sweeping is not in the unswept queues: "
                  "no sweeper will reach it", span=s)


INVARIANTS = (
    ("spans.disjoint", check_spans_disjoint),
    ("spans.lookup", check_spans_lookup),
    ("spans.one_place", check_spans_one_place),
    ("spans.sweepgen", check_spans_sweepgen),
    ("spans.lists", check_spans_lists),
    ("span.alloc_count, span.alloc_cache, span.geometry", check_span_bits),
    ("heap.accounting", check_heap_accounting),
    ("heap.objects", check_heap_objects),
    ("mcache.tiny", check_mcache_tiny),
    ("span.heap_bits", check_heap_bits),
    ("sweep.state", check_sweep_state),
)


def verify_heap(heap) -> None:
    """Check every invariant above; raise the first Violation found."""
    for _name, check in INVARIANTS:
        check(heap)
