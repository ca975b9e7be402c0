"""The collector's state at its stop-the-world points (GODEBUG heapcheck >= 1).

Go checks its collector with throws on the way (greyobject's "marking free
object", gcMark's "work.full != 0"); concalloc checks the whole state at
each point where the world is stopped during mark, because that is when it
is consistent:

* mark completion, once the world is stopped and the workers are idle
  (before the re-check), and mark termination (after the mcaches' flush):
  mark bits only on allocated slots (check_marked_allocated, Go's "marked
  free object in span"); and, for the barriers that promise it, the strong
  tricolour invariant (check_strong_tricolor, check_walk);
* mark termination also: no grey object, no buffered barrier entry, every
  gcWork empty, the workers' included (check_no_grey, always on).

Which barrier promises the strong invariant (no black heap object points to
a white one, docs/barriers.md): a barrier that shades every new pointer
stored into the heap, at every store -- `dijkstra` and `hybrid` (Go's
unconditional Dijkstra+Yuasa).  Stacks are no heap objects: Dijkstra's hole
(an object kept only by a black stack) breaks no heap edge, and checkmark is
what finds it.  `yuasa` and `hybrid-cond` keep only the weak invariant (a
white object a black one points to is still reachable from a grey one):
a pointer copied from a grey object into a black one is white until the
grey one is scanned.  `none` promises nothing.

Colours, as Go has them (work.py): black is marked and on no queue, or
allocated during this mark (its bit is set in bulk later, markFrom); grey
is on a gcWork, on work.full, or buffered in a wbBuf (a buffered pointer is
as good as grey: it is greyed before mark ends); white is the rest.

The heap walk (every pointer word of every black object) costs about a mark
of the heap: with heapcheck=1 it runs in the cycles whose start verifies
the heap (1, 2, 4, 8, ...), with heapcheck=2 in every cycle.  The bit checks
run at every point.  World stopped: nothing here takes a lock, so the
checks add no scheduling decision and a controlled run's interleaving is
the same with them as without.
"""

from __future__ import annotations

from ..check.violation import Violation
from ..mbitmap import pointer_slots
from .checkmark import marks_on_allocated

STRONG_BARRIERS = ("dijkstra", "hybrid")    #: barriers that keep the strong tricolour invariant


def grey_objects(gc) -> set[int]:
    """The bases of every grey object: queued in a gcWork or on work.full, or buffered in a wbBuf."""
    grey: set[int] = set()
    for gcw in gc.all_gcworks():
        grey.update(gcw.wbuf1)
        grey.update(gcw.wbuf2)
    for buf in list(gc.lists.full):      # world stopped, workers idle: no lock (it would be a decision)
        grey.update(buf)
    findObject = gc.h.findObject
    for p in gc.allp:
        for ptr in p.wbBuf:
            if ptr:
                base, s, _ = findObject(ptr)
                if s is not None:
                    grey.add(base)
    return grey


def _bits(b) -> int:
    return int.from_bytes(b, "little")


def _marked_or_new(s) -> int:
    """Slots of s that are not white: marked, or allocated during this mark (markFrom..freeindex)."""
    marks = _bits(s.gcmarkBits)
    if s.markFrom >= 0 and s.freeindex > s.markFrom:
        new = ((1 << s.freeindex) - 1) ^ ((1 << s.markFrom) - 1)
        marks |= new & ~_bits(s.allocBits)
    return marks


def _allocated(s) -> int:
    return (_bits(s.allocBits) | ((1 << s.freeindex) - 1)) & ((1 << s.nelems) - 1)


def check_strong_tricolor(gc) -> int:
    """No black heap object points to a white (allocated) one.  Returns the
    pointer words looked at.  World stopped, no marker mid-scan."""
    h = gc.h
    load = gc.mem.load
    grey = grey_objects(gc)
    spans = list(h.allspans)     # world stopped: no P grows the heap (and no lock: no decision)
    colour = {}                  # span -> its non-white mask, computed once
    nwords = 0
    for s in spans:
        if s.spanclass & 1 or not s.nelems:
            continue
        black = _marked_or_new(s) & _allocated(s)
        while black:
            low = black & -black
            idx = low.bit_length() - 1
            black ^= low
            obj = s.startAddr + idx * s.elemsize
            if obj in grey:
                continue
            for slot in pointer_slots(s, obj):
                nwords += 1
                v = load(slot)
                if not v:
                    continue
                base, s2, i2 = h.findObject(v)
                if s2 is None or base in grey:
                    continue
                mask = colour.get(s2)
                if mask is None:
                    mask = colour[s2] = _marked_or_new(s2)
                if not mask >> i2 & 1 and _allocated(s2) >> i2 & 1:
                    _report(gc, obj, slot, base, s2)
    return nwords


def _report(gc, obj: int, slot: int, white: int, s) -> None:
    raise Violation(
        "gc.black_to_white",
        f"runtime: black object {obj:#x} points to white object {white:#x} (field +{slot - obj}) "
        f"and no grey object or barrier buffer holds it\n"
        f"  barrier={gc.barrier_kind} stack-scan={gc.stack_scan} promises the strong tricolour invariant\n"
        "fatal error: black object points to white object",
        address=white, span=s)


def check_stw(gc, walk: bool) -> None:
    """heapcheck >= 1 at a stop-the-world point of mark (mark completion's
    stop, mark termination): mark bits on allocated slots only, and with
    `walk`, for a barrier that promises it, the strong tricolour invariant."""
    marks_on_allocated(gc)
    if walk:
        check_walk(gc)


def check_walk(gc) -> None:
    """The heap walk: the strong tricolour invariant, for a barrier that promises it."""
    if gc.barrier_kind in STRONG_BARRIERS:
        check_strong_tricolor(gc)
