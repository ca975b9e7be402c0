"""Sweeping (mgcsweep.go, in the Go <= 1.14 arrangement with the locked mcentral).

sweep_span frees the unmarked objects of one span whose sweeper owns it
(sweepgen == h-1): the marks become the allocation bits, fresh mark bits are
allocated, the free-slot search restarts at 0, and the new sweepgen is
published.  A small span whose objects were freed goes through its mcentral's
freeSpan (which may hand an emptied span back to the mheap); a dead large
object's span goes straight back to the mheap.

The cycle-level entry points are here too: start_sweep_cycle (the sweepgen
flip Go does in gcSweep with the world stopped), try_acquire (the CAS
h-2 -> h-1 that gives a sweeper ownership), sweepone and finish_sweep.
"""

from __future__ import annotations

from ..check.violation import Violation
from ..mspan import MSPAN_IN_USE, new_gcbits
from ..sync import cas_attr, store_attr


class SweepError(Violation):
    """A sweep invariant Go throws on."""

    def __init__(self, message: str, span=None):
        super().__init__("sweep", message, span=span)


def try_acquire(h, s) -> bool:
    """sweepLocker.tryAcquire: own s for sweeping (CAS sweepgen h-2 -> h-1)."""
    sg = h.sweepgen
    return s.sweepgen == sg - 2 and cas_attr(s, "sweepgen", sg - 2, sg - 1)


def _check_zombies(s) -> None:
    """A marked slot at or after freeindex whose alloc bit is clear is a
    pointer to a free object (reportZombies)."""
    for i in range(s.freeindex, s.nelems):
        if s.isMarked(i) and not s.isAllocBitSet(i):
            raise SweepError(
                f"runtime: marked free object in span {s.describe()}\n"
                f"  {s.startAddr + i * s.elemsize:#x} index {i} marked free\n"
                "fatal error: found pointer to free object")


def sweep_span(h, s, preserve: bool) -> bool:
    """Sweep s, which the caller owns (sweepgen == h-1).  Returns True if the
    span was returned to the heap.  With preserve the caller keeps the span
    (it is about to cache it), so it is not moved or freed."""
    sg = h.sweepgen
    if s.state != MSPAN_IN_USE or s.sweepgen != sg - 1:
        raise SweepError(f"mspan.sweep: state={s.state} sweepgen={s.sweepgen} mheap.sweepgen={sg}: "
                         "mspan.sweep: bad span state")
    h.stats.add(pagesSwept=s.npages)
    sizeclass = s.spanclass >> 1
    _check_zombies(s)
    nalloc = s.countAlloc()
    nfreed = s.allocCount - nalloc
    if nalloc > s.allocCount:
        raise SweepError(f"runtime: nelems={s.nelems} nalloc={nalloc} previous allocCount={s.allocCount} "
                         f"nfreed={nfreed}\nfatal error: sweep increased allocation count")
    s.allocCount = nalloc
    s.freeindex = 0
    s.allocBits = s.gcmarkBits
    s.gcmarkBits = new_gcbits(s.nelems)
    s.refillAllocCache(0)
    if sizeclass != 0:
        if nfreed > 0:
            h.stats.add_small_free(sizeclass, nfreed)
            return h.central[s.spanclass].freeSpan(s, preserve)
        store_attr(s, "sweepgen", sg)
        return False
    if nfreed > 0:
        store_attr(s, "sweepgen", sg)
        h.stats.add(largeFree=s.elemsize, largeFreeCount=1)
        h.freeSpan(s)
        return True
    store_attr(s, "sweepgen", sg)
    return False


def start_sweep_cycle(h) -> None:
    """gcSweep: every in-use span now needs sweeping (world stopped; every
    mcache must have been flushed first, or its spans become stale)."""
    h.sweepgen += 2
    h.stats.add(pagesSwept=-h.stats.get("pagesSwept"))
    with h.lock:
        h.sweep_queue = list(h.allspans)


def sweepone(h) -> int:
    """Sweep one span the queue still holds; pages freed, 0 if it survived,
    -1 when nothing is left.  list.pop is a single atomic operation, so any
    number of sweepers may drain the queue together."""
    q = h.sweep_queue
    while True:
        try:
            s = q.pop()
        except IndexError:
            return -1
        if s.state != MSPAN_IN_USE:
            continue
        if not try_acquire(h, s):
            continue
        npages = s.npages
        return npages if sweep_span(h, s, preserve=False) else 0


def finish_sweep(h) -> None:
    while sweepone(h) != -1:
        pass
