"""Lock ranks, after Go's runtime/lockrank.go, and the rank check itself.

A lock of rank r may be acquired while the most recently acquired lock still
held has a strictly lower rank (Go compares only the top of the held stack,
and so do we).  LEAF locks may be taken under anything but another leaf.
Go 1.19 has no mcentral rank (its mcentral is lock-free); Go 1.15's table had
lockRankMcentral below mheap, which is where the lock-protected mcentral of
Go <= 1.14 sits here too.

An acquisition site is kept as (code object, f_lasti) taken from the caller's
frame: two attribute loads, no line-table walk.  The line number is only
worked out when a violation is reported.
"""

from __future__ import annotations

from enum import IntEnum

from .errors import LockRankViolation


class Rank(IntEnum):
    STW = 1               # worldsema: taken with nothing else held
    SWEEP_WAITERS = 2     # work.sweepWaiters.lock
    ASSIST_QUEUE = 3      # work.assistQueue.lock
    SWEEP = 4             # sweep.lock (bgsweep parking)
    GC_WORK = 5           # global GC work lists (work.full / work.empty)
    SCHED = 6             # sched.lock: P states and the stop-the-world handshake
    GC_CTRL = 7           # the collector's control state: triggers, mark workers, cycle count
    BG_GATE = 8           # background runtime work (scavenging) vs stop-the-world checks
    MCENTRAL = 10         # mcentral.lock, one per span class (Go <= 1.14)
    GC_BITS_ARENAS = 11   # gcBitsArenas.lock
    WBUF_SPANS = 12       # work.wbufSpans.lock
    HEAPLOCK = 15         # the one global lock of a non-Go allocation method (concalloc/methods)
    MHEAP = 20            # mheap_.lock
    MHEAP_SPECIAL = 21    # mheap_.speciallock
    GLOBAL_ALLOC = 22     # globalAlloc.mutex (persistentalloc)
    LEAF = 1000           # no declared rank


def rank_allows(held: Rank, acquiring: Rank) -> bool:
    """May `acquiring` be taken while `held` is the most recent lock held?"""
    if acquiring == Rank.LEAF:
        return held != Rank.LEAF
    return held < acquiring


def format_site(site) -> str:
    """'file:line (in func)' for a (code, lasti) pair captured at acquisition."""
    code, lasti = site
    line = code.co_firstlineno
    for start, end, ln in code.co_lines():
        if start <= lasti < end and ln is not None:
            line = ln
            break
    return f"{code.co_filename}:{line} (in {code.co_name})"


def order_violation(held, held_site, acquiring, site) -> LockRankViolation:
    """The error for taking `acquiring` at `site` while `held` (taken at held_site) is on top."""
    return LockRankViolation(
        f"lock ordering problem: acquiring {acquiring.name} (rank {acquiring.rank.name}) at "
        f"{format_site(site)} while holding {held.name} (rank {held.rank.name}) acquired at "
        f"{format_site(held_site)}")
