"""scanobject's hot loop writes out spanOf, objIndex and greyobject's common
case: it must grey exactly what the plain helpers grey (interior pointers,
large and noscan targets, nil, allocate-black), report bad pointers as
findObject does, and make the same yield points in the same order."""

from __future__ import annotations

import pytest

from bench.bench_gc import NODE, MarkHarness
from concalloc.gc import mark
from concalloc.mbitmap import pointer_slots
from concalloc.memory import Type
from concalloc.mheap import BadPointer
from concalloc.sync.sched import QUIET_YIELD

BIG = Type("bench_big", 4096, [0, 3, 500])     # a large object's type: pointers spread out


def reference_scanobject(gc, b, gcw):
    """scanobject as it was written before the hot loop: one helper call per step."""
    h = gc.h
    s = h.spanOf(b)
    for slot in pointer_slots(s, b):
        gc.yp("mark.scan_field")
        p = gc.mem.load(slot)
        if p:
            base, ps, idx = h.findObject(p, b, slot - b)
            if ps is not None:
                mark.greyobject(gc, base, ps, idx, gcw)
    gcw.heapScanWork += 8 * (len(pointer_slots(s, b)) or 1)


@pytest.fixture
def heap():
    h = MarkHarness(40, garbage_every=0)
    yield h
    h.close()


def build_holder(h):
    """An object of 8 pointer words pointing at: a node's base, a node's
    interior, a large object, a noscan object, nil, the same node again,
    another node, and a second interior pointer."""
    m = h.m
    holder_t = Type("holder", 64, range(8))
    big = m.alloc(3 * BIG.size, BIG)
    m.set_slot(2, big)
    noscan = m.alloc(48, None)
    m.set_slot(3, noscan)
    holder = m.alloc(64, holder_t)
    m.set_slot(1, holder)
    n = h.nodes
    for i, v in enumerate([n[3], n[5] + 8, big + 4096, noscan, 0, n[3], n[7], n[9] + 24]):
        m.store(holder, i, v)
    return holder


def run_scan(h, holder, scan, quiet=False):
    """Start a cycle, scan holder alone with `scan`, and return (the grey
    queue, the mark bits of every in-use span, bytesMarked, heapScanWork,
    the yield labels seen); the cycle is then finished."""
    gc = h.gc
    labels = []
    rec = h.start()
    saved = gc.yp
    gc.yp = QUIET_YIELD if quiet else labels.append
    try:
        gcw = gc.gcw
        gcw.bytesMarked = gcw.heapScanWork = 0
        scan(gc, holder, gcw)
        out = (list(gcw.wbuf1) + list(gcw.wbuf2),
               {s.startAddr: bytes(s.gcmarkBits) for s in h.gc.h.allspans},
               gcw.bytesMarked, gcw.heapScanWork, labels)
    finally:
        gc.yp = saved
    h.drain()
    h.finish(rec)
    return out


def test_scanobject_greys_what_the_helpers_grey(heap):
    holder = build_holder(heap)
    want = run_scan(heap, holder, reference_scanobject)
    got = run_scan(heap, holder, mark.scanobject)
    assert got[0] == want[0]          # same objects queued, same order
    assert got[1] == want[1]          # same mark bits
    assert got[2:4] == want[2:4]      # same bytesMarked and scan work
    assert got[4] == want[4]          # same yield points, same order
    assert got[4].count("mark.greyobject") == 6      # n3, n5, big, noscan, n7, n9
    assert len(got[0]) == 5                          # the noscan object is black at once
    quiet = run_scan(heap, holder, mark.scanobject, quiet=True)   # scanobject' written-out loop
    assert quiet[:4] == want[:4] and quiet[4] == []


def test_buffer_scan_skips_nil_and_non_heap_words(heap):
    gc = heap.gc
    rec = heap.start()
    gcw = gc.gcw
    n = len(gcw)
    buf = [0, 8, heap.gc.h.arenas[0].base - 8, heap.nodes[1], heap.nodes[1] + 8]
    mark.scanobject(gc, 0, gcw, buf)
    assert len(gcw) == n + 1
    heap.drain()
    heap.finish(rec)


