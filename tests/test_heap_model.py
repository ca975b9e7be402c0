"""A model-based test of the whole allocator (Hypothesis state machine).

The model is the set of objects the program still holds: address, size,
the bytes last written into it.  Rules allocate every kind of object (zero,
tiny, small noscan, small scan with pointer words, large) on random Ps,
write patterns and pointers, drop references, sweep with exactly the held
objects marked (or those plus some garbage kept alive; at once, or flipped
and left to sweepone, proportional sweep, cacheSpan and the reclaimer),
release mcaches, read MemStats and scavenge.  After every step: verify_heap passes, no two
held objects share a byte, each one's span and slot agree with findObject,
and every byte written earlier reads back unchanged.  A freshly allocated
object must read as zeros (needzero and the tiny allocator's clearing).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, rule

from concalloc import Heap
from concalloc.gc.sweep import gcBackgroundMode, gcPaceSweeper, isSweepDone, sweepone
from concalloc.malloc import ZEROBASE
from concalloc.memory import Type, ptr_type
from concalloc.mspan import MSPAN_IN_USE
from concalloc.sizeclasses import MAX_SMALL_SIZE, TINY_SIZE, TINY_SPAN_CLASS

NPROCS = 4
SCAN_TYPES = (
    ptr_type(1, name="model_p1"),
    ptr_type(2, name="model_p2"),
    ptr_type(3, [1], name="model_p3_mid"),
    ptr_type(8, [0, 5, 7], name="model_p8_mixed"),
    ptr_type(16, name="model_p16"),
)
NOSCAN_TYPE = Type("model_bytes24", 24)


@dataclass
class Obj:
    addr: int
    size: int
    typ: Type | None
    tiny: bool
    ptr_offsets: tuple       # byte offsets of pointer words
    data: bytes              # what the object must hold
    seq: int                 # allocation number: the model's key (never id(), which
                             # differs between runs and makes draws unreproducible)


def _pattern(seq: int, size: int) -> bytes:
    unit = seq.to_bytes(4, "little") + b"\xa5\x5a\xc3\x3c"
    return (unit * (size // 8 + 1))[:size]


class HeapModel(RuleBasedStateMachine):
    objs = Bundle("objs")

    def __init__(self):
        super().__init__()
        self.h = Heap(reserve_bytes=1 << 30, nprocs=NPROCS)
        self.m = self.h.mheap
        self.live: dict[int, Obj] = {}     # seq -> object the program holds
        self.ghosts: dict[int, Obj] = {}   # dropped, maybe still allocated (not yet swept away)
        self.seq = 0

    def teardown(self):
        self.h.close()

    # ------------------------------------------------------------ helpers
    def _new(self, size: int, typ, p: int) -> Obj | None:
        x = self.h.malloc(size, typ, p=p)
        if size == 0:
            assert x == ZEROBASE
            return None
        assert x != ZEROBASE
        noscan = typ is None or typ.noscan
        tiny = noscan and size < TINY_SIZE
        _base, s, idx = self.m.findObject(x)
        assert s is not None and s.state == MSPAN_IN_USE and not s.isFree(idx)
        if tiny:
            assert s.spanclass == TINY_SPAN_CLASS
            align = 8 if size % 8 == 0 else 4 if size % 4 == 0 else 2 if size % 2 == 0 else 1
            assert x % align == 0, f"tiny object of {size} bytes at {x:#x} is not {align}-aligned"
        else:
            assert x == _base and s.elemsize >= size and s.spanclass & 1 == int(noscan)
        # Fresh memory reads as zeros: needzero for reused slots and pages, a
        # cleared block for tiny objects.
        assert self.m.sysmem.read_bytes(x, size) == bytes(size), f"fresh object {x:#x} is dirty"
        self._check_no_overlap(x, size, s, tiny)
        self.seq += 1
        ptrs = tuple(typ.pointer_offsets(size)) if not noscan else ()
        data = bytearray(_pattern(self.seq, size))
        if ptrs:
            words = array("Q", bytes(data))
            targets = [o.addr for o in self.live.values()] or [0]
            for i, off in enumerate(ptrs):
                words[off // 8] = targets[(self.seq + i) % len(targets)]
            data = bytearray(words.tobytes())
        self.m.sysmem.write_bytes(x, bytes(data))
        o = Obj(x, size, typ, tiny, ptrs, bytes(data), self.seq)
        self.live[o.seq] = o
        return o

    def _check_no_overlap(self, x, size, s, tiny):
        end = x + size
        slot = (x, end) if tiny else (x, x + s.elemsize)
        for o in list(self.live.values()) + list(self.ghosts.values()):
            assert not (o.addr < end and x < o.addr + o.size), \
                f"new object {x:#x}+{size} overlaps held object {o.addr:#x}+{o.size}"
            if not tiny and not o.tiny:
                assert not (o.addr < slot[1] and slot[0] < o.addr + o.size)

    # ------------------------------------------------------------ allocation rules
    @rule(p=st.integers(0, NPROCS - 1), typ=st.sampled_from([None, SCAN_TYPES[0], NOSCAN_TYPE]))
    def alloc_zero(self, p, typ):
        self._new(0, typ, p)

    @rule(target=objs, p=st.integers(0, NPROCS - 1), size=st.integers(1, TINY_SIZE - 1))
    def alloc_tiny(self, p, size):
        return self._new(size, None, p)

    # A few favourite sizes, so that slots freed by a sweep get reused.
    @rule(target=objs, p=st.integers(0, NPROCS - 1),
          size=st.one_of(st.sampled_from([16, 64, 72, 1024, 9000]), st.integers(TINY_SIZE, 512),
                         st.integers(513, MAX_SMALL_SIZE)))
    def alloc_small_noscan(self, p, size):
        return self._new(size, None, p)

    @rule(target=objs, p=st.integers(0, NPROCS - 1), count=st.integers(2, 40),
          size=st.sampled_from([8, 16, 64, 200, 1024]), scan=st.booleans())
    def alloc_many(self, p, count, size, scan):
        """A run of same-class objects: spans that end up partly live, so a
        sweep leaves freed (dirty) slots between survivors for reuse."""
        typ = SCAN_TYPES[0] if scan else None
        return multiple(*(self._new(size, typ, p) for _ in range(count)))

    @rule(target=objs, p=st.integers(0, NPROCS - 1), typ=st.sampled_from(SCAN_TYPES),
          n=st.one_of(st.integers(1, 4), st.integers(1, 64)))
    def alloc_small_scan(self, p, typ, n):
        return self._new(typ.size * n, typ, p)

    @rule(target=objs, p=st.integers(0, NPROCS - 1), n=st.integers(1, 40))
    def alloc_typed_noscan(self, p, n):
        return self._new(NOSCAN_TYPE.size * n, NOSCAN_TYPE, p)

    @rule(target=objs, p=st.integers(0, NPROCS - 1),
          size=st.one_of(st.just(40000), st.integers(MAX_SMALL_SIZE + 1, 300_000)), scan=st.booleans())
    def alloc_large(self, p, size, scan):
        typ = None
        if scan:
            typ = SCAN_TYPES[3]
            size = -(-size // typ.size) * typ.size
        return self._new(size, typ, p)

    # ------------------------------------------------------------ mutation rules
    @rule(o=objs, data=st.data())
    def write_pointer(self, o, data):
        if o.seq not in self.live or not o.ptr_offsets:
            return
        off = data.draw(st.sampled_from(o.ptr_offsets))
        target = data.draw(st.sampled_from(list(self.live))) if self.live else None
        val = self.live[target].addr + data.draw(st.integers(0, 7)) if target is not None else 0
        self.h.memory.store(o.addr + off, val)
        b = bytearray(o.data)
        b[off:off + 8] = val.to_bytes(8, "little")
        o.data = bytes(b)

    @rule(o=consumes(objs))
    def drop(self, o):
        if o.seq not in self.live:
            return
        self.ghosts[o.seq] = self.live.pop(o.seq)

    @rule(data=st.data())
    def drop_some(self, data):
        for k in list(self.live):
            if data.draw(st.booleans()):
                self.ghosts[k] = self.live.pop(k)

    # ------------------------------------------------------------ collector-side rules
    def _marks(self, objs) -> dict:
        keep: dict = {}
        for o in objs:
            base, s, idx = self.m.findObject(o.addr)
            assert s is not None, f"held object {o.addr:#x} has no span"
            keep.setdefault(s, set()).add(idx)
        return keep

    @rule()
    def sweep_exact(self):
        self._sweep(list(self.live.values()), [])

    @rule(data=st.data())
    def sweep_keeping_garbage(self, data):
        ghosts = list(self.ghosts.values())
        kept = [g for g in ghosts if data.draw(st.booleans())] if ghosts else []
        self._sweep(list(self.live.values()), kept)

    def _sweep(self, live, kept_ghosts):
        keep = self._marks(live + kept_ghosts)
        self.h.sweep_cycle(lambda s: [s.setMarked(i) for i in keep.get(s, ())])
        # Exactly the marked slots survive; every other span went back to the heap.
        assert set(self.m.allspans) == set(keep), "a span with no marked object survived, or a marked one was freed"
        for s, idxs in keep.items():
            assert set(s.allocated_indices()) == idxs and s.allocCount == len(idxs)
        self.ghosts = {g.seq: g for g in kept_ghosts}

    @rule(data=st.data())
    def sweep_background(self, data):
        """Mark termination without sweeping: the spans are swept later, by
        sweep_some, proportional sweep (when paced), cacheSpan, the span
        reclaimer, or the next cycle's sweep termination."""
        ghosts = list(self.ghosts.values())
        kept = [g for g in ghosts if data.draw(st.booleans())] if ghosts else []
        keep = self._marks(list(self.live.values()) + kept)
        self.h.sweep_cycle(lambda s: [s.setMarked(i) for i in keep.get(s, ())], mode=gcBackgroundMode)
        self.ghosts = {g.seq: g for g in kept}
        if data.draw(st.booleans()):
            gcPaceSweeper(self.m, self.m.gcController.heapLive.load() + data.draw(st.integers(0, 4 << 20)))

    @rule(n=st.integers(1, 20))
    def sweep_some(self, n):
        for _ in range(n):
            if sweepone(self.m) == -1:
                assert isSweepDone(self.m)
                break

    @rule(p=st.integers(0, NPROCS - 1))
    def release_mcache(self, p):
        self.h.mcaches[p].releaseAll()
        c = self.h.mcaches[p]
        assert c.tiny == 0 and not c.cached_spans()

    @rule()
    def read_memstats(self):
        ms = self.h.read_memstats()
        assert ms["HeapSys"] == ms["HeapIdle"] + ms["HeapInuse"]
        assert ms["HeapObjects"] == ms["Mallocs"] - ms["Frees"]
        assert ms["HeapInuse"] >= ms["HeapAlloc"] >= sum(
            o.size for o in self.live.values() if not o.tiny)
        slots = sum(s.allocCount for s in self.m.allspans)
        assert ms["HeapObjects"] == slots

    @rule(nbytes=st.one_of(st.none(), st.integers(1, 8 << 20)))
    def scavenge(self, nbytes):
        before = self.h.read_memstats()
        released = self.h.scavenge(nbytes)
        after = self.h.read_memstats()
        assert after["HeapReleased"] - before["HeapReleased"] == released
        if nbytes is not None:
            assert released <= -(-nbytes // 8192) * 8192
        else:
            assert after["HeapIdle"] == after["HeapReleased"]

    # ------------------------------------------------------------ invariants
    @invariant()
    def heap_verifies(self):
        self.h.verify()

    @invariant()
    def held_objects_intact(self):
        read = self.m.sysmem.read_bytes
        spans = {}
        for o in self.live.values():
            assert read(o.addr, o.size) == o.data, f"object {o.addr:#x}+{o.size} changed"
            base, s, idx = self.m.findObject(o.addr + o.size - 1)
            assert s is not None and base <= o.addr and o.addr + o.size <= base + s.elemsize
            assert not s.isFree(idx), f"held object {o.addr:#x} sits in a free slot"
            spans.setdefault((base, o.tiny), []).append(o)
        # Only tiny sub-objects share a slot, and never bytes.
        for (base, tiny), group in spans.items():
            assert tiny or len(group) == 1, f"slot {base:#x} holds {len(group)} objects"
            group.sort(key=lambda o: o.addr)
            for a, b in zip(group, group[1:]):
                assert a.addr + a.size <= b.addr
        tiny_slots = {b for (b, t) in spans if t}
        assert not tiny_slots & {b for (b, t) in spans if not t}


HeapModel.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestHeapModel = HeapModel.TestCase
