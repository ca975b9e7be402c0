"""wbshadow: a shadow of every heap pointer slot, written only by the write barrier (GODEBUG wbshadow=1).

Go 1.5's development runtime had this mode: every pointer store compiled with
a barrier also wrote the value into a shadow copy of the heap, and a slot
whose value differed from its shadow had been written by a store that
skipped the barrier ("fatal error: missed write barrier").  The check ran
at the next barriered store to the slot and, with the world stopped,
during the collection.

Here, with wbshadow=1, every store that goes through the barrier hook
(Mutator.store, Mutator.set_global) calls the barrier in every phase -- the
kind's shading only while the phase is mark, as Go's writebarrierptr tested
writeBarrier.enabled inside -- and the barrier, before shading:

1. compares the slot's current value with its shadow (0 for a slot never
   stored to since its object was allocated: allocation clears the
   object's memory and its shadow words: an object still being returned by
   an allocation slow path, mcache.allocating, is skipped); a difference is a store that
   skipped the barrier since the last barriered one (Go's text:
   "runtime: write barrier dst=... old=... shadow ... new=...");
2. records the new value as the slot's shadow.

At each mark termination and each verify_heap stop (world stopped, so every
store has completed), check_heap compares every pointer word of every
allocated object, and every global, with its shadow (Go's
"runtime: checkwritebarrier p=... *p=... *shadow=...").

A store that skips the hook -- m.write_word into a pointer word, a raw
Memory.store, or a fault that drops the barrier call -- leaves the shadow
behind.  A fault inside the barrier (one that shades the wrong pointer)
does not: the shadow tracks stores, not colours; checkmark finds those.

Free when off: nothing is installed, the stores and the allocation path
are the same functions as without the oracle.  When on, the barrier is
one function call more per store even outside mark.

Protection: the shadow dict is guarded by `lock`, a raw lock that is held
across no yield point (a controlled scheduler never sees it).  Between the
barrier's update of the shadow and the store itself there is no yield
point, so under a controlled scheduler a barriered store is atomic with
its shadow.  Under the OS scheduler two Ps storing to one slot at the same
time may leave the shadow with the other's value, which reports a missed
barrier; Go's mode said the same of racy pointer writes ("we don't mind
crashing").
"""

from __future__ import annotations

import threading

from ..check.violation import Violation
from ..mbitmap import pointer_slots

MISSED = "fatal error: missed write barrier"


class WBShadow:
    def __init__(self, rt):
        self.rt = rt
        self.mem = rt.heap.memory
        self.h = rt.heap.mheap
        self.md = rt.heap.moduledata
        self.shadow: dict[int, int] = {}   # slot -> the value its last barriered store wrote; lock
        self.lock = threading.Lock()
        self.stores = 0                    # lock: barriered stores seen

    # --- installed at the barrier and the allocator ----------------------------------

    def wrap(self, wb):
        """The barrier to install: check and update the shadow, then run wb
        (the kind's barrier during mark, None outside it)."""
        load = self.mem.load
        shadow = self.shadow
        lock = self.lock

        def shadowed(m, slot, ptr):
            with lock:
                cur = load(slot)
                old = shadow.get(slot, 0)
                if cur != old:
                    self._missed(slot, cur, old, ptr)
                shadow[slot] = ptr
                self.stores += 1
            if wb is not None:
                wb(m, slot, ptr)

        shadowed.kind = getattr(wb, "kind", "none")
        shadowed.inner = wb
        return shadowed

    def bind(self, m) -> None:
        """Mutator m's allocations clear the new object's shadow words."""
        inner = m.alloc
        forget = self.forget

        def alloc(size, typ=None):
            x = inner(size, typ)
            if typ is not None and not typ.noscan:
                forget(x, size)
            return x

        m.alloc = alloc

    def forget(self, x: int, size: int) -> None:
        """A new object at x: its words read 0, and so do their shadows."""
        with self.lock:
            pop = self.shadow.pop
            for w in range(x, x + size, 8):
                pop(w, None)

    # --- reports ---------------------------------------------------------------------

    def _where(self, slot: int) -> str:
        if self.md.contains(slot):
            return f"global {(slot - self.md.data) // 8}"
        base, s, _ = self.h.findObject(slot)
        if s is None:
            return "outside any object"
        return f"word {(slot - base) // 8} of object {base:#x} ({s.elemsize}-byte slot)"

    def _missed(self, slot: int, cur: int, old: int, ptr: int) -> None:
        raise Violation(
            "gc.wbshadow",
            f"runtime: write barrier dst={slot:#x} old={cur:#x} shadow old={old:#x} new={ptr:#x}\n"
            f"  {self._where(slot)} holds {cur:#x}, but its last barriered store wrote {old:#x}: "
            "a store skipped the write barrier\n" + MISSED,
            address=slot)

    # --- world stopped -----------------------------------------------------------------

    def check_heap(self) -> int:
        """Every pointer word of every allocated object, and every global, equals
        its shadow (world stopped).  Returns the words compared."""
        load = self.mem.load
        shadow = self.shadow
        n = 0
        for i in range(len(self.md.words)):
            slot = self.md.global_addr(i)
            n += 1
            self._compare(slot, load(slot), shadow.get(slot, 0))
        # An allocation that stopped at the slow path's safe point (mcache.allocating)
        # has cleared its object, but its forget() runs once it returns.
        pending = {p.mcache.allocating for p in self.rt.allp}
        spans = list(self.h.allspans)     # world stopped; no lock, so no scheduling decision
        for s in spans:
            if s.spanclass & 1 or not s.nelems:
                continue
            alloc = (int.from_bytes(s.allocBits, "little") | ((1 << s.freeindex) - 1)) & ((1 << s.nelems) - 1)
            while alloc:
                low = alloc & -alloc
                alloc ^= low
                obj = s.startAddr + (low.bit_length() - 1) * s.elemsize
                if obj in pending:
                    continue
                for slot in pointer_slots(s, obj):
                    n += 1
                    self._compare(slot, load(slot), shadow.get(slot, 0))
        return n

    def _compare(self, slot: int, cur: int, old: int) -> None:
        if cur != old:
            raise Violation(
                "gc.wbshadow",
                f"runtime: checkwritebarrier p={slot:#x} *p={cur:#x} *shadow={old:#x}\n"
                f"  {self._where(slot)} holds {cur:#x}, but its last barriered store wrote {old:#x}: "
                "a store skipped the write barrier\n" + MISSED,
                address=slot)
