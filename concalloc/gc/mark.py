"""Marking: roots, stack scans, greyobject, scanobject, gcDrain, assists (mgcmark.go).

The tri-colour invariant the hybrid barrier keeps (mbarrier.go): no black
heap object points to a white one except through a grey-protected path,
given that (1) every stack is scanned once during mark, its goroutine
stopped at a safe point while it is scanned, and stays black afterwards;
(2) objects allocated during mark are born black; (3) every heap or global
pointer store shades the old value and the new one.  Drop any of the three
and objects can be lost; the other barriers and stack-scan protocols exist
so that users can watch that happen.

Roots (gcPrepareMarkRoots / markroot): one job for the data segment (the
globals, and the objects sync.Pools hold: GC.global_words), one per P's stack.  The tiny blocks the Ps were filling when mark
began are greyed at sweep termination (gcMarkTinyAllocs).  Jobs are claimed
with an atomic counter by whoever drains first.

A stack is scanned by its own P at its next safe point (the top of an
allocation, load or store), or directly when the P runs no mutator: either
way never while its owner runs (Go's suspendG).  The P's "registers" -- the
result of its last allocation and of its last pointer load -- are scanned
with its stack slots, as Go's stack maps cover a function's live locals.

Allocate-black without a phase test on the allocation fast path: mcaches
are flushed at sweep termination, so every span an mcache allocates from
during mark was cached during mark; the refill records the span's freeindex
then (markFrom), and the slots allocated past it -- exactly the new objects
-- are black.  Their mark bits are set in bulk when the span leaves the
mcache or at mark termination, and at once by greyobject if the marker
reaches one first (gcmarknewobject).  Large objects and the cache-off path
mark at allocation.

Protection: mark bits are set with or8 / or_bits (atomic); work.bytesMarked
and the pacer's scan-work counters are AtomicInts; each gcWork is owned by
its thread; a span's markFrom is written by its caching P and read racily
by markers (see greyobject).
"""

from __future__ import annotations

from ..mbitmap import pointer_slots
from ..sync import or_bits
from ..check.violation import throw
from .work import GC_CREDIT_SLACK

GC_OVER_ASSIST_WORK = 64 << 10      #: an assist scans at least this much (gcOverAssistWork)

# gcDrain flags
DRAIN_UNTIL_PREEMPT = 1
DRAIN_FLUSH_BG_CREDIT = 2


# --- grey and black ---------------------------------------------------------

def greyobject(gc, obj: int, s, idx: int, gcw) -> None:
    """Shade the object at obj (base of slot idx in s): white -> grey, or black
    for a noscan object or one allocated during this mark (no queueing)."""
    if s.isMarked(idx):
        return
    if s.setMarked(idx):         # another marker won the race
        return
    gc.yp("mark.greyobject")
    gcw.bytesMarked += s.elemsize
    if s.spanclass & 1:
        return                   # noscan: black at once
    mf = s.markFrom
    if 0 <= mf <= idx and not s.isAllocBitSet(idx):
        return                   # allocated during mark: black (gcmarknewobject)
    gcw.put(obj)


def shade(gc, p: int, gcw) -> None:
    """Grey the object p points into, if p is a heap pointer."""
    if not p:
        return
    base, s, idx = gc.h.findObject(p)
    if s is not None:
        greyobject(gc, base, s, idx, gcw)


def scanobject(gc, b: int, gcw) -> None:
    """Blacken the grey object at b: grey everything its pointer words point to."""
    h = gc.h
    s = h.spanOf(b)
    load = gc.mem.load
    yp = gc.yp
    slots = pointer_slots(s, b)
    for slot in slots:
        yp("mark.scan_field")
        p = load(slot)
        if p:
            base, ps, idx = h.findObject(p, b, slot - b)
            if ps is not None:
                greyobject(gc, base, ps, idx, gcw)
    gcw.heapScanWork += 8 * (len(slots) or 1)


