"""Atomic helpers that stay correct without the GIL.

Go's runtime uses hardware atomics (atomic.Load/Store/Cas/Xadd/Or8).  Python
has none, so every read-modify-write here happens under a small raw lock:
either the value's own lock (AtomicInt, AtomicCounters) or one of a fixed set
of striped locks chosen by the object's identity (cas_attr, or8).  Plain loads
of an attribute or list item are single operations in CPython, free-threaded
builds included, so load_attr is just getattr; everything that reads, computes
and writes goes through a lock.  These locks are leaves: nothing is acquired
while one is held, so they need no rank and never show in lock statistics.
"""

from __future__ import annotations

import threading

NSTRIPES = 64
# The striped locks: obj's is STRIPES[(id(obj) >> 4) % NSTRIPES].  A hot loop
# may write or8 out under that same lock (gc/mark.py scanobject does).
STRIPES = tuple(threading.Lock() for _ in range(NSTRIPES))


def _stripe(obj) -> threading.Lock:
    return STRIPES[(id(obj) >> 4) % NSTRIPES]


class AtomicInt:
    """One integer with atomic load/store/add/cas/swap."""

    __slots__ = ("_v", "_mu")

    def __init__(self, v: int = 0):
        self._v = v
        self._mu = threading.Lock()

    def load(self) -> int:
        return self._v

    def store(self, v: int) -> None:
        with self._mu:
            self._v = v

    def add(self, d: int) -> int:
        with self._mu:
            self._v += d
            return self._v

    def cas(self, old: int, new: int) -> bool:
        with self._mu:
            if self._v != old:
                return False
            self._v = new
            return True

    def swap(self, v: int) -> int:
        with self._mu:
            old, self._v = self._v, v
            return old

    def __repr__(self) -> str:
        return f"AtomicInt({self._v})"


class AtomicCounters:
    """A fixed set of named integer counters updated together atomically.

    ``add(a=1, b=-2)`` applies all deltas under one lock, so a snapshot never
    sees half of a multi-counter update (Go gets the same effect from its
    consistent per-P heapStats deltas).
    """

    __slots__ = ("_v", "_mu")

    def __init__(self, *names: str):
        self._v = dict.fromkeys(names, 0)
        self._mu = threading.Lock()

    def add(self, **deltas: int) -> None:
        with self._mu:
            v = self._v
            for k, d in deltas.items():
                v[k] += d

    def set(self, **values: int) -> None:
        with self._mu:
            self._v.update(values)

    def get(self, name: str) -> int:
        return self._v[name]

    def snapshot(self) -> dict[str, int]:
        with self._mu:
            return dict(self._v)


def cas_attr(obj, name: str, old, new) -> bool:
    """Compare-and-swap of obj.name (e.g. a span's sweepgen)."""
    with _stripe(obj):
        if getattr(obj, name) != old:
            return False
        setattr(obj, name, new)
        return True


def store_attr(obj, name: str, v) -> None:
    """Atomic store that is ordered with cas_attr on the same field."""
    with _stripe(obj):
        setattr(obj, name, v)


def add_attr(obj, name: str, d: int) -> int:
    with _stripe(obj):
        v = getattr(obj, name) + d
        setattr(obj, name, v)
        return v


def or8(buf: bytearray, i: int, mask: int) -> int:
    """buf[i] |= mask atomically; returns the old byte (Go's atomic.Or8)."""
    with STRIPES[(id(buf) >> 4) % NSTRIPES]:     # _stripe(buf), written out: a call less
        old = buf[i]
        buf[i] = old | mask
        return old


def or_bits(buf: bytearray, mask: int) -> int:
    """buf |= mask, the buffer read as one little-endian integer, atomically
    with or8/and8 on the same buffer; returns the old value as an int."""
    with _stripe(buf):
        old = int.from_bytes(buf, "little")
        buf[:] = (old | mask).to_bytes(len(buf), "little")
        return old


def and8(buf: bytearray, i: int, mask: int) -> int:
    with _stripe(buf):
        old = buf[i]
        buf[i] = old & mask
        return old
