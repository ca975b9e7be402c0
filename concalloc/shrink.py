"""Shrinking a failing controlled run: the fewest preemptions that still fail.

A controlled run is a pure function of (config, decisions).  Here the
decisions are written as *choices*: at the k-th decision of thread T, run
thread U.  Every decision without a choice takes the default: keep the
current thread if it can still run, else the first runnable thread in
registration order.  No choices at all is the non-preemptive schedule;
every choice that keeps U != T while T could run is a preemption.

ChoiceStrategy plays a set of choices, or (with `inner`) lets another
strategy decide and records the choices that strategy made, so the run that
failed under random, pct or replay becomes a set of choices that replays
it exactly.  shrink() then delta-debugs that set: it drops groups of
choices (a thread's, then runs of consecutive ones, long to short, as
Zeller's ddmin and Hypothesis's shrinker do) and keeps any subset whose run
still fails the same way within the original run's steps (the step cap
makes a run that would go on longer fail differently, so steps never grow)
with no more preemptions than the best so far.
Keying a choice by (thread, its own decision count) rather than by global
step keeps the other choices meaningful when one is dropped: a thread's
k-th decision is the same program point whatever the others did.

Every run made here is an ordinary Runtime run with its strategy replaced
before it starts; the result is written as an ordinary schedule file (the
decisions the shrunk run took), which `concalloc run --replay FILE` repeats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .runtime import Runtime
from .sync.strategies import Strategy


class ChoiceStrategy(Strategy):
    """Plays `choices` {(thread, k): target thread}, or records those `inner` makes.

    Counts preemptions (the current thread could run, another was chosen)
    and context switches (another thread was chosen, whatever the reason)."""

    def __init__(self, choices: dict | None = None, inner: Strategy | None = None):
        self.choices = dict(choices or {})
        self.inner = inner
        self.count: dict[str, int] = {}          # thread -> its decisions so far
        self.taken: dict[tuple, str] = {}        # the choices that differed from the default
        self.order: dict[tuple, int] = {}        # each taken choice's step
        self.preemptions = 0
        self.switches = 0

    def on_spawn(self, worker, workers):
        if self.inner is not None:
            self.inner.on_spawn(worker, workers)

    def choose(self, step, label, current, enabled):
        name = current.name if current is not None else "run"
        k = self.count[name] = self.count.get(name, 0) + 1
        runnable = current is not None and current in enabled
        default = current if runnable else enabled[0]
        if self.inner is not None:
            nxt = self.inner.choose(step, label, current, enabled)
        else:
            want = self.choices.get((name, k))
            nxt = default if want is None else next((w for w in enabled if w.name == want), default)
        if nxt is not default:
            self.taken[(name, k)] = nxt.name
            self.order[(name, k)] = step
        if current is not None and nxt is not current:
            self.switches += 1
            self.preemptions += runnable
        return nxt

    def finish(self, steps):
        if self.inner is not None:
            self.inner.finish(steps)


@dataclass
class Attempt:
    """One run: how it ended and the size of its schedule."""
    exit_code: int
    invariant: str | None
    steps: int
    preemptions: int
    switches: int
    choices: dict
    event_log_hash: str | None = None
    schedule: list = field(default_factory=list, repr=False)
    lost: object = None            # what inspect's probe said, when asked
    order: dict = field(default_factory=dict, repr=False)     # choice -> its step

    def size(self) -> dict:
        return {"steps": self.steps, "preemptions": self.preemptions, "context_switches": self.switches,
                "choices": len(self.choices)}


def attempt(cfg, cache: bool, strategy: ChoiceStrategy | None = None, inspect=None) -> Attempt:
    """Run cfg with `strategy` deciding (None: cfg's own scheduler decides and
    its choices are recorded).  inspect(rt), if given, is called before the
    run and returns probe(res), called after it while the heap is still
    mapped; probe's value is kept as `lost`."""
    with Runtime(cfg, cache=cache) as rt:
        if strategy is None:
            strategy = ChoiceStrategy(inner=rt.sched.strategy)
        rt.sched.strategy = strategy
        probe = inspect(rt) if inspect is not None else None
        res = rt.run()
        inv = res.violations[0]["invariant"] if res.violations else None
        return Attempt(res.exit_code, inv, rt.sched.steps, strategy.preemptions, strategy.switches,
                       dict(strategy.taken), res.event_log_hash, rt.sched.schedule(),
                       probe(res) if probe is not None else None, dict(strategy.order))


