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
with an atomic counter by whoever drains first, all of them before any grey
object is blackened -- unless --mark-order weave, go-weave's order: root
jobs and grey objects in any order, each next one a scheduler decision
(_gcDrainRootsWeave).

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

Protection: mark bits are set with or8 / or_bits (atomic; scanobject writes
or8 out, under the same striped lock); work.bytesMarked
and the pacer's scan-work counters are AtomicInts; each gcWork is owned by
its thread; a span's markFrom is written by its caching P and read racily
by markers (see greyobject).
"""

from __future__ import annotations

from ..mbitmap import DECODED_OFFSETS, WORD_MASK, pointer_offsets
from ..mspan import MSPAN_IN_USE
from ..sync import or8, or_bits
from ..sync.sched import QUIET_YIELD
from ..sysmem import ARENA_BASE, HEAP_ARENA_SHIFT, PAGE_SHIFT, PAGES_PER_ARENA
from ..check.violation import throw
from .work import GC_CREDIT_SLACK, WORKBUF_NOBJ

_PAGE_MASK = PAGES_PER_ARENA - 1

GC_OVER_ASSIST_WORK = 64 << 10      #: an assist scans at least this much (gcOverAssistWork)

# gcDrain flags
DRAIN_UNTIL_PREEMPT = 1
DRAIN_FLUSH_BG_CREDIT = 2
DRAIN_CHECK_THRESHOLD = 100000      #: scan work between two calls of gcDrain's check (drainCheckThreshold)


# --- grey and black ---------------------------------------------------------

def greyobject(gc, obj: int, s, idx: int, gcw) -> None:
    """Shade the object at obj (base of slot idx in s): white -> grey, or black
    for a noscan object or one allocated during this mark (no queueing).

    The mark bit is read first without a lock (a set bit stays set for the
    whole mark phase, so a stale read can only send us on to the atomic
    or8, which decides), then set with one or8: whoever finds it clear in
    or8's old byte owns the object."""
    i = idx >> 3
    bit = 1 << (idx & 7)
    bits = s.gcmarkBits
    if bits[i] & bit:
        return                   # already marked
    if gc.racyShade:             # fault nonatomic-shade: test, then set
        _setMarkedRacy(gc, s, idx)
    elif or8(bits, i, bit) & bit:
        return                   # another marker won the race
    gc.yp("mark.greyobject")
    gcw.bytesMarked += s.elemsize
    if s.spanclass & 1:
        return                   # noscan: black at once
    mf = s.markFrom
    if 0 <= mf <= idx and not s.allocBits[i] & bit:
        return                   # allocated during mark: black (gcmarknewobject)
    w = gcw.wbuf1
    if len(w) < WORKBUF_NOBJ:
        w.append(obj)            # gcWork.put's fast path
    else:
        gcw.put(obj)


def _setMarkedRacy(gc, s, idx: int) -> None:
    """Fault nonatomic-shade: the mark byte read, a yield, the byte written
    back with one more bit -- a bit another marker set meanwhile is lost."""
    bits, i = s.gcmarkBits, idx >> 3
    old = bits[i]
    gc.yp("fault.shade_racy")
    bits[i] = old | 1 << (idx & 7)


def shade(gc, p: int, gcw) -> None:
    """Grey the object p points into, if p is a heap pointer."""
    if not p:
        return
    base, s, idx = gc.h.findObject(p)
    if s is not None:
        greyobject(gc, base, s, idx, gcw)


