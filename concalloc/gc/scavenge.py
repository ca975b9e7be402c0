"""The scavenger: return free pages to the OS (mgcscavenge.go).

scavenge releases up to nbytes of free, not yet released pages, highest
address first as Go's scavenger prefers, with a real madvise(MADV_DONTNEED)
through sysUnused: heapFree turns into heapReleased and the process RSS
falls.  The pages stay free; the next allocation of them is zero from the OS.
Runs under mheap.lock, like Go's scavengeOne on its chunk.
"""

from __future__ import annotations

from ..sysmem import ARENA_BASE, PAGE_SHIFT


def _free_unscavenged_runs(pages):
    """(start, npages) runs of pages that are free and not released, low to high."""
    n = pages.npages()
    if n == 0:
        return []
    comb = (int.from_bytes(pages.inuse, "little") | int.from_bytes(pages.scav, "little")).to_bytes(n, "little")
    runs, i = [], comb.find(0)
    while i >= 0:
        j = comb.find(1, i)
        j = n if j < 0 else j
        runs.append((i, j - i))
        i = comb.find(0, j)
    return runs


def scavenge(h, nbytes: int) -> int:
    """Release up to nbytes (rounded up to pages); returns bytes released."""
    want = -(-nbytes >> PAGE_SHIFT)
    released = 0
    with h.lock:
        for start, npages in reversed(_free_unscavenged_runs(h.pages)):
            if released >= want:
                break
            take = min(npages, want - released)
            first = start + npages - take
            h.pages.scav[first:first + take] = b"\x01" * take
            h.sysmem.sysUnused(ARENA_BASE + (first << PAGE_SHIFT), take << PAGE_SHIFT)
            released += take
        nb = released << PAGE_SHIFT
        h.stats.add(heapFree=-nb, heapReleased=nb)
    return nb


def scavenge_all(h) -> int:
    """debug.FreeOSMemory's second half: release every free page."""
    return scavenge(h, 1 << 62)
