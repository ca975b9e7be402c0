"""mcentral: the locked central free lists of one span class (Go <= 1.14).

This is the mcentral Go replaced in 1.15 with lock-free span sets: one mutex
per span class guarding two lists,

    nonempty  spans with a free object (or not yet swept)
    empty     spans with no free object, or cached in an mcache

cacheSpan walks nonempty, then empty, sweeping spans of the previous cycle as
it finds them (CAS sweepgen h-2 -> h-1, then sweep with the lock dropped);
only when nothing is usable does it grow from the mheap.  The walk is
unbounded and holds the lock while it looks: exactly the contention that
golang/go#37487 measured.  uncacheSpan gives a span back; freeSpan is the
sweeper's call when sweeping freed objects in a span, and returns a span that
became empty to the mheap.

heapLive accounting sits here, as in 1.14: cacheSpan counts every free slot of
the span as allocated, uncacheSpan takes back what was not used.

Sweeping here follows 1.19's cacheSpan: proportional sweep first
(deductSweepCredit for a whole span, before the lock), and the span sweeps
happen between sweep.active.begin() and end() through a sweepLocker, so
sweep termination knows they are in flight.  A stale span given back by
uncacheSpan is swept without a sweepLocker, as in Go: it is on no unswept
queue, and mark termination's mcache flush is what waits for it.

Protection: `lock` (rank MCENTRAL) guards nonempty, empty and the spans'
`list` links; nmalloc is atomic; span sweepgen uses cas_attr/store_attr
(ownership for sweeping only through sweepLocker.tryAcquire).
"""

from __future__ import annotations

from contextlib import nullcontext

from .gc.sweep import deductSweepCredit, sweepLocked
from .mspan import MSpanList
from .sizeclasses import class_to_allocnpages, class_to_size
from .sync import AtomicInt, Rank, store_attr
from .sysmem import PAGE_SHIFT
from .check.violation import throw


