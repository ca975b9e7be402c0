"""The heap bitmap (Go 1.19 layout), interned types, heapScan's scan size and
the data segment.

Every allocation's bits are compared word by word with a reference computed
from the type (mbitmap.word_bits, Go's doubleCheck rule), neighbours sharing
a bitmap byte must keep theirs, reused slots and spans must not keep stale
bits, and verify_heap must fail, naming the word, when a bit is corrupted."""

from __future__ import annotations

import copy
import pickle
import random

import pytest

from concalloc import Config, Heap, Type, ptr_type
from concalloc import mbitmap as mb
from concalloc.check import Violation
from concalloc.malloc import mallocgc_nocache
from concalloc.memory import BadAddress, Memory, ntypes
from concalloc.moduledata import DATA, NGLOBALS, ModuleData
from concalloc.runtime import EXIT_OK, Runtime
from concalloc.sysmem import ARENA_BASE, HEAP_ARENA_BYTES, PAGE_SIZE

from alloc_helpers import mark_addresses, span_of

TYPES = [
    ptr_type(1, name="bm_p1"),                   # one pointer: the 8-byte class when alone
    ptr_type(2, [1], name="bm_p2b"),             # 16 B: a bitmap byte holds two objects
    ptr_type(3, [0, 2], name="bm_p3"),           # 24 B: any phase
    Type("bm_t5", 40, [1, 3]),                   # scalar tail inside each element
    Type("bm_t6", 48, [0]),                      # one pointer, five scalar words
    Type("bm_s3", 24, [2]),
    Type("bm_wide", 4096 * 8, [0, 4095]),        # a large object alone
]


def _reference(typ, size, n):
    return [mb.word_bits(typ, size, i) for i in range(n)]


def _check_object(h, x, typ, size):
    s = span_of(h, x)
    n = mb.object_words(s, x)
    have = mb.entries(s, x, n)
    want = _reference(typ, size, n)
    bad = [i for i in range(n) if have[i] != want[i]]
    assert not bad, f"{typ!r} x{size // typ.size} at {x:#x}: words {bad[:5]} have {[have[i] for i in bad[:5]]}"
    assert mb.pointer_slots(s, x) == [x + off for off in typ.pointer_offsets(size)]


