"""weave's program screen: can this seed's program lose an object under ANY schedule?

A weave run's seed draws two things: the program (the random world setup
writes from P0's m.rng, then each mutator's choices of source, destination
and slot from its own m.rng) and the schedule.  The choices read the memory
at choice time, so the program's writes depend on the interleaving; but the
world is tiny and every interleaving of the mutators' model events can be
replayed here in pure Python, over an abstract memory, with the same draws
weave.py makes (the same candidates in the same order, the same
random.Random streams).  can_lose(seed, barrier) explores them all, together
with where the collector's stack and global scans can fall, and keeps the
program iff some reachable abstract state satisfies a NECESSARY condition
for a loss: it may keep a program that cannot lose; it must never drop one
that can (tests/test_weave_screen.py checks known losing seeds).

The abstract program.  Per mutator (tid 0 = P0, 1 = P1), two iterations of
three events:

    A  pick the source (reads memory reachable from the global and its own
       stack; the value is held in stack slot SRC_REG until the write)
    B  pick the destination and slot (reads memory; a heap destination is
       held in DST_REG until the write)
    W  the write (a stack write has no barrier; a global or heap write goes
       through the barrier)

A and B are separated by m.step() (a yield), B and W by set_global's or
store's yields; a write into the mutator's own stack follows B with no
yield, so B+W is one event then.  The mutator's safe points (where its
stack may be scanned and where the world may stop) are its iteration
boundaries (the idle safe points, and after the last write) and the top of
m.store (between B and W of a heap write, SRC_REG and DST_REG live).  The
collector's root scans: each stack once, at a safe point of its owner
(every value in the stack then, model slots and scratch slots, is shaded),
each global slot once, at any time.  They are not interleaved as events
(that multiplied the states by ~20 for the same verdicts): a state records
what each root held at every point it could have been scanned so far, and
a state where both mutators stand at safe points is a possible mark
termination t, judged under every choice of scan points (the smallest
shade sets suffice: more shading only keeps more objects).  Writes after
t do not matter to this cycle.  About 50 states a program, 1.4 ms.

The argument (why the condition is necessary).  Nothing is allocated while
the model marks, and a mutator only obtains pointers from memory reachable
from its roots, so an object unreachable at mark start never becomes
reachable again: a lost object X (reachable at t, unmarked) was reachable
at the start.  The collector ends marking only with no grey object left, so
every object SHADED before t is MARKED at t, and every marked object was
scanned before t.  Let S be a set of objects certainly shaded before t, and
close it under "edges certainly read by the scan":

  * every barrier: a heap or global slot whose value never changed from
    mark start to t holds that value whenever its object (or the global
    root) is scanned, so the value is shaded.  The closure under
    never-changed edges of S is marked.  S holds each stack's values at its
    scan and each global slot's value at its scan.
  * dijkstra (shade the new value on heap and global writes): a scanned
    slot that did change holds, at its scan, a value some heap or global
    write stored, and that write shaded it.  So S also holds every value a
    heap or global write stored before t, and the closure is the same.
  * yuasa (shade the old value): a heap or global slot's start value is
    shaded when its object is scanned if the slot is unchanged then, or
    else by the first write that overwrote it (whose barrier read the old
    value before storing, when it still was the start value).  So the
    closure of S under ALL start edges is marked (the snapshot), and S also
    holds the old value each write overwrote, unless the other mutator
    wrote the same slot between this write's B and W (the barrier may then
    have read an older value: such a shade is not counted).
  * hybrid: both shades happen, so both conditions must hold at once;
    hybrid-cond shades the new value only sometimes: yuasa's.

A loss at t needs some object reachable at t from the roots at t (the model
slots, the globals, and SRC_REG / DST_REG of a mutator stopped at a store)
outside that closure.  No drain order and no timing of the heap objects'
scans is assumed, so the condition holds for Go's roots-first drain and for
go-weave's any-order one (--mark-order weave) alike, and for every stack
scan mode: stw-snapshot is a scan at the first safe point, rescan only adds
marks.  Any-order effects such as a stack scanned after heap objects are
black are among the states explored.

One cycle or several.  With the bench's settings (GOGC 100) the model's
forced cycle is the only one after setup's, and it begins before any model
write, at the initial memory.  When a heap trigger can fire (GOGC off, a
memory limit of 0: the barrier matrix), a kick left by setup's allocations
could start another cycle while the mutators iterate; can_lose(...,
any_start=True) then repeats the exploration from every state where the
world could stop (both mutators at safe points) as a mark start, with that
state's memory and held pointers as the start (about 6 ms a program).

What the replay assumes of weave.py, checked by tests: setup draws the 12
initial words from P0's m.rng first (nothing else draws from it before),
the model's draws are the only m.rng draws, and a pointer to the global or
a stack is stored as nil.
"""

