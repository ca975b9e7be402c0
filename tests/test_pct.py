"""PCT's guarantee (concalloc/pct.py): the bound, the runs needed, k from a pilot run."""

from __future__ import annotations

import json
import math

import pytest

from cli_helpers import cli
from concalloc.config import Config
from concalloc.pct import Guarantee, bound, confidence_after, k_from_steps, pilot_steps, runs_needed

SMALL = ["--workload", "graph", "--procs", "2", "--steps", "40", "--live", "16", "--gogc", "5",
         "--reserve", "1GiB", "--no-lock-stats"]


# The table of docs/../concurrency-testing-anchors.md §1.1 (PCT, Burckhardt et al. 2010):
# (n threads, k steps, depth d) -> runs for 99 % and for 99.9 %.
PAPER_TABLE = [((6, 200, 1), 26, 38), ((6, 200, 2), 5_524, 8_286), ((6, 2_000, 2), 55_260, 82_890),
               ((8, 10_000, 2), 368_412, 552_617)]


@pytest.mark.parametrize("nkd, r99, r999", PAPER_TABLE)
def test_runs_needed_match_the_reference_table(nkd, r99, r999):
    p = bound(*nkd)
    assert runs_needed(p, 0.99) == r99
    assert runs_needed(p, 0.999) == r999


def test_bound_is_one_over_n_k_to_the_d_minus_one():
    assert bound(4, 1000, 1) == 1 / 4
    assert bound(4, 1000, 3) == pytest.approx(1 / (4 * 1000 ** 2))
    with pytest.raises(ValueError):
        bound(0, 10, 2)


@pytest.mark.parametrize("p, c", [(0.5, 0.99), (1e-3, 0.9), (2.5e-6, 0.999), (1.0, 0.99)])
def test_runs_needed_is_the_least_that_reaches_the_confidence(p, c):
    n = runs_needed(p, c)
    assert confidence_after(p, n) >= c
    assert n == 1 or confidence_after(p, n - 1) < c


def test_guarantee_text_names_n_k_d_and_warns_when_the_run_outgrew_k():
    g = Guarantee(n=6, k=200, d=2, confidence=0.99, steps=150)
    text = g.text()
    assert "n=6" in text and "k=200" in text and "d=2" in text and "5,524 runs" in text
    assert "warning" not in text
    long = Guarantee(n=6, k=200, d=2, confidence=0.99, steps=801).text()
    assert "warning" in long and "first 25%" in long
    assert g.to_json()["runs_needed"] == 5524 and g.to_json()["p"] == pytest.approx(1 / 1200)


def test_k_covers_the_pilot_with_a_margin():
    assert k_from_steps(1000, 3) == 1250
    assert k_from_steps(0, 5) == 4            # PCT needs k >= d-1


def test_the_pilot_is_a_pure_function_of_config_and_seed():
    cfg = Config(workload="graph", procs=2, steps=40, live=16, gogc=5, reserve_bytes=1 << 30,
                 scheduler="pct", seed=3)
    a, b = pilot_steps(cfg), pilot_steps(cfg)
    assert a == b and a[0] > 0 and a[1] >= 3        # 2 mutators and the collector's threads


def test_run_derives_k_from_a_pilot_and_its_replay_names_it(capsys):
    code, out, err = cli(capsys, "run", "--json", *SMALL, "--scheduler", "pct", "--seed", "3",
                         "--depth", "2", "--confidence", "0.999")
    assert code == 0, err
    doc = json.loads(out)
    steps, n = pilot_steps(Config(workload="graph", procs=2, steps=40, live=16, gogc=5, reserve_bytes=1 << 30,
                                  scheduler="pct", pct_depth=2, seed=3))
    k = k_from_steps(steps, 2)
    assert doc["config"]["pct_k"] == k and doc["pct"]["k"] == k and doc["pct"]["n"] == n
    assert doc["pct"]["d"] == 2 and doc["pct"]["confidence"] == 0.999
    assert doc["pct"]["runs_needed"] == math.ceil(math.log(1 - 0.999) / math.log(1 - 1 / (n * k)))
    # the k is a function of (config, seed): the same command gives the same run
    code2, out2, _ = cli(capsys, "run", "--json", *SMALL, "--scheduler", "pct", "--seed", "3", "--depth", "2")
    assert json.loads(out2)["event_log_hash"] == doc["event_log_hash"]


def test_run_prints_the_guarantee_and_warns_about_a_small_k(capsys):
    code, out, err = cli(capsys, "run", *SMALL, "--scheduler", "pct", "--pct-k", "10", "--depth", "2")
    assert code == 0, err
    assert "PCT: n=" in out and "k=10 steps" in out and "warning: this run took" in out


def test_replay_command_of_a_pct_run_names_k():
    from concalloc.runconfig import replay_command
    assert "--pct-k 2000" in replay_command(Config(scheduler="pct", steps=5))
    assert "--pct-k" not in replay_command(Config(scheduler="random", steps=5))


@pytest.mark.parametrize("argv", [["--pct-k", "0"], ["--pct-k", "lots"], ["--confidence", "1"],
                                  ["--confidence", "x"]])
def test_bad_pct_flags_exit_2(capsys, argv):
    code, out, err = cli(capsys, "run", *SMALL, "--scheduler", "pct", *argv)
    assert code == 2 and err.count("\n") == 1 and argv[0] in err


def test_stress_pct_cells_share_one_pilot_k_across_shards(capsys, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    common = ["stress", *SMALL[:-1], "--scheduler", "pct", "--depth", "2", "--seeds", "1:4", "--jobs", "2"]
    for i, path in ((1, a), (2, b)):
        code, out, err = cli(capsys, *common, "--shard", f"{i}/2", "--out", str(path), timeout=300)
        assert code in (0, 1), err
    recs = [json.loads(x) for p in (a, b) for x in p.read_text().splitlines()]
    pilots = [r for r in recs if r["kind"] == "pilot"]
    runs = [r for r in recs if r["kind"] == "run"]
    assert len(pilots) == 2 and pilots[0]["key"] == pilots[1]["key"] and pilots[0]["steps"] == pilots[1]["steps"]
    k = k_from_steps(pilots[0]["steps"], 2)
    assert len(runs) == 4 and {r["config"]["pct_k"] for r in runs} == {k}
    assert all(f"--pct-k {k}" in r["replay"] for r in runs)
    code, out, err = cli(capsys, "stress-report", "--json", str(a), str(b))
    cell = json.loads(out)["cells"][0]
    assert cell["runs"] == 4 and cell["pct"]["k"] == k and cell["pct"]["d"] == 2
    assert cell["pct"]["confidence_reached"] == pytest.approx(confidence_after(cell["pct"]["p"], 4))
