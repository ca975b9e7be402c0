"""random-program: random loads, stores, allocations and slot writes over a small shared heap.

Setup (P0) allocates --live objects of two pointer words and a tag word,
chains them, links them at random, and publishes some in the globals.  Each mutator then
runs a program drawn step by step from its m.rng, over REGS stack slots
that act as its registers:

    alloc         r[i] = new(node)                       (a safe point)
    load          r[i] = load(r[j], f)                   (a safe point)
    store         store(r[j], f, r[i])                   (barriered; a safe point)
    slot write    r[i] = r[j], or r[i] = nil             (a stack write: no barrier)
    global load   r[i] = global g
    global store  global g = r[i]                        (barriered)
    gc            m.gc_start(), now and then

so every pointer it holds is in a slot, and every object it touches is
reachable (it only reaches objects through its slots and the globals).  A
loaded object's tag word must still be set: a lost object freed by the
sweep and reused reads back zero ("random_program.freed"); gccheckmark=1
catches the loss earlier, at mark termination.  Under a controlled
scheduler a run is a pure function of (config, seed).

    concalloc run --workload random-program --live 6 --procs 2 --scheduler random --barrier yuasa \\
        --godebug gccheckmark=1 --gogc 5
"""

from __future__ import annotations

from concalloc.check.violation import throw
from concalloc.memory import Type

DESCRIPTION = "random loads, stores, allocations and slot writes over a small shared heap of --live objects"

NODE = Type("rpnode", 24, [0, 1])   # two pointers and a tag
TAG = 0x7A6
REGS = 4
GLOBALS = 2
GC_EVERY = 64                       # about one gc_start per this many steps
OPS = ("alloc", "load", "load", "store", "store", "slot", "gload", "gstore")


def slots(cfg) -> int:
    return REGS


def globals(cfg) -> int:
    return GLOBALS


def setup(m, cfg) -> None:
    """On P0: --live objects, GLOBALS of them in the globals.  Field 1 chains
    each to the one allocated before it (slot 0, the newest, reaches them
    all while the heap is built: no address is held in Python across an
    allocation, so a moving collector may run), then field 0 of each points
    to a random one or nil."""
    rng = m.rng
    n = cfg.live
    for _ in range(n):
        x = m.new(NODE)
        m.write_word(x, 2, TAG)
        m.store(x, 1, m.slot(0))
        m.set_slot(0, x)
    objs = []                        # no allocation from here on: the addresses stay put
    x = m.slot(0)
    while x:
        objs.append(x)
        x = m.read_word(x, 1)
    for x in objs:
        m.store(x, 0, objs[rng.randrange(n)] if rng.random() < 0.8 else 0)
    for g in range(GLOBALS):
        m.set_global(g, objs[rng.randrange(n)])
    m.clear_slot(0)                  # from here the globals (and the mutators' stores) decide
    m.regs[0] = 0


def run(m, cfg) -> None:
    rng = m.rng
    while m.running():
        op = OPS[rng.randrange(len(OPS))]
        i, j, f = rng.randrange(REGS), rng.randrange(REGS), rng.randrange(2)
        if op == "alloc":
            x = m.new(NODE)
            m.write_word(x, 2, TAG)
            m.set_slot(i, x)
        elif op == "load":
            src = m.slot(j)
            if src:
                v = m.load(src, f)
                if v:
                    _check(m, v)
                m.set_slot(i, v)
        elif op == "store":
            dst = m.slot(j)
            if dst:
                m.store(dst, f, m.slot(i))
        elif op == "slot":
            m.set_slot(i, m.slot(j) if rng.random() < 0.7 else 0)
        elif op == "gload":
            v = m.get_global(rng.randrange(GLOBALS))
            if v:
                _check(m, v)
            m.set_slot(i, v)
        else:
            m.set_global(rng.randrange(GLOBALS), m.slot(i))
        if rng.randrange(GC_EVERY) == 0:
            m.gc_start()


def _check(m, x: int) -> None:
    if m.read_word(x, 2) != TAG:
        throw("random_program.freed", f"object {x:#x} holds tag {m.read_word(x, 2):#x}, not {TAG:#x}: "
                                      "it was freed while reachable", address=x)
