"""Bump: a pointer that only moves forward, reclaimed by Cheney's copying collector.

Allocation is the fastest there is: under the lock, check that the block
fits below the end of the current semispace, write its header, move `top`
forward.  No free list, no search (search length 0), and no way to reuse a
hole: memory comes back only when the collector (cheney.py) evacuates the
live objects into the other semispace, leaving the whole old one free.
Memory after `top` is kept zeroed (cleared once per collection), so an
allocation clears nothing.

Two semispaces are chunks from the mheap; only one holds objects at a time
and the other (idle) waits for the next collection, so the heap costs twice
the space it uses: the price of never searching.  The space grows when a
collection leaves less than GOGC% of the live bytes free (GOGC off counts
as 100: a bump allocator cannot run without collecting): the live objects
are evacuated once more, into a larger space.

Objects MOVE.  A mutator's address is only good until its next allocation
(the only safe point under the methods, base.py): re-read it from its stack
slot or parent object.  heapcheck=2 checks every load and store, and an
address in the idle semispace (or in a space given back after growing) is
"mutator.stale_pointer".

Protection: space, top, idle and the statistics are guarded by the lock;
collect and check run with the world stopped.
"""

from __future__ import annotations

from ..sysmem import PAGE_SIZE
from . import header as H
from .base import Method
from .cheney import check_space, evacuate

RETIRED_KEPT = 8      # spaces given back after growing that the oracle still recognises


class Bump(Method):
    name = "bump"
    moving = True

    def __init__(self, rt):
        super().__init__(rt)
        self.space: tuple[int, int] | None = None   # the semispace objects live in; lock
        self.top = 0                                  # the bump pointer; lock
        self.idle: tuple[int, int] | None = None      # the other semispace; lock
        self.retired: list[tuple[int, int, int]] = []  # (start, end, collection) given back; lock

    def trigger_bytes(self) -> int:
        return 1 << 62          # the trigger is the semispace being full

    def alloc_locked(self, size: int, typ) -> tuple[int, int, int]:
        if self.space is None:
            self.space = self.take_chunk(_pages(self.heapminimum))
            self.top = self.space[0]
        bsz = H.block_size(size)
        b = self.top
        if b + bsz > self.space[1]:
            return 0, 0, 0
        self.top = b + bsz
        self.st(b, bsz)
        self.st(b + 8, H.info_word(size, typ))
        return b + H.HDR, 0, bsz

    # --- collection -------------------------------------------------------------------------
    def collect(self, need: int) -> None:
        if self.space is None:
            return
        size = self.space[1] - self.space[0]
        if self.idle is None or self.idle[1] - self.idle[0] < size:
            if self.idle is not None:
                self._retire(self.idle)
            self.idle = self.take_chunk(size)
        old = self.space
        self._flip(self.idle)
        self.idle = old
        live = self.top - self.space[0]
        g = self.gogc if self.gogc >= 0 else 100
        want = _pages(max(self.heapminimum, live * (100 + g) // 100 + H.block_size(need)))
        if want > size:
            self.grow_to(want)

    def grow(self, need: int) -> None:
        """Nothing fits even after a collection: evacuate into a space twice as large."""
        size = self.space[1] - self.space[0]
        self.grow_to(_pages(2 * size + H.block_size(need)))

    def grow_to(self, nbytes: int) -> None:
        old_space, old_idle = self.space, self.idle
        self._flip(self.take_chunk(nbytes))
        self._retire(old_space)
        if old_idle is not None:
            self._retire(old_idle)
        self.idle = None        # taken at the next collection, as large as the space then

    def _flip(self, to: tuple[int, int]) -> None:
        """Evacuate everything live into `to`, which becomes the space."""
        free, nobj = evacuate(self, to)
        self.stats["bytes_copied"] += free - to[0]
        self.sysmem.memclr(free, to[1] - free)
        self.space, self.top = to, free
        self.live_bytes = free - to[0]
        self.live_blocks = nobj

    def _retire(self, space: tuple[int, int]) -> None:
        self.give_back(space[0])
        self.retired.append((space[0], space[1], self.numgc))
        del self.retired[:-RETIRED_KEPT]

    # --- what the oracle and the checker ask ------------------------------------------------
    def in_use(self, p: int) -> bool:
        return self.space is not None and self.space[0] <= p < self.top

    def stale_space(self, p: int) -> str:
        if self.idle is not None and self.idle[0] <= p < self.idle[1]:
            return f"the idle semispace (the objects left it at collection {self.numgc})"
        if self.chunk_of(p) is None:
            for s, e, n in reversed(self.retired):
                if s <= p < e:
                    return f"a semispace given back at collection {n}"
        return ""

    def check(self) -> None:
        if self.space is not None:
            check_space(self, reachable=False)

    def check_after(self) -> None:
        """Right after a copy: also every object in to-space reachable from a root."""
        if self.space is not None:
            check_space(self, reachable=True)

    def external_fragmentation(self) -> tuple[float, int, int]:
        free = self.space[1] - self.top if self.space else 0
        return 0.0, free, free


def _pages(n: int) -> int:
    return -(-n // PAGE_SIZE) * PAGE_SIZE
