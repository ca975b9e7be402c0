"""mspan: a run of pages holding objects of one span class (mheap.go, mbitmap.go).

Fields carry Go's names.  Per-span metadata is all there is: no Python object
exists per heap object.  allocBits and gcmarkBits are gcBits, one bit per slot
in a bytearray padded to whole 64-bit words; allocCache is the complement of
the 64 allocBits starting at freeindex's 64-aligned word, shifted so bit 0 is
freeindex, and the next free slot is its count of trailing zeros.

The sweepgen protocol (relative to the heap's sweepgen h, which grows by 2 per
GC cycle with the world stopped):

    h-2  needs sweeping          h-1  being swept (the CAS h-2 -> h-1 owns it)
    h    swept and usable        h+1  cached before this sweep began (stale)
    h+3  swept, then cached

Protection: a span in an mcache is owned by that P (freeindex, allocCache,
allocCount; the heap bits of its slots, see mbitmap.py); a span on an mcentral list is guarded by that
mcentral's lock; sweepgen changes by cas_attr/store_attr; allocBits and
gcmarkBits are swapped only by the span's sweeper, which owns it through the
sweepgen CAS; gcmarkBits bits are set with or8.  `list` is guarded by the lock
of the list's owner (mcentral.lock).
"""

from __future__ import annotations

from .sizeclasses import class_to_divmagic, class_to_size
from .sysmem import PAGE_SHIFT
from .sync import or8
from .sync.atomic import _stripe
from .check.violation import throw

MSPAN_DEAD = 0
MSPAN_IN_USE = 1
MSPAN_MANUAL = 2
STATE_NAMES = {MSPAN_DEAD: "mSpanDead", MSPAN_IN_USE: "mSpanInUse", MSPAN_MANUAL: "mSpanManual"}
MASK64 = (1 << 64) - 1


def new_gcbits(nelems: int) -> bytearray:
    """Zeroed bits for nelems slots, padded to whole uint64 words (newMarkBits)."""
    return bytearray(((nelems + 63) >> 6) << 3)


class MSpanList:
    """Go's mSpanList: a doubly linked list threaded through the spans' own
    next/prev fields, so insert (front), insertBack and remove are O(1) and
    walking it copies nothing.  Guarded by its owner's lock (mcentral.lock)."""

    __slots__ = ("name", "first", "last", "n", "guard")

    def __init__(self, name: str):
        self.name = name
        self.first = None
        self.last = None
        self.n = 0
        self.guard = None       # (lock, thread state): assertLockHeld on every change (lockrank=1)

    def _assert_held(self) -> None:
        """Go's assertLockHeld: the guarding lock is held by this thread."""
        lock, ts = self.guard
        if lock.owner != ts.name:
            throw("lock.not_held", f"{self.name} changed by {ts.name} while {lock.name} is held by "
                                   f"{lock.owner or 'nobody'}\nfatal error: lock not held")

    def _check_free(self, s: "MSpan") -> None:
        if self.guard is not None:
            self._assert_held()
        if s.list is not None:
            throw("mspan.list", f"mSpanList.insert: span {s.startAddr:#x} already on list {s.list.name}")

    def insert(self, s: "MSpan") -> None:
        """Insert at the front."""
        self._check_free(s)
        s.prev, s.next = None, self.first
        if self.first is not None:
            self.first.prev = s
        else:
            self.last = s
        self.first = s
        s.list = self
        self.n += 1

    def insertBack(self, s: "MSpan") -> None:
        self._check_free(s)
        s.next, s.prev = None, self.last
        if self.last is not None:
            self.last.next = s
        else:
            self.first = s
        self.last = s
        s.list = self
        self.n += 1

    def remove(self, s: "MSpan") -> None:
        if self.guard is not None:
            self._assert_held()
        if s.list is not self:
            throw("mspan.list", f"mSpanList.remove: span {s.startAddr:#x} not on list {self.name}")
        if s.prev is not None:
            s.prev.next = s.next
        else:
            self.first = s.next
        if s.next is not None:
            s.next.prev = s.prev
        else:
            self.last = s.prev
        s.next = s.prev = s.list = None
        self.n -= 1

    def __iter__(self):
        """Front to back.  The successor is read before a span is handed
        out, so the caller may move that span; it must not move others."""
        s = self.first
        while s is not None:
            nxt = s.next
            yield s
            s = nxt

    def __len__(self) -> int:
        return self.n

    def __contains__(self, s) -> bool:
        return s.list is self


