"""weave: go-weave's write-barrier model, run against our real collector.

go-weave (aclements/go-misc, go-weave/models/yuasa.go) is the model the Go
team searched to choose the hybrid barrier.  Its world: 2 mutators whose
stacks have 2 pointer slots, a global root with 2 slots, 3 heap objects with
2 pointer slots each, all filled at random; each mutator makes 2 iterations
of "pick a source, pick a destination and a slot, write"; one collector
greys the roots, drains, and checks that everything reachable is marked.
Here the same world and the same choices run as a workload, and the
collector is ours: one real cycle (root jobs, background worker, concurrent
stack scans at safe points, mark completion, mark termination) runs beside
the two mutators, and GODEBUG gccheckmark=1 is go-weave's checkmark().

How each piece maps (go-weave -> here):

    mem[stackBase+tid]     P<tid>'s stack slots 0 and 1 (m.set_slot: no barrier)
    mem[globalRoot]        globals 0 and 1, the whole data segment (globals(cfg)
                           is 2; m.set_global is barriered, as Go's stores are)
    mem[heapBase+i]        three objects of Type weave (16 bytes, both words
                           pointers), allocated by setup on P0
    random initial memory  every slot of the stacks, the global and the heap
                           gets ambHeapPointer(): nil, the global or a heap
                           object, drawn from P0's m.rng in go-weave's order
    a pointer to the       the global is a root, and Go cannot take a heap
      global or a stack    pointer to a stack: such a value (go-weave allows
                           both) reaches nothing a root does not, so it is
                           stored as nil.  The choices keep go-weave's
                           counts (the same candidates, in the same order),
                           so reachability, and every later choice, is the
                           one go-weave's amb makes for the same draws
    ambPointer(...)        _amb_pointer: the candidates (nil, own stack,
                           anything reachable from the global or own stack),
                           computed from the real memory without yielding,
                           as go-weave's mark() does, and one m.rng draw
    stackLocks[tid]        held over one iteration: no safe point inside it.
                           m.safepoint() between iterations is where the
                           collector may scan this stack (concurrent) or
                           stop the world; m.step() after the source is
                           picked is go-weave's sched.Sched(), a yield only
    the picked pointers    held in stack slots 2 (source) and 3
                           (destination) over the write, as a compiled Go
                           function keeps them live in registers: m.store's
                           top is a safe point go-weave does not have, and a
                           stack scanned there sees them
    writePointer           stack: m.set_slot; global: m.set_global; heap:
                           m.store, whose barrier (gc/barrier.py) reads the
                           old value, yields ("wb.read_old", go-weave's
                           interruption point), records it, yields
                           ("wb.shade") and stores
    the pace               go-weave's collector takes about 2 scheduling
                           steps per object it scans, ours 10 to 20 (root
                           jobs, locks, safe-point requests), so left alone
                           the mutators finish before the first stack scan.
                           Each iteration is preceded by IDLE safe points (a
                           goroutine descheduled between iterations): the
                           scheduler then spreads the iterations over the
                           mark, as go-weave's are
    world.RLock            the barrier has no safe point: no stop-the-world
                           can land inside it
    the collector          one cycle the workload starts once the world is
                           built (m.gc_start); the mutators iterate only
                           while it marks.  stackBeforeHeap is
                           --stack-scan stw-snapshot, rescanStacks is
                           --stack-scan rescan, go-weave's barriers are
                           --barrier yuasa / hybrid / hybrid-cond / dijkstra
                           (and none, which the issue's table adds).
                           go-weave drains its grey set in any order, so
                           a stack may be scanned after heap objects are
                           black: that is --mark-order weave.  Go's order
                           (the default: the stacks are root jobs taken
                           before the heap is drained, each scanned at its
                           owner's next safe point) keeps Yuasa's heap
                           hole (an unscanned stack storing into a black
                           object, then dropping the pointer) shut; yuasa +
                           concurrent still loses there, rarely, through
                           the global root (docs/barrier-study.md, "Yuasa
                           + concurrent and the drain order"; hide-pointer
                           opens the heap hole with allocate-black)
    checkmark()            --godebug gccheckmark=1 at mark termination:
                           "checkmark found unmarked object"
    Amb / StrategyRandom   m.rng for data choices; the controlled scheduler
                           (--scheduler random, pct, sticky-random) for
                           interleavings; a run is a pure function of
                           (config, seed)

It needs exactly 2 mutators (--procs 2).  With the barrier-matrix settings
(GOGC off, memory limit 0) setup's allocations kick a cycle of their own;
the model waits for it to end and starts a fresh one, so the model's cycle
always begins after its world is built.

    concalloc run --workload weave --procs 2 --scheduler random --barrier dijkstra \\
        --godebug gccheckmark=1 --seed 844           (Dijkstra's hole: a lost object)
"""

