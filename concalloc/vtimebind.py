"""Binding a Runtime's costs under --scheduler vtime (sync/vtime.py).

The yield labels price most steps.  What a label cannot say is charged by
thin wrappers bound once, when the runtime is built, on the objects
themselves (instance attributes, as the Mutator binds its recorded alloc):

* memclr per byte              SysMem.memclr
* pages from the page allocator PageAlloc.alloc (called with mheap.lock held)
* a small allocation's class   Mutator.alloc ("alloc.small.<class>", "alloc.tiny", "alloc.large")
* the write barrier            Mutator.store, while a barrier is installed ("store.wb")
* critical sections            MCentral.cacheSpan / allocObject set the price of
                               the lock they take next (VtimeScheduler.critical_section)

Nothing here runs under another scheduler.
"""

from __future__ import annotations

from .sizeclasses import _SMALL_SPC_SCAN, MAX_SMALL_SIZE, NUM_SIZE_CLASSES, TINY_SIZE


def bind_runtime(sched, rt) -> None:
    _charge_per_unit(sched, rt.heap.mheap.sysmem, "memclr", "memclr", lambda addr, n: n)
    _charge_per_unit(sched, rt.heap.mheap.pages, "alloc", "mheap.alloc.page", lambda npages: npages)
    for c in rt.heap.mheap.central:
        sched.critical_section(c, "cacheSpan", "mcentral.critical.cacheSpan")
        sched.critical_section(c, "allocObject", "mcentral.critical.allocObject")
    for m in rt.mutators:
        _charge_alloc(sched, m)
        _charge_barrier(sched, m)


def _charge_per_unit(sched, owner, name: str, key: str, units) -> None:
    """Wrap owner.<name> so that each call, once done, charges the cost of
    `key` times units(*its arguments) (memclr: bytes; the page allocator: pages)."""
    per_unit = sched.costs.ps(key)
    if not per_unit:
        return
    inner = getattr(owner, name)
    charge_ps = sched.charge_ps

    def charged(*args):
        got = inner(*args)
        charge_ps(per_unit * units(*args), key)
        return got
    setattr(owner, name, charged)


def _charge_alloc(sched, m) -> None:
    costs = sched.costs
    by_class = [0] + [costs.ps(f"alloc.small.{c}") for c in range(1, NUM_SIZE_CLASSES)]
    spc = _SMALL_SPC_SCAN
    tiny, large = costs.ps("alloc.tiny"), costs.ps("alloc.large")
    inner = m.alloc
    charge_ps = sched.charge_ps

    def alloc(size, typ=None):
        x = inner(size, typ)
        if size > MAX_SMALL_SIZE:
            charge_ps(large, "alloc.large")
        elif size < TINY_SIZE and (typ is None or typ.noscan) and size > 0:
            charge_ps(tiny, "alloc.tiny")
        elif size > 0:
            charge_ps(by_class[spc[size] >> 1], "alloc.small")
        return x
    m.alloc = alloc


def _charge_barrier(sched, m) -> None:
    ps = sched.costs.ps("store.wb")
    if not ps:
        return
    inner = m.store
    charge_ps = sched.charge_ps

    def store(obj: int, field: int, value: int) -> None:
        inner(obj, field, value)
        if m._wb is not None:
            charge_ps(ps, "store.wb")
    m.store = store
