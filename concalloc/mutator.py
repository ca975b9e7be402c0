"""The mutator API: what a goroutine on a P can do to the heap.

A workload is a function of one Mutator.  It allocates (by size, or by Type
for objects with pointer fields), loads and stores pointer fields of heap
objects (stores go through the write-barrier hook the collector installs),
keeps its roots in stack slots it sets and clears, and may use the globals
shared by all mutators (words of the data segment, rt.moduledata).

Every allocation and every heap pointer load/store is a yield point with a
stable label, and its top is a safe point: there the P parks if the world is
being stopped and runs the safe-point functions the collector asked of it
(its stack scan, flushing its write-barrier buffer).  Under a controlled
scheduler whose `sparse_memory` is set (random, pct, replay, vtime; vtime
still charges the skipped ones to the P's clock) every heap load/store is a decision
only while the collector marks (gcphase != off): that is when an
interleaving of memory operations can break the collector, and outside it
the allocations still interleave the Ps.  Outside marking one load/store
in MEM_STRIDE is a decision, so a P that only loads and stores still
passes the baton (and sees an aborted run).  It halves the decisions of a
typical run; the phase changes only with the world stopped and the count
is the P's own, so the run stays a pure function of (config, seed).  Under the free
scheduler with no noise a yield point is a bound no-op; with the mcentral
cache off, allocation goes straight to the mcentral under its lock.

Roots: the stack slots, the object an allocation slow path is returning
(mcache.allocating, mallocgc's frame), and one "register": the result of
the last allocation, which Go's stack map would see as a live local until
the program stores it.  A pointer loaded from the heap is no root: a
workload that holds one across a safe point (an allocation, load or store)
must put it in a slot, as go-weave's model and Go's precise stack maps do;
otherwise only the barrier protects it.

m.gc() is runtime.GC: start a cycle, wait for it and its sweep; m.gc_start()
starts one and returns at once.

Protection: everything here is owned by the mutator's P; `stack` and `regs`
are read by the collector only while the P is stopped at a safe point,
borrowed (idle) or the world is stopped; the globals are data-segment words
written by single stores (see moduledata.py).
"""

from __future__ import annotations

import random
import time

from .check.pointers import check_field, check_pointer
from .malloc import mallocgc
from .memory import Type
from .gc.barrier import WBBUF_ENTRIES, wbBufFlush1
from .sync import Aborted
from .sync.sched import QUIET_YIELD
from .sysmem import ARENA_BASE

MEM_STRIDE = 64     # outside marking, one heap load/store in this many is a decision (sparse_memory)


