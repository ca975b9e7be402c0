"""Real memory: freed and scavenged pages leave the process's RSS, and
running out of the reservation is a clean OutOfMemory, not a crash."""

from __future__ import annotations

import mmap

import pytest

from concalloc import Heap
from concalloc.sysmem import OutOfMemory

from alloc_helpers import mark_addresses

MiB = 1 << 20


def test_scavenge_returns_freed_memory_to_the_os(heaps):
    h = Heap(reserve_bytes=1 << 30)
    heaps.append(h)
    mem = h.memory
    total, size = 256 * MiB, 4 * MiB
    rss0 = h.rss()
    objs = [h.malloc(size) for _ in range(total // size)]
    for x in objs:                           # touch every OS page, or nothing is resident
        for off in range(0, size, mmap.PAGESIZE):
            mem.store(x + off, x + off)
    rss_full = h.rss()
    assert rss_full - rss0 >= total * 9 // 10
    ms0 = h.read_memstats()

    h.sweep_cycle()                          # nothing marked: every object is freed
    assert h.read_memstats()["HeapInuse"] == 0
    assert h.rss() >= rss_full * 9 // 10     # free is not released: still resident
    released = h.scavenge()
    rss_after = h.rss()
    ms = h.read_memstats()

    assert released >= total
    assert rss_full - rss_after >= total // 2
    assert ms["HeapReleased"] - ms0["HeapReleased"] >= total
    assert ms["HeapReleased"] == ms["HeapSys"]   # every mapped page is released now
    h.verify()

    # Released pages come back zeroed by the OS.
    y = h.malloc(size)
    assert y == objs[0] and mem.load(y + mmap.PAGESIZE) == 0
    h.verify()


def test_partial_scavenge_releases_what_it_says(heaps):
    h = Heap(reserve_bytes=1 << 30)
    heaps.append(h)
    xs = [h.malloc(MiB) for _ in range(16)]
    for x in xs:
        for off in range(0, MiB, mmap.PAGESIZE):
            h.memory.store(x + off, 1)
    h.sweep_cycle(mark_addresses(h, xs[:4]))
    before = h.read_memstats()["HeapReleased"]
    rss = h.rss()
    assert h.scavenge(2 * MiB) == 2 * MiB
    assert h.read_memstats()["HeapReleased"] == before + 2 * MiB
    assert rss - h.rss() >= MiB
    assert all(h.memory.load(x) == 1 for x in xs[:4])   # live objects untouched
    h.verify()


def test_large_allocations_exhaust_the_reservation(heaps):
    h = Heap(reserve_bytes=64 * MiB)
    heaps.append(h)
    got = []
    with pytest.raises(OutOfMemory, match=r"out of memory: cannot allocate \d+-byte block.*64 MiB reservation"):
        for _ in range(65):
            got.append(h.malloc(MiB))
    assert len(got) == 63 or len(got) == 64
    h.verify()                               # a failed allocation leaves the heap intact
    h.sweep_cycle(mark_addresses(h, got[1:]))
    assert h.malloc(MiB) == got[0]           # and usable once memory is freed
    h.verify()


@pytest.mark.parametrize("size", [8, 64, 1024, 32768], ids=lambda s: f"{s}B")
def test_small_allocations_exhaust_the_reservation(heaps, size):
    h = Heap(reserve_bytes=64 * MiB)
    heaps.append(h)
    filler = h.malloc(63 * MiB)              # leaves 1 MiB of free pages to fill
    n = 0
    limit = MiB // size + 1
    with pytest.raises(OutOfMemory, match="out of memory"):
        while n < limit:
            h.malloc(size, p=n % 4 if size >= 1024 else 0)
            n += 1
    assert n < limit
    h.verify()                               # the mcache that failed to refill is consistent
    h.sweep_cycle(mark_addresses(h, [filler]))   # free the small objects...
    h.malloc(size)                           # ...and the allocator works again
    h.verify()


def test_allocation_bigger_than_reservation(heaps):
    h = Heap(reserve_bytes=64 * MiB)
    heaps.append(h)
    with pytest.raises(MemoryError, match="reservation"):
        h.malloc(65 * MiB)
    with pytest.raises(MemoryError, match="reservation"):
        h.malloc(1 << 62)
    h.malloc(64)                             # maps the first 4 MiB of the reservation
    with pytest.raises(OutOfMemory, match="out of memory"):
        h.malloc(64 * MiB)                   # no longer fits after it
    h.verify()


def _touch(h, x, n):
    for off in range(0, n, mmap.PAGESIZE):
        h.memory.store(x + off, 1)


def test_rss_is_per_heap_with_several_heaps_alive(heaps):
    """Adjacent anonymous mappings with the same flags can share one kernel
    VMA; each heap's rss() must still count its own pages only."""
    a, b, c = (Heap(reserve_bytes=1 << 30) for _ in range(3))
    heaps.extend([a, b, c])
    _touch(a, a.malloc(8 * MiB), 8 * MiB)
    _touch(b, b.malloc(24 * MiB), 24 * MiB)
    ra, rb, rc = a.rss(), b.rss(), c.rss()
    assert 8 * MiB <= ra < 16 * MiB, ra
    assert 24 * MiB <= rb < 32 * MiB, rb
    assert rc < 4 * MiB, rc


def test_reading_untouched_memory_is_not_resident(heaps):
    h = Heap(reserve_bytes=1 << 30)
    heaps.append(h)
    x = h.malloc(16 * MiB)
    for off in range(0, 16 * MiB, mmap.PAGESIZE):
        assert h.memory.load(x + off) == 0      # maps the shared zero page, nothing more
    assert h.rss() < 4 * MiB
