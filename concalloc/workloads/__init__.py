"""Built-in mutator programs.

Each workload is a function `run(m, cfg)` of one Mutator and the run's
Config, bounded by m.running() (steps = allocations per mutator, or
seconds), plus the number of stack slots it needs.  All randomness comes
from m.rng, which is derived from (seed, P name), so a controlled run is a
pure function of (config, seed).

The rule every workload keeps: an address held in a Python local across an
allocation (a safe point, where the collector may run) must also sit in a
stack slot or be reachable from one, exactly as a Go compiler's stack maps
would see it.
"""

from __future__ import annotations

from . import burst, churn, graph, ring, tree

WORKLOADS = {
    "ring": ring,
    "tree": tree,
    "churn": churn,
    "graph": graph,
    "burst": burst,
}


def get(name: str):
    return WORKLOADS[name]