def gcmarknewobjects(s) -> int:
    """Set the mark bits of every object allocated from s since it was cached
    during mark (slots markFrom..freeindex that the last sweep found free).
    Returns the bytes newly marked.  Called by the span's owner (its P, or the
    collector with the world stopped)."""
    lo, hi = s.markFrom, s.freeindex
    s.markFrom = -1
    if lo < 0 or hi <= lo:
        return 0
    alloc = int.from_bytes(s.allocBits, "little")
    new = (((1 << hi) - 1) ^ ((1 << lo) - 1)) & ~alloc
    if not new:
        return 0
    old = or_bits(s.gcmarkBits, new)
    return (new & ~old).bit_count() * s.elemsize


# --- roots --------------------------------------------------------------------

def scanstack(gc, p, gcw) -> None:
    """Scan P p's stack slots and registers (its goroutine is stopped at a safe
    point, or has none running).  Afterwards the stack is black."""
    ev = gc.events
    if ev:
        ev.emit("gc_scanstack_start", p=p.name)
    m = p.m
    if m is not None:
        yp = gc.yp
        for v in m.stack:
            yp("scan.stack_slot")
            if v:
                shade(gc, v, gcw)
        for v in m.regs:
            if v:
                shade(gc, v, gcw)
        if p.mcache.allocating:          # mallocgc's frame: the object it is returning
            shade(gc, p.mcache.allocating, gcw)
        gc.ctl.stackScanWork.add(8 * (len(m.stack) + len(m.regs)))
    p.gcscandone = True
    if ev:
        ev.emit("gc_scanstack_done")


def scanglobals(gc, gcw) -> None:
    """The data segment: every global is a pointer word."""
    yp = gc.yp
    words = gc.global_words()
    for v in words:
        yp("scan.global")
        if v:
            shade(gc, v, gcw)
    gc.ctl.globalsScanWork.add(8 * len(words))


def markroot(gc, gcw, i: int) -> None:
    """Run root job i: 0 is the globals, 1.. are the Ps' stacks."""
    if i == 0:
        scanglobals(gc, gcw)
        return
    p = gc.allp[i - 1]
    gc.yp("markroot.stack")
    gc.world.run_at_safepoint(p, lambda q: _scan_own_stack(gc, q))


def _scan_own_stack(gc, p) -> None:
    """At p's safe point (or for an idle p): scan its stack into its own
    gcWork and publish the result so the workers can take it."""
    scanstack(gc, p, p.gcw)
    p.gcw.dispose()


# --- draining -----------------------------------------------------------------

def gcDrain(gc, gcw, flags: int = 0) -> None:
    """Claim root jobs, then blacken grey objects until there is no work, or
    (DRAIN_UNTIL_PREEMPT) blackening is turned off."""
    while gc.blackenEnabled:
        j = gc.claim_root_job()
        if j < 0:
            break
        markroot(gc, gcw, j)
        gc.root_job_done()
    while gc.blackenEnabled or not flags & DRAIN_UNTIL_PREEMPT:
        if not gc.lists.nfull:
            gcw.balance()
        b = gcw.tryGet()
        if not b:
            break
        scanobject(gc, b, gcw)
        if gcw.heapScanWork >= GC_CREDIT_SLACK:
            gc.flush_scan_work(gcw, flags & DRAIN_FLUSH_BG_CREDIT)
    gc.flush_scan_work(gcw, flags & DRAIN_FLUSH_BG_CREDIT)


def gcDrainN(gc, gcw, scanWork: int) -> int:
    """Blacken objects until about scanWork bytes are scanned; returns the work
    done.  Used by assists, which run on a mutator's P outside any safe point:
    unlike Go's they take no root jobs, since a stack scan waits for its
    owner's safe point and two assisting Ps would wait for each other."""
    done = 0
    while done < scanWork and gc.blackenEnabled:
        b = gcw.tryGet()
        if not b:
            break
        before = gcw.heapScanWork
        scanobject(gc, b, gcw)
        done += gcw.heapScanWork - before
    gc.flush_scan_work(gcw, False)
    return done


