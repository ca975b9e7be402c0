"""The fault catalogue over many seeds (long: `pytest -m long stress/test_faults_sweep.py -s`).

* The mutation score is 100%: every fault is caught within SEEDS runs and
  its control (the catching seed without the fault) runs clean.
* Every scenario runs clean without its fault over SEEDS seeds: a catch is
  the fault's doing, not the scenario's.
* The catch rate of each fault over SEEDS seeds, printed (pytest -s) for
  docs/faults.md; asserted only to be non-zero.
"""

from __future__ import annotations

import pytest

from concalloc import faults as catalogue
from concalloc.faultscmd import run_catalogue, run_once, score
from concalloc.runtime import EXIT_OK, EXIT_VIOLATION

SEEDS = 40
pytestmark = pytest.mark.long


def test_mutation_score_is_100_percent():
    hunts = run_catalogue(catalogue.NAMES, SEEDS)
    missed = [(h.fault.name, h.control or "not caught") for h in hunts if not h.caught]
    assert not missed, f"score {score(hunts)}: missed {missed}"


@pytest.mark.parametrize("name", catalogue.NAMES)
def test_scenario_runs_clean_without_its_fault(name):
    f = catalogue.get(name)
    for seed in range(1, SEEDS + 1):
        code, invariant, message = run_once(f.config(seed=seed, with_fault=False))
        assert code == EXIT_OK, f"{name}'s scenario, seed {seed}, no fault: exit {code} {invariant} {message}"


@pytest.mark.parametrize("name", catalogue.NAMES)
def test_catch_rate(name):
    f = catalogue.get(name)
    caught = sum(run_once(f.config(seed=seed))[0] == EXIT_VIOLATION for seed in range(1, SEEDS + 1))
    print(f"\n{name}: caught in {caught}/{SEEDS} seeds")
    assert caught > 0
