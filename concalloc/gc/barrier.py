"""Write barriers and the per-P write-barrier buffer (mbarrier.go, mwbbuf.go).

While the phase is mark, every heap or global pointer store `*slot = ptr`
runs the selected barrier first.  The published hybrid barrier (proposal
17503) is

    writePointer(slot, ptr):
        shade(*slot)                  // deletion (Yuasa): an object hidden by
                                      //   moving its only reference from the
                                      //   heap onto a black stack stays grey
        if current stack is grey:     // insertion (Dijkstra): an object moved
            shade(ptr)                //   from an unscanned stack into a black
        *slot = ptr                   //   heap object stays grey

and Go 1.8+ ships it with the stack test dropped (both pointers recorded
unconditionally).  The kinds users can pick:

    none         no barrier at all
    dijkstra     shade(ptr)                         (insertion only)
    yuasa        shade(*slot)                       (deletion only)
    hybrid       shade(*slot); shade(ptr)           (what Go ships)
    hybrid-cond  shade(*slot); shade(ptr) while this P's stack is unscanned

"Shade" is buffered as in Go: the pointers go into the P's wbBuf and are
greyed when it fills (wbBufFlush), at the mark-completion ragged barrier and
at the mark-termination re-check.  A yield point sits after the old value is
read ("wb.read_old", where go-weave interrupts its barrier) and between
recording and the store ("wb.shade").  Neither is a safe point: no stack
scan or stop-the-world can happen there, only other threads' steps.

Stack writes (set_slot, clear_slot) take no barrier, as in Go.

Protection: p.wbBuf and p.wbShaded are owned by their P (world stopped:
the collector); mark bits are set under the span's gcmarkLock (or8's lock).
"""

from __future__ import annotations

from ..mspan import MSPAN_IN_USE
from ..sync.sched import QUIET_YIELD
from ..sysmem import ARENA_BASE, HEAP_ARENA_SHIFT, PAGE_SHIFT, PAGES_PER_ARENA
from .mark import greyobject, scanobject
from .work import WORKBUF_NOBJ

_PAGE_MASK = PAGES_PER_ARENA - 1

WBBUF_ENTRIES = 512          #: pointers per P buffer (Go 1.19: 256 (old, new) pairs)
WBSHADED_MAX = 1 << 14       #: pointers a P's wbShaded filter holds before it starts over

BARRIERS = ("none", "dijkstra", "yuasa", "hybrid", "hybrid-cond")


def wbBufFlush1(gc, p) -> bool:
    """Shade every pointer in p's buffer into p's gcWork and publish that work.
    Returns True if anything was greyed (queued for scanning): objects that
    only turned black (noscan, or allocated during mark) are no new work.
    As Go's wbBufFlush1, an object already marked costs a span lookup and
    a mark-bit test, and nothing else (scanobject's loop)."""
    buf = p.wbBuf
    if not buf:
        return False
    p.wbBuf = []
    gcw = p.gcw
    n = len(gcw)
    if gc.yp is QUIET_YIELD and not gc.racyShade:
        shadebuf(gc, p, gcw, buf)
    else:
        scanobject(gc, 0, gcw, buf)
    greyed = len(gcw) > n
    if len(gcw):
        gcw.dispose()
        gc.enlist_worker()
    return greyed


def shadebuf(gc, p, gcw, buf: list[int]) -> None:
    """wbBufFlush1's loop on the quiet path (the no-op yield point: no
    "mark.greyobject" to reach), greying a buffer a span at a time.

    First a filter Go does not need: p.wbShaded holds every pointer p's
    flushes have shaded this cycle (a set, owned by p, emptied at gcStart).
    Mark bits only go 0 -> 1 during mark, so such a pointer's object is
    still marked and the pointer is dropped with one set lookup, where Go
    reads the mark bit (a few ns in Go, a span lookup here).  Nil and a
    pointer repeated in the buffer are dropped with it.  Late in mark
    nearly every buffer is all shaded already: one issuperset pass (set
    lookups, stopping at the first miss) answers that without building a set.

    The rest are sorted, so the pointers into one span come as one run:
    the span is looked up and its fields read once, its mark-bit lock
    (gcmarkLock, or8's striped lock) held across the run, and each pointer
    costs its object index and one byte test-and-set (or8 written out).
    The lock is a leaf: it is let go before gcWork.put may publish a full
    buffer, and before the slow path.  As in scanobject, a pointer that is
    not into an in-use span's object area goes to findObject (ignored or
    reported) and greyobject."""
    seen = p.wbShaded
    if seen.issuperset(buf):
        return                                 # all shaded this cycle already (late in mark, the usual case)
    fresh = set(buf).difference(seen)          # (not `-=`: that walks all of seen)
    if len(seen) >= WBSHADED_MAX:
        seen.clear()                           # a bound on its memory: a miss only costs the lookup
    seen |= fresh
    h = gc.h
    arenas = h.arenas
    lo = limit = dm = es = mf = marked = 0
    bits = alloc = lk = None
    scan = False
    w = gcw.wbuf1
    try:
        for ptr in sorted(fresh):
            if ptr >= limit:                       # past the current run: find ptr's span
                if lk is not None:
                    lk.release()
                    lk = None
                q = ptr - ARENA_BASE               # ARENA_BASE is arena-aligned: q's page bits are ptr's
                if q < 0:
                    continue                       # nil, or not a heap address (findObject: no span)
                try:
                    s = arenas[q >> HEAP_ARENA_SHIFT].spans[(q >> PAGE_SHIFT) & _PAGE_MASK]
                    lo = s.startAddr
                except (IndexError, AttributeError):
                    limit = 0
                    continue                       # past the mapped arenas, or a page that never had a span
                if s.state != MSPAN_IN_USE or not lo <= ptr < s.limit:
                    limit = 0
                    obj, s, idx = h.findObject(ptr)
                    if s is not None:
                        greyobject(gc, obj, s, idx, gcw)
                        w = gcw.wbuf1
                    continue
                limit, dm, es, bits, alloc = s.limit, s.divMul, s.elemsize, s.gcmarkBits, s.allocBits
                scan = not s.spanclass & 1         # noscan: black at once
                mf = s.markFrom                    # read racily, as greyobject does
                lk = s.gcmarkLock
                lk.acquire()
            idx = ((ptr - lo) * dm) >> 32          # objIndex
            i = idx >> 3
            bit = 1 << (idx & 7)
            old = bits[i]
            if old & bit:
                continue                           # already marked
            bits[i] = old | bit
            marked += es
            if scan and not (0 <= mf <= idx and not alloc[i] & bit):   # else allocated during mark: black
                if len(w) < WORKBUF_NOBJ:
                    w.append(lo + idx * es)        # gcWork.put's fast path
                else:
                    held, lk = lk, None
                    held.release()
                    gcw.put(lo + idx * es)
                    w = gcw.wbuf1
                    lk = held
                    lk.acquire()
    finally:
        if lk is not None:                     # (whatever leaves the loop: never leave the lock held)
            lk.release()
    gcw.bytesMarked += marked