class MCentral:
    def __init__(self, heap, spanclass: int):
        self.heap = heap
        self.spanclass = spanclass
        self.lock = heap.sync.mutex(f"mcentral[{spanclass}]", Rank.MCENTRAL, "mcentral")
        self.nonempty = MSpanList(f"mcentral[{spanclass}].nonempty")  # lock
        self.empty = MSpanList(f"mcentral[{spanclass}].empty")        # lock
        self.nmalloc = AtomicInt(0)
        self.npages = class_to_allocnpages[spanclass >> 1]
        if heap.sync.check_ranks:       # lock-ownership checks on every list change
            self.nonempty.guard = self.empty.guard = (self.lock, heap.sync.thread_state)

    def cacheSpan(self):
        """Allocate a span to use in an mcache (oldCacheSpan, with 1.19's
        sweep credit and sweepLocker).

        The lock is held only inside `with self.lock`: the search below takes
        sweep ownership of spans (a yield point), and a stopped run raises
        Aborted at yield points, so a thread that unwinds from here must give
        the lock back (the run's own thread flushes every mcache after it)."""
        h = self.heap
        deductSweepCredit(h, self.npages << PAGE_SHIFT, 0)
        with h.sweep.active.begin() as sl:      # its exit is sweep.active.end, unwinding too
            while True:
                with self.lock:
                    s, ss = self._find_in_nonempty(sl)
                    from_empty = s is None
                    if from_empty:
                        s, ss = self._find_in_empty(sl)
                if ss is not None:
                    ss.sweep(True)
                if s is None or not from_empty or self._usable_after_sweep(s):
                    break
        if s is None:
            s = self.grow()
            with self.lock:
                self.empty.insertBack(s)
        return self._havespan(s)

    def _find_in_nonempty(self, sl):
        """(span, sweepLocked or None) from nonempty, moved to empty; lock held."""
        sg = sl.sweepGen
        for s in self.nonempty:
            if s.sweepgen == sg - 2 and sl.valid:
                ss = sl.tryAcquire(s)
                if ss is not None:
                    self.nonempty.remove(s)
                    self.empty.insertBack(s)
                    return s, ss
            if s.sweepgen == sg - 1 or s.sweepgen == sg - 2:
                continue  # another sweeper owns it (or just took it)
            self.nonempty.remove(s)
            self.empty.insertBack(s)
            return s, None
        return None, None

    def _find_in_empty(self, sl):
        """(span, sweepLocked) of an unswept span from empty, moved to its
        back, to sweep once the lock is released; (None, None) if there is
        none.  Lock held."""
        sg = sl.sweepGen
        for s in self.empty:
            if s.sweepgen == sg - 2 and sl.valid:
                ss = sl.tryAcquire(s)
                if ss is None:
                    continue
                self.empty.remove(s)
                self.empty.insertBack(s)
                return s, ss
            if s.sweepgen == sg - 1 or s.sweepgen == sg - 2:
                continue
            break  # swept spans sit at the back: nothing further is usable
        return None, None

    @staticmethod
    def _usable_after_sweep(s) -> bool:
        """A span from empty, just swept: has sweeping freed a slot?  (Else
        the search starts again.)"""
        freeIndex = s.nextFreeIndex()
        if freeIndex == s.nelems:
            return False
        s.freeindex = freeIndex  # nextFreeIndex stepped past it
        return True

    def _havespan(self, s):
        h = self.heap
        n = s.nelems - s.allocCount
        if n == 0 or s.allocCount > s.nelems:
            throw("mcentral", f"span has no free objects: {s.describe()}")
        self.nmalloc.add(n)
        h.gcController.update((s.npages << PAGE_SHIFT) - s.allocCount * s.elemsize)
        whichByte = (s.freeindex >> 6) << 3
        s.refillAllocCache(whichByte)
        s.allocCache >>= s.freeindex & 63
        return s

    def uncacheSpan(self, s) -> None:
        """Return a span from an mcache (oldUncacheSpan)."""
        h = self.heap
        sg = h.sweepgen
        stale = s.sweepgen == sg + 1
        if stale:
            store_attr(s, "sweepgen", sg - 1)  # we own it; sweep it below
        else:
            store_attr(s, "sweepgen", sg)
        s.cachedBy = -1
        n = s.nelems - s.allocCount
        if n > 0:
            self.nmalloc.add(-n)
            with nullcontext() if "mcentral-unlocked" in h.faults else self.lock:   # the fault
                self.empty.remove(s)
                self.nonempty.insert(s)
                if not stale:
                    h.gcController.update(-n * s.elemsize)
        if stale:
            sweepLocked(h, s).sweep(False)  # owned since the store of h-1 above

    def freeSpan(self, s, preserve: bool) -> bool:
        """Sweep freed objects in s: publish it, move it to nonempty if it was
        full, and return it to the heap if it is now empty.  True if freed."""
        h = self.heap
        sg = h.sweepgen
        if s.sweepgen in (sg + 1, sg + 3):
            throw("mcentral", f"freeSpan given cached span: {s.describe()}")
        s.needzero = 1
        if preserve:
            store_attr(s, "sweepgen", sg)  # the caller keeps it
            return False
        with self.lock:
            if s.list is self.empty:
                self.empty.remove(s)
                self.nonempty.insert(s)
            store_attr(s, "sweepgen", sg)
            if s.allocCount != 0:
                return False
            if "span-use-after-free" not in h.faults:   # the fault leaves the freed span listed
                self.nonempty.remove(s)
        h.freeSpan(s)
        return True

    def allocObject(self) -> tuple[int, bool]:
        """One object straight from the central lists, under the lock: the
        allocator with its per-P cache turned off (the contention experiment's
        baseline).  Returns (address, grew).  Spans stay on the lists; a span
        that fills moves to empty.  Sweep credit for the one object is paid
        before the lock; sweeping a span to use it (preserve: no other lock)
        and growing happen under the lock.  Growing here skips the span
        reclaimer, whose sweeps take mcentral locks."""
        h = self.heap
        deductSweepCredit(h, class_to_size[self.spanclass >> 1], 0)
        with h.sweep.active.begin() as sl, self.lock:
            x = self._alloc_from_lists(sl)
            if x:
                return x, False
            s = self.grow(reclaim=False)
            x = self._take_slot(s)
            if s.allocCount == s.nelems:
                self.empty.insertBack(s)
            else:
                self.nonempty.insert(s)
            return x, True

    def _alloc_from_lists(self, sl) -> int:
        """A slot from the first usable span on nonempty, sweeping unswept
        spans on the way; 0 if none (lock held)."""
        sg = sl.sweepGen
        full, x = [], 0
        for s in self.nonempty:        # no list changes while iterating: moves wait in `full`
            if s.sweepgen == sg - 2 and sl.valid:
                ss = sl.tryAcquire(s)
                if ss is None:
                    continue
                ss.sweep(True)
            elif s.sweepgen != sg:
                continue  # being swept by someone else
            x = self._take_slot(s)
            if not x or s.allocCount == s.nelems:
                full.append(s)
            if x:
                break
        for s in full:
            self.nonempty.remove(s)
            self.empty.insertBack(s)
        return x

    def _take_slot(self, s) -> int:
        """Allocate s's next free slot (lock held); 0 if it is full."""
        idx = s.nextFreeIndex()
        if idx == s.nelems:
            return 0
        s.allocCount += 1
        h = self.heap
        h.stats.add_small_alloc(self.spanclass >> 1, 1)
        h.gcController.update(s.elemsize)
        return s.startAddr + idx * s.elemsize

    def grow(self, reclaim: bool = True):
        """Allocate a fresh span of this class from the heap (mheap.alloc,
        which reclaims first; reclaim=False goes straight to allocSpan)."""
        h = self.heap
        if reclaim:
            return h.alloc(self.npages, self.spanclass)
        return h.allocSpan(self.npages, self.spanclass)

    def all_spans(self) -> list:
        with self.lock:
            return list(self.nonempty) + list(self.empty)
