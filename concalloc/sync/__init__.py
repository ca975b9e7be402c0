"""The sync layer: atomics, ranked locks, schedulers, parking (see docs/concurrency.md)."""

from .atomic import AtomicCounters, AtomicInt, add_attr, and8, cas_attr, or8, store_attr
from .context import LockRankViolation, Mutex, SyncContext
from .lockrank import Rank

__all__ = ["AtomicCounters", "AtomicInt", "add_attr", "and8", "cas_attr", "or8", "store_attr",
           "LockRankViolation", "Mutex", "SyncContext", "Rank"]
