"""Object types and word-level access to memory (Go's _type, and loads and
stores by address).

A Type is a size and a pointer map, which is all the allocator and collector
need of Go's _type:

    size      bytes of one value
    ptrwords  the word offsets that hold pointers
    ptrdata   bytes of the prefix that holds pointers: 8 * (last pointer
              word + 1), 0 for a pointer-free type (Go's typ.ptrdata)
    gcdata    the pointer mask, one bit per word of the ptrdata prefix, least
              significant bit first (Go's typ.gcdata for a type with no GC
              program)
    noscan    no pointers: its objects go to noscan spans, the tiny
              allocator may take it, and no heap bits are written

An allocation of n values of a type is an array whose mask repeats every
size bytes.  Types are interned: Type(name, size, ptrwords) with a name,
size and pointer map seen before returns that same Type, so a long campaign
that builds its types once per run makes no new ones after the first run.
Each Type carries `heapBits`, a cache of the heap-bitmap bytes of its objects
(filled by concalloc.mbitmap, one entry per object size and bitmap phase).

Objects never become Python objects: their words are 8-byte words of the
real mapping, read and written by address through Memory, which also holds
the data segment (concalloc.moduledata, the globals) at its fixed address
below the heap.

Protection: the interning table, the id registry and the id counter are
guarded by _registry_lock; a Type's fields are immutable once it is
returned; `heapBits` entries are computed from those fields alone, so two
threads filling the same key store equal values (a dict store is atomic).
"""

from __future__ import annotations

import threading

_registry_lock = threading.Lock()
_interned: dict[tuple, "Type"] = {}          # (name, size, ptrwords) -> Type; _registry_lock
_types: list["Type | None"] = [None]         # id -> Type; id 0 = no type; _registry_lock
MAX_TYPES = (1 << 24) - 1                    # ids fit the debug type record (mbitmap)


class Type:
    __slots__ = ("name", "size", "ptrwords", "noscan", "ptrdata", "gcdata", "ptrmask", "id", "heapBits")

    def __new__(cls, name: str, size: int, ptrwords=()):
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"type {name!r}: size must be a positive int, got {size!r}")
        ptrwords = tuple(sorted(set(ptrwords)))
        for w in ptrwords:
            if not isinstance(w, int) or w < 0 or w * 8 + 8 > size:
                raise ValueError(f"type {name!r}: pointer word {w!r} outside a {size}-byte object")
        if ptrwords and size % 8:
            raise ValueError(f"type {name!r}: a type with pointers must be a multiple of 8 bytes")
        key = (name, size, ptrwords)
        t = _interned.get(key)
        if t is not None:
            return t
        with _registry_lock:
            t = _interned.get(key)
            if t is None:
                t = _new_type(cls, name, size, ptrwords)
                _interned[key] = t
        return t

    def __reduce__(self):
        return (Type, (self.name, self.size, self.ptrwords))

    def pointer_offsets(self, objsize: int):
        """Byte offsets of the pointer words of an object of objsize bytes
        holding an array of this type (the type's view; the heap bitmap is
        the heap's)."""
        step = self.size
        for base in range(0, objsize - step + 1, step):
            for w in self.ptrwords:
                yield base + 8 * w

    def scan_size(self, size: int) -> int:
        """Bytes the collector must scan in an object of `size` bytes holding
        size // self.size values: up to the last value's ptrdata (Go's
        mallocgc scanSize, charged to heapScan); 0 for a noscan type."""
        return size - self.size + self.ptrdata if self.ptrdata else 0

    def __repr__(self) -> str:
        return f"Type({self.name!r}, {self.size}, ptrs={list(self.ptrwords)})"


def _new_type(cls, name: str, size: int, ptrwords: tuple) -> Type:
    """Build and register a Type (_registry_lock held)."""
    if len(_types) > MAX_TYPES:
        raise ValueError(f"too many distinct types ({MAX_TYPES}): build types once and reuse them")
    t = object.__new__(cls)
    t.name = name
    t.size = size
    t.ptrwords = ptrwords
    t.noscan = not ptrwords
    t.ptrdata = 8 * (ptrwords[-1] + 1) if ptrwords else 0
    mask = 0
    for w in ptrwords:
        mask |= 1 << w
    t.ptrmask = mask
    t.gcdata = mask.to_bytes((t.ptrdata // 8 + 7) // 8, "little")
    t.heapBits = {}
    t.id = len(_types)
    _types.append(t)
    return t


def type_by_id(tid: int) -> "Type | None":
    return _types[tid]


def ntypes() -> int:
    """Distinct types made so far in this process."""
    return len(_types) - 1


def ptr_type(nwords: int, ptrwords=None, name: str | None = None) -> Type:
    """A convenient struct of nwords words whose given words (default: all) are pointers."""
    ptrs = range(nwords) if ptrwords is None else ptrwords
    return Type(name or f"struct{{{nwords}w}}", 8 * nwords, ptrs)


class BadAddress(ValueError):
    """A word access outside the heap reservation and the data segment, or
    not 8-byte aligned."""


class Memory:
    """Words of memory by address: the heap reservation, and the data
    segment (moduledata) below it.

    The heap is the fast path: an address inside the reservation is one
    subtraction, one test and one index.  Everything else (an address below
    the reservation, or an unaligned one) takes the `off < 0 or off & 7`
    branch, which serves the data segment and refuses the rest with
    BadAddress; an address past the end of the reservation raises IndexError
    from the word view."""

    __slots__ = ("words", "base", "moduledata")

    def __init__(self, sysmem, moduledata=None):
        self.words = sysmem.words
        self.base = sysmem.base
        self.moduledata = moduledata

    def load(self, addr: int) -> int:
        off = addr - self.base
        if off < 0 or off & 7:
            return self._segment("load", addr).load(addr)
        return self.words[off >> 3]

    def store(self, addr: int, value: int) -> None:
        off = addr - self.base
        if off < 0 or off & 7:
            self._segment("store", addr).store(addr, value)
            return
        self.words[off >> 3] = value

    def _segment(self, what: str, addr: int):
        md = self.moduledata
        if md is not None and md.contains(addr):
            return md
        raise BadAddress(f"{what} of word at {addr:#x}: outside the heap and the data segment, "
                         "or not 8-byte aligned")