def test_scanobject_reports_a_pointer_into_a_free_span(heap):
    m = heap.m
    holder = build_holder(heap)
    gone, span = heap.garbage_span(BIG, 10)
    m.write_word(holder, 4, gone)       # a stale pointer, written past the barrier
    rec = heap.start()                  # sweep termination finishes the sweep: the span is freed
    assert span.state != 1
    with pytest.raises(BadPointer, match=f"found in object at \\*\\({holder:#x}\\+0x20\\)"):
        reference_scanobject(heap.gc, holder, heap.gc.gcw)
    with pytest.raises(BadPointer, match=f"found in object at \\*\\({holder:#x}\\+0x20\\)"):
        mark.scanobject(heap.gc, holder, heap.gc.gcw)
    saved, heap.gc.yp = heap.gc.yp, QUIET_YIELD
    try:
        with pytest.raises(BadPointer, match=f"found in object at \\*\\({holder:#x}\\+0x20\\)"):
            mark.scanobject(heap.gc, holder, heap.gc.gcw)
    finally:
        heap.gc.yp = saved
    m.write_word(holder, 4, 0)
    heap.drain()
    heap.finish(rec)


def test_quiet_hybrid_barrier_records_what_the_hybrid_barrier_records(heap):
    """The os scheduler's hybrid barrier (no yield points, the old word read
    directly) buffers the same (old, new) pairs as the generic one, for heap
    slots and global slots, and flushes when the buffer is full."""
    from concalloc.gc.barrier import WBBUF_ENTRIES, make_barrier

    gc, m, n = heap.gc, heap.m, heap.nodes
    rec = heap.start()
    quiet = m._wb
    assert quiet.kind == "hybrid" and quiet.__name__ == "wb_hybrid_quiet"
    saved = gc.yp
    gc.yp = lambda label: None              # any yield point but the no-op one: the generic barrier
    try:
        loud = make_barrier(gc, "hybrid")
    finally:
        gc.yp = saved
    assert loud.__name__ == "wb"
    m.set_global(0, n[2])
    gslot = m._md.data
    p = m.p
    bufs = []
    for wb in (loud, quiet):
        p.wbBuf.clear()
        calls = p.wbCalls
        wb(m, n[5], n[6])                    # heap slot: field 0 of n[5]
        wb(m, gslot, n[7])                   # global slot 0
        bufs.append(list(p.wbBuf))
        assert p.wbCalls == calls + 2
    assert bufs[0] == bufs[1] == [m.load(n[5], 0), n[6], n[2], n[7]]
    p.wbBuf.clear()
    for _ in range(WBBUF_ENTRIES // 2):
        quiet(m, n[5], n[6])
    assert p.wbBuf == []                     # full: flushed into the P's gcWork
    heap.drain()
    heap.finish(rec)


def test_quiet_store_writes_the_hybrid_barrier_inline(heap):
    """With the quiet hybrid barrier installed, Mutator.store is the written-out
    one (_store_hybrid_quiet): it buffers the same (old, new) pairs as the
    barrier, counts wbCalls, stores the word, flushes a full buffer; and the
    plain store is back once the barrier is removed (mark termination)."""
    from concalloc.gc.barrier import WBBUF_ENTRIES

    gc, m, n = heap.gc, heap.m, heap.nodes
    assert "store" not in m.__dict__
    rec = heap.start()
    assert m.store == m._store_hybrid_quiet
    p = m.p
    p.wbBuf.clear()
    calls = p.wbCalls
    old = m.load(n[5], 1)
    m.store(n[5], 1, n[6])
    assert p.wbBuf == [old, n[6]] and p.wbCalls == calls + 1
    assert m.load(n[5], 1) == n[6]
    p.wbBuf.clear()
    for _ in range(WBBUF_ENTRIES // 2):
        m.store(n[5], 1, n[6])
    assert p.wbBuf == []                     # full: flushed into the P's gcWork
    heap.drain()
    heap.finish(rec)
    assert m._wb is None and "store" not in m.__dict__


def test_quiet_store_is_not_bound_over_an_owned_store():
    """A mutator whose store is someone else's (heapcheck 2's checked store)
    keeps it while the barrier is on; a stopped run's yield point unbinds it."""
    h = MarkHarness(40, garbage_every=0)
    try:
        m = h.m
        m.store = m._store_checked
        rec = h.start()
        assert m.store == m._store_checked
        h.drain()
        h.finish(rec)
        del m.store
        rec = h.start()
        assert m.store == m._store_hybrid_quiet
        m._rebind_yield()
        assert "store" not in m.__dict__
        h.drain()
        h.finish(rec)
    finally:
        h.close()
