"""The block header every non-Go method writes in front of each block.

Go keeps an object's metadata beside the heap (span fields, the heap
bitmap); the classic allocators of the survey keep it in the heap itself, in
a header before the payload.  These methods share one 16-byte header:

    word 0   block size in bytes (a multiple of 16, header included)
             | flags in the low 4 bits: FREE, MARK, FWD (forwarded), CLASS
    word 1   allocated: MAGIC << 56 | requested size << 24 | type id
             free:      the next free block's address (0 ends the list)
             forwarded: the object's new address (bump's from-space)

The payload (the address a mutator sees) starts at block + 16, so every
object is 16-byte aligned.  Walking a chunk block by block (address, then
address + size) visits every block: the checkers and the sweeps do exactly
that.  MAGIC lets a pointer be told from a stray interior address cheaply:
a stray word equal to a plausible header is not impossible, so the oracle
and the mark phase also require the address to lie inside the method's
chunks.  A type id of 0 is a pointer-free object; otherwise the object is
an array of memory.type_by_id(id), scanned with Type.pointer_offsets.

Protection: a header is written by the method under its lock (allocation),
or with the world stopped (collection, checks).
"""

from __future__ import annotations

from ..memory import Type, type_by_id

HDR = 16
FREE, MARK, FWD, CLASS = 1, 2, 4, 8
FLAGS = 15
MAGIC = 0xA7
MAX_REQ = (1 << 32) - 1


def block_size(size: int) -> int:
    """The block holding a `size`-byte payload: header + payload rounded up to 16."""
    return HDR + ((size + 15) & ~15 if size > 0 else 16)


def info_word(size: int, typ: Type | None) -> int:
    return MAGIC << 56 | size << 24 | (typ.id if typ is not None else 0)


def is_info(w: int) -> bool:
    return w >> 56 == MAGIC


def req_size(info: int) -> int:
    return (info >> 24) & MAX_REQ


def obj_type(info: int) -> Type | None:
    tid = info & 0xFFFFFF
    return type_by_id(tid) if tid else None


def pointer_offsets(info: int):
    """Byte offsets of the pointer words of the object whose info word this is."""
    typ = obj_type(info)
    if typ is None:
        return ()
    return typ.pointer_offsets(req_size(info))
