"""Narration: a lost object told as a story of what each thread did to it.

A Narrator attached to a Runtime before it runs records, in one list, the
facts a story needs: every mutator allocation, pointer load and store (with
the old value the store overwrote), stack-slot write, write-barrier call
(the pointers it shades), the collector's loads while it scans objects,
stack scans (with the slots as the scan saw them) and the collector's
phase changes.  Under a controlled scheduler one thread runs at a time, so
appending to one list orders the facts exactly, each tagged with the
scheduler's step.

Zero cost when off: nothing in the runtime knows about narration.
`Narrator(rt)` wraps, on that Runtime's own instances only, the mutators'
memory and slot methods, the barrier installer, the collector's memory
(`gc.mem`, through which the marker reads fields; loads the barrier itself
makes are left out), `gc.global_words` (the first call at mark termination
is checkmark's: its re-marking loads are no marker's) and the event
recorder's emit; each wrapper calls the original with the same arguments
and takes no yield point, so a narrated run makes the same decisions and
has the same event_log_hash as an unnarrated one (tests/test_narrate.py
checks it).  With `watch=(address, size)` it also records every mutator
access to that object's memory with the object's state then (live, freed,
allocated again): story.aftermath() tells what a run that goes on past a
loss did with the lost object.

The story a run's facts tell is concalloc/story.py's (tell).

Protection: `facts`, `in_barrier` and `scanning` are written only by the
managed thread that holds the controlled scheduler's baton (one at a time),
and read once the run is over.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .gc.barrier import _SHADES
from .mspan import MSPAN_IN_USE

_current = threading.current_thread

# recorder events a story uses (the rest, lock events mostly, are not kept)
_GC_EVENTS = {"gc_start", "gc_phase", "gc_mark_start", "gc_mark_done", "gc_scanstack_start",
              "gc_scanstack_done", "gc_assist_start", "gc_assist_done", "gc_done"}


@dataclass
class Fact:
    step: int          # the scheduler's step when it happened
    thread: str
    kind: str
    f: dict


class _MutatorMemory:
    """A mutator's view of memory that records its loads and stores."""

    __slots__ = ("mem", "narr", "m")

    def __init__(self, mem, narr, m):
        self.mem, self.narr, self.m = mem, narr, m

    def load(self, addr: int) -> int:
        narr = self.narr
        if narr.watch_lo <= addr < narr.watch_hi:
            narr.add("touch", addr=addr, op="loads", state=narr.watched_state())
        v = self.mem.load(addr)
        narr.add("load", addr=addr, value=v, scanned=self.m.p.gcscandone)
        return v

    def store(self, addr: int, value: int) -> None:
        narr = self.narr
        if narr.watch_lo <= addr < narr.watch_hi:
            narr.add("touch", addr=addr, op="stores into", state=narr.watched_state())
        old = self.mem.load(addr)
        self.mem.store(addr, value)
        narr.add("store", addr=addr, old=old, value=value, scanned=self.m.p.gcscandone)


class _CollectorMemory:
    """The collector's view of memory: records the marker's field loads (not
    the barrier's read of the old value, which the barrier fact holds)."""

    __slots__ = ("mem", "narr")

    def __init__(self, mem, narr):
        self.mem, self.narr = mem, narr

    def load(self, addr: int) -> int:
        v = self.mem.load(addr)
        narr = self.narr
        me = _current().name
        if narr.scanning and me not in narr.in_barrier:
            narr.add("scan_load", addr=addr, value=v)
        return v

    def store(self, addr: int, value: int) -> None:
        self.mem.store(addr, value)


def _born_black(mheap, x: int) -> bool:
    """x was allocated black: during mark, from a span cached during mark, in a
    slot the last sweep found free (greyobject's test).  An allocation that
    waited in an assist across a cycle's end returns a slot taken earlier."""
    if not mheap.gcphase:
        return False
    _, s, idx = mheap.findObject(x)
    return s is not None and 0 <= s.markFrom <= idx and not s.isAllocBitSet(idx)


