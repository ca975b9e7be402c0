"""Workload objects for the collector's tests (Runtime(cfg, workload=obj)).

Mover keeps a small random graph whose pointers travel heap -> stack ->
heap: each step it loads a pointer out of a node into a stack slot, clears
the field it came from, and later stores the pointer from the slot into
another node.  That is the pattern every incomplete barrier loses objects
on: with an insertion-only (Dijkstra) barrier and stacks scanned once, the
object sits only on an already-scanned stack while its heap reference is
deleted; with a deletion-only (Yuasa) barrier and stacks scanned
concurrently, an object only on a not-yet-scanned stack is stored into an
already-black node and dropped from the stack.  The graph workload never
keeps a loaded pointer in a stack slot, so it cannot show the first.
"""

from __future__ import annotations

from concalloc.memory import Type

FIELDS = 4
NODE = Type("movernode", 8 * FIELDS, range(FIELDS))


class Mover:
    """Roots in slots 0..nroots-1; slot `hand` carries a pointer between its
    load and its store (the object in flight)."""

    nroots = 6

    def __init__(self):
        self.rt = None

    def prepare(self, rt) -> None:
        self.rt = rt

    def slots(self, cfg) -> int:
        return self.nroots + 2

    def _walk(self, m, start: int) -> int:
        x = start
        for _ in range(m.rng.randrange(3)):
            y = m.load(x, m.rng.randrange(FIELDS))
            if not y:
                break
            x = y
        return x

    def run(self, m, cfg) -> None:
        rng = m.rng
        hand, tmp = self.nroots, self.nroots + 1
        while m.running():
            x = m.alloc(NODE.size, NODE)
            m.set_slot(tmp, x)
            r = m.slot(rng.randrange(self.nroots))
            if r:
                m.store(self._walk(m, r), rng.randrange(FIELDS), x)
            else:
                m.set_slot(rng.randrange(self.nroots), x)
            m.clear_slot(tmp)
            # Put the object in flight (if any) into a node, then pick up a new one.
            a = m.slot(rng.randrange(self.nroots))
            held = m.slot(hand)
            if a and held:
                m.store(self._walk(m, a), rng.randrange(FIELDS), held)
                m.clear_slot(hand)
            b = m.slot(rng.randrange(self.nroots))
            if b:
                src = self._walk(m, b)
                f = rng.randrange(FIELDS)
                y = m.load(src, f)
                if y and not m.slot(hand):
                    m.set_slot(hand, y)
                    m.store(src, f, 0)       # the heap reference is gone: y is only on the stack
