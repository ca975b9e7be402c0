"""Heap statistics and runtime.MemStats (mstats.go).

HeapStats holds the counters Go keeps in memstats.heapStats and
gcController: per-class small allocation/free counts (flushed from mcaches
when a span is uncached, as in Go 1.19), large allocation/free counts and
bytes, tiny allocation count, and the page-level memory classes heapInUse,
heapFree, heapReleased.  Every update is one atomic multi-counter add.

read_memstats derives the MemStats fields with Go's formulas (go-runtime.md
§11).  Like runtime.ReadMemStats it flushes every mcache first, so callers
must have the world stopped (or be single-threaded).
"""

from __future__ import annotations

import threading

from .sizeclasses import NUM_SIZE_CLASSES, class_to_size

NUM_BYSIZE = 61  # MemStats.BySize covers the first 61 size classes

_SCALARS = ("largeAlloc", "largeAllocCount", "largeFree", "largeFreeCount",
            "tinyAllocCount", "heapInUse", "heapFree", "heapReleased",
            "pagesInUse", "pagesSwept")


class HeapStats:
    """Cumulative allocator counters; protection: its own leaf lock (atomic helper)."""

    def __init__(self):
        self._mu = threading.Lock()
        self.v = dict.fromkeys(_SCALARS, 0)
        self.smallAllocCount = [0] * NUM_SIZE_CLASSES
        self.smallFreeCount = [0] * NUM_SIZE_CLASSES

    def add(self, **deltas: int) -> None:
        with self._mu:
            v = self.v
            for k, d in deltas.items():
                v[k] += d

    def add_small_alloc(self, sizeclass: int, n: int, tiny: int = 0) -> None:
        with self._mu:
            self.smallAllocCount[sizeclass] += n
            self.v["tinyAllocCount"] += tiny

    def add_small_free(self, sizeclass: int, n: int) -> None:
        with self._mu:
            self.smallFreeCount[sizeclass] += n

    def get(self, name: str) -> int:
        return self.v[name]

    def snapshot(self) -> dict:
        with self._mu:
            d = dict(self.v)
            d["smallAllocCount"] = list(self.smallAllocCount)
            d["smallFreeCount"] = list(self.smallFreeCount)
            return d


def memstats_from(snap: dict, *, numgc: int = 0, next_gc: int = 0, pause_total_ns: int = 0) -> dict:
    """MemStats fields (Go names) from a HeapStats snapshot."""
    sa, sf = snap["smallAllocCount"], snap["smallFreeCount"]
    total_alloc = snap["largeAlloc"] + sum(sa[c] * class_to_size[c] for c in range(1, NUM_SIZE_CLASSES))
    total_free = snap["largeFree"] + sum(sf[c] * class_to_size[c] for c in range(1, NUM_SIZE_CLASSES))
    mallocs = snap["largeAllocCount"] + sum(sa) + snap["tinyAllocCount"]
    frees = snap["largeFreeCount"] + sum(sf) + snap["tinyAllocCount"]
    heap_sys = snap["heapInUse"] + snap["heapFree"] + snap["heapReleased"]
    return {
        "Alloc": total_alloc - total_free,
        "TotalAlloc": total_alloc,
        "Sys": heap_sys,
        "Mallocs": mallocs,
        "Frees": frees,
        "HeapAlloc": total_alloc - total_free,
        "HeapSys": heap_sys,
        "HeapIdle": snap["heapFree"] + snap["heapReleased"],
        "HeapInuse": snap["heapInUse"],
        "HeapReleased": snap["heapReleased"],
        "HeapObjects": mallocs - frees,
        "NextGC": next_gc,
        "NumGC": numgc,
        "PauseTotalNs": pause_total_ns,
        "BySize": [{"Size": class_to_size[c], "Mallocs": sa[c], "Frees": sf[c]}
                   for c in range(NUM_BYSIZE)],
    }
