"""hide: each mutator hides a "pocket" object from the marker, by insertion and by deletion.

Two shared roots, both nodes with one pointer field per mutator:

* Rs, "shallow": global 0 and every mutator's stack slot 0, so it is grey
  as soon as one stack is scanned;
* Rd, "deep": the end of a chain of CHAIN nodes from global 1, on no stack,
  so the marker reaches it late.

Each mutator has one pocket object (value 42) that lives for POCKET_ROUNDS
rounds (so a lost pocket stays reachable until mark termination's checks
see it), then is replaced by a fresh one -- allocated during mark, after
this P's stack scan, only allocate-black keeps it.  Each round:

1. the pocket sits only in stack slot 1;
2. insertion: it is stored into Rs's (nil) field and the slot cleared.  If Rs
   is already black and this P's stack not yet scanned, only the insertion
   shade (Dijkstra's half of the barrier) keeps it;
3. it is loaded back into slot 1 and nil stored into Rs's field;
4. the same through Rd: stored into Rd's field, slot cleared, loaded back,
   nil stored.  If this P's stack is already black and Rd not yet scanned,
   only the deletion shade of the nil store (Yuasa's half) keeps it;
5. it is stored into a freshly allocated carrier (black, if allocated during
   mark) kept in slot 2, and slot 1 cleared; later taken back.  If this P's
   stack is not yet scanned, only the insertion shade keeps it: the stack
   scan finds the carrier already black and does not look inside.

Between steps the mutator allocates a random stretch (up to DWELL) of small
noscan garbage, so that a cycle often starts, or a stack is scanned, while
the pocket rests; P0 asks for a cycle at each of its allocations (a no-op
while one runs), so cycles run back to back without a memory limit -- whose
assist pressure would park the mutators while the marker runs.  The
pocket's value is checked every round (a freed and reused pocket is seen
even with checkmark off).  Go's hybrid barrier with allocate-black keeps
every pocket (`dijkstra` loses one on every seed tried, `yuasa` on about
half); each catalogue fault that weakens one of those can lose one.
"""

from concalloc.check.violation import throw
from concalloc.config import ConfigError
from concalloc.memory import Type

DESCRIPTION = "each mutator hides a pocket object by insertion and by deletion (fault scenarios)"
FIELDS = 4                                # field 0: the chain; 1..3: one per mutator
NODE = Type("hidenode", 8 * (FIELDS + 1), range(FIELDS))   # word FIELDS: a value
VALUE = FIELDS
MAGIC = 42
CHAIN = 6                                 # nodes from global 1 to Rd
GARBAGE_SIZE = 16                         # bytes (noscan): no assist pressure
POCKET_ROUNDS = 4
DWELL = 40                                # at most this many garbage allocations per rest


def slots(cfg) -> int:
    return 3


def validate(cfg) -> None:
    if cfg.nmutators() > FIELDS - 1:
        raise ConfigError("mutators", f"hide runs at most {FIELDS - 1} mutators")


def setup(m, cfg) -> None:
    """On P0 first: Rs in global 0; global 1 -> chain -> Rd."""
    rs = m.new(NODE)
    m.set_global(0, rs)
    head = m.new(NODE)
    m.set_global(1, head)
    x = head
    for _ in range(CHAIN):
        m.set_slot(1, x)              # held across the allocation
        y = m.new(NODE)
        m.store(x, 0, y)
        x = y
    m.clear_slot(1)


def _check(m, x: int) -> None:
    v = m.read_word(x, VALUE)
    if v != MAGIC:
        throw("scenario.lost", f"pocket {x:#x} holds {v}, not {MAGIC}: it was freed and reused", address=x)


def _dwell(m) -> None:
    """A random stretch of garbage allocations: long enough that a cycle
    often starts, or a stack is scanned, while the pocket rests."""
    for _ in range(m.rng.randrange(DWELL)):
        m.alloc(GARBAGE_SIZE)
        if m.p.id == 0:
            m.gc_start()                  # cycles back to back (a no-op while one runs)


def run(m, cfg) -> None:
    f = 1 + m.p.id
    rs = m.get_global(0)
    m.set_slot(0, rs)
    rd = m.get_global(1)
    for _ in range(CHAIN):            # reachable from global 1 through nodes nobody changes
        rd = m.load(rd, 0)
    n = 0
    while m.running():
        if n % POCKET_ROUNDS == 0:
            x = m.new(NODE)
            m.write_word(x, VALUE, MAGIC)
            m.set_slot(1, x)
        n += 1
        _dwell(m)                         # 1: on the stack only
        m.store(rs, f, m.slot(1))         # 2: into Rs's nil field, off the stack
        m.clear_slot(1)
        x = m.load(rs, f)                 # 3: back onto the stack; Rs's field nil again
        m.set_slot(1, x)
        m.store(rs, f, 0)
        m.store(rd, f, x)                 # 4: into Rd, off the stack ...
        m.clear_slot(1)
        _dwell(m)
        x = m.load(rd, f)                 # ... back onto the stack; Rd's field nil again
        m.set_slot(1, x)
        m.store(rd, f, 0)
        _check(m, x)
        _dwell(m)
        c = m.new(NODE)                   # 5: into a fresh carrier (black during mark) ...
        m.set_slot(2, c)
        m.store(c, f, x)
        m.clear_slot(1)
        _dwell(m)
        m.set_slot(1, m.load(c, f))       # ... and back; the carrier is dropped
        m.clear_slot(2)
