"""stackmove: each mutator keeps one object only on its stack and moves it between slots.

The object B (value 42) is allocated before the loop and never stored into
the heap: its only reference moves from stack slot 1 to slot 0 and back,
with an allocation (a safe point) between the moves.  A stack scan that
runs while the owner is stopped at a safe point sees B in one slot or the
other; a scan that races its owner (reads slot 0, then slot 1, while the
owner moves B from 1 to 0 in between) sees neither, and no write barrier
can help, since stack writes take none.  Every step checks B still holds 42.
"""

from concalloc.check.violation import throw
from concalloc.memory import Type

DESCRIPTION = "each mutator moves its only reference to an object between two stack slots (fault scenarios)"
NODE = Type("stacknode", 24, [0, 1])
VALUE = 2
MAGIC = 42


def slots(cfg) -> int:
    return 2


def run(m, cfg) -> None:
    b = m.new(NODE)
    m.write_word(b, VALUE, MAGIC)
    m.set_slot(1, b)
    i = 1
    while m.running():
        m.new(NODE)                       # garbage: a safe point, and regs no longer hold B
        j = 1 - i
        m.set_slot(j, b)                  # the move: no barrier, as every stack write
        m.clear_slot(i)
        i = j
        v = m.read_word(b, VALUE)
        if v != MAGIC:
            throw("scenario.lost", f"B {b:#x} holds {v}, not {MAGIC}: it was freed and reused", address=b)
