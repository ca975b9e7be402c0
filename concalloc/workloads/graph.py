"""graph: a live random graph whose pointer fields are rewired continually.

Each node has FIELDS pointer words.  A quarter of the `live` nodes are roots
(stack slots); the rest are reachable only through other nodes, so a lost
write barrier shows up as a lost object.  Each step allocates one node,
links it in, and does REWIRES random walks that load a pointer and store it
somewhere else (the write-barrier workout)."""

from __future__ import annotations

from ..memory import Type

DESCRIPTION = "a random graph of --live nodes rewired continually (write-barrier workout)"
FIELDS = 4
REWIRES = 4
WALK = 3


def slots(cfg) -> int:
    return max(1, cfg.live // 4) + 1


def validate(cfg) -> None:
    pass


def _walk(m, rng, start: int) -> int:
    x = start
    for _ in range(rng.randrange(WALK + 1)):
        y = m.load(x, rng.randrange(FIELDS))
        if not y:
            break
        x = y
    return x


def run(m, cfg) -> None:
    rng = m.rng
    node = Type("graphnode", 8 * FIELDS, range(FIELDS))
    nroots = len(m.stack) - 1
    tmp = nroots  # a scratch slot for the node being linked in
    while m.running():
        x = m.alloc(node.size, node)
        m.set_slot(tmp, x)
        r = m.slot(rng.randrange(nroots))
        if r:
            m.store(x, rng.randrange(FIELDS), _walk(m, rng, r))
            m.store(_walk(m, rng, r), rng.randrange(FIELDS), x)
        m.set_slot(rng.randrange(nroots), x)
        m.clear_slot(tmp)
        for _ in range(REWIRES):
            a = m.slot(rng.randrange(nroots))
            b = m.slot(rng.randrange(nroots))
            if a and b:
                m.store(_walk(m, rng, a), rng.randrange(FIELDS), _walk(m, rng, b))