def scanobject(gc, b: int, gcw, buf=None, drain: bool = False, preemptible: int = 0) -> None:
    """Blacken the grey object at b: grey everything its pointer words point to.
    With buf (wbBufFlush1's use; b is then 0): grey what each pointer in
    buf points to, counting no scan work.

    With drain (gcDrain's heap loop on the quiet path): after b, go on with
    the grey objects gcw.wbuf1 holds, doing between two objects what
    gcDrain does between two calls -- stop while blackening is off (unless
    not preemptible), balance when work.full is empty -- until wbuf1 is
    empty or the scan work not yet flushed reaches GC_CREDIT_SLACK; gcDrain
    then goes on as after any scanobject.  The loop's set-up is paid once
    per run of objects instead of once per object.

    The hot loop of marking, so the helpers it needs are written out
    (a call each would double its cost):

    * pointer_offsets for an object whose heap bits fit in two bitmap
      bytes: the bytes are read here and looked up in its memo;
    * per pointer, mheap.spanOf and MSpan.objIndex to find the object, and
      greyobject: the mark bit read racily, then set as or8 sets it, under
      or8's own striped lock (the lock or_bits takes for the buffer too).

    A pointer that is not into an in-use span's object area goes to
    mheap.findObject, which ignores or reports it (bad pointer) as for any
    other caller.  Unless the scheduler's yield point is the no-op one (the
    os scheduler without noise), an object's words are read one by one,
    each after its "mark.scan_field" yield point, and greyed through
    findObject and greyobject."""
    h = gc.h
    arenas = h.arenas
    yp = gc.yp
    loud = yp is not QUIET_YIELD
    decoded = DECODED_OFFSETS
    words = gc.mem.words
    lists = gc.lists
    wbuf = gcw.wbuf1
    marked = 0
    while True:
        if buf is None:
            s = arenas[(b - ARENA_BASE) >> HEAP_ARENA_SHIFT].spans[(b >> PAGE_SHIFT) & _PAGE_MASK]
            if s.spanclass & 1:
                offs = ()                    # noscan: no pointer word, one word of scan work
            else:
                w = (b >> 3) & WORD_MASK
                sh = w & 3
                n = s.elemsize >> 3
                if sh + n <= 8 and s.spanclass >> 1 and not s.heapBitsMore:
                    bm = s.heapBits
                    b0 = w >> 2
                    key = bm[b0] if sh + n <= 4 else bm[b0] | bm[b0 + 1] << 8
                    offs = decoded.get(key << 16 | n << 2 | sh)
                    if offs is None:
                        offs = pointer_offsets(s, b)
                else:
                    offs = pointer_offsets(s, b)
                if loud:
                    load = gc.mem.load    # one field at a time, through the memory's load (a narrator sees it)
                    for off in offs:
                        yp("mark.scan_field")
                        p = load(b + off)
                        if p:
                            base, ps, idx = h.findObject(p, b, off)
                            if ps is not None:
                                greyobject(gc, base, ps, idx, gcw)
                    gcw.heapScanWork += 8 * (len(offs) or 1)
                    return
            base = b - ARENA_BASE
        else:
            words, base, offs = buf, 0, range(0, 8 * len(buf), 8)
        for off in offs:
            p = words[(base + off) >> 3]
            q = p - ARENA_BASE       # ARENA_BASE is arena-aligned: q's page bits are p's
            if q < 0:
                continue             # nil, or not a heap address (findObject: no span)
            try:
                ps = arenas[q >> HEAP_ARENA_SHIFT].spans[(q >> PAGE_SHIFT) & _PAGE_MASK]
                lo = ps.startAddr
            except (IndexError, AttributeError):
                continue             # past the mapped arenas, or a page that never had a span
            if ps.state != MSPAN_IN_USE or not lo <= p < ps.limit:
                obj, ps, idx = h.findObject(p, b, off if b else 0)
                if ps is not None:
                    greyobject(gc, obj, ps, idx, gcw)
                    wbuf = gcw.wbuf1
                continue
            idx = ((p - lo) * ps.divMul) >> 32                # objIndex
            i = idx >> 3
            bit = 1 << (idx & 7)
            bits = ps.gcmarkBits
            if bits[i] & bit:
                continue             # already marked
            lk = ps.gcmarkLock       # or8(bits, i, bit) written out, under or8's lock for bits
            lk.acquire()
            try:
                old = bits[i]
                bits[i] = old | bit
            finally:
                lk.release()
            if old & bit:
                continue             # another marker won the race
            if loud:
                yp("mark.greyobject")
            marked += ps.elemsize
            if ps.spanclass & 1:
                continue             # noscan: black at once
            mf = ps.markFrom
            if 0 <= mf <= idx and not ps.allocBits[i] & bit:
                continue             # allocated during mark: black (gcmarknewobject)
            if len(wbuf) < WORKBUF_NOBJ:
                wbuf.append(lo + idx * ps.elemsize)
            else:
                gcw.put(lo + idx * ps.elemsize)
                wbuf = gcw.wbuf1
        if buf is not None:
            break
        gcw.heapScanWork += 8 * (len(offs) or 1)
        if not drain or gcw.heapScanWork >= GC_CREDIT_SLACK:
            break
        if not gc.blackenEnabled and preemptible:
            break
        if not lists.nfull:
            gcw.balance()
            wbuf = gcw.wbuf1
        if not wbuf:
            break
        b = wbuf.pop()
    gcw.bytesMarked += marked


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
    if gc.racyStackScan:         # fault stack-scan-races-owner: no suspendG
        scanstack(gc, p, gcw)
        return
    gc.world.run_at_safepoint(p, lambda q: _scan_own_stack(gc, q))


def _scan_own_stack(gc, p) -> None:
    """At p's safe point (or for an idle p): scan its stack into its own
    gcWork and publish the result so the workers can take it."""
    scanstack(gc, p, p.gcw)
    p.gcw.dispose()


