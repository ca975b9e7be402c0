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

Protection: p.wbBuf is owned by its P (world stopped: the collector).
"""

from __future__ import annotations

from ..sync.sched import QUIET_YIELD
from ..sysmem import ARENA_BASE
from .mark import scanobject

WBBUF_ENTRIES = 512          #: pointers per P buffer (Go 1.19: 256 (old, new) pairs)

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
    scanobject(gc, 0, gcw, buf)
    greyed = len(gcw) > n
    if len(gcw):
        gcw.dispose()
        gc.enlist_worker()
    return greyed


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
        buf.append(words[(slot - ARENA_BASE) >> 3] if slot >= ARENA_BASE else load(slot))
        buf.append(ptr)
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
