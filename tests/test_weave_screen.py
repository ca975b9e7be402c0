"""weave's program screen (concalloc/workloads/weave_screen.py) and --screen.

The screen must never drop a program that can lose an object: every seed
below was found losing (docs/barrier-study.md, and the sweeps of seeds
1..3000 x 4 schedules there, under Go's drain order and go-weave's); each is
run here and must both lose and pass the screen.  The replay behind the screen must draw the program the run
draws: the final memory of real runs must be one the replay reaches.
"""

from __future__ import annotations

import json

import pytest

from cli_helpers import cli
from concalloc.config import Config
from concalloc.runtime import Runtime
from concalloc.workloads import screened_out, weave
from concalloc.workloads import weave_screen as S

WEAVE = Config(procs=2, workload="weave", scheduler="random", gccheckmark=True, reserve_bytes=64 << 20)

# (barrier, mark order, seed, schedule seed or None: the seed's own), each found losing
LOSING = [("none", "go", 306, None), ("none", "go", 544, None), ("none", "go", 768, None),
          ("none", "go", 10, 300_010), ("none", "weave", 2959, 202_959),
          ("dijkstra", "go", 844, None), ("dijkstra", "go", 1029, None), ("dijkstra", "go", 1104, 201_104),
          ("dijkstra", "weave", 483, 100_483), ("dijkstra", "weave", 1564, 101_564),
          ("yuasa", "weave", 1053, 101_053), ("yuasa", "weave", 2909, 202_909), ("yuasa", "go", 2188, None)]


def run(cfg):
    with Runtime(cfg) as rt:
        return rt.run()


@pytest.mark.parametrize("barrier,order,seed,schedule", LOSING)
def test_a_known_losing_program_loses_and_passes_the_screen(barrier, order, seed, schedule):
    cfg = WEAVE.replace(barrier=barrier, mark_order=order, seed=seed, schedule_seed=schedule)
    res = run(cfg)
    assert res.exit_code == 1 and res.violations[0]["invariant"] == "gc.checkmark"
    assert weave.screen(cfg) and not screened_out(cfg)


def test_the_screen_drops_most_programs_and_a_barrier_only_drops_more():
    seeds = range(1, 301)
    kept = {b: {s for s in seeds if S.can_lose(s, b)} for b in ("none", "dijkstra", "yuasa", "hybrid",
                                                                 "hybrid-cond")}
    assert 0 < len(kept["none"]) < len(seeds) // 4          # not the trivial "keep all"
    assert 0 < len(kept["dijkstra"]) < len(seeds) // 4
    for b in ("dijkstra", "yuasa", "hybrid", "hybrid-cond"):   # every barrier shades more than none
        assert kept[b] <= kept["none"], b
    assert kept["hybrid"] <= kept["dijkstra"] & kept["yuasa"]
    assert kept["hybrid"] <= kept["hybrid-cond"]


def test_the_screen_is_deterministic():
    for seed in (306, 307, 844):
        fresh = S.Screen(seed)
        again = S.Screen(seed)
        assert fresh.kept == again.kept and fresh.states == again.states
        assert S.verdicts(seed) == {k: v > 0 for k, v in fresh.kept.items()}


class _Memories(S.Screen):
    """Every memory the replay reaches."""

    def _judge(self, st):
        self.__dict__.setdefault("mems", set()).add(st[0])


def _real_memory(rt) -> tuple:
    """The run's model memory after it ended, in weave_screen.LOCS order."""
    world = weave._runs[rt]
    node = lambda addr: weave._node(world, addr)                  # noqa: E731
    words = []
    for n in S.NODES:
        if n < weave.GLOBAL_ROOT:
            words += [node(a) for a in rt.mutators[n - weave.STACK_BASE].stack[:2]]
        elif n == weave.GLOBAL_ROOT:
            words += [node(rt.moduledata.words[i]) for i in range(2)]
        else:
            obj = world.heap[n - weave.HEAP_BASE]
            words += [node(rt.mutators[0].read_word(obj, f)) for f in range(2)]
    return tuple(words)


