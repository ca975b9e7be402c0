"""lost_object: the lost-object scenario every concurrent collector must survive.

A global holds R; R.left points to A and A.left to B.  P0 (the mover) keeps
moving B between A.left and R.right: it loads B into a stack slot, stores it
into one object and deletes it from the other.  P1 (the reader) walks the
graph from the global and starts GC cycles.  If the collector has scanned R
(black) but not yet A (grey) when B moves from A to R, then B is reachable
only through R: the store into R must shade B (Dijkstra's half of Go's
hybrid barrier) or the deletion from A must (Yuasa's half), or B is never
marked and is freed while reachable.  The window is narrow (the marker
scans A right after R), so a search of seeds may run clean with the barrier
off; see docs/workloads.md:

    concalloc run --workload examples/lost_object.py --scheduler random --barrier none --gogc 5

The rules it keeps: an address held across a safe point (alloc, load,
store) sits in a stack slot; stores into the heap and the globals go through
m.store / m.set_global (barriered), slot writes do not; randomness is m.rng.
"""

from concalloc.check.violation import throw
from concalloc.memory import Type

DESCRIPTION = "two mutators move one object between two parents while GC cycles run (a lost-object test)"
NODE = Type("lostnode", 24, [0, 1])   # left, right: pointers; word 2: a value
LEFT, RIGHT, VALUE = 0, 1, 2
ROOT = 0                              # the global that holds R
GC_EVERY = 50                         # the reader asks for a cycle about every GC_EVERY steps
OBJECT_NAMES = ("R", "A", "B")        # setup's allocations, by name in `concalloc explain` stories


def slots(cfg) -> int:
    return 3


def validate(cfg) -> None:
    if cfg.nmutators() < 2:
        from concalloc.config import ConfigError
        raise ConfigError("mutators", "lost_object needs two mutators (a mover and a reader)")


def setup(m, cfg) -> None:
    """On P0, before either mutator runs: R -> A -> B, R in global ROOT."""
    r = m.new(NODE)
    m.set_slot(0, r)                 # held across the next allocations: in a slot
    a = m.new(NODE)
    m.store(r, LEFT, a)
    b = m.new(NODE)
    m.write_word(b, VALUE, 42)
    m.store(a, LEFT, b)
    m.set_global(ROOT, r)            # published: reachable from the data segment
    m.clear_slot(0)


def run(m, cfg) -> None:
    (_move if m.p.id == 0 else _read)(m)


def _move(m) -> None:
    """P0: B goes from A.left to R.right and back, held in slot 2 meanwhile."""
    while m.running():
        m.new(NODE)                  # garbage: the run's progress, and a safe point
        r = m.get_global(ROOT)
        m.set_slot(0, r)
        a = m.load(r, LEFT)
        m.set_slot(1, a)
        b = m.load(a, LEFT)
        if b:                        # B under A: insert into R, then delete from A
            m.set_slot(2, b)
            m.store(r, RIGHT, b)
            m.store(a, LEFT, 0)
        else:                        # B under R: back under A
            b = m.load(r, RIGHT)
            m.set_slot(2, b)
            m.store(a, LEFT, b)
            m.store(r, RIGHT, 0)
        for i in range(3):
            m.clear_slot(i)


def _read(m) -> None:
    """P1: find B from the global and check its value; start a cycle now and then."""
    step = asked = 0
    while m.running():
        m.new(NODE)
        r = m.get_global(ROOT)
        m.set_slot(0, r)
        a = m.load(r, LEFT)
        b = m.load(a, LEFT) or m.load(r, RIGHT)
        if b and m.read_word(b, VALUE) != 42:     # a Violation ends the run with exit 1
            throw("lost_object.value", f"B holds {m.read_word(b, VALUE)}, not 42: it was freed and reused",
                  address=b)
        m.clear_slot(0)
        step += 1
        # A cycle every GC_EVERY steps (a random step now and then), once the last one asked
        # for has ended: requests made faster than cycles end would queue up.
        if (step % GC_EVERY == 0 or m.rng.random() < 0.01) and m.rt.nchecks >= asked:
            asked = m.rt.nchecks + 1
            m.gc_start()
