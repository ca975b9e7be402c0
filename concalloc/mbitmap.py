"""The heap bitmap (mbitmap.go): which words of a heap object hold pointers.

This is the interface the allocator writes and the collector and the pointer
oracle read:

    heapBitsSetType(s, x, size, typ)   at allocation of a scan object at x
    pointer_slots(s, x)                addresses of the pointer words of the
                                       object at x (in span s), in order

For now the layout is one type id per slot (s.typeids) and one per large
span (s.largeType); Go 1.19's 2-bit-per-word arena bitmap replaces it behind
the same two functions.
"""

from __future__ import annotations

from .memory import type_by_id


def heapBitsSetType(s, x: int, size: int, typ) -> None:
    """Record that the object at x (size bytes, an array of typ) has typ's pointers."""
    if s.spanclass >> 1:
        s.typeids[(x - s.startAddr) // s.elemsize] = typ.id
    else:
        s.largeType = typ.id


def object_type(s, x: int):
    """The Type recorded for the object at x, or None (noscan)."""
    if s.spanclass & 1:
        return None
    tid = s.typeids[(x - s.startAddr) // s.elemsize] if s.spanclass >> 1 else s.largeType
    return type_by_id(tid)


def pointer_slots(s, x: int) -> list[int]:
    """Addresses of the words of the object at x that hold pointers."""
    typ = object_type(s, x)
    if typ is None:
        return []
    size = s.elemsize if s.spanclass >> 1 else s.limit - s.startAddr
    return [x + off for off in typ.pointer_offsets(size)]
