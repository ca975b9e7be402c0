"""concalloc.strategies: Hypothesis strategies for users' own invariant tests.

The first two tests are the example docs/stress.md shows: a property over
drawn programs and configs, and a user's own heap invariant checked through
run_program's check hook.  The others show such a test can fail, and that a
drawn program replays from its saved file.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from concalloc.config import ConfigError
from concalloc.program import Program
from concalloc.runtime import Runtime
from concalloc.strategies import configs, programs, run_program, schedulers

FEW = settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def main_quiet(argv):
    """concalloc main(argv) with its stdout captured (inside @given: no capsys)."""
    import contextlib
    import io
    from concalloc.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue()


def no_dangling_roots(rt, res) -> None:
    """A user's invariant: every pointer left in a stack slot or a global is an allocated object."""
    mh = rt.heap.mheap
    roots = [a for m in rt.mutators for a in m.stack if a] + [a for a in rt.globals if a]
    for a in roots:
        s = mh.spanOfHeap(a)
        assert s is not None and not s.isFree(s.objIndex(a)), f"root {a:#x} points at a free slot"


@FEW
@given(programs(), configs(barrier="hybrid"))
def test_hybrid_barrier_keeps_everything_reachable(program, cfg):
    res = run_program(program, cfg, check=no_dangling_roots)
    assert res.exit_code == 0, res.violations
    assert res.memstats["Mallocs"] == program.allocations()


def test_the_property_fails_without_a_barrier():
    """The same property, on configs with no barrier: Hypothesis finds a run that loses an object."""
    def loses(cfg):
        with Runtime(cfg) as rt:
            return rt.run_bounded(120).exit_code == 1
    cfg = find(configs(barrier="none", workload="graph", steps=150, live=32, scheduler="random"), loses,
               settings=settings(max_examples=30, deadline=None, database=None))
    assert cfg.barrier == "none"


@settings(max_examples=3, deadline=None, database=None)
@given(programs(max_ops=5), configs(scheduler="random"))
def test_a_drawn_program_replays_from_its_file(program, cfg):
    res = run_program(program, cfg)
    assert Program.from_json(program.to_json()) == program
    argv = res.violations[0]["replay"].split()[1:] if res.violations else None
    if argv is None:       # the command a violation would print
        from concalloc.runconfig import replay_command
        from concalloc.strategies import program_config
        argv = replay_command(program_config(program, cfg)).split()[1:]
    code, out = main_quiet([*argv, "--json"])
    assert code == res.exit_code and json.loads(out)["event_log_hash"] == res.event_log_hash


@pytest.mark.parametrize("bad", [dict(threads=((("alloc", 5),),)), dict(threads=((("store", 0, 9, 0),),)),
                                 dict(threads=((("jump", 0),),)), dict(threads=(), edges=((0, 0, 7),)),
                                 dict(threads=(), roots=((3, 0),))])
def test_a_program_out_of_range_is_refused(bad):
    with pytest.raises(ConfigError, match="program"):
        Program(**bad)


@settings(max_examples=20, deadline=None, database=None)
@given(configs(barrier="yuasa", procs=st.just(3)), schedulers())
def test_configs_take_fixed_fields_and_strategies(cfg, sched):
    assert cfg.barrier == "yuasa" and cfg.procs == 3 and cfg.controlled() and cfg.gccheckmark
    assert sched["scheduler"] in ("random", "pct", "sticky-random")
    assert set(sched) == {"scheduler", *{"pct": ("pct_depth", "pct_k"), "sticky-random": ("sticky",)}.get(
        sched["scheduler"], ())}
