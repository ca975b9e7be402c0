"""Stress campaigns: many seeds, every workload, every scheduler kind.

Each case is one Runtime run that must end cleanly (exit 0: no invariant
violation at any stop-the-world verify_heap, no deadlock, no hang, no thread
failure), with MemStats identities holding.  A failure's message carries the
seed and the exact `concalloc run` command that replays it (under a
controlled scheduler the replay is bit for bit).

    pytest stress -m smoke      # the short subset CI runs (a few dozen runs)
    pytest stress -m long       # the full campaign (deselected by default)

Every run is bounded by a wall-clock safety net; nothing asserts on time.
"""

from __future__ import annotations


import pytest

from concalloc.config import Config
from concalloc.runtime import EXIT_OK, Runtime, RunTimeout, replay_command

GiB = 1 << 30
BOUND = 300.0                     # seconds per run: a hang guard, not a speed check
WORKLOADS = ("ring", "tree", "churn", "graph", "burst")
# Allocations summed over the mutators.  The collector's first trigger comes
# after 32 mcache refills or large allocations (summed over the Ps), so these
# totals give every controlled run stop-the-world verify_heap checks while it
# runs, on top of the one every run ends with.  Tree and graph objects are
# small (341 and 256 to a span), hence their larger totals.
TOTAL = {"ring": 1200, "tree": 12000, "churn": 1200, "graph": 9000, "burst": 1200}
# Smoke: graph (about 35 scheduling decisions per allocation) is kept small
# and relies on the final verify_heap; test_runtime checks it with STW checks.
SMOKE_TOTAL = dict(TOTAL, graph=450)
OS_TOTAL = {"ring": 12000, "tree": 24000, "churn": 12000, "graph": 8000, "burst": 8000}
# About how many scheduling decisions an allocation costs: PCT's k (the
# run length its change points are drawn from) is set to the run's length.
DECISIONS = {"ring": 3, "tree": 3, "churn": 4, "graph": 36, "burst": 2}
SIZES = (512, 1024, 2048, 4096)   # ring objects: 16 down to 2 per span, many refills
# GOGC per workload: a small heap goal (4 MiB * GOGC/100 at least) so that
# cycles follow one another; churn keeps about 1 MiB live.
GOGC = {"ring": 5, "tree": 5, "churn": 50, "graph": 5, "burst": 20}


