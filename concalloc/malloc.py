"""mallocgc: every allocation's entry point (malloc.go, Go 1.19 paths).

    size 0                        -> the one shared zerobase address
    noscan and size < 16          -> tiny allocator: sub-allocate 16-byte blocks
    size <= 32 KiB                -> size class -> span class -> the P's mcache
    size >  32 KiB                -> a span of its own from the mheap (class 0)

The small path is the hot one: a tuple index from size to span class, the
cached span's allocCache and a count of trailing zeros.  Memory is cleared
only where it may be dirty (the span's needzero); a scan object gets its
heap bits (mbitmap.heapBitsSetType, called through the mcache so that
heapcheck=2 can bind the recording variant) and charges its scan size, up to
the last value's last pointer word, to heapScan.  The collector's hook (assist,
trigger test) runs at the end of each slow path, once the object is ready;
allocate-black costs the fast path nothing (spans cached during mark record
where their new objects start: gc/mark.py) and marks at allocation only on
the large and cache-off paths.
"""

from __future__ import annotations

from .gc.sweep import deductSweepCredit
from .memory import Type
from .sizeclasses import _SMALL_SPC_NOSCAN, _SMALL_SPC_SCAN, MAX_SMALL_SIZE, TINY_SIZE, TINY_SPAN_CLASS
from .sysmem import PAGE_SHIFT, PAGE_SIZE, OutOfMemory

# Go's zerobase is a global in the data segment; ours is a fixed address just
# below the arena range, so it is never inside a heap span.
ZEROBASE = 0xC000000000 - 8


def mallocgc(c, size, typ=None, needzero: bool = True) -> int:
    """Allocate size bytes (of type typ, or pointer-free bytes) on c's P."""
    if size.__class__ is int and 0 < size <= MAX_SMALL_SIZE and typ is None:
        if size >= TINY_SIZE:
            spc = _SMALL_SPC_NOSCAN[size]
            s = c.alloc[spc]
            # MSpan.nextFreeFast, inlined for the hot path: keep the two in step
            a = s.allocCache
            bit = (a & -a).bit_length() - 1
            if bit >= 0:
                idx = s.freeindex + bit
                if idx < s.nelems:
                    fi = idx + 1
                    if fi & 63 or fi == s.nelems:
                        s.allocCache = a >> (bit + 1)
                        s.freeindex = fi
                        s.allocCount += 1
                        x = s.startAddr + idx * s.elemsize
                        if needzero and s.needzero:
                            c.heap.sysmem.memclr(x, s.elemsize)
                        return x
            return _small_slow(c, spc, needzero)
        return _tiny(c, size)
    return _mallocgc_general(c, size, typ, needzero)


def _mallocgc_general(c, size, typ, needzero: bool) -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"mallocgc: size must be an int, got {type(size).__name__}")
    size = int(size)  # an int subclass would miss mallocgc's fast path forever
    if size < 0:
        raise ValueError(f"mallocgc: negative size {size}")
    if size == 0:
        return ZEROBASE
    if typ is not None:
        noscan = _type_noscan(typ)
        if size % typ.size:
            raise ValueError(f"mallocgc: size {size} is not a whole number of {typ!r}")
        if noscan:
            typ = None
    if size > MAX_SMALL_SIZE:
        return _large(c, size, typ, needzero)
    if typ is None:
        return mallocgc(c, size, None, needzero)
    return _small_scan(c, size, typ)


def _type_noscan(typ) -> bool:
    if not isinstance(typ, Type):
        raise TypeError(f"mallocgc: unknown type {typ!r} (want a concalloc.memory.Type)")
    return typ.noscan


def _small_slow(c, spc: int, needzero: bool) -> int:
    x, s, refilled = c.nextFree(spc)
    if needzero and s.needzero:
        c.heap.sysmem.memclr(x, s.elemsize)
    if refilled:
        _after_refill(c, x)
    return x


def _small_scan(c, size: int, typ) -> int:
    spc = _SMALL_SPC_SCAN[size]
    s = c.alloc[spc]
    x = s.nextFreeFast()
    refilled = False
    if not x:
        x, s, refilled = c.nextFree(spc)
    if s.needzero:
        c.heap.sysmem.memclr(x, s.elemsize)
    c.heapBitsSetType(s, x, size, typ)
    c.scanAlloc += typ.scan_size(size)
    if refilled:
        _after_refill(c, x)
    return x


def _tiny_align(off: int, size: int) -> int:
    """Go's tinyoffset alignment: 8 for multiples of 8, else 4, else 2."""
    if size & 7 == 0:
        return (off + 7) & ~7
    if size & 3 == 0:
        return (off + 3) & ~3
    if size & 1 == 0:
        return (off + 1) & ~1
    return off


