"""Hypothesis strategies for your own invariant tests: programs, configs, schedules.

    from hypothesis import given, settings
    from concalloc.strategies import configs, programs, run_program

    @given(programs(), configs(barrier="hybrid"))
    @settings(max_examples=30, deadline=None)
    def test_hybrid_keeps_what_is_reachable(program, cfg):
        res = run_program(program, cfg)
        assert res.exit_code == 0, res.violations

* programs(): concalloc.program.Program values, go-weave's scale by default
  (2 mutators, 2 stack slots each, 2 globals, 3 objects of 2 pointer
  fields, a random initial heap, a few operations each).  Hypothesis
  shrinks a failing one to fewer operations and a smaller heap.
* configs(): a controlled Config (so every failure replays bit for bit)
  with the collector cycling back to back and checkmark on; any field can
  be fixed (configs(barrier="none")) or drawn from a strategy of your own.
* schedulers() / seeds(): the scheduling part alone: a controlled
  scheduler kind with its knobs (PCT depth, sticky-random p), and a seed.
* run_program(program, cfg): the run (a RunResult); the program is saved as
  a workload file so that the violation's replay command repeats it.  Pass
  check=fn to look at the heap (fn(rt, res)) before it is unmapped.

Not to be confused with concalloc/sync/strategies.py, the controlled
schedulers' own strategies (how a run picks the next thread).  This module
needs Hypothesis (`pip install concalloc[test]`).
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import strategies as st

from .config import BARRIERS, STACK_SCANS, Config
from .program import Program

CONTROLLED = ("random", "pct", "sticky-random")
PROGRAM_DIR = os.path.join(tempfile.gettempdir(), "concalloc-programs")


# --- programs ------------------------------------------------------------------------------

def _op(slots: int, fields: int, nglobals: int, gc: bool):
    s, f = st.integers(0, slots - 1), st.integers(0, fields - 1)
    src = st.integers(-1, slots - 1)
    ops = [st.tuples(st.just("alloc"), s), st.tuples(st.just("load"), s, s, f),
           st.tuples(st.just("store"), s, f, src), st.tuples(st.just("clear"), s)]
    if nglobals:
        g = st.integers(0, nglobals - 1)
        ops += [st.tuples(st.just("gload"), s, g), st.tuples(st.just("gstore"), g, src)]
    if gc:
        ops.append(st.just(("gc",)))
    return st.one_of(ops)


@st.composite
def programs(draw, threads=2, objects=3, fields=2, slots=2, globals=2, max_ops: int = 6,
             gc_ops: bool = True):
    """A Program: `threads` mutators of up to max_ops operations each on an initial heap of
    `objects` objects.  Each size may be an int or a strategy of ints."""
    def size(x):
        return draw(x) if isinstance(x, st.SearchStrategy) else x
    nthreads, nobj, nf, ns, ng = size(threads), size(objects), size(fields), size(slots), size(globals)
    obj = st.integers(0, max(nobj - 1, 0))
    edges = draw(st.lists(st.tuples(obj, st.integers(0, nf - 1), obj), max_size=nobj * nf)) if nobj else []
    roots = draw(st.lists(st.tuples(st.integers(0, ng - 1), obj), max_size=ng)) if nobj and ng else []
    op = _op(ns, nf, ng, gc_ops)
    body = [tuple(draw(st.lists(op, min_size=1, max_size=max_ops))) for _ in range(nthreads)]
    return Program(threads=tuple(body), objects=nobj, fields=nf, slots=ns, globals=ng,
                   edges=tuple(edges), roots=tuple(roots))


# --- schedules and configs -----------------------------------------------------------------

def seeds():
    return st.integers(0, 2**32 - 1)


def schedulers(kinds=CONTROLLED):
    """{"scheduler": kind, plus its knobs}: PCT's depth (1-3) and k, sticky-random's p."""
    def knobs(kind):
        if kind == "pct":
            return st.fixed_dictionaries({"scheduler": st.just(kind), "pct_depth": st.integers(1, 3),
                                          "pct_k": st.sampled_from((50, 200, 1000))})
        if kind == "sticky-random":
            return st.fixed_dictionaries({"scheduler": st.just(kind),
                                          "sticky": st.sampled_from((0.05, 0.2, 0.5))})
        return st.just({"scheduler": kind})
    return st.sampled_from(kinds).flatmap(knobs)


@st.composite
def configs(draw, **fixed):
    """A controlled Config for small programs: GOGC off and a memory limit of 0 (a cycle
    starts as soon as the last ends), checkmark on, 1 GiB reserved.  Keyword arguments
    fix a field (barrier="hybrid") or draw it from a strategy of your own."""
    d = {"procs": 2, "reserve_bytes": 1 << 30, "gogc": -1, "memory_limit": 0, "gccheckmark": True,
         "barrier": st.sampled_from(BARRIERS), "stack_scan": st.sampled_from(STACK_SCANS),
         "seed": seeds(), "steps": 1, "max_steps": 200_000}
    sched = {} if "scheduler" in fixed else draw(schedulers())
    d.update(sched)
    d.update(fixed)
    values = {k: draw(v) if isinstance(v, st.SearchStrategy) else v for k, v in d.items()}
    return Config(**values)


# --- running -------------------------------------------------------------------------------

def program_config(program: Program, cfg: Config, directory: str = PROGRAM_DIR) -> Config:
    """cfg running `program`: saved as a workload file, with enough Ps for its threads."""
    procs = max(cfg.procs, len(program.threads))
    return cfg.replace(workload=program.save(directory), procs=procs,
                       mutators=None if cfg.mutators is None else max(cfg.mutators, len(program.threads)))


def run_program(program: Program, cfg: Config, check=None, timeout: float = 120.0):
    """Run `program` under `cfg` and return the RunResult.  check(rt, res), if given, runs
    before the heap is unmapped (the world is stopped: every thread is done)."""
    from .runtime import Runtime
    with Runtime(program_config(program, cfg)) as rt:
        res = rt.run_bounded(timeout)
        if check is not None:
            check(rt, res)
    return res
