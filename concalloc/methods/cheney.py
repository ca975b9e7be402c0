"""Cheney's semispace copying collector (1970), and its checker.

With the world stopped, evacuate(method, to) copies every object reachable
from the roots out of the bump method's current space ("from-space") into
`to`, breadth first, with no stack: the to-space itself is the queue.

    1. each root word (stack slots, registers, globals) that points into
       from-space is forwarded: the object is copied to `free` (unless its
       header already says FWD), its old header gets FWD and the new address,
       and the root is overwritten with the new address;
    2. `scan` walks the to-space from its start; for each copied object it
       forwards every pointer word its type names (header.pointer_offsets),
       copying what those point to behind `free`;
    3. when scan catches up with free, every live object has been copied and
       every pointer to it fixed; what is left in from-space is garbage.

It touches live objects only (its cost is O(live), not O(heap)) and leaves
the free space in one piece, which is why a bump allocator needs it.  The
bytes copied are the bump row's price in compare-allocators.

check_space (heapcheck >= 1, before and after each collection) walks the
space and fails on:
    cheney.walk        blocks do not tile [start, top) with valid headers
                       (or a forwarding header is left in the space)
    cheney.unfixed     a root or pointer field still points at from-space
                       (the idle semispace or a retired one): not fixed
    cheney.bad_pointer a root or field points into the heap, not at an object
    cheney.unreachable right after a copy: an object in to-space that no
                       root reaches (a copy of garbage, or a lost root)

Protection: world stopped, the method's lock held.
"""

from __future__ import annotations

from ..check.violation import throw
from ..malloc import ZEROBASE
from . import header as H
from .base import bad_pointer


def evacuate(method, to: tuple[int, int]) -> tuple[int, int]:
    """Copy the live objects of method.space into `to`; return (free, objects copied)."""
    ld, st = method.ld, method.st
    sysmem = method.sysmem
    fs, ftop = (method.space[0], method.top) if method.space else (0, 0)
    ts, te = to
    free = ts
    nobj = 0
    check = method.cfg.heapcheck >= 1

    def forward(v: int, what: str) -> int:
        nonlocal free, nobj
        if not fs <= v < ftop:
            return v
        b = v - H.HDR
        w0, w1 = ld(b), ld(b + 8)
        if w0 & H.FWD:
            return w1
        if not H.is_info(w1) or w0 & H.FREE:
            if check:
                bad_pointer(what, v)
            return v
        bs = w0 & ~H.FLAGS
        if free + bs > te:
            throw("cheney.overflow", f"to-space [{ts:#x}, {te:#x}) cannot hold the live objects")
        sysmem.write_bytes(free, sysmem.read_bytes(b, bs))
        new = free + H.HDR
        st(b, w0 | H.FWD)
        st(b + 8, new)
        free += bs
        nobj += 1
        return new

    for cont, i in method.roots():
        v = cont[i]
        nv = forward(v, "root")
        if nv != v:
            cont[i] = nv
    scan = ts
    while scan < free:
        bs = ld(scan) & ~H.FLAGS
        x = scan + H.HDR
        for off in H.pointer_offsets(ld(scan + 8)):
            v = ld(x + off)
            nv = forward(v, f"field of object {x:#x}:")
            if nv != v:
                st(x + off, nv)
        scan += bs
    return free, nobj


def check_space(method, reachable: bool) -> None:
    ld = method.ld
    s, top = method.space[0], method.top
    starts: dict[int, int] = {}
    b = s
    while b < top:
        w0, w1 = ld(b), ld(b + 8)
        bs = w0 & ~H.FLAGS
        if w0 & H.FLAGS or bs < 2 * H.HDR or bs & 15 or b + bs > top or not H.is_info(w1) \
                or H.req_size(w1) + H.HDR > bs:
            throw("cheney.walk", f"block {b:#x} (header {w0:#x} {w1:#x}) breaks the walk of "
                  f"[{s:#x}, {top:#x})", address=b)
        starts[b + H.HDR] = w1
        b += bs

    def valid(v: int, what: str) -> None:
        if v == 0 or v == ZEROBASE or not method.in_arena(v) or v in starts:
            return
        stale = method.stale_space(v)
        if stale:
            throw("cheney.unfixed", f"{what} {v:#x} still points into {stale}: a pointer was not fixed",
                  address=v)
        throw("cheney.bad_pointer", f"{what} {v:#x} points into the heap but not at an object", address=v)

    for cont, i in method.roots():
        valid(cont[i], "root")
    for x, info in starts.items():
        for off in H.pointer_offsets(info):
            valid(ld(x + off), f"field +{off} of object {x:#x}:")
    if not reachable:
        return
    seen: set[int] = set()
    work = [cont[i] for cont, i in method.roots() if cont[i] in starts]
    while work:
        x = work.pop()
        if x in seen:
            continue
        seen.add(x)
        work.extend(v for off in H.pointer_offsets(starts[x]) if (v := ld(x + off)) in starts)
    if len(seen) != len(starts):
        lost = min(set(starts) - seen)
        throw("cheney.unreachable", f"{len(starts) - len(seen)} objects in to-space are reachable from no "
              f"root (first at {lost:#x})", address=lost)