def test_the_replay_reaches_the_memory_real_runs_end_with():
    moved = wrong = 0
    for seed in range(1, 31):
        with Runtime(WEAVE.replace(seed=seed, barrier="hybrid")) as rt:
            rt.run()
            mem = _real_memory(rt)
        assert mem in _Memories(seed).mems, seed
        moved += mem != S.initial_memory(seed)[0]
        wrong += mem not in _Memories(seed + 1).mems              # the check can fail: another program
    assert moved >= 20 and wrong >= 20


def test_the_screen_keeps_everything_when_a_fault_is_injected():
    cfg = WEAVE.replace(barrier="hybrid", seed=1)
    assert not weave.screen(cfg)
    assert weave.screen(cfg.replace(faults=("wb-preempt-before-store",)))


def test_barrier_matrix_screen_counts_the_seeds_it_did_not_run(capsys):
    code, out, err = cli(capsys, "barrier-matrix", "--workload", "weave", "--runs", "320", "--json", "--screen",
                         "--cells", "none+concurrent,hybrid+concurrent")
    assert code == 0, err
    doc = json.loads(out)
    none, hybrid = doc["cells"]
    assert doc["screen"] == "sound"
    assert none["first_loss_seed"] == 306 and none["lost"] == 1
    assert none["runs"] + none["screened"] == 306 and 0 < none["runs"] < 60
    assert none["first_loss_run"] == none["runs"]
    assert hybrid["runs"] + hybrid["screened"] == 320 and hybrid["lost"] == 0
    code, out, err = cli(capsys, "barrier-matrix", "--workload", "weave", "--runs", "20", "--screen",
                         "--cells", "dijkstra+concurrent")
    assert "screened out" in out and "dijkstra + concurrent: " in out


def test_stress_screen_records_and_reports_the_screened_seeds(capsys, tmp_path):
    out = tmp_path / "s.jsonl"
    argv = ("stress", "--workload", "weave", "--procs", "2", "--barrier", "none", "--scheduler", "random",
            "--godebug", "gccheckmark=1", "--seeds", "300:310", "--jobs", "1", "--out", str(out), "--screen")
    code, stdout, err = cli(capsys, *argv, timeout=300)
    assert code == 1, err
    kinds = [json.loads(x)["kind"] for x in out.read_text().splitlines()]
    assert kinds.count("run") + kinds.count("screened") == 11 and kinds.count("screened") >= 8
    assert "screened out" in err and "screened out by the workload's screen" in stdout
    code, rep, err = cli(capsys, "stress-report", "--json", str(out))
    cell = json.loads(rep)["cells"][0]
    assert cell["runs"] == kinds.count("run") and cell["screened"] == kinds.count("screened")
    assert cell["first_violation"]["seed"] == 306 and cell["first_violation"]["programs_to_first"] == 7
    before = out.read_text()
    code, _, err = cli(capsys, *argv, timeout=300)                 # again: nothing to do or write
    assert out.read_text() == before and "0 to run" in err


def test_a_workload_without_a_screen_runs_unscreened(capsys, tmp_path):
    user = tmp_path / "mine.py"
    user.write_text("def slots(cfg):\n    return 1\n\n"
                    "def run(m, cfg):\n    while m.running():\n        m.set_slot(0, m.alloc(16))\n")
    cfg = Config(workload=str(user), seed=3)
    assert not screened_out(cfg)
    code, out, err = cli(capsys, "barrier-matrix", "--workload", str(user), "--runs", "3", "--json", "--screen",
                         "--cells", "hybrid+concurrent", "--steps", "20")
    assert code == 0, err
    cell = json.loads(out)["cells"][0]
    assert cell["runs"] == 3 and cell["screened"] == 0


def test_a_cycle_that_may_start_mid_program_keeps_more():
    bars = ("none", "dijkstra", "yuasa", "hybrid")
    more = 0
    for seed in range(1, 151):
        for b in bars:
            one, anywhere = S.can_lose(seed, b), S.can_lose(seed, b, any_start=True)
            assert anywhere or not one, (seed, b)
            more += anywhere and not one
    assert more > 0
    assert not weave._may_trigger(WEAVE) and weave._may_trigger(WEAVE.replace(gogc=-1, memory_limit=0))


