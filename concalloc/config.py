"""Config: one frozen, validated description of a run.

Everything a run depends on is here, so that a controlled run is a pure
function of (Config, seed) and a violation can print the exact command that
replays it.  GODEBUG-style settings arrive as one string
("invalidptr=1,heapcheck=2") and land in typed fields.  A bad value raises
ConfigError naming the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SCHEDULERS = ("os", "random", "pct", "replay", "vtime", "sticky-random")
BARRIERS = ("none", "dijkstra", "yuasa", "hybrid", "hybrid-cond")
STACK_SCANS = ("concurrent", "stw-snapshot", "rescan")
MARK_ORDERS = ("go", "weave")   # gcDrain's order: Go's roots first, or go-weave's any grey item (gc/mark.py)
MAX_INT64 = (1 << 63) - 1
WORKLOADS = ("ring", "tree", "churn", "graph", "burst", "weave", "hide-pointer", "random-program")   # the built-ins; see workloads/ for the rest
ALLOCATORS = ("go", "bump", "first-fit", "next-fit", "best-fit", "segregated")   # concalloc/methods


class ConfigError(ValueError):
    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def parse_bytes(text: str, field_name: str = "size") -> int:
    """'64GiB', '512MiB', '4096', 'off' -> bytes (GOMEMLIMIT's suffixes)."""
    units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
    t = str(text).strip()
    for suffix in sorted(units, key=len, reverse=True):
        if t.endswith(suffix) and t[:-len(suffix)].strip().isdigit():
            return int(t[:-len(suffix)]) * units[suffix]
    if t.isdigit():
        return int(t)
    raise ConfigError(field_name, f"expected a byte count like 4096, 512MiB or 64GiB, got {text!r}")


@dataclass(frozen=True)
class Config:
    # the machine
    procs: int = 4                       # GOMAXPROCS
    mutators: int | None = None          # Ps running mutators (default: all)
    reserve_bytes: int = 64 << 30        # the address-space reservation
    # checking (GODEBUG)
    invalidptr: bool = True
    lockrank: bool = True                # static lock ranking checks
    heapcheck: int = 1                   # 0 off; 1 verify_heap before GC cycles 1, 2, 4, 8... and at the end;
                                         # 2 before every cycle, and every mutator pointer access checked
    gccheckmark: bool = False            # re-mark from the roots at mark termination
    wbshadow: bool = False               # shadow every heap pointer slot; a store that skipped the barrier throws
    gcstoptheworld: int = 0              # 1: mark with the world stopped (Go's gcForceMode); 2: sweep too
    gctrace: bool = False                # one line per GC cycle on stderr
    # the allocation method: Go's, or one of the survey's (concalloc/methods)
    allocator: str = "go"
    # the collector
    gogc: int = 100                      # GOGC; -1 = off
    memory_limit: int = MAX_INT64        # GOMEMLIMIT in bytes
    barrier: str = "hybrid"
    stack_scan: str = "concurrent"
    mark_order: str = "go"               # "weave": root jobs and grey objects drained in any order (gc/mark.py)
    gc_workers: int | None = None        # background mark workers (default: 25% of procs, at least 1)
    faults: tuple = ()                   # injected collector faults, by name (concalloc/faults.py)
    # scheduling
    scheduler: str = "os"
    seed: int = 1
    schedule_seed: int | None = None     # controlled: the scheduler's own seed (None: seed); the workload keeps seed
    noise: float = 0.0                   # os: probability a yield point gives up the CPU
    switch_interval: float | None = None # os: sys.setswitchinterval for the run
    pct_depth: int = 3
    pct_k: int = 2000
    sticky: float = 0.2                  # sticky-random: probability of switching at a decision
    max_steps: int = 1_000_000           # controlled runs: the decision cap
    replay_file: str | None = None
    hang_seconds: float = 30.0           # os: watchdog
    cost_table: str | None = None        # vtime: the cost table (None: the shipped default)
    costs: tuple = ()                    # vtime: what-if knobs, "KEY=+500ns" / "KEY=x4" / "KEY=0"
    # workload
    workload: str = "ring"               # a built-in name, FILE.py or package.module[:name]
    steps: int | None = None             # allocations per mutator
    seconds: float | None = None
    live: int = 1000
    size: int = 64
    noscan: bool = False
    # observation
    lock_stats: bool = False            # off entirely unless asked for (the CLI asks)
    events: bool = False
    trace: str | None = None
    plot: str | None = None              # a PNG of heapLive, trigger and goal over the run
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if isinstance(self.faults, list):      # as JSON (a schedule file) gives it back
            object.__setattr__(self, "faults", tuple(self.faults))
        self.validate()

    def replace(self, **changes) -> "Config":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown setting")
        return dataclasses.replace(self, **changes)

    def nmutators(self) -> int:
        return self.procs if self.mutators is None else self.mutators

    def validate(self) -> None:
        _int_in("procs", self.procs, 1, 256)
        if self.mutators is not None:
            _int_in("mutators", self.mutators, 0, self.procs)
        _int_in("reserve_bytes", self.reserve_bytes, 64 << 20, 1 << 46)
        if self.reserve_bytes % (64 << 20):
            raise ConfigError("reserve_bytes", "must be a multiple of 64 MiB (one heap arena)")
        _int_in("heapcheck", self.heapcheck, 0, 2)
        _int_in("gcstoptheworld", self.gcstoptheworld, 0, 2)
        if self.scheduler not in SCHEDULERS:
            raise ConfigError("scheduler", f"must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        if self.scheduler == "replay" and not self.replay_file:
            raise ConfigError("replay_file", "the replay scheduler needs a schedule file")
        _int_in("seed", self.seed, 0, 2**63 - 1)
        if self.schedule_seed is not None:
            _int_in("schedule_seed", self.schedule_seed, 0, 2**63 - 1)
        if not (isinstance(self.noise, (int, float)) and 0.0 <= self.noise <= 1.0):
            raise ConfigError("noise", f"must be a probability in [0, 1], got {self.noise!r}")
        if self.switch_interval is not None and not (0 < self.switch_interval <= 1):
            raise ConfigError("switch_interval", f"must be in (0, 1] seconds, got {self.switch_interval!r}")
        _int_in("pct_depth", self.pct_depth, 1, 64)
        _int_in("pct_k", self.pct_k, 1, 10**9)
        if not (isinstance(self.sticky, (int, float)) and 0.0 < self.sticky <= 1.0):
            raise ConfigError("sticky", f"must be a probability in (0, 1], got {self.sticky!r}")
        if self.workload not in WORKLOADS:    # a user's: loaded (once) to see that it is one
            from .workloads import get as get_workload
            get_workload(self.workload)
        if self.steps is not None:
            _int_in("steps", self.steps, 1, 10**12)
        if self.seconds is not None and not (isinstance(self.seconds, (int, float)) and self.seconds > 0):
            raise ConfigError("seconds", f"must be a positive number, got {self.seconds!r}")
        _int_in("live", self.live, 1, 10**8)
        _int_in("gogc", self.gogc, -1, 10**6)
        _int_in("memory_limit", self.memory_limit, 0, MAX_INT64)
        if self.barrier not in BARRIERS:
            raise ConfigError("barrier", f"must be one of {', '.join(BARRIERS)}, got {self.barrier!r}")
        if self.allocator not in ALLOCATORS:
            raise ConfigError("allocator", f"must be one of {', '.join(ALLOCATORS)}, got {self.allocator!r}")
        if self.allocator != "go" and self.scheduler == "vtime":
            raise ConfigError("allocator", f"{self.allocator} has no virtual-time costs: use --scheduler os, "
                                           "random, pct, sticky-random or replay")
        if self.allocator != "go" and self.plot:
            raise ConfigError("plot", "draws Go's pacer (heap goal and trigger); for the survey's methods use "
                                      "compare-allocators --plot DIR")
        if self.stack_scan not in STACK_SCANS:
            raise ConfigError("stack_scan", f"must be one of {', '.join(STACK_SCANS)}, got {self.stack_scan!r}")
        if self.mark_order not in MARK_ORDERS:
            raise ConfigError("mark_order", f"must be one of {', '.join(MARK_ORDERS)}, got {self.mark_order!r}")
        if self.gc_workers is not None:
            _int_in("gc_workers", self.gc_workers, 1, 64)
        _int_in("max_steps", self.max_steps, 1, 10**12)
        if self.faults:
            from .faults import validate as validate_faults
            validate_faults(self.faults)
            if getattr(self, "allocator", "go") != "go":
                raise ConfigError("faults", f"the faults break Go's allocator and collector: they need "
                                            f"--allocator go, not {self.allocator}")
        _int_in("size", self.size, 0, 1 << 40)
        if not isinstance(self.costs, (tuple, list)) or not all(isinstance(k, str) for k in self.costs):
            raise ConfigError("costs", f"must be a list of 'KEY=+500ns' strings, got {self.costs!r}")
        if (self.cost_table or self.costs) and self.scheduler != "vtime":
            raise ConfigError("costs", "a cost table and --cost knobs need --scheduler vtime")
        if not (isinstance(self.hang_seconds, (int, float)) and self.hang_seconds > 0):
            raise ConfigError("hang_seconds", f"must be positive, got {self.hang_seconds!r}")

    def controlled(self) -> bool:
        return self.scheduler != "os"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra")
        d["costs"] = list(self.costs)     # as JSON reads it back
        d["faults"] = list(self.faults)
        return d

    @classmethod
    def from_godebug(cls, text: str, base: "Config | None" = None) -> "Config":
        """Apply a GODEBUG-style string: 'invalidptr=0,heapcheck=2,lockrank=1'."""
        known = {"invalidptr": bool, "lockrank": bool, "heapcheck": int, "gccheckmark": bool,
                 "gctrace": bool, "wbshadow": bool, "gcstoptheworld": int}
        changes = {}
        for item in filter(None, (x.strip() for x in text.split(","))):
            key, sep, val = item.partition("=")
            if key not in known or not sep:
                raise ConfigError("GODEBUG", f"unknown setting {item!r}; known: {', '.join(known)}")
            if not val.isdigit():
                raise ConfigError("GODEBUG", f"{key} takes an integer, got {val!r}")
            changes[key] = known[key](int(val))
        return (base or cls()).replace(**changes)


def _int_in(name: str, v, lo: int, hi: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(name, f"must be an integer in [{lo}, {hi}], got {v!r}")
