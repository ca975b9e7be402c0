"""heapLive over time, for the GC plot (--plot): sampled cheaply, kept bounded.

Go has no such thing (its heap graph comes from the execution tracer's
HeapAlloc events); here each P samples the pacer's heapLive at the end of
its allocation slow path (the collector's refill hook, GC.on_alloc_slow_path),
at most once per `interval` of the collector's clock.  heapLive only grows
at refills and large allocations, and drops at the end of a cycle, whose
record gives the exact points (gc.plot.samples_from_records), so refills
see every rise.

Bounded: when a P has MAX_SAMPLES samples, every other one is dropped and
its interval doubles, so a run of any length keeps fewer than MAX_SAMPLES
per P, spread evenly over the run.

The collector adds the verify_heap stops (heapcheck >= 1), when heapLive
is flat because the world is stopped for the debug check, not for the GC.

Protection: each P's list, next sample time and interval are owned by that
P (only its mutator thread samples); samples() is read once the run is over.
"""

from __future__ import annotations

from ..check.violation import throw

MAX_SAMPLES = 2048              #: per P; at this many, every other sample goes
OS_INTERVAL_NS = 1_000_000      #: under the OS scheduler, at most one sample per P per ms to start with


class HeapSamples:
    def __init__(self, clock, t0: int, nprocs: int, interval: int):
        """clock() and t0: the collector's clock and start (ns, or scheduler
        steps under a controlled scheduler, as the cycle records' times)."""
        self.clock, self.t0 = clock, t0
        self.per_p: list[list[tuple[int, int]]] = [[] for _ in range(nprocs)]  # owned by its P
        self.next_t = [0] * nprocs                   # owned by its P: no sample before this time
        self.interval = [max(1, interval)] * nprocs  # owned by its P
        # (start, end) of each verify_heap stop (heapcheck >= 1), which is no GC
        # pause but stops the mutators all the same; the collector thread's
        self.verify_stops: list[tuple[int, int]] = []

    def sample(self, pid: int, heapLive: int) -> None:
        """P pid's allocation slow path: record heapLive if its interval has passed."""
        t = self.clock() - self.t0
        if t < self.next_t[pid]:
            return
        buf = self.per_p[pid]
        buf.append((t, heapLive))
        if len(buf) >= MAX_SAMPLES:
            del buf[::2]                     # keeps the odd ones, so the newest stays
            self.interval[pid] *= 2
        self.next_t[pid] = t + self.interval[pid]

    def samples(self) -> list[tuple[int, int]]:
        """Every P's samples, (t, heapLive) in time order (once the run is over)."""
        return sorted(s for buf in self.per_p for s in buf)


def check_samples(hs: HeapSamples) -> None:
    """Each P's samples are in time order and fewer than MAX_SAMPLES."""
    for pid, buf in enumerate(hs.per_p):
        if len(buf) >= MAX_SAMPLES:
            throw("gc.heapsamples", f"P{pid} keeps {len(buf)} heapLive samples, bound {MAX_SAMPLES}")
        if any(a[0] > b[0] for a, b in zip(buf, buf[1:])):
            throw("gc.heapsamples", f"P{pid}'s heapLive samples are out of time order")