from __future__ import annotations

import weakref

from concalloc.config import ConfigError
from concalloc.memory import Type

DESCRIPTION = "go-weave's barrier model: 2 mutators x 2 stack slots, a 2-slot global, 3 heap objects, one cycle"

NODE = Type("weave", 16, [0, 1])
NUM_THREADS = 2
STACK_SLOTS = 2          # a stack's model slots (0, 1)
GLOBAL_SLOTS = 2         # globals 0, 1
HEAP_COUNT = 3
ITERATIONS = 2
IDLE = 8                 # safe points before each iteration: go-weave's pace (see the top comment)
SRC_REG, DST_REG = 2, 3  # scratch slots: the picked pointers, live over the write
SCRATCH = 2              # setup's hold on the heap: slots 2, 3, 4, until no cycle that saw it build runs

# go-weave's memory layout: index 0 is nil, then the stacks, the global, the heap.
STACK_BASE = 1
GLOBAL_ROOT = STACK_BASE + NUM_THREADS
HEAP_BASE = GLOBAL_ROOT + 1
MEM_LEN = HEAP_BASE + HEAP_COUNT

# ambPointer's candidate sets (go-weave's pointerSet)
P_NIL, P_STACK, P_REACHABLE, P_HEAP = 1, 2, 4, 8


class _World:
    """One run's model state, shared by its two mutators.

    heap: the three objects' addresses, written by setup before P1 starts
    (the runtime's setup event orders it), read-only after.  target: the
    cycle the model runs in, 0 until P0 has asked for it; a single store by
    P0, read by P1 spinning at its safe points."""

    def __init__(self, heap):
        self.heap = heap
        self.target = 0


_runs: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # Runtime -> _World


def slots(cfg) -> int:
    return STACK_SLOTS + HEAP_COUNT   # the model's two; then the registers (2, 3), and setup's hold (2-4)


def globals(cfg) -> int:
    return GLOBAL_SLOTS               # the data segment is the model's global root


def validate(cfg) -> None:
    if getattr(cfg, "allocator", "go") != "go":
        raise ConfigError("allocator", "weave models a concurrent collector: it runs on Go's (--allocator go), "
                                       "not a survey method's stop-the-world one")
    if cfg.nmutators() != NUM_THREADS:
        raise ConfigError("procs", f"weave models go-weave's {NUM_THREADS} mutators: run it with "
                                   f"--procs {NUM_THREADS} (got {cfg.nmutators()} mutators)")


def screen(cfg, likely: bool = False) -> bool:
    """The workload hook behind --screen: can the program cfg.seed draws lose an
    object under cfg.barrier, under any schedule?  (weave_screen.py says how and why.)
    likely=True (--screen likely): only programs that can lose in the usual
    ending, a heuristic for finding a loss fast (weave_screen.can_lose).
    An injected collector fault breaks the argument: such a run is never screened out."""
    if cfg.faults:
        return True
    from .weave_screen import can_lose
    return can_lose(cfg.seed, cfg.barrier, any_start=_may_trigger(cfg), likely=likely)


def _may_trigger(cfg) -> bool:
    """Could a heap trigger start a cycle of its own?  Setup's three objects (one
    8 KiB span) stay far below the trigger when GOGC >= 10 (a goal of at least
    400 KiB) and the memory limit is at least 64 MiB: then the model's forced
    cycle is the only one after setup's, and it begins before any model write.
    Otherwise (the barrier matrix's GOGC off, limit 0) a stale kick from setup
    could start a second cycle while the mutators iterate."""
    return cfg.gogc < 10 or cfg.memory_limit < (64 << 20)


# --- the model's view of real memory ------------------------------------------------

def _address(world: _World, node: int) -> int:
    """The word a model pointer is stored as: a heap object's address, else nil."""
    return world.heap[node - HEAP_BASE] if node >= HEAP_BASE else 0


def _node(world: _World, addr: int) -> int:
    return HEAP_BASE + world.heap.index(addr) if addr else 0


def _words(m, world: _World, node: int) -> list[int]:
    """The two pointer words of a model object, read without yielding."""
    if node >= HEAP_BASE:
        obj = world.heap[node - HEAP_BASE]
        return [m.read_word(obj, 0), m.read_word(obj, 1)]
    if node == GLOBAL_ROOT:
        words = m.rt.moduledata.words
        return [words[i] for i in range(GLOBAL_SLOTS)]
    return m.stack[:STACK_SLOTS]      # only ever the caller's own stack


def _mark(m, world: _World, node: int, marked: list[bool]) -> None:
    """go-weave's mark(): everything reachable from node, not preemptible."""
    if node == 0 or marked[node]:
        return
    marked[node] = True
    for addr in _words(m, world, node):
        _mark(m, world, _node(world, addr), marked)