def _random_objects(h, rng, n, alloc=None):
    objs = []
    for _ in range(n):
        t = rng.choice(TYPES)
        limit = 40000 if rng.random() < 0.03 else 2048
        count = rng.randint(1, max(1, limit // t.size))
        size = t.size * count
        x = alloc(size, t) if alloc else h.malloc(size, t, p=rng.randrange(len(h.mcaches)))
        objs.append((x, t, size))
    return objs


@pytest.fixture
def heap():
    h = Heap(Config(heapcheck=2), reserve_bytes=1 << 30, nprocs=2)
    yield h
    h.close()


def test_bits_match_the_type_and_neighbours_keep_theirs(heap):
    rng = random.Random(7)
    objs = _random_objects(heap, rng, 1500)
    for x, t, size in objs:        # checked after all: later objects sharing a byte changed nothing
        _check_object(heap, x, t, size)
    heap.verify()


def test_cache_off_path_writes_the_same_bits(heap):
    rng = random.Random(3)
    objs = _random_objects(heap, rng, 300, alloc=lambda size, t: mallocgc_nocache(heap.mcaches[0], size, t))
    for x, t, size in objs:
        _check_object(heap, x, t, size)
    heap.verify()


def test_eight_byte_slots_are_all_pointers(heap):
    t = TYPES[0]
    xs = [heap.malloc(8, t) for _ in range(10)]
    s = span_of(heap, xs[0])
    assert s.elemsize == 8
    assert mb.entries(s, s.startAddr, s.nelems) == [0x11] * s.nelems   # initSpan, not the allocations
    assert all(mb.pointer_slots(s, x) == [x] for x in xs)


def test_reused_slots_get_the_new_objects_bits(heap):
    a = Type("bm_reuse_a", 48, [0, 1, 2, 3, 4, 5])     # every word a pointer
    b = Type("bm_reuse_b", 16, [0])                     # 48 B slots: 3 of these, pointer words 0, 2, 4
    xs = [heap.malloc(48, a) for _ in range(100)]
    keep = xs[::3]
    heap.sweep_cycle(mark_addresses(heap, keep))
    s = span_of(heap, xs[1])
    ys = [heap.malloc(48, b) for _ in range(60)]
    reused = [y for y in ys if span_of(heap, y) is s and y not in keep]
    assert reused, "no slot of the swept span was reused"
    for y in ys:
        _check_object(heap, y, b, 48)
    for x in keep:
        _check_object(heap, x, a, 48)
    heap.verify()


def test_short_object_in_a_reused_slot_clears_the_tail(heap):
    a = ptr_type(6, name="bm_tail_a")                  # 48 B, all pointers
    xs = [heap.malloc(48, a) for _ in range(20)]
    heap.sweep_cycle()                                  # nothing survives: the span is freed
    b = ptr_type(1, name="bm_tail_b")
    ys = [heap.malloc(40, b) for _ in range(20)]       # 5 pointers in a 48-byte slot
    assert set(xs) & set(ys)
    for y in ys:
        _check_object(heap, y, b, 40)
        assert mb.entries(span_of(heap, y), y + 40, 1) == [0]
    heap.verify()


def test_freed_span_reused_for_another_class_starts_clean(heap):
    a = ptr_type(4, name="bm_span_a")
    xs = [heap.malloc(32, a) for _ in range(300)]
    first = span_of(heap, xs[0]).startAddr
    heap.sweep_cycle()
    t = Type("bm_span_b", 64, [7])
    ys = [heap.malloc(64, t) for _ in range(200)]
    assert any(span_of(heap, y).startAddr == first for y in ys)
    for y in ys:
        _check_object(heap, y, t, 64)
    heap.verify()


def test_large_object_bits_and_scan_stop(heap):
    t = Type("bm_large", 64, [0, 2])
    size = 64 * 3000
    x = heap.malloc(size, t)
    s = span_of(heap, x)
    _check_object(heap, x, t, size)
    last = x + size - 64 + 16
    assert mb.pointer_slots(s, x)[-1] == last
    ent = mb.entries(s, last, 4)
    assert ent == [0x11, 0, 0, 0]        # scan stops after the last pointer word
    # the pages' words past the object are clear too
    assert set(mb.entries(s, x + size, (s.end() - x - size) >> 3)) == {0}


def test_pointer_slots_stop_at_the_first_dead_word(heap):
    t = ptr_type(8, name="bm_dead")
    x = heap.malloc(64, t)
    s = span_of(heap, x)
    _flip(s, x + 24, mb.BIT_SCAN)
    assert mb.pointer_slots(s, x) == [x, x + 8, x + 16]


def test_pointer_slots_of_noscan_is_empty(heap):
    x = heap.malloc(64)
    assert mb.pointer_slots(span_of(heap, x), x) == []


def _fill_to(h, addr):
    """Allocate noscan large objects until the heap's next pages start at addr."""
    while True:
        free = h.mheap.pages.searchAddr
        nxt = ARENA_BASE + free * PAGE_SIZE
        if nxt >= addr:
            assert nxt == addr, f"{nxt:#x} past {addr:#x}"
            return
        h.malloc(min(addr - nxt, 32 << 20))


def test_objects_across_an_arena_boundary(heap):
    boundary = ARENA_BASE + HEAP_ARENA_BYTES
    _fill_to(heap, boundary - PAGE_SIZE)
    t = Type("bm_cross", 24, [0, 2])
    x = heap.malloc(24 * 1000, t)              # a large object over the boundary
    s = span_of(heap, x)
    assert s.startAddr < boundary < s.limit and len(s.heapBitsMore) == 1
    _check_object(heap, x, t, 24 * 1000)
    assert mb.isPointer(s, boundary + 8) and not mb.isPointer(s, boundary)   # word 1024: 1024 % 3 == 1
    heap.verify()


def test_small_span_across_an_arena_boundary(heap):
    boundary = ARENA_BASE + HEAP_ARENA_BYTES
    _fill_to(heap, boundary - PAGE_SIZE)
    t = Type("bm_cross_small", 48, [0, 5])
    xs = [heap.malloc(48 * 120, t) for _ in range(4)]   # 5760 B: class 6144, spans of 3 pages
    spans = {span_of(heap, x) for x in xs}
    assert any(s.startAddr < boundary < s.end() for s in spans)
    for x in xs:
        _check_object(heap, x, t, 48 * 120)
    heap.verify()


def test_scan_size_is_charged_not_the_object_size(heap):
    t = Type("bm_scansize", 64, [0])          # ptrdata 8
    assert (t.ptrdata, t.gcdata, t.scan_size(256)) == (8, b"\x01", 3 * 64 + 8)
    heap_scan = heap.mheap.gcController.heapScan.load
    heap.flush_mcaches()
    hs = heap_scan()
    heap.malloc(64, t)
    heap.malloc(256, t)
    mallocgc_nocache(heap.mcaches[1], 128, t)
    heap.flush_mcaches()                      # scanAlloc reaches heapScan
    assert heap_scan() - hs == 8 + (3 * 64 + 8) + (64 + 8)
    hs = heap_scan()
    heap.malloc(64 * 1000, t)                 # large: charged to heapScan at once
    assert heap_scan() - hs == 999 * 64 + 8
    assert ptr_type(3, [1], name="bm_pd").ptrdata == 16 and Type("bm_noscan", 24).scan_size(24) == 0


# ---------------------------------------------------------------- verify_heap catches corrupt bits

def _flip(s, addr, bit):
    bm, w = mb._bitmap_for(s, addr)
    bm[w >> 2] ^= bit << (w & 3)


def _heap_with_objects(heapcheck):
    h = Heap(Config(heapcheck=heapcheck), reserve_bytes=1 << 30)
    t = Type("bm_verify", 48, [0, 3])          # words 0 and 3 pointers, 4 and 5 scalar
    xs = [h.malloc(48, t) for _ in range(20)]
    h.verify()
    return h, span_of(h, xs[5]), xs[5]


SHAPE_CASES = [
    # (what, [(word, bit flipped)], message); words 0 and 3 are the pointers
    ("pointer bit past the last pointer", [(4, mb.BIT_POINTER)], "word 4 has its pointer bit set but its scan bit clear"),
    ("scan bit left set past the last pointer", [(4, mb.BIT_SCAN)], "word 4 has its scan bit set but no pointer"),
    ("last pointer bit cleared", [(3, mb.BIT_POINTER)], "word 3 has its scan bit set but no pointer"),
    ("first pointer's scan bit cleared", [(0, mb.BIT_SCAN)], "word 0 has its pointer bit set but its scan bit clear"),
    ("first word dead", [(0, mb.BIT_SCAN), (0, mb.BIT_POINTER)], "word 0's scan bit is clear"),
    ("scan bit cleared in the middle", [(1, mb.BIT_SCAN)], "word 2 has its scan bit set after dead word 1"),
]


@pytest.mark.parametrize("heapcheck", [1, 2])
@pytest.mark.parametrize("what,flips,needle", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_verify_catches_misshapen_bits(heapcheck, what, flips, needle):
    h, s, x = _heap_with_objects(heapcheck)
    try:
        for word, bit in flips:
            _flip(s, x + 8 * word, bit)
        with pytest.raises(Violation) as ei:
            h.verify()
        assert ei.value.invariant == "span.heap_bits" and needle in ei.value.message, str(ei.value)
        assert f"object {x:#x}" in ei.value.message
    finally:
        h.close()


TYPE_CASES = [
    ("pointer bit on a scalar word", 1, mb.BIT_POINTER, "word 1's pointer bit is 1, its type says 0"),
    ("pointer bit cleared on a pointer word", 0, mb.BIT_POINTER, "word 0's pointer bit is 0, its type says 1"),
]


@pytest.mark.parametrize("what,word,bit,needle", TYPE_CASES, ids=[c[0] for c in TYPE_CASES])
def test_verify_with_the_type_record_catches_wrong_bits(what, word, bit, needle):
    h, s, x = _heap_with_objects(2)
    try:
        _flip(s, x + 8 * word, bit)
        with pytest.raises(Violation) as ei:
            h.verify()
        assert ei.value.invariant == "span.heap_bits" and needle in ei.value.message, str(ei.value)
        assert "type bm_verify" in ei.value.message
    finally:
        h.close()
    # Without the record (heapcheck=1) the same corruption is well-formed, and passes.
    h, s, x = _heap_with_objects(1)
    try:
        assert s.typeRecord is None
        _flip(s, x + 8 * word, bit)
        h.verify()
    finally:
        h.close()


def test_verify_catches_a_span_pointing_at_the_wrong_bitmap():
    h, s, x = _heap_with_objects(1)
    try:
        s.heapBits = bytearray(len(s.heapBits))
        with pytest.raises(Violation, match="not those of the arenas"):
            h.verify()
    finally:
        h.close()


def test_type_record_costs_nothing_when_off():
    from concalloc.mbitmap import heapBitsSetType, heapBitsSetTypeRecorded
    with Heap(Config(heapcheck=1), reserve_bytes=1 << 30) as h:
        assert h.mcaches[0].heapBitsSetType is heapBitsSetType
        x = h.malloc(48, TYPES[4])
        assert span_of(h, x).typeRecord is None and mb.object_type(span_of(h, x), x) is None
    with Heap(Config(heapcheck=2), reserve_bytes=1 << 30) as h:
        assert h.mcaches[0].heapBitsSetType is heapBitsSetTypeRecorded
        x = h.malloc(96, TYPES[4])
        assert mb.recorded_type(span_of(h, x), x) == (TYPES[4], 96)


# ---------------------------------------------------------------- interned types

def test_same_shape_types_are_one_type():
    first = Type("bm_interned", 32, [0, 2])
    before = ntypes()
    for _ in range(100_000):
        assert Type("bm_interned", 32, (2, 0, 2)) is first
    assert ntypes() == before
    assert ptr_type(4, [0, 2], name="bm_interned") is first
    assert copy.copy(first) is first and pickle.loads(pickle.dumps(first)) is first
    assert Type("bm_interned", 32, [0]) is not first and Type("bm_interned2", 32, [0, 2]) is not first


def test_repeated_runs_make_no_new_types():
    """A campaign of many runs used to exhaust the type table ("too many
    types (65535)"): each run's workload built its types anew."""
    counts = []
    for _ in range(4):
        for name in ("ring", "tree", "churn", "graph", "burst"):
            with Runtime(Config(procs=2, steps=20, workload=name, reserve_bytes=1 << 30)) as rt:
                assert rt.run().exit_code == EXIT_OK
        counts.append(ntypes())
    assert counts[1:] == counts[:1] * 3, counts


# ---------------------------------------------------------------- the data segment

def test_data_segment_loads_and_stores():
    with Heap(reserve_bytes=1 << 30) as h:
        md, mem = h.moduledata, h.memory
        assert (md.data, md.edata) == (DATA, DATA + 8 * NGLOBALS) and md.edata <= ARENA_BASE - 8
        assert md.pointer_slots() == [DATA + 8 * i for i in range(NGLOBALS)]   # gcdata: all pointers
        x = h.malloc(64)
        mem.store(md.global_addr(3), x)
        assert mem.load(DATA + 24) == x and md.values()[3] == x
        mem.store(x, 7)                                     # the heap path is untouched
        assert mem.load(x) == 7
        for bad in (DATA - 8, md.edata, DATA + 4, ARENA_BASE - 8, 0):
            with pytest.raises(BadAddress):
                mem.load(bad)
            with pytest.raises(BadAddress):
                mem.store(bad, 1)
        with pytest.raises(IndexError):
            md.global_addr(NGLOBALS)


def test_memory_without_a_data_segment_refuses_it():
    with Heap(reserve_bytes=1 << 30) as h:
        with pytest.raises(BadAddress):
            Memory(h.mheap.sysmem).load(DATA)


def test_moduledata_rejects_a_segment_overlapping_zerobase():
    with pytest.raises(ValueError):
        ModuleData(nglobals=1 << 10)


class _Globals:
    def slots(self, cfg):
        return 1

    def run(self, m, cfg):
        x = m.alloc(64)
        m.set_global(2, x)
        assert m.get_global(2) == x
        with pytest.raises(IndexError):
            m.set_global(NGLOBALS, x)


def test_set_global_stores_through_the_barrier_with_an_address_slot():
    seen = []
    with Runtime(Config(procs=1, steps=10, heapcheck=2, reserve_bytes=1 << 30), workload=_Globals()) as rt:
        rt.set_write_barrier(lambda m, slot, new: seen.append((slot, new)))
        res = rt.run()
        assert res.exit_code == EXIT_OK, res.error
        assert len(seen) == 1 and seen[0][0] == rt.moduledata.data + 16
        assert rt.globals[2] == seen[0][1] and rt.heap.memory.load(seen[0][0]) == seen[0][1]
        with pytest.raises(TypeError):
            rt.globals[2] = 0                       # read-only: stores go through set_global
