"""Object types and word-level access to heap memory.

A Type is a size and a pointer map (the word offsets that hold pointers),
which is all the allocator and collector need of Go's _type: whether the
object is noscan (no pointers, so its span class has the noscan bit and the
tiny allocator may take it) and which words to scan.  An allocation of n
elements of a type is an array whose element pointer map repeats.

Objects never become Python objects: their words are 8-byte words of the
real mapping, read and written by address.
"""

from __future__ import annotations

import threading

_registry_lock = threading.Lock()
_types: list["Type | None"] = [None]  # id 0 = no type (noscan bytes); guarded by _registry_lock


class Type:
    __slots__ = ("name", "size", "ptrwords", "noscan", "id")

    def __init__(self, name: str, size: int, ptrwords=()):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"type {name!r}: size must be a positive int, got {size!r}")
        ptrwords = tuple(sorted(set(ptrwords)))
        for w in ptrwords:
            if not isinstance(w, int) or w < 0 or w * 8 + 8 > size:
                raise ValueError(f"type {name!r}: pointer word {w!r} outside a {size}-byte object")
        if ptrwords and size % 8:
            raise ValueError(f"type {name!r}: a type with pointers must be a multiple of 8 bytes")
        self.name = name
        self.size = size
        self.ptrwords = ptrwords
        self.noscan = not ptrwords
        with _registry_lock:
            if len(_types) >= 0xFFFF:
                raise ValueError("too many types (65535)")
            self.id = len(_types)
            _types.append(self)

    def ptrdata_of(self, size: int) -> int:
        """Bytes of an array of this type (size bytes) the marker must scan:
        Go's (n-1)*elemsize + ptrdata, 0 for a noscan type."""
        if self.noscan:
            return 0
        return size - self.size + 8 * (self.ptrwords[-1] + 1)

    def pointer_offsets(self, objsize: int):
        """Byte offsets of the pointer words of an object of objsize bytes
        holding an array of this type."""
        step = self.size
        for base in range(0, objsize - step + 1, step):
            for w in self.ptrwords:
                yield base + 8 * w

    def __repr__(self) -> str:
        return f"Type({self.name!r}, {self.size}, ptrs={list(self.ptrwords)})"


def type_by_id(tid: int) -> "Type | None":
    return _types[tid]


def ptr_type(nwords: int, ptrwords=None, name: str | None = None) -> Type:
    """A convenient struct of nwords words whose given words (default: all) are pointers."""
    ptrs = range(nwords) if ptrwords is None else ptrwords
    return Type(name or f"struct{{{nwords}w}}", 8 * nwords, ptrs)


class BadAddress(ValueError):
    """A word access outside the reservation or not 8-byte aligned."""


class Memory:
    """Words of the heap by address.  An address below the reservation would
    index the word view from its end, so it is refused, as is an unaligned
    one; past the end the view itself raises IndexError."""

    __slots__ = ("words", "base")

    def __init__(self, sysmem):
        self.words = sysmem.words
        self.base = sysmem.base

    def load(self, addr: int) -> int:
        off = addr - self.base
        if off < 0 or off & 7:
            raise BadAddress(f"load of word at {addr:#x}: outside the heap or not 8-byte aligned")
        return self.words[off >> 3]

    def store(self, addr: int, value: int) -> None:
        off = addr - self.base
        if off < 0 or off & 7:
            raise BadAddress(f"store of word at {addr:#x}: outside the heap or not 8-byte aligned")
        self.words[off >> 3] = value