from __future__ import annotations

import random
from functools import lru_cache

from . import weave as W

HEAPS = tuple(range(W.HEAP_BASE, W.MEM_LEN))       # model nodes 4, 5, 6
NODES = tuple(range(1, W.MEM_LEN))                  # 1, 2: stacks; 3: the global; 4-6: heap
LOCS = tuple((n, f) for n in NODES for f in range(2))
LOC = {loc: i for i, loc in enumerate(LOCS)}       # (node, field) -> bit index

BARRIER_CONDITIONS = {"none": ("none",), "dijkstra": ("dijkstra",), "yuasa": ("yuasa",),
                      "hybrid": ("dijkstra", "yuasa"), "hybrid-cond": ("yuasa",)}

# pc, a mutator's place in its program: 3 * iteration + (0 before A, 1 after A, 2 after B); 6 = done
DONE = 3 * W.ITERATIONS


class _Draws:
    """A mutator's m.rng: the value of its k-th draw depends on the bounds of the
    draws before it, so each history of bounds is replayed once and cached."""

    def __init__(self, seed_text: str, skip: tuple[int, ...]):
        self.root = random.Random(seed_text)
        for n in skip:
            self.root.randrange(n)
        self.memo: dict[tuple, tuple[int, random.Random]] = {}

    def draw(self, hist: tuple, n: int) -> int:
        key = hist + (n,)
        hit = self.memo.get(key)
        if hit is None:
            base = self.memo[hist][1] if hist else self.root
            r = random.Random()
            r.setstate(base.getstate())
            hit = self.memo[key] = (r.randrange(n), r)
        return hit[0]


def initial_memory(seed) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """setup's world: the 12 words (LOCS order) and P0's draw bounds so far."""
    rng = random.Random(f"{seed}:P0")
    words = []
    for _ in LOCS:
        x = rng.randrange(1 + 1 + W.HEAP_COUNT)            # nil, the global, the heap objects
        words.append(W.HEAP_BASE + x - 2 if x >= 2 else 0)  # the global is stored as nil
    return tuple(words), (1 + 1 + W.HEAP_COUNT,) * len(LOCS)


def _reach(mem, starts, edge_ok=None) -> int:
    """Bit mask (1 << node) of the heap nodes reachable from `starts` through heap edges."""
    seen = 0
    todo = [n for n in starts if n]
    while todo:
        n = todo.pop()
        if seen >> n & 1:
            continue
        seen |= 1 << n
        for f in range(2):
            i = LOC[(n, f)]
            if edge_ok is None or edge_ok >> i & 1:
                v = mem[i]
                if v and not seen >> v & 1:
                    todo.append(v)
    return seen


def _candidates(mem, tid: int, nil: bool) -> list[int]:
    """go-weave's ambPointer candidates (weave._amb_pointer with P_REACHABLE | P_STACK)."""
    own = W.STACK_BASE + tid
    roots = [mem[LOC[(W.GLOBAL_ROOT, 0)]], mem[LOC[(W.GLOBAL_ROOT, 1)]], mem[LOC[(own, 0)]], mem[LOC[(own, 1)]]]
    heap = _reach(mem, roots)
    out = [0] if nil else []
    out += [own, W.GLOBAL_ROOT]
    out += [n for n in HEAPS if heap >> n & 1]
    return out