class Mutator:
    def __init__(self, rt, p, nslots: int):
        self.rt = rt
        self.p = p
        self.c = p.mcache
        self.name = p.name
        self.rng = random.Random(f"{rt.config.seed}:{p.name}")
        self.stack = [0] * nslots       # roots; owned by the P, read by the GC at its safe points
        self.regs = [0]                 # a root: the last allocation's result (same protection)
        p.m = self
        self.nalloc = 0                 # owned by the P; read racily for progress
        self.nptr = 0
        cfg = rt.config
        self._max_steps = cfg.steps
        self._deadline = time.monotonic() + cfg.seconds if cfg.seconds and not cfg.controlled() else None
        self._world = rt.world
        self._sched = rt.sched
        self._yield = rt.sync.yield_point
        self._mh = rt.heap.mheap
        self._mem_always = not getattr(rt.sched, "sparse_memory", False)   # else see _mem_decision
        # vtime: charges the loads/stores _mem_decision does not decide (set once, read-only)
        self._mem_charge = rt.sched.charge if getattr(rt.sched, "prices_yield_points", False) else None
        self._mem_quiet = 0             # owned by the P: loads/stores since its last memory decision
        # A stopped OS run rebinds the context's yield point to one that raises
        # Aborted; follow it, or a mutator that only loads and stores never unwinds.
        self._sched.add_abort_hook(self._rebind_yield)
        self._malloc = mallocgc if rt.cache else rt.malloc_nocache
        self._mem = rt.heap.memory
        self._md = rt.heap.moduledata
        self._wb = rt.write_barrier     # None: no barrier; set by Runtime.set_write_barrier at STW
        self._wbgc = None               # the collector, while _store_hybrid_quiet is bound (world stopped)
        self._words = None              # the heap's words, likewise
        self._lbl_alloc = "alloc"
        self._lbl_load = "load"
        self._lbl_store = "store"
        rec = rt.events
        if rec:
            self.alloc = self._alloc_recorded
            self._rec = rec
        if cfg.heapcheck >= 2:   # the pointer oracle on every load and store
            self._mheap = self._mh
            self.load = self._load_checked
            self.store = self._store_checked
        if "wb-preempt-before-store" in cfg.faults:
            self.store = self._store_stale_barrier
        if rt.method is not None:   # a survey allocation method (concalloc/methods)
            rt.method.bind(self)
        if rt.wbshadow is not None:   # GODEBUG wbshadow=1: new objects' shadow words start at 0
            rt.wbshadow.bind(self)

    def _rebind_yield(self) -> None:
        self._yield = self.rt.sync.yield_point
        if getattr(self.store, "__func__", None) is Mutator._store_hybrid_quiet:
            del self.store              # it skips the yield point: back to the one that yields

    # --- bounds ---
    def running(self) -> bool:
        """True while this mutator has steps (allocations) or seconds left.
        Raises Aborted once the run has been stopped."""
        if self._sched.aborting:
            raise Aborted
        if self._max_steps is not None and self.nalloc >= self._max_steps:
            return False
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return False
        return True

    # --- allocation ---
    def alloc(self, size, typ: Type | None = None) -> int:
        """Allocate size bytes (an array of typ if given) and return the address."""
        self._yield(self._lbl_alloc)
        p = self.p
        if p.preempt:
            self._world.safepoint(p)
        self.nalloc += 1
        x = self.regs[0] = self._malloc(self.c, size, typ, True)
        return x

    def _alloc_recorded(self, size, typ: Type | None = None) -> int:
        x = Mutator.alloc(self, size, typ)
        self._rec.emit("alloc", size=size, addr=x)
        return x

    def new(self, typ: Type, count: int = 1) -> int:
        return self.alloc(typ.size * count, typ)

    # --- heap pointer fields ---
    def load(self, obj: int, field: int) -> int:
        """Load pointer word `field` of the object at obj."""
        if self._mem_always or self._mem_decision(self._lbl_load):
            self._yield(self._lbl_load)
        p = self.p
        if p.preempt:
            self._world.safepoint(p)
        self.nptr += 1
        return self._mem.load(obj + 8 * field)

    def store(self, obj: int, field: int, value: int) -> None:
        """Store a pointer into word `field` of obj, through the write barrier."""
        if self._mem_always or self._mem_decision(self._lbl_store):
            self._yield(self._lbl_store)
        p = self.p
        if p.preempt:
            self._world.safepoint(p)
        self.nptr += 1
        slot = obj + 8 * field
        wb = self._wb
        if wb is not None:
            wb(self, slot, value)
        self._mem.store(slot, value)

    def _store_hybrid_quiet(self, obj: int, field: int, value: int) -> None:
        """Mutator.store while the hybrid barrier is on under the quiet os
        scheduler (bound by install_quiet_store): the barrier's fast path
        written out, as Go's compiler inlines gcWriteBarrier's buffer append.
        The yield point is the no-op one (skipped), the old word and the new
        pointer go into p.wbBuf, and a full buffer is flushed (wbBufFlush1)."""
        p = self.p
        if p.preempt:
            self._world.safepoint(p)
            if self.store != self._store_hybrid_quiet:    # the barrier changed at the safe point
                Mutator._store_tail(self, obj + 8 * field, value)
                return
        self.nptr += 1
        i = ((obj - ARENA_BASE) >> 3) + field   # the slot's heap word (ARENA_BASE is 8-aligned)
        if i < 0 or obj & 7:            # a global's slot, or misaligned: the generic path
            Mutator._store_tail(self, obj + 8 * field, value)
            return
        words = self._words
        p.wbCalls += 1
        buf = p.wbBuf
        buf += (words[i], value)        # (old, new): one call where two appends cost two
        if len(buf) >= WBBUF_ENTRIES:
            wbBufFlush1(self._wbgc, p)
        words[i] = value

    def _store_tail(self, slot: int, value: int) -> None:
        wb = self._wb
        if wb is not None:
            wb(self, slot, value)
        self._mem.store(slot, value)

    def install_quiet_store(self, wb) -> None:
        """Runtime.install_write_barrier's per-mutator step (world stopped):
        with the quiet hybrid barrier (make_barrier's wb_hybrid_quiet) bind
        _store_hybrid_quiet, else go back to the plain store.  Only a mutator
        whose store is the plain one and whose yield point is the no-op one
        (not stopped) is specialised; heapcheck, faults and methods keep theirs."""
        # (not through self.__dict__: reading it makes every attribute load slower)
        own = getattr(self.store, "__func__", None)
        if own is Mutator._store_hybrid_quiet:
            del self.store              # back to the plain store, then maybe bound again
        elif own is not Mutator.store:
            return                      # heapcheck, a fault or a method owns store
        if (wb is not None and getattr(wb, "quiet_gc", None) is not None
                and self._yield is QUIET_YIELD and self._mem_always):
            self._wbgc = wb.quiet_gc
            self._words = self._mem.words
            self.store = self._store_hybrid_quiet

    def _store_stale_barrier(self, obj: int, field: int, value: int) -> None:
        """Fault wb-preempt-before-store (golang/go#61958): the barrier is
        looked at before the safe point, so a store whose P parks there for
        the cycle's start lands unbarriered in the mark phase."""
        wb = self._wb
        self._yield(self._lbl_store)
        p = self.p
        if p.preempt:
            self._world.safepoint(p)
        self.nptr += 1
        slot = obj + 8 * field
        if wb is not None:
            wb(self, slot, value)
        self._mem.store(slot, value)

    def _mem_decision(self, label: str) -> bool:
        """sparse_memory: is this load/store (yield label `label`) a
        decision?  Always while the collector marks, else one in MEM_STRIDE.
        Under a scheduler that prices yield points (vtime) one that is no
        decision is still charged its label's cost, so the P's clock is what
        it would be had every one been decided."""
        if self._mh.gcphase:
            return True
        n = self._mem_quiet = self._mem_quiet + 1
        if n < MEM_STRIDE:
            if self._mem_charge is not None:
                self._mem_charge(label)
            return False
        self._mem_quiet = 0
        return True

    def _load_checked(self, obj: int, field: int) -> int:
        check_field(self._mheap, obj, field)
        v = Mutator.load(self, obj, field)
        check_pointer(self._mheap, v, f"pointer loaded from {obj:#x} field {field}:")
        return v

    def _store_checked(self, obj: int, field: int, value: int) -> None:
        check_field(self._mheap, obj, field)
        check_pointer(self._mheap, value, f"pointer stored into {obj:#x} field {field}:")
        Mutator.store(self, obj, field, value)

    def write_word(self, obj: int, field: int, value: int) -> None:
        """Store a non-pointer word (no barrier, not a yield point)."""
        self._mem.store(obj + 8 * field, value)

    def read_word(self, obj: int, field: int) -> int:
        return self._mem.load(obj + 8 * field)

    # --- scheduling points that touch no memory ---
    def safepoint(self) -> None:
        """A safe point and nothing else: Go's check in a function prologue,
        where a goroutine may be preempted, its stack scanned or the world
        stopped (go-weave: a mutator between iterations, its stack lock free)."""
        self._yield("safepoint")
        p = self.p
        if p.preempt:
            self._world.safepoint(p)

    def park_until(self, ready) -> None:
        """Wait at a safe point until ready() holds, blocked rather than
        spinning (so a priority scheduler such as PCT lets the others run).
        ready() is looked at again whenever the world stops and starts or a
        safe-point function (a stack scan) comes for this P, so it may test
        what those change: the GC phase, cycle counts, p.gcscandone."""
        self._yield("safepoint")
        self._world.park_at_safepoint(self.p, ready)

    def step(self) -> None:
        """A yield point that is no safe point: other threads take steps here,
        but neither a stack scan nor a stop-the-world can (go-weave's
        sched.Sched() while a mutator holds its stack lock)."""
        self._yield("step")

    # --- roots ---
    def set_slot(self, i: int, addr: int) -> None:
        self.stack[i] = addr

    def slot(self, i: int) -> int:
        return self.stack[i]

    def clear_slot(self, i: int) -> None:
        self.stack[i] = 0

    def set_global(self, i: int, addr: int) -> None:
        """Store a pointer into global i, a pointer word of the data segment:
        the barrier sees its address (moduledata.data + 8*i) as the slot."""
        slot = self._md.global_addr(i)
        self._yield(self._lbl_store)
        if self.rt.config.heapcheck >= 2:
            check_pointer(self._mheap, addr, f"pointer stored into global {i}:")
        wb = self._wb
        if wb is not None:
            wb(self, slot, addr)
        self._mem.store(slot, addr)

    # --- the collector ---
    def gc(self) -> None:
        """runtime.GC: run a full cycle (waiting for one in flight first), then
        finish its sweep.  The P is released while it waits, as a goroutine
        blocked in runtime.GC holds no P."""
        gc = self.rt.gc
        if gc is None:
            return
        n = gc.request_cycle()
        self._world.releasep(self.p)
        try:
            gc.wait_cycle(n)
        finally:
            self._world.acquirep(self.p)
        gc.sweep_all()

    def gc_start(self) -> bool:
        """Ask for a cycle now and return at once (the cycle's first stop of
        the world parks this P at its next safe point).  A no-op while a
        cycle is already asked for or running; True if it asked."""
        gc = self.rt.gc
        return gc is not None and gc.start_cycle_async()

    def get_global(self, i: int) -> int:
        slot = self._md.global_addr(i)
        self._yield(self._lbl_load)
        return self._mem.load(slot)