def _controlled(kind: str, workload: str, seed: int, total: dict, long: bool) -> Config:
    procs = (2, 3, 4, 8)[seed % 4] if long else 3
    steps = -(-total[workload] // procs)
    extra = {}
    if kind == "pct":
        # Change points within the first half of the run; depth procs+2 on
        # every third seed (always in smoke), see _must_check.
        depth = (procs + 2, 2, 3)[seed % 3] if long else procs + 2
        extra = {"pct_depth": depth, "pct_k": max(depth, DECISIONS[workload] * steps * procs // 2)}
    return Config(procs=procs, workload=workload, steps=steps, live=16 + 16 * (seed % 4),
                  size=SIZES[seed % 4], scheduler=kind, seed=seed, reserve_bytes=GiB,
                  heapcheck=2 if long and seed % 5 == 0 else 1, gogc=GOGC[workload], gccheckmark=True, **extra)


def _must_check(cfg: Config, cache: bool) -> bool:
    """Whether this controlled run must stop the world while mutators run.

    The trigger counts mcache refills, so not with the cache off.  Random
    picks the kicked collector soon enough.  PCT runs the highest-priority
    enabled thread, and mutators here never block: the collector gets in only
    once every mutator has dropped below it, which depth > mutators (one
    change point per mutator, each hitting the running top one) provides."""
    if not cache:
        return False
    return cfg.scheduler == "random" or cfg.pct_depth > cfg.nmutators()


def _noisy(workload: str, seed: int, long: bool) -> Config:
    procs = (2, 4, 8)[seed % 3] if long else 4
    total = OS_TOTAL[workload] * (3 if long else 1)
    return Config(procs=procs, workload=workload, steps=-(-total // procs),
                  live=16 + 16 * (seed % 4), size=SIZES[seed % 4], scheduler="os",
                  seed=seed, noise=(0.05, 0.2, 0.5)[seed % 3],
                  switch_interval=(0.0001, 0.0005, 0.002)[seed % 3], reserve_bytes=GiB,
                  gogc=GOGC[workload], gccheckmark=True)


def _cases():
    """(config, cache on?, must stop the world mid-run?) for each campaign run."""
    for kind in ("random", "pct"):
        for w in WORKLOADS:
            for seed in range(1, 6 if w in ("ring", "churn", "burst") else 4):
                cfg = _controlled(kind, w, seed, SMOKE_TOTAL, False)
                yield pytest.param(cfg, True, w != "graph" and _must_check(cfg, True),
                                   id=f"smoke-{kind}-{w}-seed{seed}", marks=pytest.mark.smoke)
            for seed in range(1, 41 if w != "graph" else 21):
                cache = seed % 7 != 0      # now and then every allocation takes its mcentral lock
                cfg = _controlled(kind, w, seed, TOTAL, True)
                yield pytest.param(cfg, cache, _must_check(cfg, cache),
                                   id=f"long-{kind}-{w}-seed{seed}{'' if cache else '-nocache'}",
                                   marks=pytest.mark.long)
    # Free OS threads: whether the collector gets in before the mutators end
    # is up to the OS, so mid-run checks are not required there.
    for w in WORKLOADS:
        for seed in (1, 2, 3):
            yield pytest.param(_noisy(w, seed, False), True, False, id=f"smoke-os-noise-{w}-seed{seed}",
                               marks=pytest.mark.smoke)
        for seed in range(1, 21):
            yield pytest.param(_noisy(w, seed, True), seed % 5 != 0, False,
                               id=f"long-os-noise-{w}-seed{seed}", marks=pytest.mark.long)


def run_bounded(cfg: Config, cache: bool, save: str | None = None):
    rt = Runtime(cfg, cache=cache)
    try:
        res = rt.run_bounded(BOUND)
    except RunTimeout as e:
        pytest.fail(str(e))
    except BaseException as e:  # noqa: BLE001 - reported by the test
        rt.close()
        raise AssertionError(f"seed {cfg.seed}: Runtime.run raised {e!r}\n"
                             f"replay: {replay_command(cfg, cache)}") from e
    if save:
        rt.save_schedule(save)
    rt.close()
    return res


def _why(cfg: Config, cache: bool, res, what: str) -> str:
    err = f"{type(res.error).__name__}: {res.error}" if res.error is not None else "no error"
    return (f"seed {cfg.seed}: {what} (exit {res.exit_code}, {err})\n"
            f"replay: {replay_command(cfg, cache)}")


@pytest.mark.parametrize("cfg, cache, stw_checks", list(_cases()))
def test_campaign(cfg, cache, stw_checks, tmp_path):
    save = str(tmp_path / "schedule.json") if cfg.controlled() and cfg.seed % 10 == 1 else None
    res = run_bounded(cfg, cache, save)
    assert res.exit_code == EXIT_OK, _why(cfg, cache, res, "the run failed")
    ms = res.memstats
    allocs = sum(m["allocs"] for m in res.mutators.values())
    assert allocs == cfg.steps * cfg.nmutators(), _why(cfg, cache, res, "a mutator stopped early")
    assert ms["HeapObjects"] == ms["Mallocs"] - ms["Frees"], _why(cfg, cache, res, "HeapObjects")
    assert ms["HeapSys"] == ms["HeapIdle"] + ms["HeapInuse"], _why(cfg, cache, res, "HeapSys")
    assert ms["Mallocs"] == allocs, _why(cfg, cache, res, "Mallocs != allocations")
    if stw_checks:
        assert res.stw.get("GC sweep termination", {}).get("count", 0) >= 1, \
            _why(cfg, cache, res, f"no GC cycle (verify_heap at sweep termination): {res.stw}")
    if save:
        # the schedule replays the run bit for bit
        again = run_bounded(cfg.replace(scheduler="replay", replay_file=save), cache)
        assert again.exit_code == EXIT_OK and again.event_log_hash == res.event_log_hash, \
            _why(cfg, cache, again, f"replay of {save} differs")
