"""tree: build and drop binary trees, the classic GC benchmark shape.

One long-lived tree of depth about log2(live) stays rooted in slot 0 for the
whole run; short-lived trees of growing depth are built and dropped.  A node
is three words: left, right (pointers) and a value.  While a tree is built
each node under construction sits in the stack slot of its depth."""

from __future__ import annotations

from ..memory import Type

DESCRIPTION = "build and drop binary trees; one long-lived tree of about --live nodes"
NODE = None
MAX_SHORT_DEPTH = 8


def _node_type() -> Type:
    global NODE
    if NODE is None:
        NODE = Type("treenode", 24, [0, 1])
    return NODE


def long_depth(cfg) -> int:
    return max(1, min(16, cfg.live.bit_length() - 1))


def slots(cfg) -> int:
    return 2 + max(long_depth(cfg), MAX_SHORT_DEPTH) + 1


def validate(cfg) -> None:
    pass


def _build(m, node, depth: int, slot: int) -> int:
    x = m.new(node)
    m.set_slot(slot, x)
    m.write_word(x, 2, depth)
    if depth > 0 and m.running():
        # x is re-read from its slot after each subtree: building one allocates,
        # and under a moving allocator (--allocator bump) objects move then.
        left = _build(m, node, depth - 1, slot + 1)
        m.store(m.slot(slot), 0, left)
        if m.running():      # the left subtree may have used the last steps
            right = _build(m, node, depth - 1, slot + 1)
            m.store(m.slot(slot), 1, right)
        m.clear_slot(slot + 1)
    return m.slot(slot)


def run(m, cfg) -> None:
    node = _node_type()
    m.set_slot(0, _build(m, node, long_depth(cfg), 1))
    m.clear_slot(1)
    depth = 1
    while m.running():
        _build(m, node, depth, 1)   # built, rooted in slot 1, then dropped
        m.clear_slot(1)
        depth = depth % MAX_SHORT_DEPTH + 1
