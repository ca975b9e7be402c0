"""FreeList: first fit, next fit and best fit over one address-ordered free list.

The heap is a set of chunks (page runs from the mheap), each tiled by
blocks with the 16-byte header of header.py.  Free blocks are linked
through their second header word into ONE list kept in address order:

    first-fit   walk from the head, take the first block that is big enough
    next-fit    walk from where the last search stopped (the rover), wrap
                around once
    best-fit    walk the whole list for the smallest block that fits (an
                exact fit ends the walk)

A block larger than the request by at least MIN_SPLIT is split: the front
is allocated and the remainder takes the block's place in the list, so the
list stays in address order without a walk.  Each allocation counts the
free blocks it visited (the search length, the cost that grows with the
list: O(free blocks)).

Reclamation is the stop-the-world mark-sweep of stwgc.py: after marking,
sweep walks every chunk in address order and rebuilds the list, freeing the
unmarked blocks and coalescing every run of adjacent free blocks into one,
so the list never holds two neighbours.  When nothing fits after a
collection the heap grows by a new chunk (its one free block inserted in
address order).

The checker (heapcheck >= 1, at each collection): blocks tile every chunk
exactly (no overlap, no gap), allocated blocks have a valid header, no two
free neighbours (coalescing complete), and the list is strictly address
ordered (so acyclic), holds only free blocks, and holds every one of them.

Protection: every field and every header is guarded by the method's lock,
or written with the world stopped.
"""

from __future__ import annotations

from ..check.violation import throw
from . import header as H
from .base import Method
from .stwgc import mark

MIN_SPLIT = 16          # the smallest remainder that still is a block: a bare header (blocks are multiples of 16)
MIN_GROW = 256 << 10    # heap growth step (bytes), at least


