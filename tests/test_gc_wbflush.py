"""wbBufFlush1 on the quiet path (barrier.shadebuf): a span at a time, after
the P's wbShaded filter.  It must grey exactly what the generic buffer scan
(scanobject with buf) greys -- interior, large, noscan, allocated-black,
nil, repeated and non-heap pointers, more greys than one workbuf holds --
report bad pointers as findObject does, drop a pointer it shaded earlier in
the cycle without touching the heap, and start each cycle with an empty
filter (else an object shaded last cycle would stay white)."""

from __future__ import annotations

import pytest

from bench.bench_gc import NODE, MarkHarness
from concalloc.gc import barrier, mark
from concalloc.gc.work import WORKBUF_NOBJ
from concalloc.memory import Type
from concalloc.mheap import BadPointer
from concalloc.sync.sched import QUIET_YIELD

BIG = Type("wbflush_big", 4096, [0, 3, 500])


@pytest.fixture
def heap():
    h = MarkHarness(700, garbage_every=0)
    yield h
    h.close()


def mixed_buffer(h) -> list[int]:
    """Pointers of every kind a wbBuf can hold, allocated before the cycle
    except the last two (allocated during mark: black at once)."""
    m, n = h.m, h.nodes
    big = m.alloc(3 * BIG.size, BIG)
    m.set_slot(2, big)
    noscan = m.alloc(48, None)
    m.set_slot(3, noscan)
    return [n[3], n[5] + 8, big + 4096, noscan, 0, n[3], n[7], n[9] + 24, 8,
            h.gc.h.arenas[0].base - 8, n[600], n[2] + 16, n[2]]


def both_flushes(h, buf, allocate_during_mark=0):
    """In one cycle, flush buf (plus `allocate_during_mark` nodes allocated
    after gcStart) through the generic buffer scan and, from the same mark
    bits, through shadebuf on the quiet path; return what each left: (the
    grey queue sorted, every span's mark bits, bytesMarked)."""
    gc = h.gc
    rec = h.start()
    p = gc.allp[0]
    p.mcache.gcAssistBytes = 1 << 40        # credit: no assist (no worker would ever pay it)
    buf = list(buf) + [h.m.alloc(32, NODE) for _ in range(allocate_during_mark)]
    gcw = p.gcw
    spans = list(gc.h.allspans)
    before = [bytes(s.gcmarkBits) for s in spans]
    outs = []
    saved, gc.yp = gc.yp, QUIET_YIELD
    try:
        for flush in (generic, barrier.shadebuf):
            for s, bits in zip(spans, before):
                s.gcmarkBits[:] = bits
            p.wbShaded.clear()
            gcw.bytesMarked = 0
            flush(gc, p, gcw, buf)
            queued = sorted(gcw.wbuf1 + gcw.wbuf2 + [x for b in gc.lists.full for x in b])
            outs.append((queued, [bytes(s.gcmarkBits) for s in spans], gcw.bytesMarked))
            gcw.wbuf1, gcw.wbuf2 = [], []
            gc.lists.drop_all()
    finally:
        gc.yp = saved
    h.drain()
    h.finish(rec)
    return outs


def generic(gc, p, gcw, buf):
    mark.scanobject(gc, 0, gcw, buf)


def test_shadebuf_greys_what_the_buffer_scan_greys(heap):
    want, got = both_flushes(heap, mixed_buffer(heap), allocate_during_mark=2)
    assert got == want
    n = heap.nodes
    assert n[3] in got[0] and n[2] in got[0] and n[600] in got[0]
    assert len(got[0]) == 7       # n3 n5 big n7 n9 n600 n2; noscan and the new nodes are black
    assert got[2] == 6 * 32 + 3 * BIG.size + 48 + 2 * 32      # every target marked once


def test_shadebuf_fills_more_than_one_workbuf(heap):
    want, got = both_flushes(heap, heap.nodes[:600] + heap.nodes[:100])
    assert len(got[0]) == 600 > 2 * WORKBUF_NOBJ
    assert got == want


def test_shadebuf_reports_a_bad_pointer(heap):
    gone, span = heap.garbage_span(BIG, 10)
    rec = heap.start()
    assert span.state != 1
    gc = heap.gc
    with pytest.raises(BadPointer, match="to unallocated span"):
        barrier.shadebuf(gc, gc.allp[0], gc.allp[0].gcw, [heap.nodes[1], gone])
    heap.drain()
    heap.finish(rec)


def test_wbshaded_drops_what_this_cycle_shaded_and_is_emptied_at_gcstart(heap):
    gc, n = heap.gc, heap.nodes
    p = gc.allp[0]
    s = gc.h.spanOf(n[10])
    idx = s.objIndex(n[10])
    for cycle in range(2):
        with heap.mark_phase():
            assert not p.wbShaded, "gcStart left last cycle's shaded pointers in the filter"
            barrier.shadebuf(gc, p, p.gcw, [n[10]])
            assert s.gcmarkBits[idx >> 3] & 1 << (idx & 7)
            assert n[10] in p.wbShaded
            # The filter answers before the heap is read: with the bit cleared
            # behind its back (no real run does that) the pointer is still dropped.
            s.gcmarkBits[idx >> 3] &= ~(1 << (idx & 7)) & 0xFF
            queued = len(p.gcw)
            barrier.shadebuf(gc, p, p.gcw, [n[10], n[10]])
            assert len(p.gcw) == queued and not s.gcmarkBits[idx >> 3] & 1 << (idx & 7)
            s.gcmarkBits[idx >> 3] |= 1 << (idx & 7)


def test_wbshaded_is_bounded(heap):
    gc, n = heap.gc, heap.nodes
    p = gc.allp[0]
    with heap.mark_phase():
        p.wbShaded.update(range(1, barrier.WBSHADED_MAX + 1))
        barrier.shadebuf(gc, p, p.gcw, [n[11]])
        assert p.wbShaded == {n[11]}


def test_shadebuf_greys_the_unshaded_part_of_a_partly_shaded_buffer(heap):
    """The all-shaded early out must not swallow a buffer with one new pointer."""
    gc, n = heap.gc, heap.nodes
    p = gc.allp[0]
    with heap.mark_phase():
        barrier.shadebuf(gc, p, p.gcw, [n[20], n[21]])
        queued = len(p.gcw)
        barrier.shadebuf(gc, p, p.gcw, [n[20], n[21], n[20]])          # all shaded: nothing new
        assert len(p.gcw) == queued
        barrier.shadebuf(gc, p, p.gcw, [n[20], n[21], n[22], n[20]])   # one new pointer
        s = gc.h.spanOf(n[22])
        assert s.isMarked(s.objIndex(n[22])) and len(p.gcw) == queued + 1