class MSpan:
    __slots__ = (
        "startAddr", "npages", "spanclass", "elemsize", "nelems", "limit",
        "freeindex", "allocCache", "allocBits", "gcmarkBits", "allocCount",
        "sweepgen", "state", "needzero", "divMul", "allocCountBeforeCache", "gcmarkLock",
        "list", "next", "prev", "heapBits", "heapBitsMore", "typeRecord", "cachedBy", "markFrom",
        "__weakref__",
    )

    def __init__(self):
        self.startAddr = 0
        self.npages = 0
        self.spanclass = 0
        self.elemsize = 0
        self.nelems = 0
        self.limit = 0
        self.freeindex = 0
        self.allocCache = 0
        self.allocBits = bytearray()
        self.gcmarkBits = bytearray()
        self.gcmarkLock = _stripe(self.gcmarkBits)   # see newMarkBits
        self.allocCount = 0
        self.sweepgen = 0
        self.state = MSPAN_DEAD
        self.needzero = 0
        self.divMul = 0
        self.allocCountBeforeCache = 0
        self.list = None        # the MSpanList holding it, if any; with next/prev
        self.next = None        # guarded by that list's owner lock
        self.prev = None
        self.heapBits = None    # the heap bitmap of the arena holding startAddr (mbitmap.initSpan)
        self.heapBitsMore = ()  # bitmaps of the later arenas the span reaches (almost always none)
        self.typeRecord = None  # heapcheck=2 only: array('Q') per slot, typ.id << 40 | size (mbitmap)
        self.cachedBy = -1      # id of the P whose mcache holds it, -1 if none
        self.markFrom = -1      # cached during mark: slots allocated from here on are black;
                                # written by the caching P, read racily by markers (gc/mark.py)

    def newMarkBits(self) -> None:
        """Fresh, zeroed gcmarkBits (Go's newMarkBits), and gcmarkLock, the
        striped lock or8 takes for them (sync.atomic._stripe),
        kept here so that scanobject finds it with one load.  The only way
        gcmarkBits is replaced; checked by span.mark_lock."""
        bits = self.gcmarkBits = new_gcbits(self.nelems)
        self.gcmarkLock = _stripe(bits)

    def init(self, base: int, npages: int, spanclass: int) -> None:
        """mheap.initSpan: set the fields for a fresh in-use span."""
        self.startAddr = base
        self.npages = npages
        self.spanclass = spanclass
        sizeclass = spanclass >> 1
        nbytes = npages << PAGE_SHIFT
        if sizeclass == 0:
            self.elemsize = nbytes
            self.nelems = 1
            self.divMul = 0
        else:
            self.elemsize = class_to_size[sizeclass]
            self.nelems = nbytes // self.elemsize
            self.divMul = class_to_divmagic[sizeclass]
        self.limit = base + self.elemsize * self.nelems
        self.freeindex = 0
        self.allocCount = 0
        self.allocCountBeforeCache = 0
        self.allocBits = new_gcbits(self.nelems)
        self.newMarkBits()
        self.allocCache = MASK64
        self.list = None
        self.cachedBy = -1
        self.markFrom = -1
        self.heapBits = None
        self.heapBitsMore = ()
        self.typeRecord = None

    def base(self) -> int:
        return self.startAddr

    def end(self) -> int:
        return self.startAddr + (self.npages << PAGE_SHIFT)

    # --- free-slot search (mbitmap.go) ---
    def refillAllocCache(self, whichByte: int) -> None:
        self.allocCache = ~int.from_bytes(self.allocBits[whichByte:whichByte + 8], "little") & MASK64

    def nextFreeIndex(self) -> int:
        """Index of the next free slot at or after freeindex, or nelems if none."""
        sfreeindex = self.freeindex
        snelems = self.nelems
        if sfreeindex == snelems:
            return sfreeindex
        aCache = self.allocCache
        bitIndex = (aCache & -aCache).bit_length() - 1
        while bitIndex < 0:
            sfreeindex = (sfreeindex + 64) & ~63
            if sfreeindex >= snelems:
                self.freeindex = snelems
                return snelems
            self.refillAllocCache(sfreeindex >> 3)
            aCache = self.allocCache
            bitIndex = (aCache & -aCache).bit_length() - 1
        result = sfreeindex + bitIndex
        if result >= snelems:
            self.freeindex = snelems
            return snelems
        self.allocCache = aCache >> (bitIndex + 1)
        sfreeindex = result + 1
        if sfreeindex & 63 == 0 and sfreeindex != snelems:
            self.refillAllocCache(sfreeindex >> 3)
        self.freeindex = sfreeindex
        return result

    def nextFreeFast(self) -> int:
        """The inlinable fast path: next free address from allocCache, or 0."""
        c = self.allocCache
        theBit = (c & -c).bit_length() - 1
        if theBit >= 0:
            result = self.freeindex + theBit
            if result < self.nelems:
                freeidx = result + 1
                if freeidx & 63 == 0 and freeidx != self.nelems:
                    return 0
                self.allocCache = c >> (theBit + 1)
                self.freeindex = freeidx
                self.allocCount += 1
                return self.startAddr + result * self.elemsize
        return 0

    # --- objects and bits ---
    def objIndex(self, p: int) -> int:
        if self.divMul == 0:
            return 0
        return ((p - self.startAddr) * self.divMul) >> 32

    def isFree(self, index: int) -> bool:
        if index < self.freeindex:
            return False
        return not (self.allocBits[index >> 3] >> (index & 7)) & 1

    def isAllocBitSet(self, index: int) -> bool:
        return bool((self.allocBits[index >> 3] >> (index & 7)) & 1)

    def isMarked(self, index: int) -> bool:
        return bool((self.gcmarkBits[index >> 3] >> (index & 7)) & 1)

    def setMarked(self, index: int) -> bool:
        """Atomically set the mark bit; True if it was already set."""
        return bool(or8(self.gcmarkBits, index >> 3, 1 << (index & 7)) >> (index & 7) & 1)

    def countAlloc(self) -> int:
        """Number of marked slots (popcount of gcmarkBits)."""
        return int.from_bytes(self.gcmarkBits, "little").bit_count()

    def allocated_indices(self):
        """Slots holding objects: below freeindex, or with their alloc bit set."""
        ab = self.allocBits
        fi = self.freeindex
        for i in range(self.nelems):
            if i < fi or (ab[i >> 3] >> (i & 7)) & 1:
                yield i

    def describe(self) -> str:
        from .sizeclasses import span_class_name
        return (f"span {self.startAddr:#x}-{self.end():#x} npages={self.npages} "
                f"spanclass={span_class_name(self.spanclass)} elemsize={self.elemsize} "
                f"nelems={self.nelems} allocCount={self.allocCount} freeindex={self.freeindex} "
                f"sweepgen={self.sweepgen} state={STATE_NAMES.get(self.state, self.state)}")

    def __repr__(self) -> str:
        return f"<mspan {self.startAddr:#x} spc={self.spanclass} n={self.allocCount}/{self.nelems}>"


def make_emptymspan() -> MSpan:
    """The dummy span every mcache slot starts with: no slots, so the first
    allocation from it goes to refill."""
    s = MSpan()
    s.allocCache = 0
    return s
