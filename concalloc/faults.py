"""The fault catalogue: real ways to break the collector, each a switch.

A fault is chosen by name (Config.faults, a tuple; `concalloc run --fault
NAME`, repeatable) and lives as a small switch in the code it breaks.  The
switch is read when the object it changes is built or installed (the GC,
the write barrier at each setGCPhase, an mcache, an mcentral), so that with
no fault selected the hot paths run the code they always ran; where a
switch must sit inside a function, it sits on that function's rare branch
(a newly set mark bit, a root job, a refill).

Each entry says what the fault breaks, the Go history behind it (an issue,
a commit or a section of the background notes, gc-anchors-and-style.md
§B), where the switch lives, the scenario (a workload and Config changes)
that exposes it, and the oracle expected to catch it.  `concalloc faults`
(faultscmd.py) injects each in turn, searches seeds under a controlled
scheduler until an oracle reports a violation, and prints the mutation
score: caught / injected.

The oracles, by the invariant names their violations carry:

    checkmark         gc.checkmark: GODEBUG gccheckmark=1's re-mark found a
                      reachable object the concurrent mark left white
    mark-state        gc.grey_left / gc.wbbuf_left / gc.marked_free /
                      gc.assist_uncharged / gc.scan_missed: the collector's
                      own state at mark termination (check_no_grey;
                      heapcheck >= 1 for the others)
    verify_heap       heap.* / span.* / spans.* / sweep.state / mcache.tiny:
                      the allocator's invariants recomputed at a stop
    pointer           mutator.* / heap.bad_pointer: the pointer oracle
                      (heapcheck=2) and invalidptr on every pointer followed
    sweep             sweep / sweep.*: sweep's own throws ("sweep increased
                      allocation count", "marked free object in span")
    lock              lock.not_held / lock.rank / mspan.list / mcentral: lock
                      ownership (assertLockHeld on the mcentral lists), lock
                      ranking (a LockRankViolation), the span lists' own throws
    workload          scenario.lost / lost_object.*: a workload's own check (a
                      value that changed under it)
"""

from __future__ import annotations

from dataclasses import dataclass, field

# invariant-name prefix -> oracle; the longest prefix that matches wins
ORACLE_OF = {
    "gc.checkmark": "checkmark",
    "gc.grey_left": "mark-state",
    "gc.wbbuf_left": "mark-state",
    "gc.marked_free": "mark-state",
    "gc.assist_uncharged": "mark-state",
    "gc.scan_missed": "mark-state",
    "gc.": "mark-state",
    "heap.bad_pointer": "pointer",
    "mutator.": "pointer",
    "heap.": "verify_heap",
    "span.": "verify_heap",
    "spans.": "verify_heap",
    "mcache.tiny": "verify_heap",
    "sweep.state": "verify_heap",
    "sweep": "sweep",
    "lock.": "lock",             # lock.not_held, lock.rank (a LockRankViolation, "lock ordering problem")
    "mspan.list": "lock",
    "mcentral": "lock",
    "mheap": "verify_heap",
    "lost_object": "workload",
    "scenario.": "workload",
}
ORACLES = ("checkmark", "mark-state", "verify_heap", "pointer", "sweep", "lock", "workload")


def oracle_of(invariant: str | None) -> str:
    """The oracle that raised a violation with this invariant name."""
    if not invariant:
        return "?"
    best = max((p for p in ORACLE_OF if invariant.startswith(p)), key=len, default=None)
    return ORACLE_OF[best] if best else invariant


# The scenarios' common ground: a controlled scheduler (every catch replays),
# the collector cycling back to back (GOGC off with a memory limit of 0
# starts a cycle as soon as the last one ends), small runs.
_BACK_TO_BACK = {"gogc": -1, "memory_limit": 0, "reserve_bytes": 1 << 30}
# hide starts its own cycles back to back (no memory limit: no assist pressure
# parking the mutators while the marker runs).
_HIDE = {"workload": "concalloc.faultscenarios.hide", "procs": 3, "gc_workers": 2, "steps": 400,
         "memory_limit": (1 << 63) - 1, "gccheckmark": True}


