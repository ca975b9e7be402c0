"""hide-pointer: the classic lost objects, one fixed program for every barrier.

Each mutator i owns A (in global 2i) holding C in A.0, and B, on its stack
only (slot 0).  P0 starts a GC cycle once the world is built; every mutator
waits for the mark phase, then runs the same steps, timed only by its own
stack scan (p.gcscandone) and the schedule:

    before its stack is scanned (Yuasa's hole: a deletion barrier needs the
    stacks scanned first):
        N = new()                 allocated during mark: black
        store(N, 0, B)            B into a black object; a deletion barrier
                                  shades the old value (nil), not B
        global 2i+1 = N           published
        clear_slot(0)             B off the stack (a stack write: no barrier)
    once its stack is scanned (Dijkstra's hole: an insertion barrier needs
    the stacks rescanned):
        C = load(A, 0); set_slot(0, C)   C onto the black stack
        store(A, 0, nil)                 out of the heap; an insertion
                                         barrier shades the new value (nil)

and exits with C on its stack.  So:

    none                 loses B or C
    dijkstra+concurrent  loses C, if A is scanned after the deletion (with one
                         mark worker A waits for every stack, so it usually is)
    yuasa+concurrent     loses B, if the stack scan comes after clear_slot
    hybrid, dijkstra+rescan, yuasa+stw-snapshot lose neither

The loss is seen by GODEBUG gccheckmark=1 at mark termination ("checkmark
found unmarked object", with its path from a root): run it with
--godebug gccheckmark=1, as barrier-matrix does.

    concalloc run --workload hide-pointer --procs 2 --scheduler random \\
        --barrier yuasa --godebug gccheckmark=1
"""

from __future__ import annotations

import weakref

from concalloc.config import ConfigError
from concalloc.memory import Type

DESCRIPTION = "the classic lost objects: B hidden before the stack scan, C after it, in one GC cycle"

NODE = Type("hidenode", 8, [0])

_targets: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # Runtime -> [cycle]


def validate(cfg) -> None:
    if getattr(cfg, "allocator", "go") != "go":
        raise ConfigError("allocator", "hide-pointer needs a concurrent collector: it runs on Go's "
                                       "(--allocator go), not a survey method's stop-the-world one")


def slots(cfg) -> int:
    # 0: B, later C; 1: the object being built; on P0, 2..: setup's hold on every B
    return 2 + max(1, cfg.nmutators())


def globals(cfg) -> int:
    return 2 * max(1, cfg.nmutators())   # 2i: mutator i's A; 2i+1: its N


def setup(m, cfg) -> None:
    """On P0: every mutator's A (global 2i) -> C, and B on that mutator's stack.
    Writing another mutator's stack (its first frame) takes no barrier, and a
    cycle these allocations kicked may have scanned it already: P0 holds
    every B in its slots 2.. until no such cycle runs (run() drops them)."""
    for i, mu in enumerate(m.rt.mutators):
        a = m.new(NODE)
        m.set_global(2 * i, a)
        m.set_slot(1, m.new(NODE))   # C, in a slot until it is in A
        m.store(a, 0, m.slot(1))
        b = m.new(NODE)
        m.set_slot(2 + i, b)
        mu.set_slot(0, b)            # B: on that mutator's stack (and setup's hold)
    m.clear_slot(1)
    m.regs[0] = 0                    # the last allocation is on a stack now
    _targets[m.rt] = [0]


def run(m, cfg) -> None:
    target = _targets[m.rt]          # [the model's cycle]: P0's single store, read by the others
    gc = m.rt.gc
    if m.p.id == 0:
        # A cycle setup's allocations kicked may be on: let it end, drop setup's
        # hold on the Bs (the next cycle starts with the world built), start ours.
        m.park_until(lambda: gc.started == gc.numgc)
        for i in range(len(m.rt.mutators)):
            m.clear_slot(2 + i)
        while not m.gc_start():
            m.park_until(lambda: gc.started == gc.numgc)
        target[0] = gc.numgc + 1
    m.park_until(lambda: target[0] and gc.started == target[0] and (gc.phase != 0 or gc.numgc >= target[0]))
    if gc.numgc >= target[0]:
        return
    i = m.p.id
    # Before the stack scan: B into a new (black) object, then off the stack.
    n = m.new(NODE)
    m.set_slot(1, n)
    m.store(n, 0, m.slot(0))
    m.set_global(2 * i + 1, n)
    m.clear_slot(1)
    m.clear_slot(0)
    # After it: C out of A onto the stack.
    m.park_until(lambda: m.p.gcscandone)
    a = m.get_global(2 * i)
    m.set_slot(0, m.load(a, 0))
    m.store(a, 0, 0)

