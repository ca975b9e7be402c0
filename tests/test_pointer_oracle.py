"""heapcheck=2: every mutator load and store of a pointer field is checked,
and a bad one ends the run with exit code 1 and the invariant's name."""

import pytest

from concalloc.check.violation import Violation
from concalloc.config import Config
from concalloc.memory import Type
from concalloc.runtime import EXIT_OK, EXIT_VIOLATION, Runtime

NODE = Type("oracle-node", 16, [0])


class OneShot:
    """A workload that runs `body(m)` once on each mutator."""

    def __init__(self, body):
        self.body = body

    def slots(self, cfg):
        return 4

    def run(self, m, cfg):
        self.body(m)


def _run(body, heapcheck=2, scheduler="os"):
    cfg = Config(procs=1, steps=100, scheduler=scheduler, heapcheck=heapcheck, reserve_bytes=1 << 30)
    with Runtime(cfg, workload=OneShot(body)) as rt:
        return rt.run()


def store_into_noscan(m):
    x = m.alloc(64)
    m.set_slot(0, x)
    y = m.new(NODE)
    m.store(x, 0, y)


def store_pointer_to_free_slot(m):
    x = m.new(NODE)
    m.set_slot(0, x)
    m.store(x, 0, x + 16)   # the next 16-byte slot of x's span: not allocated yet


def load_outside_the_slot(m):
    x = m.new(NODE)
    m.set_slot(0, x)
    m.load(x, 2)


def load_non_pointer_word(m):
    x = m.new(NODE)
    m.set_slot(0, x)
    m.load(x, 1)


def load_from_free_object(m):
    x = m.new(NODE)
    m.set_slot(0, x)
    m.load(x + 16, 0)


def store_outside_heap_object(m):
    m.store(0xC000000000 - 4096, 0, 0)


def store_pointer_into_unused_page(m):
    x = m.new(NODE)
    m.set_slot(0, x)
    m.store(x, 0, m.rt.heap.mheap.curArenaEnd - 4096)   # mapped, never held a span


BIG = Type("oracle-big", 40000, [0])


def store_past_a_large_object(m):
    x = m.new(BIG)
    m.set_slot(0, x)
    m.store(x, 40000 // 8, 0)      # the first word after the object, inside its last page


def store_bad_pointer_into_global(m):
    x = m.new(NODE)
    m.set_slot(0, x)
    m.set_global(0, x + 16)


def load_field_whose_pointer_bit_was_cleared(m):
    """The oracle reads the heap bitmap, not the type: a pointer field whose
    bit is gone is no longer a pointer field."""
    from concalloc import mbitmap
    x = m.new(NODE)
    m.set_slot(0, x)
    s = m.rt.heap.mheap.spanOfHeap(x)
    bm, w = mbitmap._bitmap_for(s, x)
    bm[w >> 2] &= ~(mbitmap.BIT_POINTER << (w & 3))
    m.load(x, 0)


CASES = [
    (load_field_whose_pointer_bit_was_cleared, "mutator.not_a_pointer"),
    (store_pointer_into_unused_page, "mutator.bad_pointer"),
    (store_past_a_large_object, "mutator.bad_field"),
    (store_bad_pointer_into_global, "mutator.bad_pointer"),
    (store_into_noscan, "mutator.not_a_pointer"),
    (store_pointer_to_free_slot, "mutator.bad_pointer"),
    (load_outside_the_slot, "mutator.bad_field"),
    (load_non_pointer_word, "mutator.not_a_pointer"),
    (load_from_free_object, "mutator.free_object"),
    (store_outside_heap_object, "mutator.bad_object"),
]


@pytest.mark.parametrize("scheduler", ["os", "random"])
@pytest.mark.parametrize("body,invariant", CASES, ids=[c[1] + ":" + c[0].__name__ for c in CASES])
def test_bad_access_is_a_violation(body, invariant, scheduler):
    res = _run(body, scheduler=scheduler)
    assert res.exit_code == EXIT_VIOLATION, res.error
    assert isinstance(res.error, Violation) and res.error.invariant == invariant, res.error
    assert "replay:" in str(res.error)


def test_not_a_pointer_names_the_bits_and_the_recorded_type():
    res = _run(load_non_pointer_word)
    assert "heap bits say scalar" in res.error.message and "type oracle-node" in res.error.message


@pytest.mark.parametrize("body", [store_into_noscan, store_pointer_to_free_slot, load_non_pointer_word])
def test_heapcheck_1_does_not_look(body):
    # The oracle is bound only at heapcheck=2: the same program runs clean below it.
    assert _run(body, heapcheck=1).exit_code == EXIT_OK


def test_word_access_outside_the_heap_is_refused():
    from concalloc.memory import BadAddress

    def body(m):
        with pytest.raises(BadAddress):
            m.write_word(0xC000000000 - 0x10000, 0, 1)   # below the heap and the data segment
        with pytest.raises(BadAddress):
            m.read_word(0xC000000000 + 4, 0)          # unaligned
    assert _run(body, heapcheck=0).exit_code == EXIT_OK


def test_good_accesses_pass():
    def body(m):
        a = m.new(NODE)
        m.set_slot(0, a)
        b = m.new(NODE)
        m.store(a, 0, b)
        m.store(a, 0, b + 8)   # interior pointers are pointers
        assert m.load(a, 0) == b + 8
        m.store(a, 0, 0)
    assert _run(body).exit_code == EXIT_OK