# --- assists ------------------------------------------------------------------

def gcAssistAlloc(gc, p) -> None:
    """Pay p's allocation debt (its mcache's gcAssistBytes < 0): steal background credit,
    else scan.  An assist that finds no work goes on in debt (Go parks it on
    the assist queue until credit arrives; here the debt carries over)."""
    ctl = gc.ctl
    c = p.mcache
    debt = -c.gcAssistBytes
    if debt <= 0 or not gc.blackenEnabled:
        return
    assistBytesPerWork = ctl.assistBytesPerWork.load()
    work = int(ctl.assistWorkPerByte.load() * debt)
    if work < GC_OVER_ASSIST_WORK:
        work = GC_OVER_ASSIST_WORK
    credit = ctl.bgScanCredit.load()
    if credit > 0:
        steal = min(credit, work)
        ctl.bgScanCredit.add(-steal)
        c.gcAssistBytes += int(assistBytesPerWork * steal)
        work -= steal
        if c.gcAssistBytes >= 0:
            return
    gc.yp("assist.start")
    ev = gc.events
    if ev:
        ev.emit("gc_assist_start")
    done = gcDrainN(gc, p.gcw, work)
    if ev:
        ev.emit("gc_assist_done", work=done)
    c.gcAssistBytes += 1 + int(assistBytesPerWork * done)
    gc.assist_work.add(done)
    if c.gcAssistBytes < 0:
        gcParkAssist(gc, p)


def gcParkAssist(gc, p) -> None:
    """Still in debt with no work to steal: wait for background credit or for
    blackening to end (Go's assist queue), paying with credit as it comes.
    The P waits at a safe point: its stack can be scanned meanwhile, which
    the worker producing the credit may need."""
    ctl = gc.ctl
    c = p.mcache
    world = gc.world
    lists = gc.lists
    gc.assists_parked.add(1)
    try:
        while gc.blackenEnabled and c.gcAssistBytes < 0:
            gc.yp("assist.park")
            world.park_at_safepoint(p, lambda: not gc.blackenEnabled or ctl.bgScanCredit.load() > 0
                                    or lists.nfull > 0 or c.gcAssistBytes >= 0)
            if not gc.blackenEnabled:
                break
            want = int(ctl.assistWorkPerByte.load() * -c.gcAssistBytes) + 1
            credit = ctl.bgScanCredit.load()
            if credit > 0:
                steal = min(credit, want)
                ctl.bgScanCredit.add(-steal)
                c.gcAssistBytes += int(ctl.assistBytesPerWork.load() * steal) + 1
                want -= steal
            if c.gcAssistBytes < 0 and lists.nfull:      # work was published: help with it
                done = gcDrainN(gc, p.gcw, want)
                c.gcAssistBytes += 1 + int(ctl.assistBytesPerWork.load() * done)
                gc.assist_work.add(done)
    finally:
        gc.assists_parked.add(-1)


def check_no_grey(gc) -> None:
    """Mark termination: no grey object and no buffered barrier entry is left
    (world stopped): every gcWork -- the Ps', the workers', the collector's --
    and work.full are empty, and so is every P's wbBuf."""
    for gcw in gc.all_gcworks():
        if not gcw.empty():
            throw("gc.grey_left", f"gcMark: {gcw.owner}'s gcWork still holds {len(gcw)} grey objects: "
                  "work.full not empty at mark termination\n"
                  "fatal error: P has cached GC work at end of mark termination")
    for p in gc.allp:
        if p.wbBuf:
            throw("gc.wbbuf_left", f"gcMark: {p.name}'s write-barrier buffer holds {len(p.wbBuf)} "
                  "entries at mark termination\n"
                  "fatal error: P has cached GC work at end of mark termination")
    if not gc.lists.empty():
        throw("gc.grey_left", "gcMark: work.full not empty at mark termination\nfatal error: work.full != 0")
