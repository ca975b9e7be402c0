"""Heap: the allocator as a whole, for library use and for the runtime.

It ties together the mheap (with its mcentrals and the reservation), one
mcache per P, word access to memory, and the operations a caller needs
between allocations: ReadMemStats, a sweep cycle driven with marks the
caller chose, scavenging, and verify_heap.

Single-threaded use needs nothing else:

    h = Heap(reserve_bytes=1 << 30)
    x = h.malloc(64)              # on P 0's mcache
    h.memory.store(x, 42)

With threads, each P allocates through its own mcache (h.mcaches[p]) and
the operations marked "world stopped" below are run only at stop-the-world.
"""

from __future__ import annotations

from .config import Config
from .gc import scavenge as _scavenge
from .gc import sweep as _sweep
from .malloc import mallocgc
from .mcache import MCache
from .memory import Memory
from .mheap import MHeap
from .moduledata import ModuleData
from .mstats import memstats_from
from .sync import SyncContext


class Heap:
    def __init__(self, config: Config | None = None, *, reserve_bytes: int | None = None,
                 nprocs: int | None = None, sync: SyncContext | None = None, nglobals: int | None = None):
        cfg = config or Config()
        if reserve_bytes is not None or nprocs is not None:
            cfg = cfg.replace(**{k: v for k, v in (("reserve_bytes", reserve_bytes), ("procs", nprocs))
                                 if v is not None})
        self.config = cfg
        self.sync = sync or SyncContext(check_ranks=cfg.lockrank)
        self.mheap = MHeap(self.sync, cfg.reserve_bytes)
        self.mheap.invalidptr = cfg.invalidptr
        self.mheap.recordTypes = cfg.heapcheck >= 2   # before any mcache or span exists
        self.mheap.faults = frozenset(cfg.faults)
        self.mcaches = [MCache(self.mheap, p) for p in range(cfg.procs)]
        # the globals: the data segment below the heap (the program's: a workload may size it)
        self.moduledata = ModuleData() if nglobals is None else ModuleData(nglobals)
        self.memory = Memory(self.mheap.sysmem, self.moduledata)
        self.numgc = 0

    # --- allocation ---
    def malloc(self, size: int, typ=None, needzero: bool = True, p: int = 0) -> int:
        return mallocgc(self.mcaches[p], size, typ, needzero)

    # --- world-stopped operations ---
    def flush_mcaches(self) -> None:
        """Return every P's cached spans (flushallmcaches; world stopped)."""
        for c in self.mcaches:
            c.releaseAll()

    def read_memstats(self) -> dict:
        """runtime.ReadMemStats: flushes every mcache first (world stopped)."""
        self.flush_mcaches()
        return memstats_from(self.mheap.stats.snapshot(), numgc=self.numgc)

    def sweep_cycle(self, mark=None, mode: int = _sweep.gcForceBlockMode) -> None:
        """Run one sweep cycle with marks chosen by the caller (world stopped).

        Sweep termination first (finishsweep_m: whatever the last cycle left
        unswept), then every mcache is flushed, `mark(span)` sets the mark
        bits of the objects that survive (e.g. span.setMarked(i); with
        mark=None nothing survives), gcSweep flips sweepgen and each P runs
        prepareForSweep, as at Go's mark termination.  In gcForceBlockMode
        (the default) every span is swept before returning; in
        gcBackgroundMode sweeping is left to sweepone, bgsweep, proportional
        sweep, cacheSpan and the reclaimer."""
        h = self.mheap
        _sweep.finishsweep_m(h)
        self.flush_mcaches()
        if mark is not None:
            for s in list(h.allspans):
                mark(s)
        _sweep.gcSweep(h, self.mcaches, mode)
        for c in self.mcaches:
            c.prepareForSweep()
        self.numgc += 1

    def scavenge(self, nbytes: int | None = None) -> int:
        if nbytes is None:
            return _scavenge.scavenge_all(self.mheap)
        return _scavenge.scavenge(self.mheap, nbytes)

    def verify(self) -> None:
        """verify_heap: every allocator invariant, from scratch (world stopped)."""
        from .check.heap import verify_heap
        verify_heap(self)

    def rss(self) -> int:
        return self.mheap.sysmem.rss()

    def close(self) -> None:
        self.mheap.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