def _amb_pointer(m, world: _World, ps: int, tid: int) -> int:
    """go-weave's ambPointer: one draw over the same candidates, in the same order."""
    rng = m.rng
    if not ps & P_REACHABLE:
        count = (1 if ps & P_NIL else 0) + (1 if ps & P_STACK else 0) + (1 + HEAP_COUNT if ps & P_HEAP else 0)
        x = rng.randrange(count)
        if ps & P_NIL:
            if x == 0:
                return 0
            x -= 1
        if ps & P_STACK:
            if x == 0:
                return STACK_BASE + tid
            x -= 1
        return GLOBAL_ROOT if x == 0 else HEAP_BASE + x - 1
    marked = [False] * MEM_LEN
    _mark(m, world, GLOBAL_ROOT, marked)
    _mark(m, world, STACK_BASE + tid, marked)
    marked[0] = bool(ps & P_NIL)
    if not ps & P_STACK:
        marked[STACK_BASE + tid] = False
    candidates = [i for i, on in enumerate(marked) if on]
    return candidates[rng.randrange(len(candidates))]


def _amb_heap_pointer(m) -> int:
    return _amb_pointer(m, None, P_NIL | P_HEAP, -1)


# --- setup: the random world, then the model's cycle -----------------------------------

def setup(m, cfg) -> None:
    """On P0, before P1 runs: allocate the heap and fill every slot as
    go-weave does: the stacks, then the global, then the heap.  P1's stack is
    written here, its goroutine not yet running (as Go writes a new
    goroutine's first frame): an unbarriered write into another stack, which
    a cycle already marking (one these allocations kicked) may have scanned.
    So P0 keeps every object in its scratch slots until no such cycle runs
    (run() clears them), and any scan of P0's stack sees them."""
    heap = []
    for i in range(HEAP_COUNT):
        heap.append(m.new(NODE))
        m.set_slot(SCRATCH + i, heap[-1])
    m.regs[0] = 0                     # the last allocation's result: dead once it is in a slot
    world = _runs[m.rt] = _World(heap)
    initial = {node: [_amb_heap_pointer(m), _amb_heap_pointer(m)] for node in range(1, MEM_LEN)}
    for i in range(HEAP_COUNT):
        for f, v in enumerate(initial[HEAP_BASE + i]):
            m.store(heap[i], f, _address(world, v))
    for f, v in enumerate(initial[GLOBAL_ROOT]):
        m.set_global(f, _address(world, v))
    for tid, mu in enumerate(m.rt.mutators):
        for f, v in enumerate(initial[STACK_BASE + tid]):
            mu.set_slot(f, _address(world, v))


def run(m, cfg) -> None:
    world = _runs[m.rt]
    gc = m.rt.gc
    if m.p.id == 0:
        # A cycle setup's allocations kicked may be on: let it end, drop setup's
        # hold on the heap (the next cycle starts with the world built), start the model's.
        m.park_until(lambda: gc.started == gc.numgc)
        for i in range(HEAP_COUNT):
            m.clear_slot(SCRATCH + i)
        while not m.gc_start():
            m.park_until(lambda: gc.started == gc.numgc)
        world.target = gc.numgc + 1  # no cycle can start or end before this P's next safe point
    # Both iterate only while the model's cycle marks (go-weave greys every
    # root before a mutator's first step; the stacks here are scanned at the
    # mutators' safe points, the first one just below).
    m.park_until(lambda: world.target and gc.started == world.target and (gc.phase != 0 or gc.numgc >= world.target))
    if gc.numgc >= world.target:
        return
    for _ in range(ITERATIONS):
        for _ in range(IDLE):        # the stack lock is free: a scan or a stop may come here
            m.safepoint()
        _iteration(m, world, m.p.id)


def _iteration(m, world: _World, tid: int) -> None:
    """One go-weave iteration: pick a source, yield, pick a destination and a slot, write."""
    own = STACK_BASE + tid
    src = _amb_pointer(m, world, P_NIL | P_STACK | P_REACHABLE, tid)
    src_addr = _address(world, src)
    m.set_slot(SRC_REG, src_addr)
    m.step()
    dst = own if src == own else _amb_pointer(m, world, P_STACK | P_REACHABLE, tid)
    slot = m.rng.randrange(2)
    if dst == own:
        m.set_slot(slot, src_addr)
    elif dst == GLOBAL_ROOT:
        m.set_global(slot, src_addr)
    else:
        obj = _address(world, dst)
        m.set_slot(DST_REG, obj)
        m.store(obj, slot, src_addr)
        m.clear_slot(DST_REG)
    m.clear_slot(SRC_REG)
    m.step()                         # go-weave yields once the write is done
