"""The `concalloc stress` campaigns as pytest cases.

Each campaign below is a `concalloc stress` command line; its jobs are
planned by the command's own code (concalloc.stress.campaign/plan) and run
by the same function its worker processes run (execute), so a case here is
exactly a line of the command's results file.  A cell that theory calls
safe (barriermatrix.SAFE: hybrid, Dijkstra with a stop-the-world rescan,
Yuasa with stacks snapshotted first) must end every run cleanly; an unsafe
cell may lose objects but must not end any other way (deadlock, hang,
internal error).  A failure names the seed and the replay command.

    pytest stress -m smoke -k scenarios             # the CI subset: seconds
    pytest stress -m stress -n auto -k scenarios    # every cell, every seed

The same campaign from the shell (several cores, resumable, shardable):

    concalloc stress --workload graph,tree,churn --barrier none,dijkstra,yuasa,hybrid,hybrid-cond \\
        --stack-scan concurrent,stw-snapshot,rescan --scheduler random,pct,sticky-random \\
        --gogc off --memlimit 0 --steps 150 --live 32 --seeds 1:20 --out results.jsonl
"""

from __future__ import annotations

import pytest

from concalloc import workloads
from concalloc.barriermatrix import SAFE
from concalloc.cli import build_parser
from concalloc.config import BARRIERS, STACK_SCANS
from concalloc.pct import k_from_steps
from concalloc.stress import Job, campaign, execute, pilot_job

# Scenario workloads of the weave work, run here as soon as they are registered.
SCENARIOS = [w for w in ("weave", "hide-pointer", "random-program") if w in workloads.WORKLOADS]
COMMON = ["--gogc", "off", "--memlimit", "0", "--steps", "150", "--live", "32", "--reserve", "1GiB",
          "--timeout", "300"]
FULL = ["--workload", ",".join(["graph", "tree", "churn", *SCENARIOS]), "--barrier", ",".join(BARRIERS),
        "--stack-scan", ",".join(STACK_SCANS), "--scheduler", "random,pct,sticky-random", "--seeds", "1:20"]
# Smoke: the safe protocols on the graph workload, one seed, random and PCT.
SMOKE = ["--workload", "graph", "--barrier", "hybrid,dijkstra,yuasa", "--stack-scan", "concurrent,rescan,stw-snapshot",
         "--scheduler", "random,pct", "--seeds", "1"]


def _cases(tag: str, argv: list[str], mark, only_safe: bool):
    args = build_parser().parse_args(["stress", *argv, *COMMON])
    grid, seeds, _ = campaign(args)
    for seed in seeds:
        for cell, cfg, cache in grid:
            safe = (cfg.barrier, cfg.stack_scan) in SAFE
            if only_safe and not safe:
                continue
            name = "-".join(str(cell[k]) for k in ("workload", "barrier", "stack_scan", "scheduler"))
            yield pytest.param(cell, cfg.replace(seed=seed), cache, safe, id=f"{tag}-{name}-seed{seed}", marks=mark)


_steps: dict[str, int] = {}          # pilot job key -> its steps, per test process


def _pilot_k(job: Job, depth: int) -> int:
    if job.key not in _steps:
        rec = execute(job)
        assert rec.get("steps"), f"the pilot run for PCT's k failed: {rec['error']}\nreplay: {rec['replay']}"
        _steps[job.key] = rec["steps"]
    return k_from_steps(_steps[job.key], depth)


@pytest.mark.parametrize("cell, cfg, cache, safe",
                         [*_cases("smoke", SMOKE, pytest.mark.smoke, True), *_cases("full", FULL, pytest.mark.long, False)])
def test_scenario(cell, cfg, cache, safe):
    if cfg.scheduler == "pct":       # --pct-k auto: the cell's pilot, first seed (as the command does)
        cfg = cfg.replace(pct_k=_pilot_k(pilot_job(cell, cfg, cache, 1, 300.0), cfg.pct_depth))
    rec = execute(Job("run", cell, cfg, cache, 300.0))
    why = f"seed {cfg.seed}: {rec['outcome']} {rec['violation'] or rec['error'] or ''}\nreplay: {rec['replay']}"
    assert rec["outcome"] in ("ok", "violation"), why
    if safe:
        assert rec["outcome"] == "ok", why
