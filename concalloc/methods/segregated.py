"""Segregated fit: one free list per size class, one lock, no per-P caches.

The classic refinement of the free list that Go's allocator refines again.
A small request (<= 32 KiB) is rounded up to Go's size class
(sizeclasses.py; the block, header included, is rounded to 16 bytes) and served from that class's list: one pop, the search
length is 1 whatever the heap holds.  An empty class list is refilled by
carving a batch of about one of Go's spans for the class (class_to_allocnpages
pages' worth of blocks) out of the general free list of freelist.FreeList
(first fit), which also serves large requests directly, as Go's mheap serves
large objects.

A size-class block keeps the CLASS flag in its header for good (free or
allocated): class blocks are never coalesced, exactly like objects in a
Go span, which go back to their span's free slots and not to the page heap.
The sweep (same stop-the-world mark-sweep as the free lists) pushes each
dead class block onto its class list (free ones are on it already) and
coalesces only the general free blocks.

What Go adds on top, the sixth row: a per-P cache (mcache) in front of the
class lists so that the common allocation takes no lock at all, central
lists per class (mcentral) with their own locks, a page heap with a radix
tree of free pages, and a collector that runs beside the mutators.

The checker adds to FreeList's: every class list holds only free blocks of
its own class, no block twice, and every free class block is on its list.

Protection: everything is guarded by the method's lock, or written with
the world stopped.
"""

from __future__ import annotations

from ..check.violation import throw
from ..sizeclasses import MAX_SMALL_SIZE, NUM_SIZE_CLASSES, PAGE_SIZE, class_to_allocnpages, class_to_size, \
    size_to_class
from . import header as H
from .freelist import FreeList

BLOCK_OF_CLASS = tuple((H.HDR + class_to_size[c] + 15) & ~15 if c else 0 for c in range(NUM_SIZE_CLASSES))
CLASS_OF_BLOCK = {b: c for c, b in enumerate(BLOCK_OF_CLASS) if c}


class Segregated(FreeList):
    name = "segregated"
    policy = "first"

    def __init__(self, rt):
        super().__init__(rt)
        self.cls_head = [0] * NUM_SIZE_CLASSES   # free blocks of each class (LIFO); lock
        self.cls_n = [0] * NUM_SIZE_CLASSES      # their number; lock

    def alloc_locked(self, size: int, typ) -> tuple[int, int, int]:
        c = size_to_class(size) if size <= MAX_SMALL_SIZE else 0
        if c == 0:
            return super().alloc_locked(size, typ)      # large: the general list
        if not self.chunks:
            self.grow(self.heapminimum)
        visits = 1
        b = self.cls_head[c]
        if not b:
            visits += self.refill(c)
            b = self.cls_head[c]
            if not b:
                return 0, visits, 0
        ld, st = self.ld, self.st
        self.cls_head[c] = ld(b + 8)
        self.cls_n[c] -= 1
        bsz = BLOCK_OF_CLASS[c]
        st(b, bsz | H.CLASS)
        st(b + 8, H.info_word(size, typ))
        self.sysmem.memclr(b + H.HDR, bsz - H.HDR)
        return b + H.HDR, visits, bsz

    def refill(self, c: int) -> int:
        """Carve a batch of class-c blocks from the general list; return the blocks visited."""
        bsz = BLOCK_OF_CLASS[c]
        n = max(1, class_to_allocnpages[c] * PAGE_SIZE // bsz)
        prev, b, visits = self.find(n * bsz)
        if not b:
            return visits
        got = self.take(prev, b, n * bsz)
        st = self.st
        head = self.cls_head[c]
        for i in range(got // bsz - 1, -1, -1):    # the batch's blocks, lowest address first
            blk = b + i * bsz
            st(blk, bsz | H.FREE | H.CLASS)
            st(blk + 8, head)
            head = blk
        self.cls_head[c] = head
        self.cls_n[c] += got // bsz
        return visits

    def free_blocks(self) -> int:
        return self.nfree + sum(self.cls_n)

    # --- collection -------------------------------------------------------------------------
    def sweep_class_block(self, b: int, bs: int, w0: int) -> None:
        """An unmarked class block: a free one is on its list already; a dead one goes on it."""
        if w0 & H.FREE:
            return
        c = CLASS_OF_BLOCK.get(bs)
        if c is None:
            throw("segregated.class", f"class block {b:#x} has size {bs}, no class's", address=b)
        self.st(b, bs | H.FREE | H.CLASS)
        self.st(b + 8, self.cls_head[c])
        self.cls_head[c] = b
        self.cls_n[c] += 1

    def external_fragmentation(self) -> tuple[float, int, int]:
        _ext, total, largest = super().external_fragmentation()
        total += sum(n * BLOCK_OF_CLASS[c] for c, n in enumerate(self.cls_n))
        return (1 - largest / total if total else 0.0), total, largest

    # --- the checker ------------------------------------------------------------------------
    def check_classes(self, class_free: set[int]) -> None:
        ld = self.ld
        seen: set[int] = set()
        for c in range(1, NUM_SIZE_CLASSES):
            b, n = self.cls_head[c], 0
            while b:
                if b in seen or b not in class_free:
                    throw("segregated.list", f"class {c} list entry {b:#x} is "
                          f"{'on a list twice' if b in seen else 'not a free class block'}", address=b)
                if ld(b) & ~H.FLAGS != BLOCK_OF_CLASS[c]:
                    throw("segregated.list", f"class {c} list entry {b:#x} is a {ld(b) & ~H.FLAGS}-byte "
                          f"block, not {BLOCK_OF_CLASS[c]}", address=b)
                seen.add(b)
                n += 1
                b = ld(b + 8)
            if n != self.cls_n[c]:
                throw("segregated.list", f"class {c} list holds {n} blocks, its count says {self.cls_n[c]}")
        if len(seen) != len(class_free):
            throw("segregated.list", f"{len(class_free) - len(seen)} free class blocks are on no list")
