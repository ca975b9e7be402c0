"""Lock statistics, after Linux lock_stat and Go's mutex profile.

One LockStats per instrumented mutex.  Everything but the waiter count is
updated by the thread that holds the measured lock, while it holds it (on
acquisition and just before release, inline in mutex._instrumented, the hot
path; waited() for the contended case), so the lock itself is their
protection; the number of threads currently waiting is an AtomicInt because
waiters change it without holding the lock.  Times are in the context's
clock unit: nanoseconds (time.perf_counter_ns) under the OS scheduler,
logical scheduler steps under a controlled one.

The wait histogram has log2 buckets: bucket b counts waits w with
w.bit_length() == b, i.e. [2**(b-1), 2**b), reported under the key of its
lower bound ("0", "1", "2", "4", ...).
"""

from __future__ import annotations

from .atomic import AtomicInt

_NBUCKETS = 65


class LockStats:
    __slots__ = ("acquisitions", "contended", "wait_total", "wait_max", "wait_hist",
                 "hold_total", "hold_max", "owner_switches", "max_waiters",
                 "last_owner", "acquired_at", "waiters")

    def __init__(self):
        # All fields below: protected by the measured lock (written by its holder).
        self.acquisitions = 0
        self.contended = 0
        self.wait_total = 0
        self.wait_max = 0
        self.wait_hist = [0] * _NBUCKETS
        self.hold_total = 0
        self.hold_max = 0
        self.owner_switches = 0
        self.max_waiters = 0
        self.last_owner = None    # name of the previous holder
        self.acquired_at = 0      # clock reading at the current acquisition
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

    def as_dict(self) -> dict:
        return {
            "acquisitions": self.acquisitions,
            "contended": self.contended,
            "wait_total": self.wait_total,
            "wait_max": self.wait_max,
            "wait_hist": _hist_dict(self.wait_hist),
            "hold_total": self.hold_total,
            "hold_max": self.hold_max,
            "owner_switches": self.owner_switches,
            "max_waiters": self.max_waiters,
        }


_SUMMED = ("acquisitions", "contended", "wait_total", "hold_total", "owner_switches")
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
        locks[m.name] = row
        by_class.setdefault(m.lock_class, []).append(row)
    return {"unit": unit, "locks": locks,
            "classes": {c: _merge(rows) for c, rows in by_class.items()}}
