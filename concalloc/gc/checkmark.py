"""Checkmark and the mark-bit checks of mark termination (mcheckmark.go, mgcsweep.go).

runCheckmark (GODEBUG gccheckmark=1): with the world stopped at mark
termination, mark again from the roots into separate bits -- here a set of
object bases, never the span's gcmarkBits -- and every reachable object the
concurrent mark left white is a lost object: Go's "checkmark found unmarked
object", reported with the path from a root to it.  It trusts only the roots
(globals, every P's stack slots and registers), the heap bitmap and the
spans; it neither reads nor changes the pacer's statistics.

check_marked_allocated (heapcheck >= 1): mark bits only on allocated slots.
A marked slot that holds no object is what sweep would report as "marked
free object in span" (reportZombies).
"""

from __future__ import annotations

from collections import deque

from ..mbitmap import pointer_slots
from ..check.violation import Violation


class CheckmarkError(Violation):
    def __init__(self, message: str, address: int, span, cycle: int):
        super().__init__("gc.checkmark", message, address=address, span=span, cycle=cycle, phase="marktermination")


def _roots(gc):
    for i, v in enumerate(gc.global_words()):
        if v:
            yield v, f"global {i}"
    for p in gc.allp:
        m = p.m
        if m is None:
            continue
        for i, v in enumerate(m.stack):
            if v:
                yield v, f"{p.name} stack slot {i}"
        for v in m.regs:
            if v:
                yield v, f"{p.name} register (last allocation)"
        if p.mcache.allocating:
            yield p.mcache.allocating, f"{p.name} mallocgc (the object being allocated)"


def runCheckmark(gc) -> int:
    """Re-mark from the roots; raise CheckmarkError on the first reachable
    object that is not marked.  Returns the number of objects reached."""
    h = gc.h
    load = gc.mem.load
    parent: dict[int, tuple] = {}
    q = deque()
    for v, what in _roots(gc):
        base, s, idx = h.findObject(v)
        if s is not None and base not in parent:
            parent[base] = (None, what)
            q.append((base, s, idx))
    while q:
        base, s, idx = q.popleft()
        if not s.isMarked(idx):
            _report(gc, base, s, parent)
        for slot in pointer_slots(s, base):
            v = load(slot)
            if not v:
                continue
            b2, s2, i2 = h.findObject(v, base, slot - base)
            if s2 is not None and b2 not in parent:
                parent[b2] = (base, f"field +{slot - base}")
                q.append((b2, s2, i2))
    return len(parent)


def _path(parent, obj: int) -> list[str]:
    steps = []
    while obj is not None:
        up, how = parent[obj]
        steps.append(f"{obj:#x} ({how})" if up is None else f"{how} -> {obj:#x}")
        obj = up
    return list(reversed(steps))


def _report(gc, obj: int, s, parent) -> None:
    path = _path(parent, obj)
    raise CheckmarkError(
        f"runtime: checkmarks found unexpected unmarked object obj={obj:#x}\n"
        f"  path from a root: {' / '.join(path)}\n"
        f"  barrier={gc.barrier_kind} stack-scan={gc.stack_scan}\n"
        "fatal error: checkmark found unmarked object", obj, s, gc.numgc + 1)


def check_marked_allocated(gc) -> None:
    """Every set mark bit is on an allocated slot (world stopped, mcaches flushed):
    mark termination's check."""
    with gc.h.lock:
        spans = list(gc.h.allspans)
    marks_on_allocated(gc, spans)


def marks_on_allocated(gc, spans=None) -> None:
    """Every set mark bit is on an allocated slot (world stopped; the mcaches
    need not be flushed: an object allocated from a cached span is below its
    freeindex).  Without `spans`, allspans is read without mheap's lock, so
    the check is no scheduling decision (world stopped: no P grows the heap)."""
    if spans is None:
        spans = list(gc.h.allspans)
    for s in spans:
        marks = int.from_bytes(s.gcmarkBits, "little")
        if not marks:
            continue
        alloc = int.from_bytes(s.allocBits, "little") | ((1 << s.freeindex) - 1)
        stray = marks & ~alloc & ((1 << s.nelems) - 1)
        if stray:
            i = (stray & -stray).bit_length() - 1
            raise Violation("gc.marked_free",
                            f"runtime: marked free object in span {s.describe()}\n"
                            f"  {s.startAddr + i * s.elemsize:#x} index {i} marked free\n"
                            "fatal error: found pointer to free object",
                            address=s.startAddr + i * s.elemsize, span=s)
