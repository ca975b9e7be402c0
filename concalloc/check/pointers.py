"""The pointer oracle (heapcheck=2): every heap access a mutator makes is checked.

Go checks pointers only when the GC finds them (invalidptr, "found bad
pointer in Go heap").  With heapcheck=2 a mutator's every load and store of
a pointer field is checked at the moment it happens:

    mutator.bad_object     the object is not inside an allocated span
    mutator.free_object    the object's slot is free (a use after free)
    mutator.bad_field      the field lies outside the object (its slot, for
                           small objects, whose exact size is not kept)
    mutator.not_a_pointer  the field's pointer bit in the heap bitmap is clear
                           (a noscan object has no pointer words at all)
    mutator.bad_pointer    the value loaded or stored points into the heap's
                           pages but not at an allocated object

Reads of another P's span (freeindex, allocBits) are racy but safe for this
purpose: a published pointer's object was allocated before it was published,
and a sweep running beside the check publishes the span's new allocBits before
it resets freeindex, while isFree reads freeindex first, so a live object is
never seen free mid-sweep.
"""

from __future__ import annotations

from ..malloc import ZEROBASE
from ..mbitmap import isPointer, recorded_type
from ..sysmem import ARENA_BASE
from .violation import throw


def _object(h, p: int, invariant: str, what: str):
    """(span, index, base) of the allocated object containing p, or throw."""
    s = h.spanOfHeap(p)
    if s is None:
        throw(invariant, f"{what} {p:#x} is not inside an allocated span: "
              "found bad pointer in Go heap (incorrect use of unsafe or cgo?)", span=h.spanOf(p), address=p)
    idx = s.objIndex(p)
    if s.isFree(idx):
        throw("mutator.free_object" if invariant == "mutator.bad_object" else invariant,
              f"{what} {p:#x} is a free slot (index {idx}): use of a freed object", span=s, address=p)
    return s, idx, s.startAddr + idx * s.elemsize


def check_field(h, obj: int, field: int) -> None:
    """obj.field must be a pointer word of a live object."""
    s, idx, base = _object(h, obj, "mutator.bad_object", "object")
    off = obj + 8 * field - base
    # a large object's size is known exactly (limit); a small one's only to its slot
    size = s.limit - base if s.spanclass >> 1 == 0 else s.elemsize
    if field < 0 or off < 0 or off + 8 > size:
        throw("mutator.bad_field", f"field {field} of object {base:#x} lies outside its "
              f"{size} bytes", span=s, address=obj)
    if s.spanclass & 1 or not isPointer(s, base + off):
        throw("mutator.not_a_pointer", f"word {off // 8} of object {base:#x} is not a pointer field "
              f"({_describe(s, base)})", span=s, address=obj)


def _describe(s, base: int) -> str:
    if s.spanclass & 1:
        return "a pointer-free object"
    rec = recorded_type(s, base)
    if rec is None:
        return "its heap bits say scalar"
    typ, size = rec
    return f"its heap bits say scalar; {size} bytes of type {typ.name}, whose pointer words are {list(typ.ptrwords)}"


def check_pointer(h, p: int, what: str) -> None:
    """A pointer value must be nil, zerobase, outside the mapped heap, or an
    allocated object (stricter than Go's findObject, which lets a pointer to
    a page that never held a span pass)."""
    if p == 0 or p == ZEROBASE or not ARENA_BASE <= p < h.curArenaEnd:
        return
    _object(h, p, "mutator.bad_pointer", what)