class Screen:
    """One program's exploration (see the module comment).

    A state: (mem, pcs, locs, changed, written, shaded_y, seen).  changed: bit i
    set once LOCS[i] was stored a different value; written: the values heap and
    global writes stored (dijkstra's shades); shaded_y: the old values they
    overwrote (yuasa's shades).  The collector's root scans are not events of
    their own: seen = (stack 0, stack 1, global 0, global 1) records what each
    root held at each point where it could have been scanned (a stack: the mask
    of its held objects at each safe point of its owner, as a set of masks; a
    global slot: each value it held), and a possible mark termination tries
    every scan choice (the smallest ones: more shading only keeps more)."""

    def __init__(self, seed, any_start: bool = False):
        self.seed = seed
        mem, skip = initial_memory(seed)
        self.initial = mem
        self.draws = (_Draws(f"{seed}:P0", skip), _Draws(f"{seed}:P1", ()))
        self.kept = {"none": 0, "dijkstra": 0, "yuasa": 0, "hybrid": 0}   # states that may lose
        self.kept_done = dict.fromkeys(self.kept, 0)   # ... of them with both mutators done (likely)
        self.states = 0
        empty = (None, None, None, (), False)
        starts = [(mem, (0, 0), (empty, empty))]
        if any_start:
            starts = self._stops(starts[0])
        for start in starts:
            self._explore(*start)

    def _stops(self, st0) -> list:
        """Every (mem, pcs, locs) where the world could stop with both mutators at
        safe points: where a later cycle could begin (see can_lose)."""
        seen = {st0}
        todo = [st0]
        while todo:
            mem, pcs, locs = todo.pop()
            for tid in (0, 1):
                nxt = self._step((mem, pcs, locs, 0, 0, 0, (0, 0, 0, 0)), tid)
                if nxt is not None and nxt[:3] not in seen:
                    seen.add(nxt[:3])
                    todo.append(nxt[:3])
        return [st for st in seen if self._at_safepoint(st[1], st[2], 0) and self._at_safepoint(st[1], st[2], 1)]

    # --- one mutator's next event -------------------------------------------------------

    def _step(self, st, tid):
        """The state after mutator tid's next event, or None if it has none."""
        mem, pcs, locs, changed, written, shaded_y, seen = st
        pc = pcs[tid]
        if pc >= DONE:
            return None
        src, dst, slot, hist, racy = locs[tid]
        own = W.STACK_BASE + tid
        phase = pc % 3
        if phase == 0:                                     # A: the source
            cands = _candidates(mem, tid, True)
            src = cands[self.draws[tid].draw(hist, len(cands))]
            locs = _set(locs, tid, (src, None, None, hist + (len(cands),), False))
            return (mem, _set(pcs, tid, pc + 1), locs, changed, written, shaded_y, seen)
        if phase == 1:                                     # B: the destination and slot
            if src == own:
                dst = own
            else:
                cands = _candidates(mem, tid, False)
                dst = cands[self.draws[tid].draw(hist, len(cands))]
                hist += (len(cands),)
            slot = self.draws[tid].draw(hist, 2)
            hist += (2,)
            if dst != own:                                 # W later: another event may come between
                locs = _set(locs, tid, (src, dst, slot, hist, False))
                pcs = _set(pcs, tid, pc + 1)
                return (mem, pcs, locs, changed, written, shaded_y, self._seen(seen, mem, pcs, locs, tid))
        # W: the write
        value = src if src in HEAPS else 0
        i = LOC[(dst, slot)]
        old = mem[i]
        if old != value:
            changed |= 1 << i
        if dst != own:                                     # through the barrier
            written |= (1 << value) if value else 0
            if old and not racy:
                shaded_y |= 1 << old
            other = locs[1 - tid]
            if pcs[1 - tid] % 3 == 2 and (other[1], other[2]) == (dst, slot):
                locs = _set(locs, 1 - tid, other[:4] + (True,))   # its barrier may read a stale old value
        mem = _set(mem, i, value)
        locs = _set(locs, tid, (None, None, None, hist, False))
        pcs = _set(pcs, tid, pc + (2 if phase == 1 else 1))
        if dst == W.GLOBAL_ROOT:
            seen = _set(seen, 2 + slot, seen[2 + slot] | 1 << _index(value))
        return (mem, pcs, locs, changed, written, shaded_y, self._seen(seen, mem, pcs, locs, tid))

    def _seen(self, seen, mem, pcs, locs, tid):
        """seen, with what tid's stack holds now if tid stands at a safe point."""
        if not self._at_safepoint(pcs, locs, tid):
            return seen
        mask = 0
        for v in self._held(mem, pcs, locs, tid):
            mask |= 1 << v
        return _set(seen, tid, seen[tid] | 1 << (mask >> W.HEAP_BASE))

    # --- where a mutator stands -------------------------------------------------------

    @staticmethod
    def _at_safepoint(pcs, locs, tid) -> bool:
        pc = pcs[tid]
        if pc % 3 == 0 or pc >= DONE:
            return True
        return pc % 3 == 2 and locs[tid][1] in HEAPS     # at m.store's top

    @staticmethod
    def _held(mem, pcs, locs, tid) -> list[int]:
        """Heap objects in mutator tid's stack: model slots, SRC_REG, DST_REG."""
        own = W.STACK_BASE + tid
        out = [mem[LOC[(own, 0)]], mem[LOC[(own, 1)]]]
        src, dst = locs[tid][0], locs[tid][1]
        if pcs[tid] % 3 in (1, 2) and src in HEAPS:
            out.append(src)
        if pcs[tid] % 3 == 2 and dst in HEAPS:
            out.append(dst)
        return [v for v in out if v]

    # --- the exploration ----------------------------------------------------------------

    def _explore(self, mem, pcs, locs) -> None:
        """Every state from a mark start at (mem, pcs, locs), each judged."""
        self.start = mem
        seen = (0, 0, 1 << _index(mem[LOC[(W.GLOBAL_ROOT, 0)]]), 1 << _index(mem[LOC[(W.GLOBAL_ROOT, 1)]]))
        st0 = (mem, pcs, locs, 0, 0, 0, seen)
        for tid in (0, 1):
            st0 = st0[:6] + (self._seen(st0[6], mem, st0[1], st0[2], tid),)
        visited = {st0}
        todo = [st0]
        while todo:
            st = todo.pop()
            self.states += 1
            self._judge(st)
            for tid in (0, 1):
                nxt = self._step(st, tid)
                if nxt is not None and nxt not in visited:
                    visited.add(nxt)
                    todo.append(nxt)

    def _judge(self, st) -> None:
        """Could the mark terminate here with an object lost (the module comment)?"""
        mem, pcs, locs, changed, written, shaded_y, seen = st
        if not (self._at_safepoint(pcs, locs, 0) and self._at_safepoint(pcs, locs, 1)):
            return
        roots = [mem[LOC[(W.GLOBAL_ROOT, 0)]], mem[LOC[(W.GLOBAL_ROOT, 1)]]]
        roots += self._held(mem, pcs, locs, 0) + self._held(mem, pcs, locs, 1)
        live = _reach(mem, roots)
        if not live:
            return
        unchanged = ~changed & ((1 << len(LOCS)) - 1)
        lost = dict.fromkeys(self.kept, False)
        for sset in _scan_choices(seen):
            base = [n for n in HEAPS if sset >> n & 1]
            lost_n = live & ~_reach(self.start, base, unchanged)
            if not lost_n:
                continue                                   # every barrier only shades more
            lost["none"] = True
            lost_d = lost_n & ~_reach(self.start, base + [n for n in HEAPS if written >> n & 1], unchanged)
            lost_y = lost_n & ~_reach(self.start, base + [n for n in HEAPS if shaded_y >> n & 1])
            lost["dijkstra"] |= bool(lost_d)
            lost["yuasa"] |= bool(lost_y)
            lost["hybrid"] |= bool(lost_d & lost_y)
        done = pcs[0] >= DONE and pcs[1] >= DONE
        for k, v in lost.items():
            self.kept[k] += v
            if done:
                self.kept_done[k] += v