@dataclass
class ShrinkResult:
    original: Attempt
    best: Attempt
    runs: int
    seconds: float
    complete: bool          # no single choice can be dropped (not cut short by the budget)


class _Search:
    """The state of one shrink: the best failing attempt so far and the budget."""

    def __init__(self, cfg, cache, original: Attempt, fails, max_runs, max_seconds, inspect):
        self.capped = cfg.replace(max_steps=original.steps)
        self.cache = cache
        self.original = original
        self.fails = fails
        self.max_runs = max_runs
        self.deadline = time.monotonic() + max_seconds
        self.inspect = inspect
        self.best = original
        self.runs = 0
        self.seen: set[frozenset] = set()

    def spent(self) -> bool:
        return self.runs >= self.max_runs or time.monotonic() > self.deadline

    def items(self) -> list:
        """The best attempt's choices, in the order they were taken."""
        return sorted(self.best.choices.items(), key=lambda kv: self.best.order.get(kv[0], 0))

    def test(self, items: list) -> bool:
        """Run with only these choices; True (and it becomes the best) if it still
        fails, within the original's steps, with no more preemptions."""
        key = frozenset(items)
        if key in self.seen or self.spent():
            return False
        self.seen.add(key)
        self.runs += 1
        a = attempt(self.capped, self.cache, ChoiceStrategy(dict(items)), self.inspect)
        if self.fails(a) and a.steps <= self.original.steps and a.preemptions <= self.best.preemptions:
            self.best = a
            return True
        return False


def shrink(cfg, cache: bool, original: Attempt, fails, max_runs: int = 400, max_seconds: float = 120.0,
           inspect=None) -> ShrinkResult:
    """Drop as many of original.choices as possible while the run still
    `fails(attempt)`, every run capped at the original's steps.  Passes, until
    none drops anything or the budget is spent: no choices at all; every
    choice one thread made, or that chose one thread; then runs of
    consecutive choices (in the order they were taken), of length n/8, n/16,
    ... 1, each run dropped if the rest still fails (a pass at length 1 that
    drops nothing proves the set 1-minimal)."""
    s = _Search(cfg, cache, original, fails, max_runs, max_seconds, inspect)
    t0 = time.monotonic()
    s.test([])
    complete = False
    while s.best.choices and not s.spent():
        before = len(s.best.choices)
        _drop_groups(s)
        k = max(1, len(s.best.choices) // 8)
        while k >= 1 and not s.spent():
            dropped = _drop_runs(s, k)
            if k == 1 and not dropped and not s.spent():
                complete = True
            k //= 2
        if complete or len(s.best.choices) == before:
            break
    complete = complete or not s.best.choices
    return ShrinkResult(original, s.best, s.runs, round(time.monotonic() - t0, 2), complete)


def _drop_groups(s: _Search) -> None:
    """Drop every choice one thread made, then every choice that picked one thread."""
    for side in (0, 1):
        names = sorted({(key[0] if side == 0 else target) for key, target in s.best.choices.items()})
        for name in names:
            items = s.items()
            s.test([(key, t) for key, t in items if (key[0] if side == 0 else t) != name])


def _drop_runs(s: _Search, k: int) -> bool:
    """One pass over the choices dropping runs of k consecutive ones; True if any went."""
    dropped = False
    i = 0
    while not s.spent():
        items = s.items()
        if i >= len(items):
            break
        if s.test(items[:i] + items[i + k:]):
            dropped = True           # the best changed: the same i now names the next run
        else:
            i += k
    return dropped
