"""swap: the mutators take turns replacing the object in one shared field.

A shared node S (at the end of a chain of CHAIN nodes from global 0, so the
marker reaches it late; on no stack) has one field
that always holds some object (value 42).  Each mutator loops, after a
few garbage allocations, at random either taking the current object into
one of KEEP stack slots (kept there for KEEP takes, its value checked when
it is dropped) or replacing it with a fresh object, overwriting what another
mutator may be keeping.  A list of BALLAST
live nodes keeps each cycle's marking long enough for that to happen in it.  With stacks black from
the start of mark (--stack-scan stw-snapshot), an object one P loaded
after its stack was scanned is kept only by the deletion shade of the store
that overwrites it -- which a store whose barrier was decided before its safe
point, while the collector was off, does not run (golang/go#61958).
"""

from concalloc.check.violation import throw
from concalloc.memory import Type

DESCRIPTION = "mutators replace the object in one shared field while others hold it (fault scenarios)"
NODE = Type("swapnode", 16, [0])            # word 0: the shared field; word 1: a value
VALUE = 1
MAGIC = 42
HOLD = 10                                   # at most this many garbage allocations between turns
KEEP = 16                                    # each mutator keeps the objects of its last KEEP turns
GARBAGE_SIZE = 16
CHAIN = 6
BALLAST = 60                               # live nodes the marker must get through each cycle
GC_RATE = 0.1                               # P0 asks for a cycle after this fraction of its allocations


def slots(cfg) -> int:
    return 2 + KEEP


def setup(m, cfg) -> None:
    """global 0 -> CHAIN nodes -> S -> the first object."""
    x = _chain(m, 0, CHAIN)
    y = m.new(NODE)
    m.write_word(y, VALUE, MAGIC)
    m.store(x, 0, y)
    m.clear_slot(0)
    _ballast(m)


def _chain(m, g: int, n: int) -> int:
    """global g -> a list of n + 1 nodes; returns the last, held in slot 0."""
    x = m.new(NODE)
    m.set_global(g, x)
    for _ in range(n):
        m.set_slot(0, x)
        y = m.new(NODE)
        m.store(x, 0, y)
        x = y
    m.set_slot(0, x)
    return x


def _ballast(m) -> None:
    """global 1 -> a list of BALLAST nodes: marking takes a while."""
    _chain(m, 1, BALLAST)
    m.clear_slot(0)


def _hold(m) -> None:
    for _ in range(m.rng.randrange(HOLD)):
        m.alloc(GARBAGE_SIZE)
        if m.p.id == 0 and m.rng.random() < GC_RATE:
            m.gc_start()                      # a cycle now and then (a no-op while one runs)


def _check(m, y: int) -> None:
    v = m.read_word(y, VALUE)
    if v != MAGIC:
        throw("scenario.lost", f"object {y:#x} holds {v}, not {MAGIC}: it was freed and reused", address=y)


def run(m, cfg) -> None:
    s = m.get_global(0)
    for _ in range(CHAIN):                    # S is reachable from global 0 through nodes nobody changes
        s = m.load(s, 0)
    n = 0
    while m.running():
        _hold(m)
        if m.rng.random() < 0.5:              # take the current object, keep it a while
            keep = 2 + n % KEEP
            n += 1
            old = m.slot(keep)
            if old:
                _check(m, old)                # kept for KEEP takes: still intact?
            m.set_slot(keep, m.load(s, 0))
        else:                                 # replace it for everyone
            z = m.new(NODE)
            m.write_word(z, VALUE, MAGIC)
            m.set_slot(1, z)
            m.store(s, 0, z)
            m.clear_slot(1)