class FreeList(Method):
    name = "first-fit"
    policy = "first"

    def __init__(self, rt):
        super().__init__(rt)
        self.head = 0           # first free block (address order); lock
        self.nfree = 0          # blocks on the list; lock
        self.rover = 0          # next-fit: where the last search stopped (a free block or 0); lock
        self.rover_prev = 0     # next-fit: the rover's predecessor on the list (0: it is the head); lock

    # --- allocation -----------------------------------------------------------------------
    def alloc_locked(self, size: int, typ) -> tuple[int, int, int]:
        need = H.block_size(size)
        if not self.chunks:         # the first allocation: the heap starts at heapminimum
            self.grow(self.heapminimum)
        prev, b, visits = self.find(need)
        if not b:
            return 0, visits, 0
        block = self.take(prev, b, need)
        self.st(b, block)
        self.st(b + 8, H.info_word(size, typ))
        self.sysmem.memclr(b + H.HDR, block - H.HDR)
        return b + H.HDR, visits, block

    def find(self, need: int) -> tuple[int, int, int]:
        """(predecessor, block, blocks visited) of the block the policy picks, block 0 if none."""
        if self.policy == "first":
            return self._first(need, 0, self.head, 0)
        if self.policy == "best":
            return self._best(need)
        return self._next(need)

    def _first(self, need: int, prev: int, b: int, stop: int) -> tuple[int, int, int]:
        ld = self.ld
        visits = 0
        while b and b != stop:
            visits += 1
            if ld(b) & ~H.FLAGS >= need:
                return prev, b, visits
            prev, b = b, ld(b + 8)
        return 0, 0, visits

    def _best(self, need: int) -> tuple[int, int, int]:
        ld = self.ld
        visits = 0
        best = best_prev = 0
        best_size = 1 << 62
        prev, b = 0, self.head
        while b:
            visits += 1
            bs = ld(b) & ~H.FLAGS
            if need <= bs < best_size:
                best, best_prev, best_size = b, prev, bs
                if bs == need:
                    break
            prev, b = b, ld(b + 8)
        return best_prev, best, visits

    def _next(self, need: int) -> tuple[int, int, int]:
        start = self.rover or self.head
        prev = self.rover_prev if self.rover else 0
        p, b, v1 = self._first(need, prev, start, 0)
        if b or start == self.head:
            return p, b, v1
        p, b, v2 = self._first(need, 0, self.head, start)
        return p, b, v1 + v2

    def take(self, prev: int, b: int, need: int) -> int:
        """Unlink b (or split it, leaving the remainder in its place); return the block's size."""
        ld, st = self.ld, self.st
        bs = ld(b) & ~H.FLAGS
        nxt = ld(b + 8)
        if bs - need >= MIN_SPLIT:
            r = b + need
            st(r, (bs - need) | H.FREE)
            st(r + 8, nxt)
            link, bs = r, need
        else:
            link = nxt
            self.nfree -= 1
        if prev:
            st(prev + 8, link)
        else:
            self.head = link
        self.rover, self.rover_prev = link, prev
        return bs

    def free_blocks(self) -> int:
        return self.nfree

    # --- growth -----------------------------------------------------------------------------
    def grow(self, need: int) -> None:
        start, end = self.take_chunk(max(need, MIN_GROW))
        self.insert_free(start, end - start)

    def insert_free(self, b: int, n: int) -> None:
        """Put a new free block on the list in address order (lock held)."""
        ld, st = self.ld, self.st
        prev, nxt = 0, self.head
        while nxt and nxt < b:
            prev, nxt = nxt, ld(nxt + 8)
        st(b, n | H.FREE)
        st(b + 8, nxt)
        if prev:
            st(prev + 8, b)
        else:
            self.head = b
        self.nfree += 1
        self.rover = self.rover_prev = 0

    # --- collection -------------------------------------------------------------------------
    def collect(self, need: int) -> None:
        mark(self)
        self.sweep()

    def sweep(self) -> None:
        """Free the unmarked blocks, clear the marks, rebuild the list coalescing
        every run of free neighbours (world stopped)."""
        ld, st = self.ld, self.st
        self.begin_sweep()
        self.head = tail = 0
        nfree = live = nlive = 0
        for cs, ce in self.chunks:
            b, run = cs, 0
            while b < ce:
                w0 = ld(b)
                bs = w0 & ~H.FLAGS
                if bs < H.HDR or b + bs > ce:
                    throw("freelist.tiling", f"sweep: block {b:#x} of {bs} bytes overruns its chunk "
                          f"[{cs:#x}, {ce:#x})", address=b)
                if w0 & H.MARK:                          # live
                    st(b, w0 & ~H.MARK)
                    live += bs
                    nlive += 1
                elif w0 & H.CLASS:                       # a size-class block, dead or free
                    self.sweep_class_block(b, bs, w0)
                if w0 & (H.MARK | H.CLASS):
                    if run:
                        tail = self._emit(run, b - run, tail)
                        nfree += 1
                        run = 0
                elif not run:
                    run = b
                b += bs
            if run:
                tail = self._emit(run, ce - run, tail)
                nfree += 1
        self.nfree = nfree
        self.rover = self.rover_prev = 0
        self.live_bytes = live
        self.live_blocks = nlive

    def _emit(self, b: int, n: int, tail: int) -> int:
        self.st(b, n | H.FREE)
        self.st(b + 8, 0)
        if tail:
            self.st(tail + 8, b)
        else:
            self.head = b
        return b

    def begin_sweep(self) -> None:
        pass

    def sweep_class_block(self, b: int, bs: int, w0: int) -> None:
        throw("freelist.class", f"block {b:#x} has the size-class flag in a {self.name} heap", address=b)

    # --- fragmentation ----------------------------------------------------------------------
    def external_fragmentation(self) -> tuple[float, int, int]:
        total = largest = 0
        b = self.head
        while b:
            bs = self.ld(b) & ~H.FLAGS
            total += bs
            largest = max(largest, bs)
            b = self.ld(b + 8)
        return (1 - largest / total if total else 0.0), total, largest

    # --- the checker ------------------------------------------------------------------------
    def check(self) -> None:
        free, class_free = self.walk_blocks()
        self.check_list(free)
        self.check_classes(class_free)

    def check_classes(self, class_free: set[int]) -> None:
        if class_free:
            throw("freelist.class", f"{len(class_free)} size-class blocks in a {self.name} heap")

    def walk_blocks(self) -> tuple[set[int], set[int]]:
        """Walk every chunk block by block; return the free general blocks and the
        free size-class blocks.  Throws on overlap, overrun, a bad header or two
        free general neighbours."""
        ld = self.ld
        free: set[int] = set()
        class_free: set[int] = set()
        last_end = 0
        for cs, ce in self.chunks:
            if cs < last_end:
                throw("freelist.overlap", f"chunk [{cs:#x}, {ce:#x}) overlaps the one before it")
            last_end = ce
            b, prev_free = cs, 0
            while b < ce:
                w0 = ld(b)
                bs = w0 & ~H.FLAGS
                if bs < H.HDR or bs & 15 or b + bs > ce:
                    throw("freelist.overlap", f"block {b:#x} of {bs} bytes overlaps its neighbour or "
                          f"overruns its chunk [{cs:#x}, {ce:#x})", address=b)
                if w0 & H.MARK:
                    throw("freelist.mark", f"block {b:#x} is marked outside a collection", address=b)
                if w0 & H.FREE and not w0 & H.CLASS:
                    if prev_free:
                        throw("freelist.coalesced", f"free blocks {prev_free:#x} and {b:#x} are neighbours: "
                              "coalescing is incomplete", address=b)
                    free.add(b)
                    prev_free = b
                else:
                    prev_free = 0
                    if not w0 & H.FREE:
                        self.check_header(b, bs)
                    else:
                        class_free.add(b)
                b += bs
        return free, class_free

    def check_header(self, b: int, bs: int) -> None:
        w1 = self.ld(b + 8)
        if not H.is_info(w1) or H.req_size(w1) + H.HDR > bs or (w1 & 0xFFFFFF and H.obj_type(w1) is None):
            throw("freelist.header", f"allocated block {b:#x} of {bs} bytes has a bad header word "
                  f"{w1:#x}", address=b)

    def check_list(self, free: set[int]) -> None:
        ld = self.ld
        seen, prev, b = 0, 0, self.head
        while b:
            if b not in free:
                throw("freelist.list", f"free-list entry {b:#x} (after {prev:#x}) is not a free block", address=b)
            if b <= prev:
                throw("freelist.order", f"free list not in address order: {b:#x} after {prev:#x} "
                      "(or a cycle)", address=b)
            seen += 1
            prev, b = b, ld(b + 8)
        if seen != len(free) or seen != self.nfree:
            throw("freelist.list", f"{len(free)} free blocks in the heap, {seen} on the list, "
                  f"nfree says {self.nfree}")


class NextFit(FreeList):
    name = "next-fit"
    policy = "next"


class BestFit(FreeList):
    name = "best-fit"
    policy = "best"
