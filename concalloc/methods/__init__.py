"""The survey's allocation methods beside Go's, on the same reservation.

    go          Go 1.19's design: mcache -> mcentral -> mheap, concurrent GC
                (concalloc's main path; not in this package)
    bump        bump.Bump: a pointer that only moves forward + Cheney copying
    first-fit   freelist.FreeList: one address-ordered free list, first fit
    next-fit    freelist.NextFit: the same, searching from a roving pointer
    best-fit    freelist.BestFit: the same, the tightest block of the list
    segregated  segregated.Segregated: a free list per size class, one lock

Config.allocator (--allocator) picks one; Runtime builds it with
make_method(rt), which every Mutator then allocates, loads and stores
through (base.py says how, and the rule a workload keeps when objects move).
"""

from __future__ import annotations

ALLOCATORS = ("go", "bump", "first-fit", "next-fit", "best-fit", "segregated")


def method_class(name: str):
    from .bump import Bump
    from .freelist import BestFit, FreeList, NextFit
    from .segregated import Segregated
    return {"bump": Bump, "first-fit": FreeList, "next-fit": NextFit, "best-fit": BestFit,
            "segregated": Segregated}[name]


def make_method(rt):
    """The method rt.config.allocator names (not "go"), built for runtime rt."""
    return method_class(rt.config.allocator)(rt)