# What each barrier records: the slot's old value (deletion), and the new
# pointer (insertion) always, never, or while the storing P's stack is grey.
_SHADES = {"dijkstra": (False, "always"), "yuasa": (True, "never"),
           "hybrid": (True, "always"), "hybrid-cond": (True, "while-grey")}


def make_barrier(gc, kind: str):
    """The function Mutator.store calls as wb(m, slot, ptr) before the store,
    or None for no barrier."""
    if kind == "none":
        return None
    if kind not in _SHADES:
        raise ValueError(f"unknown write barrier {kind!r} (expected one of {', '.join(BARRIERS)})")
    shade_old, shade_new = _SHADES[kind]
    always, while_grey = shade_new == "always", shade_new == "while-grey"
    load = gc.mem.load
    words = gc.mem.words
    yp = gc.yp
    if set(gc.cfg.faults) & FAULTY_BARRIERS:
        return _make_faulty_barrier(gc, kind, shade_old, always, while_grey)

    def wb(m, slot, ptr):
        p = m.p
        p.wbCalls += 1
        buf = p.wbBuf
        if shade_old:
            old = load(slot)
            yp("wb.read_old")
            buf.append(old)
        if always or (while_grey and not p.gcscandone):
            buf.append(ptr)
        if len(buf) >= WBBUF_ENTRIES:      # wbBuf full: flush (one length check per store)
            wbBufFlush1(gc, p)
        yp("wb.shade")

    def wb_hybrid_quiet(m, slot, ptr):
        # Go's gcWriteBarrier fast path: record (old, new), flush when full.
        # The hybrid barrier with the no-op yield point, the heap word read
        # directly (a global's slot is below the heap: Memory.load).
        p = m.p
        p.wbCalls += 1
        buf = p.wbBuf
        buf += (words[(slot - ARENA_BASE) >> 3] if slot >= ARENA_BASE else load(slot), ptr)
        if len(buf) >= WBBUF_ENTRIES:
            wbBufFlush1(gc, p)

    if kind == "hybrid" and yp is QUIET_YIELD:
        wb = wb_hybrid_quiet
        wb.quiet_gc = gc       # Mutator.install_quiet_store writes this barrier into store
    wb.kind = kind
    return wb


# --- injected faults (concalloc/faults.py): a barrier built broken -------------------

FAULTY_BARRIERS = {"wb-skip-nil-old", "wb-skip-nil-new", "wb-wrong-phase", "wb-deletion-reads-new"}


def _make_faulty_barrier(gc, kind, shade_old, always, while_grey):
    """The barrier above with the selected faults: skip it all when the old
    value is nil, or when the new one is (#18956), or while root jobs run
    (#11105); or shade the new value where the old one belongs (#30871)."""
    faults = set(gc.cfg.faults)
    skip_nil_old, skip_nil_new = "wb-skip-nil-old" in faults, "wb-skip-nil-new" in faults
    wrong_phase, reads_new = "wb-wrong-phase" in faults, "wb-deletion-reads-new" in faults
    load = gc.mem.load
    yp = gc.yp

    def wb(m, slot, ptr):
        p = m.p
        p.wbCalls += 1
        if (skip_nil_new and not ptr) or (wrong_phase and gc.rootsDone < gc.markrootJobs):
            return
        old = load(slot)
        if skip_nil_old and not old:
            return
        buf = p.wbBuf
        if shade_old:
            yp("wb.read_old")
            buf.append(ptr if reads_new else old)
        if always or (while_grey and not p.gcscandone):
            buf.append(ptr)
        if len(buf) >= WBBUF_ENTRIES:
            wbBufFlush1(gc, p)
        yp("wb.shade")

    wb.kind = kind
    return wb