def _tiny(c, size: int, take_block=None) -> int:
    off = _tiny_align(c.tinyoffset, size)
    if off + size <= TINY_SIZE and c.tiny:
        c.tinyoffset = off + size
        c.tinyAllocs += 1
        return c.tiny + off
    x, refilled = (take_block or _tiny_block)(c)
    c.heap.sysmem.memclr(x, TINY_SIZE)
    if size < c.tinyoffset or not c.tiny:
        c.tiny = x
        c.tinyoffset = size
    if refilled:          # the trigger test comes last, with the block in place
        _after_refill(c, x)
    return x


def _tiny_block(c) -> tuple[int, bool]:
    """A fresh 16-byte block from the P's tiny-class span, and whether a refill was needed."""
    x = c.alloc[TINY_SPAN_CLASS].nextFreeFast()
    if x:
        return x, False
    x, _s, refilled = c.nextFree(TINY_SPAN_CLASS)
    return x, refilled


def _central_alloc(c, spc: int) -> tuple[int, bool]:
    """An object from mcentral[spc] under its lock, and whether the list grew
    (this path's slow path, where the GC trigger is tested once the object is
    ready).  During mark the object is born black (gcmarknewobject)."""
    x, grew = c.heap.central[spc].allocObject()
    h = c.heap
    if h.gcphase:
        s = h.spanOf(x)
        if c.allocBlack and not s.setMarked(s.objIndex(x)):
            c.markedBlack += s.elemsize
        if c.chargeAssist:
            c.gcAssistBytes -= s.elemsize
            c.assistCharged += s.elemsize
    return x, grew


def _tiny_block_nocache(c) -> tuple[int, bool]:
    return _central_alloc(c, TINY_SPAN_CLASS)


def _large(c, size: int, typ, needzero: bool) -> int:
    h = c.heap
    npages = -(-size // PAGE_SIZE)
    if npages > (h.sysmem.reserve_bytes >> PAGE_SHIFT):
        raise OutOfMemory(f"runtime: out of memory: cannot allocate {size}-byte block: larger than the "
                          f"whole {h.sysmem.reserve_bytes}-byte reservation")
    deductSweepCredit(h, npages << PAGE_SHIFT, npages)  # allocLarge: pay for the pages first
    s = h.alloc(npages, int(typ is None))
    s.limit = s.startAddr + size
    s.freeindex = 1
    s.allocCount = 1
    s.allocCache = 0
    if typ is not None:
        c.heapBitsSetType(s, s.startAddr, size, typ)
    h.stats.add(largeAlloc=npages << PAGE_SHIFT, largeAllocCount=1)
    h.gcController.update(npages << PAGE_SHIFT, typ.scan_size(size) if typ is not None else 0)
    if (needzero or typ is not None) and s.needzero:
        h.sysmem.memclr(s.startAddr, size)
    if h.gcphase:         # allocate black (gcmarknewobject) and run up assist debt
        if c.allocBlack:
            s.setMarked(0)
            c.markedBlack += s.elemsize
        if c.chargeAssist:
            c.gcAssistBytes -= npages << PAGE_SHIFT
            c.assistCharged += npages << PAGE_SHIFT
    hook = h.on_large_alloc
    if hook is not None:
        c.allocating = s.startAddr
        try:
            hook(c, s)
        finally:
            c.allocating = 0
    return s.startAddr


def _after_refill(c, x: int) -> None:
    """The end of a slow path: the collector's hook (assist, trigger test).
    An assist may wait at a safe point, where this P's stack can be scanned:
    the new object x is then only in mallocgc's frame, which Go's stack scan
    sees; here it sits in the mcache's `allocating` register meanwhile."""
    hook = c.heap.on_refill
    if hook is not None:
        c.allocating = x
        try:
            hook(c)
        finally:
            c.allocating = 0


def mallocgc_nocache(c, size, typ=None, needzero: bool = True) -> int:
    """mallocgc with the per-P cache turned off: every small object is taken
    from its mcentral under the mcentral's lock (tiny blocks included; the
    sub-allocation inside the current tiny block stays lock-free)."""
    if typ is not None and _type_noscan(typ) and isinstance(size, int) and size > 0 and not size % typ.size:
        typ = None
    if size.__class__ is not int or not (0 < size <= MAX_SMALL_SIZE) or (typ is not None and size % typ.size):
        return _mallocgc_general(c, size, typ, needzero)  # validation errors and large objects
    h = c.heap
    if typ is None:
        if size < TINY_SIZE:
            return _tiny(c, size, _tiny_block_nocache)
        x, grew = _central_alloc(c, _SMALL_SPC_NOSCAN[size])
        s = h.spanOf(x)
        if needzero and s.needzero:
            h.sysmem.memclr(x, s.elemsize)
    else:
        x, grew = _central_alloc(c, _SMALL_SPC_SCAN[size])
        s = h.spanOf(x)
        if s.needzero:
            h.sysmem.memclr(x, s.elemsize)
        c.heapBitsSetType(s, x, size, typ)
        c.scanAlloc += typ.scan_size(size)
    if grew:
        _after_refill(c, x)
    return x
