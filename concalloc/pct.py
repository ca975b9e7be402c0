"""PCT's guarantee, and the k it is stated for.

PCT (Burckhardt et al., ASPLOS 2010; concalloc/sync/strategies.py) draws
d-1 priority change points from [1, k], where k is the length of the run
in scheduling steps.  For a program of n threads and at most k steps it
finds any bug of depth d in one run with probability at least

    p = 1 / (n * k^(d-1))

and so, over N independent runs (seeds), with probability 1 - (1-p)^N; the
runs needed for confidence c are N = ceil(ln(1-c) / ln(1-p)).

The bound holds only if k is at least the run's length.  Config's default
k (2,000) is far below a real run (a few hundred allocations take tens of
thousands of decisions), so every change point then falls in the run's
first few percent.  `--pct-k auto` measures k instead: one pilot run of the
same configuration and seed under the random scheduler, whose decision
count, plus a margin of a quarter (PCT's own run is rarely the same
length), becomes k (the approach of Coyote and Shuttle, whose first
iteration measures the run).  A run longer than k is reported: the bound
does not hold for it.  The pilot is itself a controlled run, so k is a pure
function of (config, seed) and every printed replay command names it.
"""

from __future__ import annotations

import math
from argparse import ArgumentTypeError
from dataclasses import dataclass

AUTO = "auto"


def bound(n: int, k: int, d: int) -> float:
    """PCT's per-run lower bound on finding a depth-d bug: 1 / (n * k^(d-1))."""
    if n < 1 or k < 1 or d < 1:
        raise ValueError(f"PCT's bound needs n, k, d >= 1 (n={n}, k={k}, d={d})")
    return 1.0 / (n * float(k) ** (d - 1))


def runs_needed(p: float, confidence: float) -> int:
    """Independent runs that find a bug of per-run probability p with `confidence`."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if p >= 1.0:
        return 1
    return max(1, math.ceil(math.log1p(-confidence) / math.log1p(-p)))


def confidence_after(p: float, runs: int) -> float:
    """The probability that `runs` runs find a bug of per-run probability p: 1 - (1-p)^runs."""
    return 1.0 if p >= 1.0 else -math.expm1(runs * math.log1p(-p))


@dataclass(frozen=True)
class Guarantee:
    n: int              # threads the scheduler ran
    k: int              # steps the change points are drawn from
    d: int              # bug depth
    confidence: float
    steps: int | None = None    # the run's own length, when known

    @property
    def p(self) -> float:
        return bound(self.n, self.k, self.d)

    @property
    def runs(self) -> int:
        return runs_needed(self.p, self.confidence)

    def to_json(self) -> dict:
        return {"n": self.n, "k": self.k, "d": self.d, "p": self.p, "confidence": self.confidence,
                "runs_needed": self.runs, "steps": self.steps}

    def text(self) -> str:
        line = (f"PCT: n={self.n} threads, k={self.k:,} steps, depth d={self.d}: one run finds a "
                f"depth-{self.d} bug with p >= 1/(n*k^(d-1)) = {self.p:.3g}; "
                f"{self.runs:,} runs (seeds) for {self.confidence:.4g} confidence")
        if self.steps is not None and self.steps - 1 > self.k:     # PCT counts no start decision
            line += (f"\n  warning: this run took {self.steps:,} steps > k: change points cover only its "
                     f"first {100 * self.k / self.steps:.0f}% and the bound does not hold (use --pct-k auto)")
        return line


def pilot_steps(cfg, cache: bool = True) -> tuple[int, int]:
    """(steps, threads) of the pilot: `cfg` under the random scheduler, same seed."""
    from .runtime import Runtime
    with Runtime(cfg.replace(scheduler="random", trace=None, plot=None), cache=cache) as rt:
        res = rt.run()
        return res.sched["steps"], len(rt.sched.priorities())


MARGIN = 1.25       # PCT's own runs differ in length from the pilot's: k covers a longer one


def k_from_steps(steps: int, depth: int) -> int:
    """k for a run of about `steps` decisions: MARGIN times that (at least depth-1, as PCT needs)."""
    return max(math.ceil(steps * MARGIN), depth - 1, 1)


def auto_k(cfg, cache: bool = True) -> int:
    """k for a PCT run of cfg, from the pilot's decision count."""
    steps, _ = pilot_steps(cfg, cache)
    return k_from_steps(steps, cfg.pct_depth)


def parse_k(text: str):
    """--pct-k: a positive integer or 'auto'."""
    t = str(text).strip().lower()
    if t == AUTO:
        return AUTO
    if not t.isdigit() or int(t) < 1:
        raise ArgumentTypeError(f"expected a positive number of steps or auto, got {text!r}")
    return int(t)


def parse_confidence(text: str) -> float:
    try:
        c = float(text)
    except ValueError:
        c = -1.0
    if not 0.0 < c < 1.0:
        raise ArgumentTypeError(f"must be a probability in (0, 1), e.g. 0.99, got {text!r}")
    return c
