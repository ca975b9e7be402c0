"""Lock statistics, after Linux lock_stat and Go's mutex profile.

One LockStats per instrumented mutex.  Everything but the waiter count is
updated by the thread that holds the measured lock, while it holds it (on
acquisition and just before release, inline in the mutex's lock/unlock, the
hot path; waited() for the contended case, held() for a timed hold), so the
lock itself is their protection; the number of threads currently waiting is an AtomicInt because
waiters change it without holding the lock.  Times are in the context's
clock unit: nanoseconds (time.perf_counter_ns) under the OS scheduler,
logical scheduler steps under a controlled one.

The wait histogram has log2 buckets: bucket b counts waits w with
w.bit_length() == b, i.e. [2**(b-1), 2**b), reported under the key of its
lower bound ("0", "1", "2", "4", ...).

What is exact and what is sampled (so that statistics barely perturb what
they measure): acquisitions, contended acquisitions and every wait (its
total, max and histogram) are exact, because a wait is timed only when the
try-acquire failed, and then the clock costs nothing next to the wait.
Holds are timed on one acquisition in `hold_every` (1, then every 64th
under the OS scheduler, as Go's mutex profile samples; every one under a
controlled scheduler, where a clock reading is free): hold_max is the
largest sampled hold, hold_total is the sampled mean times acquisitions,
and hold_samples says how many holds were timed.
"""

from __future__ import annotations

from .atomic import AtomicInt

_NBUCKETS = 65
HOLD_SAMPLE = 64      # OS mode: time one hold in this many (a power of two; read when a mutex is built)


class LockStats:
    __slots__ = ("counted", "pending", "contended", "wait_total", "wait_max", "wait_hist",
                 "hold_sampled", "hold_max", "hold_samples", "owner_switches", "max_waiters",
                 "last_owner", "hold_mask", "waiters")

    def __init__(self, hold_every: int = 1):
        if hold_every < 1 or hold_every & (hold_every - 1):
            raise ValueError(f"hold_every must be a power of two, got {hold_every}")
        self.hold_mask = hold_every - 1     # constant: time holds where (n - 1) & mask == 0
        # All fields below: protected by the measured lock (written by its holder).
        self.counted = 0          # acquisitions, but for those a batching mutex has pending
        self.pending = None       # None, or () -> acquisitions not yet added to counted
        self.contended = 0
        self.wait_total = 0
        self.wait_max = 0
        self.wait_hist = [0] * _NBUCKETS
        self.hold_sampled = 0     # the sum of the timed holds
        self.hold_samples = 0
        self.hold_max = 0
        self.owner_switches = 0
        self.max_waiters = 0
        self.last_owner = None    # name of the previous holder (where the mutex knows it)
        # Threads waiting right now: atomic (waiters change it without the lock).
        self.waiters = AtomicInt(0)

    def waited(self, wait: int, waiters_seen: int) -> None:
        """The acquisition just recorded had to wait `wait` (holder only)."""
        self.contended += 1
        self.wait_total += wait
        if wait > self.wait_max:
            self.wait_max = wait
        self.wait_hist[wait.bit_length()] += 1
        if waiters_seen > self.max_waiters:
            self.max_waiters = waiters_seen

    @property
    def acquisitions(self) -> int:
        return self.counted + (self.pending() if self.pending is not None else 0)

    def held(self, hold: int) -> None:
        """A timed hold of `hold` just ended (holder only)."""
        self.hold_sampled += hold
        self.hold_samples += 1
        if hold > self.hold_max:
            self.hold_max = hold

    @property
    def hold_total(self) -> int:
        """Estimated: the sampled mean hold times the acquisitions (exact when every hold is timed)."""
        if not self.hold_samples:
            return 0
        return self.hold_sampled * self.acquisitions // self.hold_samples

    def as_dict(self) -> dict:
        return {
            "acquisitions": self.acquisitions,
            "contended": self.contended,
            "wait_total": self.wait_total,
            "wait_max": self.wait_max,
            "wait_hist": _hist_dict(self.wait_hist),
            "hold_total": self.hold_total,
            "hold_max": self.hold_max,
            "hold_samples": self.hold_samples,
            "owner_switches": self.owner_switches,
            "max_waiters": self.max_waiters,
        }


_SUMMED = ("acquisitions", "contended", "wait_total", "hold_total", "hold_samples", "owner_switches")
_MAXED = ("wait_max", "hold_max", "max_waiters")


def _hist_dict(hist: list[int]) -> dict[str, int]:
    return {str(1 << (b - 1) if b else 0): n for b, n in enumerate(hist) if n}


def _merge(rows: list[dict]) -> dict:
    out = {k: sum(r[k] for r in rows) for k in _SUMMED}
    out.update({k: max(r[k] for r in rows) for k in _MAXED})
    hist: dict[str, int] = {}
    for r in rows:
        for k, n in r["wait_hist"].items():
            hist[k] = hist.get(k, 0) + n
    out["wait_hist"] = dict(sorted(hist.items(), key=lambda kv: int(kv[0])))
    out["locks"] = len(rows)
    return out


def report(mutexes, unit: str) -> dict:
    """{"unit", "locks": {name: {...}}, "classes": {lock_class: {...}}} for instrumented mutexes.

    Read it when the run is over (or the world is stopped): the per-lock
    fields belong to each lock's holder while the run goes on.
    """
    locks: dict[str, dict] = {}
    by_class: dict[str, list[dict]] = {}
    for m in mutexes:
        if m.stats is None:
            continue
        row = m.stats.as_dict()
        row["lock_class"] = m.lock_class
        locks[m.name] = row
        by_class.setdefault(m.lock_class, []).append(row)
    return {"unit": unit, "locks": locks,
            "classes": {c: _merge(rows) for c, rows in by_class.items()}}
