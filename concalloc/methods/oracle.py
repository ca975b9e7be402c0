"""The Mutator API over a method, and the pointer oracle (heapcheck=2) for it.

bind_mutator(method, m) points mutator m's allocation at method.malloc and
gives it loads and stores that are yield points but never park (see
base.py: under a method a P stops for a collection only at an allocation)
and have no write barrier (the collectors are stop-the-world).

With heapcheck=2 every load and store is checked as concalloc.check.pointers
checks Go's heap, against the method's headers:

    mutator.stale_pointer  the address is in a semispace the objects have
                           left (bump): the workload kept an address across
                           an allocation instead of re-reading its slot
    mutator.bad_object     not the start of an allocated block's payload
    mutator.free_object    a free block (a use after free)
    mutator.bad_field      the field lies outside the requested size
    mutator.not_a_pointer  the object's type has no pointer at that word
    mutator.bad_pointer    a value stored or loaded points into the method's
                           heap but not at an allocated object
"""

from __future__ import annotations

from ..check.violation import throw
from ..malloc import ZEROBASE
from . import header as H


def bind_mutator(method, m) -> None:
    mem = m._mem
    md = m._md
    checked = method.cfg.heapcheck >= 2

    def malloc(c, size, typ=None, needzero=True):
        return method.malloc(m, size, typ)

    def load(obj: int, field: int) -> int:
        if m._mem_always or m._mem_decision(m._lbl_load):
            m._yield(m._lbl_load)
        if checked:
            check_field(method, obj, field)
        m.nptr += 1
        v = mem.load(obj + 8 * field)
        if checked:
            check_pointer(method, v, f"pointer loaded from {obj:#x} field {field}:")
        return v

    def store(obj: int, field: int, value: int) -> None:
        if m._mem_always or m._mem_decision(m._lbl_store):
            m._yield(m._lbl_store)
        if checked:
            check_field(method, obj, field)
            check_pointer(method, value, f"pointer stored into {obj:#x} field {field}:")
        m.nptr += 1
        mem.store(obj + 8 * field, value)

    def set_global(i: int, addr: int) -> None:
        slot = md.global_addr(i)
        m._yield(m._lbl_store)
        if checked:
            check_pointer(method, addr, f"pointer stored into global {i}:")
        mem.store(slot, addr)

    m._malloc = malloc
    m.load = load
    m.store = store
    m.set_global = set_global


def _object(method, p: int, invariant: str, what: str) -> int:
    """The info word of the allocated object whose payload starts at p, or throw."""
    stale = method.stale_space(p)
    if stale:
        throw("mutator.stale_pointer", f"{what} {p:#x} is in {stale}: the object has moved; "
              "an address must be re-read from its slot after each allocation (a safe point)", address=p)
    if method.chunk_of(p) is None:
        throw(invariant, f"{what} {p:#x} is not inside the {method.name} heap: found bad pointer in Go heap",
              address=p)
    if p & 7 or not method.in_use(p):
        throw(invariant, f"{what} {p:#x} is not the start of an allocated object", address=p)
    w0, w1 = method.ld(p - H.HDR), method.ld(p - 8)
    if w0 & H.FREE:
        throw("mutator.free_object" if invariant == "mutator.bad_object" else invariant,
              f"{what} {p:#x} is a free block: use of a freed object", address=p)
    if w0 & H.FWD or not H.is_info(w1):
        throw(invariant, f"{what} {p:#x} is not the start of an allocated object", address=p)
    return w1


def check_field(method, obj: int, field: int) -> None:
    info = _object(method, obj, "mutator.bad_object", "object")
    size = H.req_size(info)
    off = 8 * field
    if field < 0 or off + 8 > size:
        throw("mutator.bad_field", f"field {field} of object {obj:#x} lies outside its {size} bytes", address=obj)
    if off not in set(H.pointer_offsets(info)):
        typ = H.obj_type(info)
        desc = "a pointer-free object" if typ is None else \
            f"{size} bytes of type {typ.name}, whose pointer words are {list(typ.ptrwords)}"
        throw("mutator.not_a_pointer", f"word {field} of object {obj:#x} is not a pointer field ({desc})",
              address=obj)


def check_pointer(method, p: int, what: str) -> None:
    if p == 0 or p == ZEROBASE or not method.in_arena(p):
        return
    _object(method, p, "mutator.bad_pointer", what)
