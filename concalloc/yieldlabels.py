"""Every yield-point label, with what happens there.

A yield point is where a controlled scheduler may switch threads; its label
is recorded with each decision ("P1:store"), so a saved schedule replays only
while labels stay the same: rename one and every saved schedule breaks.
Hence one table, and a test (tests/test_yield_labels.py) that fails when the
code uses a label the table lacks or the table keeps one nobody uses.

Fixed labels name a step; families are labels built with a name in them
(a lock's, a thread's), written here with {name}.  The vtime cost table
prices labels by the same names (concalloc/data/costs-default.toml).

A yield point is not a safe point: safe points are only at the top of a
mutator's alloc, load and store and at m.safepoint() (mutator.py), and no yield is allowed
between a write-barrier record and its store being published in a way that
lets a stack scan in (the barrier's yields are not safe points).
"""

from __future__ import annotations

LABELS: dict[str, str] = {
    # the mutator (mutator.py): each is followed by its safe point
    "alloc": "a mutator is about to allocate",
    "load": "a mutator is about to load a pointer field (also get_global)",
    "store": "a mutator is about to store a pointer field (also set_global)",
    "safepoint": "a mutator's m.safepoint(): a safe point with no memory access (a call's prologue)",
    "step": "a mutator's m.step(): other threads may run, no stack scan or stop-the-world can",
    # the write barrier (gc/barrier.py)
    "wb.read_old": "the barrier has read the slot's old value, not yet recorded it (go-weave's interruption point)",
    "wb.shade": "the barrier has recorded its pointers; the store itself comes next",
    # marking (gc/mark.py)
    "mark.greyobject": "an object's mark bit was just set (greyobject)",
    "mark.scan_field": "the marker is about to load one pointer field of the object it scans",
    "scan.stack_slot": "a stack scan is about to read one slot",
    "scan.global": "the globals' root job is about to read one global",
    "markroot.stack": "a worker has claimed a stack's root job and asks its P for a safe point",
    "mark.drain_order": "--mark-order weave: the marker's next unit is a root job if the scheduler "
                        "keeps it running here, else a grey object",
    "mark.root_order": "--mark-order weave: the marker claims this root job if the scheduler keeps it "
                       "running here, else looks at the next one left",
    "fault.shade_racy": "fault nonatomic-shade: the marker read a mark byte and has not yet written it back",
    "assist.start": "an allocating P starts scanning to pay its assist debt",
    "assist.park": "an allocating P in debt with no work is about to park for credit",
    # mark completion (gc/cycle.py)
    "gc.fractional.wait": "vtime: a fractional mark worker ahead of its share, off its P until its next scheduling point",
    "gc.schedpoint.wait": "vtime: a mark worker woken for new work reaches it at its P's next scheduling point",
    "markdone.ragged": "workers idle: the ragged barrier (forEachP flush) comes next",
    "markdone.recheck": "the world is stopped: the re-check of every buffer comes next",
    # sweeping and scavenging (gc/sweep.py, gc/scavenge.py)
    "sweep.acquire": "a sweeper won a span (sweepgen h-2 -> h-1) and is about to sweep it",
    "sweep.sweep": "a span's sweep is about to publish its new sweepgen",
    "sweep.span": "the background sweeper swept one span",
    "sweep.flip": "gcSweep has flipped mheap.sweepgen, the queues not yet reset",
    "scavenge.quantum": "the scavenger released one 64 KiB quantum",
    # the scheduler itself (sync/controlled.py)
    "start": "a controlled run's first decision",
    "exit": "a thread ended",
    "next": "the machine-repairman lock loop's next round (repairman.py, vtime's check)",
}

FAMILIES: dict[str, str] = {
    "{name}.lock": "about to take lock {name} (sync/mutex.py)",
    "{name}.unlock": "lock {name} was just released",
    "{name}.release": "vtime: about to release lock {name} (sync/vtime.py)",
    "wait {name}.lock": "blocked on lock {name}",
    "wait {name}": "blocked on condition or event {name} (sync/waits.py)",
    "spawn {name}": "thread {name} was started",
    "join {name}": "waiting for thread {name} to end",
}
