"""Allocation benchmarks: mallocgc of 64-byte noscan objects against a floor.

Figures (ratios are subject median / floor median, both measured in this
run with repetitions interleaved):

    alloc.fast_path_ratio          mcache fast path only, fresh (never used)
                                   memory, so no clearing          target <= 4
    alloc.fast_path_needzero_ratio the same on reused memory, where every
                                   object is cleared (memclr)      no target
    alloc.steady_ratio             rounds of allocation with refills and a
                                   sweep cycle after each round    target <= 8
    alloc.python_bytes_per_object  Python heap per live 64-byte object with
                                   1,000,000 live                  target <= 16
    alloc.scan{48,64}_over_noscan  mallocgc of a scan object (a Type with
                                   pointers: heap bits written) over
                                   mallocgc of a noscan one of the same
                                   size, both on the fast path     no target

The floor is CtzFloor.step (bench.common): a bare method doing one
allocCache count-trailing-zeros step and one attribute store, called in the
same loop as the subject.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from array import array

from concalloc.heap import Heap
from concalloc.malloc import mallocgc
from concalloc.memory import Type
from concalloc.sizeclasses import _SMALL_SPC_NOSCAN, _SMALL_SPC_SCAN
from concalloc.sysmem import PAGE_SHIFT

from .common import CtzFloor, interleave, median, progress

SIZE = 64
SPC = _SMALL_SPC_NOSCAN[SIZE]   # noscan span class of 64-byte objects
RESERVE = 1 << 30

# The inlined fast path serves slots freeindex+bit while freeindex stays inside
# one 64-slot allocCache window; the allocation that would carry freeindex to
# the next window boundary goes to the slow path (which refills allocCache).
# From a fresh window (freeindex % 64 == 0, next 63 cache bits set) exactly 63
# allocations are fast, so that is the timed batch.
FAST_BATCH = 63
_LOW63 = (1 << 63) - 1

_pc = time.perf_counter_ns


# --- alloc.fast_path_ratio / alloc.fast_path_needzero_ratio ---------------------

def _fast_path(reps: int, dirty: bool) -> tuple[float, float]:
    """(floor ns/op, mallocgc ns/op) over reps interleaved batches of FAST_BATCH.

    Timed: FAST_BATCH calls mallocgc(c, 64), every one served by the inlined
    nextFreeFast of the P's cached span (checked after each batch).  Untimed:
    getting the cached span to a fresh allocCache window (the allocation at
    slot 63 that refills allocCache, the last slot, and mcache.refill when the
    span is full).  With dirty=False every span is carved from never-used
    memory (span.needzero == 0: no clearing, as Go skips it too); with
    dirty=True the heap first allocates, writes and frees enough spans that
    every span reuses resident memory, so each object is cleared on
    allocation."""
    nspans = reps // 2 + 4      # two batches per span (windows at slots 0 and 64)
    h = Heap(reserve_bytes=RESERVE)
    try:
        c = h.mcaches[0]
        if dirty:
            for _ in range(nspans * 128):
                mallocgc(c, SIZE)
            # The objects are used (written), as a program's would be: the
            # memory is resident and dirty, so the timed clears below cost
            # the clear itself and not first-touch page faults.
            sm = h.mheap.sysmem
            for sp in list(h.mheap.allspans):
                sm.write_bytes(sp.startAddr, b"\xa5" * (sp.npages << PAGE_SHIFT))
            h.sweep_cycle()     # nothing marked: every span goes back to the heap
        want_needzero = int(dirty)

        def setup() -> None:
            while True:
                s = c.alloc[SPC]
                if s.freeindex == s.nelems:
                    c.refill(SPC)   # what mcache.nextFree does when the span is full
                    continue
                fi = s.freeindex
                if fi & 63 == 0 and s.nelems - fi >= FAST_BATCH and s.allocCache & _LOW63 == _LOW63:
                    if s.needzero != want_needzero:
                        raise AssertionError(f"span needzero={s.needzero}, wanted {want_needzero}: {s!r}")
                    return
                mallocgc(c, SIZE)

        def subject(m=mallocgc, c=c, r=range(FAST_BATCH), size=SIZE, pc=_pc) -> float:
            s = c.alloc[SPC]
            fi0, nref = s.freeindex, c.nrefill
            t0 = pc()
            for _ in r:
                m(c, size)
            t = pc() - t0
            if c.alloc[SPC] is not s or s.freeindex != fi0 + FAST_BATCH or c.nrefill != nref:
                raise AssertionError("a timed fast-path batch left the cached span's window")
            return t / FAST_BATCH

        fl = CtzFloor()

        def floor(step=fl.step, r=range(FAST_BATCH), pc=_pc) -> float:
            t0 = pc()
            for _ in r:
                step()
            return (pc() - t0) / FAST_BATCH

        fs, ss = interleave(floor, subject, reps, setup)
        return median(fs), median(ss)
    finally:
        h.close()


# --- alloc.scan{48,64}_over_noscan -----------------------------------------------

def _to_fresh_window(c, spc: int, alloc) -> None:
    """Allocate (untimed) until the cached span of spc is at a fresh 64-slot
    allocCache window with FAST_BATCH slots ahead (refilling when full)."""
    while True:
        s = c.alloc[spc]
        if s.freeindex == s.nelems:
            c.refill(spc)
            continue
        fi = s.freeindex
        if fi & 63 == 0 and s.nelems - fi >= FAST_BATCH and s.allocCache & _LOW63 == _LOW63:
            return
        alloc()


def _scan_vs_noscan(reps: int, size: int) -> tuple[float, float]:
    """(noscan ns/op, scan ns/op) of mallocgc(c, size) and mallocgc(c, size,
    typ), typ a struct of size//8 words with pointers at words 0 and 2, over
    reps interleaved batches of FAST_BATCH, each served by the cached span's
    allocCache window (checked).  Fresh memory: no clearing on either side,
    so the difference is the scan path itself (validation, span class,
    heapBitsSetType, the scanAlloc charge)."""
    typ = Type(f"bench_scan{size}", size, [0, 2])
    h = Heap(reserve_bytes=RESERVE)
    try:
        c = h.mcaches[0]
        spcs = (_SMALL_SPC_NOSCAN[size], _SMALL_SPC_SCAN[size])
        typs = (None, typ)
        out: tuple[list[float], list[float]] = ([], [])

        def one(k: int, m=mallocgc, pc=_pc) -> None:
            spc, t = spcs[k], typs[k]
            _to_fresh_window(c, spc, lambda: m(c, size, t))
            s = c.alloc[spc]
            fi0, nref = s.freeindex, c.nrefill
            t0 = pc()
            for _ in range(FAST_BATCH):
                m(c, size, t)
            dt = pc() - t0
            if c.alloc[spc] is not s or s.freeindex != fi0 + FAST_BATCH or c.nrefill != nref:
                raise AssertionError("a timed batch left the cached span's window")
            out[k].append(dt / FAST_BATCH)

        for i in range(reps):
            one(i & 1)
            one(1 - (i & 1))
        h.verify()
        return median(out[0]), median(out[1])
    finally:
        h.close()


# --- alloc.steady_ratio -----------------------------------------------------

def _keep_pattern(every: int, nbits: int = 1 << 13) -> int:
    """Bit i set for every slot index i that is a multiple of `every`."""
    x = 0
    for i in range(0, nbits, every):
        x |= 1 << i
    return x


def _steady(reps: int, n: int, keep_every: int = 4, warmup: int = 6) -> dict[str, float]:
    """Steady-state allocation: rounds of n mallocgc(c, 64), then a sweep cycle
    in which one slot in keep_every survives (slots whose index is a multiple
    of keep_every, so survivors stay put and the heap settles at about
    n * keep_every / (keep_every - 1) slots).

    Timed, per round: the n mallocgc calls (fast path, window refills,
    mcache.refill -> mcentral.cacheSpan, sweeping spans on demand, mheap
    growth) plus the whole h.sweep_cycle (mcache flush, sweeping every span,
    freeing empty spans to the mheap).  Not timed: the mark callback that
    sets the survivors' mark bits (that is the collector's marking, not the
    allocator's work; its time is measured and subtracted).  Per-op time is
    the round's time divided by n, so refill and sweep cost are amortized over
    the allocations.  The floor is the same step loop, long enough to last as
    long as a subject round."""
    keep = _keep_pattern(keep_every)
    h = Heap(reserve_bytes=RESERVE)
    try:
        c = h.mcaches[0]
        mark_ns = [0]
        sweep_ns = []

        def mark(s, keep=keep, pc=_pc) -> None:
            t0 = pc()
            allocated = int.from_bytes(s.allocBits, "little") | ((1 << s.freeindex) - 1)
            live = allocated & keep & ((1 << s.nelems) - 1)
            s.gcmarkBits[:] = live.to_bytes(len(s.gcmarkBits), "little")
            mark_ns[0] += pc() - t0

        def subject(m=mallocgc, c=c, r=range(n), size=SIZE, pc=_pc) -> float:
            mark_ns[0] = 0
            t0 = pc()
            for _ in r:
                m(c, size)
            t1 = pc()
            h.sweep_cycle(mark)
            t2 = pc()
            sweep_ns.append((t2 - t1 - mark_ns[0]) / n)
            return (t2 - t0 - mark_ns[0]) / n

        fl = CtzFloor()
        nfloor = [n]

        def floor(step=fl.step, pc=_pc) -> float:
            k = nfloor[0]
            t0 = pc()
            for _ in range(k):
                step()
            return (pc() - t0) / k

        warm = [subject() for _ in range(warmup)]
        # A subject round lasts ~10x a floor round of n steps.  On a shared
        # machine a round longer than a scheduler time slice is almost always
        # preempted and a short one mostly not, which would inflate only the
        # subject's median; so the floor runs as many steps as fill a round
        # of the same wall time (still ns per step).
        nfloor[0] = max(n, round(n * median(warm[warmup // 2:]) / min(floor() for _ in range(3))))
        del sweep_ns[:]
        fs, ss = interleave(floor, subject, reps)
        h.verify()   # the bench's marking kept every allocator invariant
        return {
            "alloc.steady_floor_ns": median(fs),
            "alloc.steady_ns": median(ss),
            "alloc.steady_sweep_ns": median(sweep_ns),
            "alloc.steady_ratio": median(ss) / median(fs),
        }
    finally:
        h.close()


# --- alloc.python_bytes_per_object -------------------------------------------

def _python_bytes(n: int) -> float:
    """Python heap bytes (tracemalloc) per live 64-byte object, n live.

    The addresses are kept in an array('Q') allocated before tracing starts,
    and the Heap is built before too, so what is counted is what n
    allocations add: spans, their bits, lookup entries, lists."""
    h = Heap(reserve_bytes=RESERVE)
    try:
        c = h.mcaches[0]
        addrs = array("Q", bytes(8 * n))
        m = mallocgc
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(n):
                addrs[i] = m(c, SIZE)
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        live = h.read_memstats()["HeapObjects"]
        if live != n:
            raise AssertionError(f"HeapObjects {live} != {n}")
        return used / n
    finally:
        h.close()


def run(quick: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    reps = 1500 if quick else 6000

    progress(f"alloc: fast path, {reps} batches of {FAST_BATCH}")
    f, s = _fast_path(reps, dirty=False)
    out["alloc.fast_path_floor_ns"] = f
    out["alloc.fast_path_ns"] = s
    out["alloc.fast_path_ratio"] = s / f

    progress(f"alloc: fast path on reused memory (memclr), {reps} batches of {FAST_BATCH}")
    f, s = _fast_path(reps, dirty=True)
    out["alloc.fast_path_needzero_floor_ns"] = f
    out["alloc.fast_path_needzero_ns"] = s
    out["alloc.fast_path_needzero_ratio"] = s / f

    for size in (48, 64):
        progress(f"alloc: scan vs noscan {size}-byte objects, {reps} batches of {FAST_BATCH} each")
        n, s = _scan_vs_noscan(reps, size)
        out[f"alloc.noscan{size}_ns"] = n
        out[f"alloc.scan{size}_ns"] = s
        out[f"alloc.scan{size}_over_noscan"] = s / n

    rounds = 30 if quick else 120
    progress(f"alloc: steady state, {rounds} rounds of 8192 with a sweep cycle each")
    out.update(_steady(rounds, 8192))

    progress("alloc: Python bytes per live object, 1,000,000 live")
    out["alloc.python_bytes_per_object"] = _python_bytes(1_000_000)
    return out