def _index(value: int) -> int:
    """A global slot's value as a bit of seen[2:]: 0 nil, 1.. the heap objects."""
    return value - W.HEAP_BASE + 1 if value else 0


def _minimal(masks: list[int]) -> list[int]:
    return [m for m in masks if not any(o != m and o & m == o for o in masks)]


def _scan_choices(seen) -> set[int]:
    """The shade masks (1 << node) the root scans can leave: one point per root."""
    stacks = [_minimal([i << W.HEAP_BASE for i in range(8) if seen[t] >> i & 1]) for t in (0, 1)]
    globs = [[0] if seen[2 + f] & 1 else [1 << (W.HEAP_BASE + i - 1) for i in range(1, 4) if seen[2 + f] >> i & 1]
             for f in (0, 1)]
    return {a | b | c | d for a in stacks[0] for b in stacks[1] for c in globs[0] for d in globs[1]}


def _set(t: tuple, i: int, v) -> tuple:
    return t[:i] + (v,) + t[i + 1:]


@lru_cache(maxsize=1 << 16)
def verdicts(seed, any_start: bool = False, likely: bool = False) -> dict[str, bool]:
    """{condition: may lose} for program `seed` (one exploration serves every barrier).
    likely: only losses at a mark termination with both mutators done (see can_lose)."""
    sc = Screen(seed, any_start)
    return {k: v > 0 for k, v in (sc.kept_done if likely else sc.kept).items()}


def can_lose(seed, barrier: str, any_start: bool = False, likely: bool = False) -> bool:
    """False only if program `seed` loses nothing under `barrier`, whatever the schedule.
    any_start: a cycle may begin anywhere in the program (a heap trigger can fire:
    weave.screen says when), not only at its start; each such start is explored.

    likely=True is a search heuristic, not a proof: it keeps only the programs
    that can lose at a mark termination with both mutators past their last
    write -- the usual ending, since the model's cycle outlasts its four
    writes.  It drops programs that can lose only when the mark ends with a
    mutator between iterations or stopped at a store (measured on seeds
    1..3000, the bench's settings, two schedules each: dijkstra's screen
    keeps 220 programs, 167 of them only such; their 334 runs lost nothing,
    while the 53 likely ones lost in 4 of 106 runs).  Use it to find a loss fast,
    never to claim a program is safe."""
    conds = BARRIER_CONDITIONS.get(barrier, ("none",))
    return verdicts(seed, any_start, likely)["hybrid" if len(conds) == 2 else conds[0]]