class Narrator:
    """Records a controlled run's facts for a story.  Attach before rt.run()."""

    def __init__(self, rt, watch: tuple[int, int] | None = None):
        self.rt = rt
        self.facts: list[Fact] = []     # appended by whichever managed thread runs (one at a time)
        # watch = (address, size): mutator accesses to that object's memory are
        # recorded with its state then (see watched_state); aftermath() uses it
        self.watch_lo, self.watch_hi = (watch[0], watch[0] + watch[1]) if watch else (0, 0)
        self.in_barrier: set[str] = set()   # threads inside a write barrier call
        self.scanning = True            # False once checkmark starts re-marking
        self._sched = rt.sched
        self._attach(rt)

    def watched_state(self) -> str:
        """The watched object's slot now: "live" (allocated, or not yet swept),
        "free" (swept and free) or "reused" (swept, then allocated again)."""
        h = self.rt.heap.mheap
        s = h.spanOf(self.watch_lo)
        if s is None or s.state != MSPAN_IN_USE:
            return "free"
        if s.sweepgen not in (h.sweepgen, h.sweepgen + 3):
            return "live"           # not swept since it was marked (or not)
        idx = (self.watch_lo - s.startAddr) // s.elemsize
        if s.isAllocBitSet(idx):
            return "live"
        return "reused" if idx < s.freeindex else "free"

    def add(self, kind: str, **f) -> None:
        self.facts.append(Fact(self._sched.steps, _current().name, kind, f))

    # -- wrapping the runtime's instances ------------------------------------------------

    def _attach(self, rt) -> None:
        if not rt.sched.controlled:
            raise ValueError("narration needs a controlled scheduler (random, pct, sticky-random, replay)")
        for m in rt.mutators:
            self._wrap_mutator(m)
        install = rt.install_write_barrier
        rt.install_write_barrier = lambda wb: install(self._wrap_barrier(wb) if wb is not None else None)
        gc = rt.gc
        gc.mem = _CollectorMemory(gc.mem, self)
        words = gc.global_words
        gc.global_words = lambda: self._global_words(words)
        rec = rt.events
        if rec:
            emit = rec.emit
            rec.emit = lambda kind, **f: self._emit(emit, kind, f)

    def _wrap_mutator(self, m) -> None:
        m._mem = _MutatorMemory(m._mem, self, m)
        alloc = m.alloc
        mheap = self.rt.heap.mheap

        def narrated_alloc(size, typ=None):
            x = alloc(size, typ)
            self.add("alloc", addr=x, size=size, type=typ.name if typ is not None else None,
                     black=_born_black(mheap, x))
            return x

        def set_slot(i, addr):
            old = m.stack[i]
            m.stack[i] = addr
            self.add("slot", i=i, old=old, value=addr, scanned=m.p.gcscandone)

        m.alloc = narrated_alloc
        m.set_slot = set_slot
        m.clear_slot = lambda i: set_slot(i, 0)

    def _wrap_barrier(self, wb):
        shade_old, shade_new = _SHADES[wb.kind]
        load = self.rt.heap.memory.load
        in_barrier = self.in_barrier

        def narrated_wb(m, slot, ptr):
            old = load(slot)
            grey = not m.p.gcscandone
            shaded = ([old] if shade_old else []) + \
                     ([ptr] if shade_new == "always" or (shade_new == "while-grey" and grey) else [])
            self.add("wb", barrier=wb.kind, addr=slot, old=old, value=ptr, shaded=shaded, scanned=not grey)
            in_barrier.add(m.name)
            try:
                wb(m, slot, ptr)
            finally:
                in_barrier.discard(m.name)

        narrated_wb.kind = wb.kind
        return narrated_wb

    def _global_words(self, words):
        """The globals' root job (during mark) reads them once, shading what it
        read: a fact.  The first read at mark termination is checkmark's."""
        phase = self.rt.gc.phase
        vals = words()
        if phase == 1:
            self.add("scan_globals", values=list(vals))
        elif phase == 2 and self.scanning:
            self.scanning = False
            self.add("checkmark")
        return vals

    def _emit(self, emit, kind: str, f: dict) -> None:
        emit(kind, **f)
        if kind not in _GC_EVENTS:
            return
        if kind == "gc_phase" and f.get("phase") == "mark":
            self.scanning = True
        elif kind == "gc_scanstack_start":
            p = next((x for x in self.rt.allp if x.name == f["p"]), None)
            m = p.m if p is not None else None
            f = {**f, "slots": list(m.stack) if m else [], "regs": list(m.regs) if m else []}
        self.add(kind, **f)
