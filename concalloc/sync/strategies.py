"""How a controlled run picks the next thread: random, sticky random, PCT, replay.

A strategy sees each decision as (step, label, current worker, enabled
workers in registration order) and returns the worker to run; `label` is the
yield point's own label (the thread is `current`, None for the run's start).  It is only
ever called by the baton holder, so its state needs no lock, and it draws
only from its own ``random.Random(seed)``: a run is a pure function of
(program, seed).

Sticky random keeps the running thread with probability 1-p and otherwise
switches to one of the other enabled threads, uniformly: long runs of one
thread broken by a few preemptions, which is what most concurrency bugs
need (few preemptions), at p handoffs per step instead of about (n-1)/n.

PCT follows Burckhardt et al. (ASPLOS 2010): the n threads get distinct
priorities d..d+n-1 in random order (new threads join the permutation by an
inside-out Fisher-Yates swap, so any spawn order gives a uniform one); d-1
change points are drawn from [1, k]; the highest-priority enabled thread
always runs, and the thread that executes step k_i drops to priority i.
PCT's steps are the decisions a thread makes (its yield points, blocks and
exit); the run's start decision, taken before any thread runs, is not one.
"""

from __future__ import annotations

import random

from .errors import ReplayDivergence


class Strategy:
    def on_spawn(self, worker, workers: list) -> None:
        """`worker` was just appended to `workers`."""

    def choose(self, step: int, label: str, current, enabled: list):
        raise NotImplementedError

    def finish(self, steps: int) -> None:
        """The run ended normally after `steps` decisions."""


class RandomStrategy(Strategy):
    """Uniform choice among the enabled threads at every step.

    rng.randrange(n) for an int n > 0 is rng._randbelow(n) (CPython 3.8
    to 3.13); calling the latter directly skips randrange's argument
    checks (a tenth to a fifth of a decision's Python cost).  The draws, and so every recorded
    seed, are the same (tests/sync/test_baton_stress.py checks it)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self._below = getattr(self.rng, "_randbelow", self.rng.randrange)

    def choose(self, step, label, current, enabled):
        return enabled[self._below(len(enabled))]


class StickyRandomStrategy(Strategy):
    """Stay with the current thread with probability 1-p, else switch uniformly
    to another enabled thread (uniformly among all when the current cannot run)."""

    def __init__(self, seed: int, p: float):
        if not 0.0 < p <= 1.0:
            raise ValueError(f"sticky-random needs a switch probability in (0, 1], got {p}")
        self.rng = random.Random(seed)
        self.p = p

    def choose(self, step, label, current, enabled):
        rng = self.rng
        if current is None or current not in enabled:
            return enabled[rng.randrange(len(enabled))]
        if len(enabled) == 1 or rng.random() >= self.p:
            return current
        i = rng.randrange(len(enabled) - 1)       # among the others: skip the current one's index
        return enabled[i if i < enabled.index(current) else i + 1]


class PctStrategy(Strategy):
    def __init__(self, seed: int, depth: int, k: int):
        if depth < 1 or k < depth - 1:
            raise ValueError(f"pct needs depth >= 1 and pct_k >= depth-1 (depth={depth}, k={k})")
        self.rng = random.Random(seed)
        self.depth = depth
        self.k = k
        self.change_points = sorted(self.rng.sample(range(1, k + 1), depth - 1))
        self._drop_to = {kp: i for i, kp in enumerate(self.change_points, 1)}
        self.thread_steps = 0

    def on_spawn(self, worker, workers):
        n = len(workers)
        worker.priority = self.depth + n - 1
        other = workers[self.rng.randrange(n)]
        worker.priority, other.priority = other.priority, worker.priority

    def choose(self, step, label, current, enabled):
        if current is not None:
            self.thread_steps += 1
            low = self._drop_to.get(self.thread_steps)
            if low is not None:
                current.priority = low
        return max(enabled, key=_priority)


def _priority(worker) -> int:
    return worker.priority


class ReplayStrategy(Strategy):
    """Follows a recorded list of (label, thread); any difference is a divergence."""

    def __init__(self, schedule: list):
        self.schedule = [tuple(d) for d in schedule]

    def choose(self, step, label, current, enabled):
        i = step - 1
        label = f"{current.name if current is not None else 'run'}:{label}"
        if i >= len(self.schedule):
            raise ReplayDivergence(step, f"the end of the recorded schedule ({len(self.schedule)} steps)",
                                   f"a further decision at {label}")
        want_label, want_thread = self.schedule[i]
        if label != want_label:
            raise ReplayDivergence(step, f"{want_label} -> {want_thread}", f"yield point {label}")
        for w in enabled:
            if w.name == want_thread:
                return w
        runnable = ", ".join(w.name for w in enabled)
        raise ReplayDivergence(step, f"{want_label} -> {want_thread}",
                               f"{want_thread} not runnable (runnable: {runnable})")

    def finish(self, steps):
        if steps < len(self.schedule):
            want_label, want_thread = self.schedule[steps]
            raise ReplayDivergence(steps + 1, f"{want_label} -> {want_thread}",
                                   f"the program ended after {steps} steps")