def test_barrier_matrix_screen_keeps_the_matrix_losses(capsys):
    # the matrix's own settings (GOGC off, limit 0): none + rescan loses at seed 10 (docs/barrier-study.md)
    code, out, err = cli(capsys, "barrier-matrix", "--workload", "weave", "--runs", "12", "--json", "--screen",
                         "--cells", "none+rescan")
    assert code == 0, err
    cell = json.loads(out)["cells"][0]
    assert cell["lost"] == 1 and cell["first_loss_seed"] == 10 and cell["screened"] > 0


def test_a_screen_that_is_not_a_function_is_refused(tmp_path):
    from concalloc.config import ConfigError
    from concalloc.workloads import get
    user = tmp_path / "bad_screen.py"
    user.write_text("screen = True\n\ndef slots(cfg):\n    return 1\n\ndef run(m, cfg):\n    pass\n")
    with pytest.raises(ConfigError, match="screen is not a function"):
        get(str(user))


def test_the_likely_tier_is_a_subset_that_drops_rare_endings():
    # likely keeps only programs that can lose once both mutators are done: a
    # subset of the sound screen's, strictly smaller for dijkstra (most of its
    # kept programs lose only if the mark ends mid-iteration or at a store).
    sound = {s for s in range(1, 401) if S.can_lose(s, "dijkstra")}
    likely = {s for s in range(1, 401) if S.can_lose(s, "dijkstra", likely=True)}
    assert likely < sound and len(likely) < len(sound) / 2
    for b in ("none", "yuasa", "hybrid"):
        for s in range(1, 201):
            assert S.can_lose(s, b) or not S.can_lose(s, b, likely=True), (s, b)


def test_screened_out_likely_falls_back_to_a_hook_without_the_tier(tmp_path):
    user = tmp_path / "mine2.py"
    user.write_text("def slots(cfg):\n    return 1\n\ndef run(m, cfg):\n    pass\n\n"
                    "def screen(cfg):\n    return cfg.seed % 2 == 0\n")
    assert screened_out(Config(workload=str(user), seed=3), likely=True)
    assert not screened_out(Config(workload=str(user), seed=4), likely=True)
    dij = WEAVE.replace(barrier="dijkstra")
    drop = next(s for s in range(1, 400) if S.can_lose(s, "dijkstra") and not S.can_lose(s, "dijkstra", likely=True))
    assert not screened_out(dij.replace(seed=drop)) and screened_out(dij.replace(seed=drop), likely=True)


def test_barrier_matrix_screen_likely_runs_fewer_seeds(capsys):
    counts = {}
    for mode in ("sound", "likely"):
        code, out, err = cli(capsys, "barrier-matrix", "--workload", "weave", "--runs", "200", "--json",
                             "--screen", mode, "--cells", "dijkstra+concurrent")
        assert code in (0, 1), err
        doc = json.loads(out)
        assert doc["screen"] == mode
        counts[mode] = doc["cells"][0]["runs"]
    assert counts["likely"] < counts["sound"]


def test_stress_screens_resume_by_mode_and_count_each_seed_once(capsys, tmp_path):
    # seeds 1..12 under dijkstra: the likely tier keeps none, the sound screen keeps 8 and 10
    assert [s for s in range(1, 13) if S.can_lose(s, "dijkstra")] == [8, 10]
    assert not any(S.can_lose(s, "dijkstra", likely=True) for s in range(1, 13))
    out = tmp_path / "s.jsonl"
    base = ("stress", "--workload", "weave", "--procs", "2", "--barrier", "dijkstra", "--scheduler", "random",
            "--godebug", "gccheckmark=1", "--seeds", "1:12", "--jobs", "1", "--out", str(out))

    def report():
        code, rep, err = cli(capsys, "stress-report", "--json", str(out))
        cell = json.loads(rep)["cells"][0]
        return cell["runs"], cell["screened"]

    code, _, err = cli(capsys, *base, "--screen", "likely", timeout=300)
    assert "12 screened out" in err and report() == (0, 12)
    code, _, err = cli(capsys, *base, "--screen", timeout=300)    # the likely records do not stand for the proof
    assert "2 to run" in err and report() == (2, 10)
    code, _, err = cli(capsys, *base, timeout=300)                # unscreened: the rest run, each seed once
    assert "10 to run" in err and report() == (12, 0)
