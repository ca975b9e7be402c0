"""Plain helpers shared by the allocator tests (imported by name; the
tests directory is on sys.path when pytest imports its test modules)."""

from __future__ import annotations

from concalloc import Heap


def span_of(h: Heap, addr: int):
    """The in-use span holding addr (asserting there is one)."""
    s = h.mheap.spanOfHeap(addr)
    assert s is not None, f"{addr:#x} is not in an in-use span"
    return s


def mark_addresses(h: Heap, addrs):
    """A mark function for Heap.sweep_cycle that keeps exactly the objects
    (or the tiny blocks) containing the given addresses."""
    keep: dict = {}
    for a in addrs:
        _base, s, idx = h.mheap.findObject(a)
        if s is not None:
            keep.setdefault(s, set()).add(idx)

    def mark(s):
        for i in keep.get(s, ()):
            s.setMarked(i)
    return mark