# --- draining -----------------------------------------------------------------

def gcDrain(gc, gcw, flags: int = 0, check=None) -> None:
    """Claim root jobs, then blacken grey objects until there is no work, or
    (DRAIN_UNTIL_PREEMPT) blackening is turned off, or check() (called every
    DRAIN_CHECK_THRESHOLD of scan work, as Go's gcDrainFractional does with
    pollFractionalWorkerExit) says stop.  With --mark-order weave the root
    jobs are first drained among the grey objects (_gcDrainRootsWeave)."""
    if gc.markOrderWeave:
        _gcDrainRootsWeave(gc, gcw)
    while gc.blackenEnabled:
        j = gc.claim_root_job()
        if j < 0:
            break
        markroot(gc, gcw, j)
        gc.root_job_done()
    checkWork = DRAIN_CHECK_THRESHOLD
    lists = gc.lists
    preemptible = flags & DRAIN_UNTIL_PREEMPT
    while gc.blackenEnabled or not preemptible:
        if not lists.nfull:
            gcw.balance()
        w = gcw.wbuf1
        b = w.pop() if w else gcw.tryGet()      # tryGet's fast path
        if not b:
            break
        if gc.yp is QUIET_YIELD:     # (read each time: a stopped run rebinds it to one that raises)
            scanobject(gc, b, gcw, None, True, preemptible)   # and the objects after it in wbuf1
        else:
            scanobject(gc, b, gcw)
        if gcw.heapScanWork >= GC_CREDIT_SLACK:
            checkWork -= gcw.heapScanWork
            gc.flush_scan_work(gcw, flags & DRAIN_FLUSH_BG_CREDIT)
            if checkWork <= 0 and check is not None:
                checkWork += DRAIN_CHECK_THRESHOLD
                if check():
                    break
    gc.flush_scan_work(gcw, flags & DRAIN_FLUSH_BG_CREDIT)


# --- go-weave's drain order (--mark-order weave) --------------------------------

YIELD_DRAIN_ORDER = "mark.drain_order"
YIELD_ROOT_ORDER = "mark.root_order"


def _gcDrainRootsWeave(gc, gcw) -> None:
    """gcDrain's root jobs under --mark-order weave.  go-weave's marker
    (models/yuasa.go, drain) takes any item of one grey set, its stacks
    among the heap objects, so a stack may be scanned after heap objects
    are black; Go's gcDrain claims every root job first.  Here, while root
    jobs are left and a grey object is queued, each next unit of work --
    claim a root job (option 0, Go's), or blacken one grey object -- is a
    choice (_weaveChoice), and so is which of the jobs left is claimed
    (option 0 is the first, Go's order).  Returns once every root job is
    claimed or blackening is off; gcDrain's loops do the rest.
    markrootJobs/markrootNext are read without the lock as hints, as
    claim_root_job's first test reads them: the claim decides."""
    lists = gc.lists
    blackened = False
    while gc.blackenEnabled and gc.markrootNext < gc.markrootJobs:
        if (gcw.wbuf1 or gcw.wbuf2 or lists.nfull) and _weaveChoice(gc, gcw, YIELD_DRAIN_ORDER, 2):
            b = gcw.tryGet()
            if b:
                scanobject(gc, b, gcw)
                blackened = True
                continue
        left = gc.markrootJobs - gc.markrootNext
        j = gc.claim_root_job_any(_weaveChoice(gc, gcw, YIELD_ROOT_ORDER, left) if left > 1 else 0)
        if j < 0:
            break
        if blackened:
            gc.rootsAfterHeap.add(1)
        markroot(gc, gcw, j)
        gc.root_job_done()


def _weaveChoice(gc, gcw, label: str, n: int) -> int:
    """One of n >= 2 options for --mark-order weave, option 0 being Go's.
    Under a controlled scheduler the scheduler decides it: at each of up to
    n-1 yield points labelled `label`, option i is taken if the decision
    there let this thread run on (one step passed, its own), else the next
    is considered.  So the choice is part of the schedule: it replays with
    it, and a schedule with fewer switches (sticky-random, a shrunk one)
    stays nearer Go's order.  Under the os scheduler: one draw from this
    gcWork's generator."""
    sched = gc.rt.sched
    yp = gc.yp
    if sched.controlled:
        for i in range(n - 1):
            before = sched.steps
            yp(label)
            if sched.steps == before + 1:
                return i
        return n - 1
    yp(label)
    return gc.markOrderRng[gcw.owner].randrange(n)


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
    gc.assist_completion_point()
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
                gc.assist_completion_point()
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