@dataclass(frozen=True)
class Fault:
    name: str
    breaks: str                     # what goes wrong, in a line
    go: str                         # the Go history: issue, commit, section of the notes
    where: str                      # the switch's file and function
    oracle: str                     # the oracle expected to catch it (ORACLES)
    scenario: dict = field(default_factory=dict)   # Config changes that expose it
    seed: int = 1                   # a seed known to catch it (tests/test_faults.py; moves when
                                    # scheduling changes: `concalloc faults --only NAME` finds another)

    def config(self, base=None, seed: int = 1, with_fault: bool = True, override: dict | None = None):
        """The Config of one search run: base, the scenario, this fault, the
        seed, then `override` (Config fields the user chose instead of the
        scenario's: another controlled scheduler, their own workload)."""
        from .config import Config
        base = base or Config()
        changes = {**_BACK_TO_BACK, "scheduler": "random", **self.scenario, "seed": seed,
                   "faults": (self.name,) if with_fault else (), **(override or {})}
        return base.replace(**changes)


CATALOGUE: tuple[Fault, ...] = (
    Fault("stack-scan-races-owner",
          "a mark worker scans a P's stack while its owner runs (no suspendG): the owner moves a "
          "pointer from an unscanned slot to a scanned one",
          "go-weave's racy stack scan (issue 7: loses under every barrier); proc.go suspendG",
          "gc/mark.py markroot", "checkmark",
          {"workload": "concalloc.faultscenarios.stackmove", "procs": 2, "steps": 300,
           "gccheckmark": True}),
    Fault("nonatomic-shade",
          "greyobject sets a mark bit with a plain read-modify-write of its byte: two markers "
          "setting bits of one byte lose one of them",
          "EWD500's check-then-act shade (§B.3); Go's atomic.Or8 in greyobject",
          "gc/mark.py greyobject", "checkmark",
          {"workload": "tree", "procs": 2, "steps": 400, "live": 64, "gc_workers": 2,
           "gccheckmark": True},
          seed=4),
    Fault("no-allocate-black",
          "objects allocated during mark are born white: one held only by an already-scanned "
          "stack is freed",
          "mbarrier.go (the hybrid barrier needs allocate-black); gcmarknewobject",
          "mcache.py refill, malloc.py (markFrom / mark at allocation)", "pointer",
          {**_HIDE, "gccheckmark": False, "heapcheck": 2}),   # the pointer oracle, checkmark off
    Fault("wbbuf-unflushed",
          "mark completion never flushes the per-P write-barrier buffers: pointers shaded only "
          "in a wbBuf are still there at mark termination",
          "golang/go#27993 (P has cached GC work at end of mark termination)",
          "gc/cycle.py gcMarkDone", "mark-state",
          _HIDE),
    Fault("markdone-no-recheck",
          "mark completion skips the re-check with the world stopped: a wbBuf filled after the "
          "ragged barrier reaches mark termination unflushed",
          "golang/go#26903, #27993 (the re-check that works around the completion race)",
          "gc/cycle.py gcMarkDone", "mark-state",
          _HIDE),
    Fault("markdone-ignores-roots",
          "the mark-completion test ignores root jobs not yet done: mark can end before every "
          "stack is scanned",
          "golang/go#16083 (scan missed a g); go-weave models/issue16083.go",
          "gc/cycle.py _mark_work_done", "mark-state",
          {"workload": "ring", "procs": 2, "steps": 300, "live": 32, "gccheckmark": True},
          seed=3),
    Fault("wb-preempt-before-store",
          "the store decides on the barrier (reads it: off) before its safe point; the world "
          "stops there, mark starts, and the store lands unbarriered during mark",
          "golang/go#61958 (a preemption between the write-barrier check and the store)",
          "mutator.py Mutator (store)", "checkmark",
          {"workload": "concalloc.faultscenarios.swap", "procs": 3, "steps": 1000,
           "stack_scan": "stw-snapshot", "memory_limit": (1 << 63) - 1, "gccheckmark": True},
          seed=11),
    Fault("wb-skip-nil-old",
          "the barrier returns at once when the slot's old value is nil, so a pointer stored "
          "into an empty field of a black object is not shaded",
          "an 'optimisation' of the insertion half; issue 7's list",
          "gc/barrier.py make_barrier", "mark-state",    # the strong tricolour check, before checkmark
          _HIDE,
          seed=4),
    Fault("wb-skip-nil-new",
          "a store of nil emits no barrier, so deleting the last heap reference to an object "
          "held by a black stack does not shade it",
          "golang/go#18956 (no barrier for t = T{}; nil stores need the deletion shade)",
          "gc/barrier.py make_barrier", "checkmark",
          _HIDE,
          seed=2),
    Fault("wb-wrong-phase",
          "the barrier is installed but its body returns while root jobs are still running "
          "(the 'scan phase'), so stores during stack scanning shade nothing",
          "golang/go#11105 (barrier enabled in _GCscan, body checked for _GCmark)",
          "gc/barrier.py make_barrier", "checkmark",
          _HIDE),
    Fault("wb-deletion-reads-new",
          "the deletion half shades the slot's value after the store (the new pointer) instead "
          "of the old one",
          "golang/go#30871 (wasm's barrier got the deletion part wrong)",
          "gc/barrier.py make_barrier", "checkmark",
          _HIDE),
    Fault("sweep-no-swap-bits",
          "sweep forgets to make gcmarkBits the new allocBits (it only clears the marks): freed "
          "slots still read as allocated and the free-slot search disagrees with allocCount",
          "mgcsweep.go (s.allocBits = s.gcmarkBits); §B.5 #9 'sweep increased allocation count'",
          "gc/sweep.py sweepLocked.sweep", "verify_heap",
          {"workload": "churn", "procs": 2, "steps": 600, "live": 64}),
    Fault("span-use-after-free",
          "the sweeper returns an empty span to the heap but leaves it on its mcentral's "
          "nonempty list: cacheSpan later hands out (and writes to) a freed span",
          "golang/go#11267 (span metadata read after the span was freed and reused)",
          "mcentral.py freeSpan", "pointer",
          {"workload": "churn", "procs": 2, "steps": 600, "live": 64}),
    Fault("mcentral-unlocked",
          "uncacheSpan moves a span between an mcentral's lists without taking mcentral.lock",
          "mcentral.go (lock(&c.lock) around the list moves); assertLockHeld",
          "mcentral.py uncacheSpan", "lock",
          {"workload": "churn", "procs": 2, "steps": 300, "live": 64}),
    Fault("assist-debt-uncharged",
          "allocation during mark runs up no assist debt: mutators never assist and can outrun "
          "the collector",
          "mgcmark.go gcAssistAlloc / mallocgc's deductAssistCredit; proposal 44167",
          "mcache.py refill, malloc.py", "mark-state",
          {"workload": "ring", "procs": 2, "steps": 300, "live": 64}),
)

BY_NAME = {f.name: f for f in CATALOGUE}
NAMES = tuple(BY_NAME)


def get(name: str) -> Fault:
    return BY_NAME[name]


def validate(names) -> None:
    """Config.faults: a tuple of catalogue names (ConfigError otherwise)."""
    from .config import ConfigError
    if not isinstance(names, (tuple, list)):
        raise ConfigError("faults", f"must be a list of fault names, got {names!r}")
    for n in names:
        if n not in BY_NAME:
            raise ConfigError("faults", f"unknown fault {n!r}; known: {', '.join(NAMES)}")


def on(cfg, name: str) -> bool:
    """Is fault `name` injected in this run?  (Read at build/install time, not per operation.)"""
    return name in cfg.faults
