"""stwgc: the stop-the-world mark phase of the free-list methods.

With the world stopped (every mutator parked at an allocation, or done),
mark every block reachable from the roots (stack slots, registers, globals:
base.Method.roots) by setting MARK in its header, scanning each object's
pointer words as its type says (header.pointer_offsets, the same Type
pointer maps Go's heap bitmap is written from).  No barrier is needed: no
mutator runs while it marks.  The sweep that follows is the method's own
(freelist.FreeList.sweep): it frees every unmarked block and clears the
marks.

A word that points into the method's chunks but not at an allocated
block's payload is Go's "found bad pointer in Go heap" (gc.bad_pointer)
under heapcheck >= 1; with heapcheck=0 it is ignored, as invalidptr=0 does.

Protection: world stopped (and the method's lock held).
"""

from __future__ import annotations

from ..malloc import ZEROBASE
from . import header as H
from .base import bad_pointer


def mark(method) -> tuple[int, int]:
    """Mark everything reachable; return (objects, bytes) marked."""
    ld, st = method.ld, method.st
    check = method.cfg.heapcheck >= 1
    work: list[int] = []
    nobj = nbytes = 0

    def shade(v: int, what: str) -> None:
        nonlocal nobj, nbytes
        if v == 0 or v == ZEROBASE or not method.in_arena(v):
            return
        if not method.object_at(v):
            if check and method.chunk_of(v) is not None:
                bad_pointer(what, v)
            return
        w0 = ld(v - H.HDR)
        if w0 & H.MARK:
            return
        st(v - H.HDR, w0 | H.MARK)
        nobj += 1
        nbytes += w0 & ~H.FLAGS
        work.append(v)

    for cont, i in method.roots():
        shade(cont[i], "root")
    for v in method.pool_roots():
        shade(v, "object held by a sync.Pool")
    while work:
        x = work.pop()
        for off in H.pointer_offsets(ld(x - 8)):
            shade(ld(x + off), f"field of object {x:#x}:")
    return nobj, nbytes
