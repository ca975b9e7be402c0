"""Size classes: the generator against Go's table, the lookup tables, the
division magic, and how mallocgc routes sizes (zerobase, tiny, small, large)."""

from __future__ import annotations

import bisect
import csv
from pathlib import Path

import pytest

from concalloc import sizeclasses as sc
from concalloc.malloc import ZEROBASE
from concalloc.memory import Type, ptr_type
from concalloc.mspan import MSpan
from concalloc.sysmem import ARENA_BASE

from alloc_helpers import span_of

HERE = Path(__file__).resolve().parent
SHARED = Path(__file__).parents[1].parent / "shared/reference"


def _reference(name: str) -> Path:
    """The committed copy under tests/data (so CI needs nothing outside the
    repository), else the shared reference next to the checkout."""
    for p in (HERE / "data" / name, SHARED / name):
        if p.exists():
            return p
    pytest.fail(f"reference table {name} is missing from tests/data and {SHARED}")


def _rows(name: str) -> list[dict]:
    with open(_reference(name), newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- the table

def test_generator_reproduces_go_table_exactly():
    want = _rows("go-sizeclasses.csv")
    got = sc.table_rows()
    assert len(want) == 67 and len(got) == 67
    for w, g in zip(want, got):
        assert {k: str(v) for k, v in g.items() if k != "max_waste_pct"} == \
            {k: v for k, v in w.items() if k != "max_waste_pct"}, w["class"]
        assert f"{g['max_waste_pct']:.2f}" == w["max_waste_pct"], w["class"]


def test_class_arrays_agree_with_the_table():
    want = _rows("go-sizeclasses.csv")
    assert len(sc.class_to_size) == sc.NUM_SIZE_CLASSES == 68
    assert sc.class_to_size[0] == 0 and sc.class_to_allocnpages[0] == 0
    for w in want:
        c = int(w["class"])
        assert sc.class_to_size[c] == int(w["bytes_per_obj"])
        assert sc.class_to_allocnpages[c] * sc.PAGE_SIZE == int(w["bytes_per_span"])
        assert sc.class_to_nobjs[c] == int(w["objects"])


@pytest.mark.parametrize("name", ["go-sizeclasses.csv", "go-span-nelems.csv"])
def test_committed_reference_copy_matches_shared(name):
    shared = SHARED / name
    if not shared.exists():
        pytest.skip("no shared reference next to this checkout")
    assert (HERE / "data" / name).read_bytes() == shared.read_bytes()


def test_span_nelems_are_go119s():
    """Go 1.19 places the table's object count in every span, scan or not."""
    for w in _rows("go-span-nelems.csv"):
        c = int(w["class"])
        for noscan, col in ((True, "go119_noscan"), (False, "go119_scan")):
            s = MSpan()
            s.init(ARENA_BASE, int(w["npages"]), sc.make_span_class(c, noscan))
            assert s.nelems == int(w[col]), (c, noscan)
            assert s.elemsize == int(w["bytes_per_obj"])
            assert s.limit == ARENA_BASE + s.nelems * s.elemsize


# ---------------------------------------------------------------- lookups

@pytest.mark.parametrize("size,cls", [
    (1, 1), (8, 1), (9, 2), (16, 2), (17, 3), (24, 3), (25, 4),
    (1016, 32), (1017, 32), (1024, 32), (1025, 33), (1152, 33), (1153, 34),
    (32767, 67), (32768, 67), (32769, 0), (1 << 20, 0),
])
def test_boundary_sizes(size, cls):
    assert sc.size_to_class(size) == cls


def _brute(n: int) -> int:
    """Smallest class whose size is at least n (classes 1..67)."""
    return bisect.bisect_left(sc.class_to_size, n, lo=1)


def test_lookup_tables_are_smallest_class_at_least():
    assert len(sc.size_to_class8) == 1024 // 8 + 1
    assert sc.size_to_class8[0] == 0  # as in Go's table: size 0 has no class
    assert len(sc.size_to_class128) == (32768 - 1024) // 128 + 1
    for i in range(1, len(sc.size_to_class8)):
        assert sc.size_to_class8[i] == _brute(i * 8), i
    for i in range(len(sc.size_to_class128)):
        assert sc.size_to_class128[i] == _brute(1024 + i * 128), i


def test_size_to_class_every_small_size():
    for size in range(1, sc.MAX_SMALL_SIZE + 1):
        c = sc.size_to_class(size)
        assert sc.class_to_size[c] >= size and sc.class_to_size[c - 1] < size, size


def test_divmagic_exact_for_every_offset_of_every_span():
    for c in range(1, sc.NUM_SIZE_CLASSES):
        size = sc.class_to_size[c]
        magic = sc.class_to_divmagic[c]
        assert magic == 0xFFFFFFFF // size + 1
        span_bytes = sc.class_to_allocnpages[c] * sc.PAGE_SIZE
        bad = [off for off in range(span_bytes + 1) if (off * magic) >> 32 != off // size]
        assert not bad, f"class {c} ({size} B): objIndex wrong at offsets {bad[:5]}"


def test_span_objindex_uses_exact_magic():
    for c in (1, 3, 5, 35, 45, 65, 67):
        for noscan in (False, True):
            s = MSpan()
            s.init(ARENA_BASE, sc.class_to_allocnpages[c], sc.make_span_class(c, noscan))
            for i in range(s.nelems):
                base = ARENA_BASE + i * s.elemsize
                assert s.objIndex(base) == i
                assert s.objIndex(base + s.elemsize - 1) == i


def test_span_class_encoding():
    assert sc.NUM_SPAN_CLASSES == 136
    assert sc.TINY_SPAN_CLASS == 5
    for c in range(sc.NUM_SIZE_CLASSES):
        for noscan in (False, True):
            spc = sc.make_span_class(c, noscan)
            assert spc == c << 1 | noscan
            assert sc.span_class_sizeclass(spc) == c
            assert sc.span_class_noscan(spc) is noscan


# ---------------------------------------------------------------- routing in mallocgc

P8 = ptr_type(1, name="sc_ptr1")        # 8 bytes, one pointer
P16 = ptr_type(2, name="sc_ptr2")
BIG_SCAN = ptr_type(4097, name="sc_ptr4097")  # 32776 bytes: just past the small limit


@pytest.mark.parametrize("size,typ,spc", [
    (8, P8, 2),                   # class 1 scan
    (16, P16, 4),                 # class 2 scan
    (16, None, 5),                # class 2 noscan: a whole slot, not tiny
    (1024, None, 32 << 1 | 1),
    (1025, None, 33 << 1 | 1),
    (32768, None, 67 << 1 | 1),
    (32769, None, 1),             # large noscan
    (32776, BIG_SCAN, 0),         # large scan
])
def test_allocation_lands_in_span_class(heap, size, typ, spc):
    x = heap.malloc(size, typ)
    s = span_of(heap, x)
    assert s.spanclass == spc
    assert (x - s.startAddr) % s.elemsize == 0
    assert s.elemsize >= size
    assert heap.mcaches[0].tiny == 0  # nothing went through the tiny allocator


def test_zero_size_is_zerobase_without_accounting(heap):
    before = heap.read_memstats()
    live = heap.mheap.gcController.heapLive.load()
    c = heap.mcaches[0]
    for typ in (None, P8, Type("sc_empty_noscan", 4)):
        assert heap.malloc(0, typ) == ZEROBASE
        assert heap.malloc(0, typ, p=3) == ZEROBASE
    assert heap.mheap.spanOf(ZEROBASE) is None
    assert heap.mheap.gcController.heapLive.load() == live
    assert not heap.mheap.allspans
    assert c.tiny == 0 and c.tinyAllocs == 0
    after = heap.read_memstats()
    for k in ("Mallocs", "Frees", "HeapAlloc", "TotalAlloc", "HeapInuse", "HeapSys"):
        assert after[k] == before[k], k
    heap.verify()


def test_tiny_allocations_share_a_block(heap):
    c = heap.mcaches[0]
    a = heap.malloc(1)
    s = span_of(heap, a)
    assert s.spanclass == sc.TINY_SPAN_CLASS and (a - s.startAddr) % 16 == 0
    assert c.tiny == a and c.tinyoffset == 1
    assert heap.malloc(2) == a + 2    # 2-aligned
    assert heap.malloc(4) == a + 4    # 4-aligned
    assert heap.malloc(8) == a + 8    # 8-aligned; the block is now full
    assert c.tinyoffset == 16 and c.tinyAllocs == 3
    b = heap.malloc(15)               # does not fit: a fresh block
    assert b != a and span_of(heap, b).spanclass == sc.TINY_SPAN_CLASS
    assert c.tiny == b and c.tinyoffset == 15  # it leaves more room (1 < 16)
    d = heap.malloc(16)               # 16 bytes is class 2, not tiny
    assert d not in (a, b) and (d - span_of(heap, d).startAddr) % 16 == 0
    assert c.tiny == b and c.tinyoffset == 15 and c.tinyAllocs == 3
    assert heap.malloc(1) == b + 15
    heap.verify()


def _expected_tiny_offset(prev: int, size: int) -> int:
    align = 8 if size % 8 == 0 else 4 if size % 4 == 0 else 2 if size % 2 == 0 else 1
    return -(-prev // align) * align


def test_tiny_alignment_rules(heap):
    c = heap.mcaches[0]
    heap.malloc(1)
    for size in range(1, 16):
        for prev in range(0, 17):
            heap.malloc(1)            # make sure a current block exists
            c.tinyoffset = prev       # pretend prev bytes of it are used
            block = c.tiny
            off = _expected_tiny_offset(prev, size)
            x = heap.malloc(size)
            if off + size <= 16:
                assert x == block + off, (prev, size)
                assert c.tinyoffset == off + size
            else:
                assert x != block and (x - span_of(heap, x).startAddr) % 16 == 0, (prev, size)
                # the new block replaces the old one only if it leaves more room
                assert c.tiny == (x if size < prev else block), (prev, size)


def test_tiny_only_for_noscan_below_16(heap):
    c = heap.mcaches[0]
    x = heap.malloc(8, P8)             # 8 bytes with a pointer: class 1 scan, never tiny
    assert span_of(heap, x).spanclass == 2 and c.tiny == 0
    y = heap.malloc(12, Type("sc_noscan12", 12))  # a typed noscan object is tiny
    assert c.tiny == y and span_of(heap, y).spanclass == sc.TINY_SPAN_CLASS
