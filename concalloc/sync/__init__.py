"""The sync layer: atomics, ranked locks, schedulers, conditions, events, watchdog.

Each module's top comment states its design; context.SyncContext is where a
run's primitives are built.
"""

from .atomic import AtomicCounters, AtomicInt, add_attr, and8, cas_attr, or8, or_bits, store_attr
from .context import SyncContext
from .errors import Aborted, Deadlock, LockRankViolation, ReplayDivergence, StepLimitExceeded, ThreadFailure
from .lockrank import Rank
from .mutex import Hold, Mutex
from .sched import Scheduler, load_schedule, make_scheduler, save_schedule
from .waits import Cond, Event
from .watchdog import Watchdog

__all__ = ["AtomicCounters", "AtomicInt", "add_attr", "and8", "cas_attr", "or8", "or_bits", "store_attr",
           "LockRankViolation", "Hold", "Mutex", "SyncContext", "Rank",
           "Aborted", "Deadlock", "ReplayDivergence", "StepLimitExceeded", "ThreadFailure",
           "Scheduler", "make_scheduler", "load_schedule", "save_schedule",
           "Cond", "Event", "Watchdog"]
