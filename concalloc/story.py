"""Telling a lost object's story from a Narrator's facts (concalloc/narrate.py).

`tell(narrator, violation)` turns the facts of a run that ended in
"checkmark found unmarked object" into a Story: the lost object, the root
that still reaches it, and the lines of its last cycle (who loaded or moved
it, what each barrier shaded and failed to shade, when stacks and the
objects on its path were scanned, mark termination).  Objects get the
workload's names (its OBJECT_NAMES) or short ones, A, B, C... in allocation
order among those the story mentions.

A story is told after the run, from the facts alone (plus the heap, still
mapped, to find which object an address belongs to); it touches no runtime
state, so it needs no protection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .narrate import Fact, Narrator

_MARKERS = re.compile(r"^(gc|gcw\d+)$")       # the collector's own threads (an assist runs on a P)


@dataclass
class Line:
    step: int
    thread: str
    kind: str
    parts: list          # str pieces and _Obj tokens, joined once names are known
    key: bool = False    # a line the loss turns on (the unshaded pointer, the scan that missed it)
    at: int = -1         # the index of the fact it tells

    def text(self, name) -> str:
        return "".join(name(p) if isinstance(p, _Obj) else p for p in self.parts)


@dataclass(frozen=True)
class _Obj:
    serial: int          # the index of its allocation fact


@dataclass
class Story:
    lost: str                      # the lost object's name
    address: int
    size: int                      # its allocation's bytes
    root: str                      # "P1 stack slot 1"
    path: list[str]                # names from the root's object to the lost one
    path_text: str                 # "P1 stack slot 1 -> A.f0 -> B"
    cycle: int | None
    barrier: str
    stack_scan: str
    lines: list[dict] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)   # name -> "0xc000... (typ, P0's allocation 3)"

    def text(self) -> str:
        out = [f"lost object: {self.lost} ({self.address:#x}), still reachable: {self.path_text}",
               f"barrier {self.barrier}, stack scan {self.stack_scan}; GC cycle {self.cycle}:"]
        width = max([len(ln["thread"]) for ln in self.lines] + [2])
        for ln in self.lines:
            mark = "*" if ln["key"] else " "
            out.append(f"{mark} step {ln['step']:>5}  {ln['thread']:<{width}}  {ln['text']}")
        out.append("objects: " + ", ".join(f"{n} = {d}" for n, d in self.names.items()))
        return "\n".join(out)

    def to_json(self) -> dict:
        return {"lost": self.lost, "address": hex(self.address), "size": self.size, "root": self.root,
                "path": self.path,
                "path_text": self.path_text, "cycle": self.cycle, "barrier": self.barrier,
                "stack_scan": self.stack_scan, "lines": self.lines, "names": self.names}


class _Heap:
    """Objects and words as the facts built them: which allocation an address
    belongs to, and what each pointer word held, fact by fact."""

    def __init__(self, rt, facts: list[Fact]):
        self.rt = rt
        self.facts = facts
        self.allocs: dict[int, list[int]] = {}      # base -> serials of its allocations, in order
        for i, x in enumerate(facts):
            if x.kind == "alloc":
                self.allocs.setdefault(x.f["addr"], []).append(i)

    def obj(self, base: int, at: int) -> _Obj | None:
        """The allocation living at `base` at fact index `at`."""
        serials = self.allocs.get(base)
        if not serials:
            return None
        best = None
        for s in serials:
            if s <= at:
                best = s
        return _Obj(best if best is not None else serials[0])

    def place(self, addr: int, at: int):
        """(object token or None, where): where = "global 3", or the field index of the object."""
        md = self.rt.moduledata
        if md.contains(addr):
            return None, f"global {(addr - md.data) >> 3}"
        base = self.base(addr)
        if base is None:
            return None, f"{addr:#x}"
        return self.obj(base, at), (addr - base) // 8

    def base(self, addr: int) -> int | None:
        try:
            b, s, _ = self.rt.heap.mheap.findObject(addr)
        except Exception:       # noqa: BLE001 - a bad pointer has no object to name
            return None
        return b if s is not None else None

    def describe(self, o: _Obj) -> str:
        x = self.facts[o.serial]
        nth = sum(1 for y in self.facts[:o.serial] if y.kind == "alloc" and y.thread == x.thread)
        return f"{x.f['addr']:#x} ({x.f['type'] or str(x.f['size']) + ' bytes'}, {x.thread}'s allocation {nth + 1})"


def lost_path(violation) -> list[tuple[int, str]]:
    """[(address, how)] from the root's object to the lost one, from a checkmark
    violation (its `path`, or its message)."""
    path = getattr(violation, "path", None)
    if path:
        return list(path)
    m = re.search(r"path from a root: (.*)", violation.message)
    if not m:
        return [(violation.address, "?")]
    out = []
    for step in m.group(1).split(" / "):
        if " -> " in step:
            how, addr = step.split(" -> ")
            out.append((int(addr, 16), how.strip()))
        else:
            addr, _, how = step.partition(" (")
            out.append((int(addr, 16), how.rstrip(")")))
    return out


def lost_identity(narr: Narrator, violation) -> tuple[str, int] | None:
    """The lost object as (allocating thread, its n-th allocation): the same
    object across schedules, where its address may differ."""
    addr = lost_path(violation)[-1][0]
    o = _Heap(narr.rt, narr.facts).obj(addr, len(narr.facts))
    if o is None:
        return None
    x = narr.facts[o.serial]
    return x.thread, sum(1 for y in narr.facts[:o.serial + 1] if y.kind == "alloc" and y.thread == x.thread)


def tell(narr: Narrator, violation, full: bool = False) -> Story:
    """The story of the object a checkmark violation reports lost: from the
    last time its final parent was scanned or given it (full: from mark's
    start), with repeated lines folded."""
    return _Teller(narr, violation, full).story()


class _Teller:
    def __init__(self, narr: Narrator, violation, full: bool = False):
        self.full = full
        self.narr = narr
        self.rt = narr.rt
        self.facts = narr.facts
        self.heap = _Heap(self.rt, self.facts)
        self.path = lost_path(violation)
        self.end = len(self.facts)
        self.lost_addr = self.path[-1][0]
        self.lines: list[Line] = []

    # -- the window: the failing cycle's mark phase ---------------------------------------

    def _last(self, kind: str, **match) -> int:
        for i in range(self.end - 1, -1, -1):
            x = self.facts[i]
            if x.kind == kind and all(x.f.get(k) == v for k, v in match.items()):
                return i
        return -1

    def story(self) -> Story:
        start = self._last("gc_start")
        mark = next((i for i in range(max(start, 0), self.end)
                     if self.facts[i].kind == "gc_phase" and self.facts[i].f["phase"] == "mark"), max(start, 0))
        self.mark = mark
        lost = self.heap.obj(self.lost_addr, self.end)
        chain = [self.heap.obj(a, self.end) for a, _ in self.path]
        root = self.path[0][1]
        self.focus = {o for o in chain if o is not None}
        self._at_mark_start(mark, lost, chain, root)
        self._window(mark, lost, chain)
        if not self.full:
            self._focus_on_the_end(mark, lost, chain)
        self._termination(lost, chain, root)
        return self._finish(lost, chain, root, start)

    def _at_mark_start(self, mark: int, lost, chain, root) -> None:
        """Where the lost object was when mark began: the words and slots that held it."""
        x = self.facts[mark]
        holders, self.slots = self._holders(self.lost_addr, mark)
        parts = ["mark begins (sweep termination, world stopped); ", lost]
        born = self.facts[lost.serial] if lost is not None and lost.serial > mark else None
        if holders:
            parts += [" is referenced by "] + _join(holders)
        elif born is not None and born.f["black"]:
            parts += [" is not allocated yet"]
        elif born is not None:
            parts += [f" is in {born.thread}'s mallocgc, which took its slot before the cycle began"]
        else:
            parts += [" is referenced by no heap word or stack slot (a local or register only)"]
        self.lines.append(Line(x.step, x.thread, "mark_start", parts))

    def _holders(self, addr: int, upto: int, colour: bool = False) -> list:
        """The pointer words and stack slots that hold addr after facts[:upto]
        (colour: with whether each holder is black by then)."""
        words: dict[int, int] = {}
        slots: dict[tuple, int] = {}
        for x in self.facts[:upto]:
            if x.kind == "store":
                words[x.f["addr"]] = x.f["value"]
            elif x.kind == "slot":
                slots[(x.thread, x.f["i"])] = x.f["value"]
            elif x.kind == "alloc":
                for a in range(x.f["addr"], x.f["addr"] + x.f["size"], 8):
                    words.pop(a, None)
        out = []
        for a, v in words.items():
            if v == addr:
                where = self._where(a, upto)
                if colour and isinstance(where[0], _Obj):
                    where += [" (", where[0], " is black)" if self._is_black(where[0], upto) else " is not yet scanned)"]
                out.append(where)
        for (t, i), v in slots.items():
            if v == addr:
                state = "already scanned" if self._stack_scanned(t, upto) else "not yet scanned"
                out.append([f"{t} stack slot {i}"] + ([f" ({t}'s stack {state})"] if colour else []))
        return out, slots

    def _stack_scanned(self, p: str, upto: int) -> bool:
        return any(x.kind == "gc_scanstack_start" and x.f["p"] == p for x in self.facts[self.mark:upto])

    def _where(self, addr: int, at: int) -> list:
        o, w = self.heap.place(addr, at)
        if o is None:
            return [str(w)]
        return [o, f".f{w}"]

    def _val(self, v: int, at: int) -> list:
        if not v:
            return ["nil"]
        base = self.heap.base(v)
        o = self.heap.obj(base, at) if base is not None else None
        return [o] if o is not None else [f"{v:#x}"]

    # -- the mark phase -------------------------------------------------------------------

    def _window(self, mark: int, lost, chain) -> None:
        L = self.lost_addr
        edges = self._edges()
        root_slot = _root_slot(self.path[0][1])
        held = set()           # fields that held the lost object during the window (addresses)
        tagged, prev = len(self.lines), mark
        self.globals_scanned = False
        scanned_objs: set = set()
        last_wb: dict[str, Fact] = {}
        i = mark + 1
        while i < self.end:
            for ln in self.lines[tagged:]:
                ln.at = prev
            tagged, prev = len(self.lines), i
            x = self.facts[i]
            k, f = x.kind, x.f
            if k == "wb":
                last_wb[x.thread] = x
            elif k == "alloc" and (_Obj(i) == lost or (len(chain) > 1 and _Obj(i) == chain[-2])):
                self.lines.append(Line(x.step, x.thread, "alloc", ["allocates ", _Obj(i)]
                                       + ([" during mark: it is born black"] if f["black"] else [])))
            elif k == "store" and (L in (f["value"], f["old"]) or f["addr"] in edges):
                if f["value"] == L:
                    held.add(f["addr"])
                self.lines.append(self._store_line(i, x, last_wb.pop(x.thread, None), lost))
            elif k == "store":
                last_wb.pop(x.thread, None)
            elif k == "load" and f["value"] == L:
                self.lines.append(Line(x.step, x.thread, "load", ["loads ", lost, " from "]
                                       + self._where(f["addr"], i)))
            elif k == "slot" and (L in (f["value"], f["old"])
                                  or ((x.thread, f["i"]) == root_slot and f["value"] == self.path[0][0])):
                self.lines.append(self._slot_line(x, i, lost))
            elif k == "slot":
                self.slots[(x.thread, f["i"])] = f["value"]
            elif k == "gc_scanstack_start":
                self.lines.append(self._scanstack_line(x, i))
            elif k == "scan_globals":
                self.globals_scanned = True
                self.lines.append(self._globals_line(x, i))
            elif k == "scan_load":
                o = self._scanned_object(i)
                if o is not None and o not in scanned_objs and (o in self.focus or self._held_in(o, held)):
                    scanned_objs.add(o)
                    self.lines.append(self._blacken_line(self._scan_of(i), o, lost))
            elif k == "gc_mark_done":
                self.lines.append(Line(x.step, x.thread, "mark_done",
                                       ["mark completion: the workers are idle, every buffer flushed"]))
            elif k == "gc_phase" and f["phase"] == "marktermination":
                self.lines.append(Line(x.step, x.thread, "marktermination",
                                       ["mark termination (world stopped)"]))
            i += 1
        for ln in self.lines[tagged:]:
            ln.at = prev

    def _edges(self) -> set:
        """The address of the last word on the lost object's path (its parent's field)."""
        m = re.match(r"field \+(\d+)", self.path[-1][1]) if len(self.path) > 1 else None
        return {self.path[-2][0] + int(m.group(1))} if m else set()

    def _focus_on_the_end(self, mark: int, lost, chain) -> None:
        """Keep what the loss turns on: the lines from the moment the lost
        object's final parent was scanned (or born black), or was given the
        lost object for the last time, whichever came first; before it only
        the stack scans.  A line left out is summed up by where the lost
        object was at that moment; runs of one thread's same line are folded."""
        start = self._decisive(mark, chain)
        if start > mark + 1:
            kept = [ln for ln in self.lines
                    if ln.at >= start or ln.kind in ("mark_start", "scanstack", "scan_globals")]
            dropped = len(self.lines) - len(kept)
            if dropped:
                x = self.facts[start]
                holders, _ = self._holders(self.lost_addr, start, colour=True)
                parts = [f"({dropped} earlier lines left out; --full shows them) ", lost]
                parts += [" is referenced by "] + _join(holders) if holders else [" is in no heap word or stack slot"]
                at = next(k for k, ln in enumerate(kept) if ln.at >= start) if any(ln.at >= start for ln in kept) \
                    else len(kept)
                kept.insert(at, Line(x.step, x.thread, "summary", parts, at=start))
            self.lines = kept
        self.lines = _fold(self.lines)

    def _decisive(self, mark: int, chain) -> int:
        """The fact index the focused story starts at (see _focus_on_the_end)."""
        if len(chain) < 2 or chain[-2] is None:
            return mark
        parent = chain[-2]
        p = self.facts[parent.serial]
        lo, hi = p.f["addr"], p.f["addr"] + p.f["size"]
        edge = self.path[-2][0] + int(re.match(r"field \+(\d+)", self.path[-1][1]).group(1)) \
            if re.match(r"field \+(\d+)", self.path[-1][1]) else None
        marks = [i for i in range(mark + 1, self.end)
                 if (self.facts[i].kind == "scan_load" and lo <= self.facts[i].f["addr"] < hi)
                 or (i == parent.serial and self.facts[i].f["black"])]
        stores = [i for i in range(mark + 1, self.end) if self.facts[i].kind == "store"
                  and self.facts[i].f["addr"] == edge and self.facts[i].f["value"] == self.lost_addr]
        candidates = marks[:1] + stores[-1:]
        return min(candidates) if candidates else mark

    def _held_in(self, o, held: set) -> bool:
        x = self.facts[o.serial]
        return any(x.f["addr"] <= a < x.f["addr"] + x.f["size"] for a in held)

    def _store_line(self, i: int, x: Fact, wb: Fact | None, lost) -> Line:
        f = x.f
        L = self.lost_addr
        parts = ["stores "] + self._val(f["value"], i) + [" into "] + self._where(f["addr"], i)
        if f["old"]:
            parts += [", overwriting "] + self._val(f["old"], i)
        key = False
        if wb is None:
            parts += [": no write barrier"]
            key = L in (f["value"], f["old"])
        else:
            parts += [": "] + self._shades(wb, i, x.thread)
            if L in (f["value"], f["old"]) and L not in wb.f["shaded"]:
                parts += ["; ", lost, " is not shaded"]
                key = True
            if wb.f["old"] != f["old"]:
                parts += [" (the barrier read "] + self._val(wb.f["old"], i) + [", but the slot changed before the store)"]
        if f["value"] == L:
            o, where = self.heap.place(f["addr"], i)
            if o is not None and self._is_black(o, i):
                parts += [" (", o, " is already black)"]
                key = True
            elif o is None and str(where).startswith("global") and self.globals_scanned:
                parts += [" (the globals are already scanned)"]
                key = True
        return Line(x.step, x.thread, "store", parts, key)

    def _shades(self, wb: Fact, i: int, thread: str) -> list:
        """What the barrier shaded, in its own terms: "yuasa shades only the old value nil"."""
        kind, old, new = wb.f["barrier"], wb.f["old"], wb.f["value"]
        both = len(wb.f["shaded"]) == 2
        if kind == "dijkstra":
            return ["dijkstra shades only the new pointer "] + self._val(new, i)
        if not both:
            out = [f"{kind} shades only the old value "] + self._val(old, i)
            return out + ([f" ({thread}'s stack is already scanned)"] if kind == "hybrid-cond" else [])
        return [f"{kind} shades the old value "] + self._val(old, i) + [" and the new pointer "] + self._val(new, i)

    def _is_black(self, o, upto: int) -> bool:
        """o is black in this cycle by fact upto: born black, or a marker's scan
        of it finished (every field read) before then."""
        x = self.facts[o.serial]
        if x.f["black"] and o.serial >= self.mark:
            return True         # allocated during this mark
        lo, hi = x.f["addr"], x.f["addr"] + x.f["size"]
        for j in range(max(o.serial, self.mark), upto):
            y = self.facts[j]
            if y.kind == "scan_load" and lo <= y.f["addr"] < hi:
                return self._scan_of(j)[-1] < upto
        return False

    def _slot_line(self, x: Fact, i: int, lost) -> Line:
        f = x.f
        L = self.lost_addr
        self.slots[(x.thread, f["i"])] = f["value"]
        last = not any(v == L for (t, _), v in self.slots.items() if t == x.thread)
        scanned = "already scanned" if f["scanned"] else "not yet scanned"
        where = f" stack slot {f['i']} ({x.thread}'s stack {scanned})"
        key = False
        if f["value"]:
            parts = ["puts "] + self._val(f["value"], i) + [" in" + where]
            key = f["value"] == L and f["scanned"]
            if f["old"] == L:
                parts += [", dropping ", lost]
        else:
            parts = ["clears" + where] + ([", dropping ", lost] if f["old"] == L else [])
        if f["old"] == L:
            key = not f["scanned"] and last
            parts += [": no barrier on stack writes"]
        return Line(x.step, x.thread, "slot", parts, key)

    def _scanstack_line(self, x: Fact, i: int) -> Line:
        L = self.lost_addr
        p = x.f["p"]
        slots = x.f["slots"]
        holds = [j for j, v in enumerate(slots) if v == L]
        by = "at its own safe point" if x.thread == p else f"by {x.thread}"
        parts = [f"{p}'s stack is scanned {by}: "]
        if holds:
            parts += ["slot " + ", ".join(map(str, holds)) + " holds ", self._val(L, i)[0], ": shaded"]
        else:
            parts += ["no slot holds ", self._val(L, i)[0]]
        root = _root_slot(self.path[0][1])
        if root and root[0] == p and root[1] < len(slots) and slots[root[1]] and slots[root[1]] != L:
            parts += [f"; slot {root[1]} holds "] + self._val(slots[root[1]], i) + [": shaded"]
        return Line(x.step, x.thread, "scanstack", parts)

    def _globals_line(self, x: Fact, i: int) -> Line:
        L = self.lost_addr
        vals = x.f["values"]
        held = [f"global {j}" for j, v in enumerate(vals) if v == L]
        parts = ["the marker scans the globals: "]
        parts += [", ".join(held) + " holds ", self._val(L, i)[0], ": shaded"] if held \
            else ["none holds ", self._val(L, i)[0]]
        root = re.match(r"global (\d+)$", self.path[0][1])
        if root and int(root.group(1)) < len(vals) and vals[int(root.group(1))] != L:
            parts += [f"; {root.group(0)} holds "] + self._val(vals[int(root.group(1))], i)
        return Line(x.step, x.thread, "scan_globals", parts)

    def _scan_of(self, i: int) -> list[int]:
        """The facts of one object's scan that starts at fact i: the same
        thread's loads of its fields, other threads' steps in between, until
        that thread loads another object's word or a field a second time."""
        x = self.facts[i]
        base = self.heap.base(x.f["addr"])
        seen, out = set(), []
        for j in range(i, self.end):
            y = self.facts[j]
            if y.kind != "scan_load" or y.thread != x.thread:
                continue
            if self.heap.base(y.f["addr"]) != base or y.f["addr"] in seen:
                break
            seen.add(y.f["addr"])
            out.append(j)
        return out

    def _scanned_object(self, i: int):
        base = self.heap.base(self.facts[i].f["addr"])
        return self.heap.obj(base, i) if base is not None else None

    def _blacken_line(self, scan: list[int], o, lost) -> Line:
        """The marker's scan of o, each field with what it read (and the step,
        when the scan was interrupted)."""
        i = scan[0]
        x = self.facts[i]
        L = self.lost_addr
        parts = ["the marker blackens " if _MARKERS.match(x.thread) else "an assist blackens ", o, ": "]
        fields = []
        for j in scan:
            y = self.facts[j]
            _, w = self.heap.place(y.f["addr"], i)
            when = [f" (step {y.step})"] if y.step != x.step and len({self.facts[k].step for k in scan}) > 1 else []
            fields.append([o, f".f{w} = "] + self._val(y.f["value"], j) + when)
        parts += _join(fields)
        key = False
        if all(self.facts[j].f["value"] != L for j in scan) and o in self.focus:
            parts += ["; it never reaches ", lost, " through it"]
            key = True
        return Line(x.step, x.thread, "blacken", parts, key)

    # -- the end ----------------------------------------------------------------------------

    def _termination(self, lost, chain, root) -> None:
        x = next((y for y in reversed(self.facts) if y.kind == "checkmark"), None)
        step, thread = (x.step, x.thread) if x is not None else (self.facts[-1].step, "gc")
        self.lines.append(Line(step, thread, "checkmark", ["checkmark: ", lost, " is white yet reachable from "]
                               + self._path_parts(chain, root), True))
        self.lines.append(Line(step, thread, "sweep", ["without checkmark, sweep would free ", lost,
                                                       " while it is still reachable: the next load through "
                                                       "it is a use after free"]))

    def _path_parts(self, chain, root) -> list:
        first = chain[0]
        head = [root, " -> ", first] if first is not None else [root]
        rest = []
        for k in range(1, len(self.path)):
            how = self.path[k][1]
            m = re.match(r"field \+(\d+)", how)
            f = f".f{int(m.group(1)) // 8}" if m else f" ({how})"
            rest += [f, " -> ", chain[k] if chain[k] is not None else f"{self.path[k][0]:#x}"]
        return head + rest

    def _workload_names(self, used: list[int]) -> dict[int, str]:
        """The workload's own names (its OBJECT_NAMES: the setup's allocations
        on P0, in order) for the objects the story mentions."""
        given = list(getattr(self.rt.workload, "OBJECT_NAMES", ()) or ())
        if not given:
            return {}
        first = self.rt.mutators[0].name if self.rt.mutators else "P0"
        setup = [i for i, x in enumerate(self.facts) if x.kind == "alloc" and x.thread == first][:len(given)]
        return {serial: name for serial, name in zip(setup, given) if serial in used}

    def _finish(self, lost, chain, root, start) -> Story:
        used = sorted({p.serial for ln in self.lines for p in ln.parts if isinstance(p, _Obj)})
        names = self._workload_names(used)
        letters = (n for n in map(_name, range(10_000)) if n not in names.values())
        for s_ in used:
            if s_ not in names:
                names[s_] = next(letters)

        def name(o: _Obj) -> str:
            return names.get(o.serial, "?")
        cycle = self.facts[start].f.get("n") if start >= 0 else None
        path_text = "".join(name(p) if isinstance(p, _Obj) else p for p in self._path_parts(chain, root))
        gc = self.rt.gc
        size = self.facts[lost.serial].f["size"] if lost is not None else 8
        return Story(lost=name(lost) if lost else hex(self.lost_addr), address=self.lost_addr, size=size, root=root,
                     path=[name(o) if o is not None else "?" for o in chain], path_text=path_text,
                     cycle=cycle, barrier=gc.barrier_kind, stack_scan=gc.stack_scan,
                     lines=[{"step": ln.step, "thread": ln.thread, "kind": ln.kind, "key": ln.key,
                             "text": ln.text(name)} for ln in self.lines],
                     names={names[s]: self.heap.describe(_Obj(s)) for s in used})


def aftermath(narr: Narrator, story: Story, after_step: int, res) -> list[dict]:
    """What a run that goes on past the loss (checkmark off, watch set on the
    lost object) did with it: the cycle's end, the first allocation that
    reuses its memory, the first access to it once it was freed, and how the
    run ended."""
    lo, hi = story.address, story.address + story.size
    lost = story.lost
    out = []
    cycle_end = None
    for x in narr.facts:
        if x.step < after_step:
            continue
        f = x.f
        if x.kind == "gc_done" and cycle_end is None:
            cycle_end = x
            out.append({"step": x.step, "thread": x.thread, "kind": "cycle_end",
                        "text": f"cycle {f.get('n')} ends without {lost}'s mark: sweep frees it"})
        elif x.kind == "alloc" and lo <= f["addr"] < hi and cycle_end is not None:
            out.append({"step": x.step, "thread": x.thread, "kind": "reuse",
                        "text": f"allocates a new object in {lost}'s memory ({f['addr']:#x})"})
        elif x.kind == "touch" and f["state"] != "live":
            field = (f["addr"] - lo) // 8
            what = "freed" if f["state"] == "free" else "freed and allocated again"
            out.append({"step": x.step, "thread": x.thread, "kind": "use_after_free",
                        "text": f"{f['op']} {lost}.f{field} through a pointer it still holds: {lost} was "
                                f"{what}, a use after free"})
            break
    if res.violations:
        v = res.violations[0]
        first = v["message"].splitlines()[0]
        out.append({"step": narr.facts[-1].step if narr.facts else 0, "thread": v.get("thread") or "?",
                    "kind": "end", "text": f"the run ends: {v['invariant']}: {first}"})
    elif res.error is not None:
        out.append({"step": narr.facts[-1].step if narr.facts else 0, "thread": "run", "kind": "end",
                    "text": f"the run ends with {type(res.error).__name__}"})
    elif not any(ln["kind"] == "use_after_free" for ln in out):
        out.append({"step": narr.facts[-1].step if narr.facts else 0, "thread": "run", "kind": "end",
                    "text": f"the run ends cleanly: nothing touched {lost} again before it ended"})
    return out


def _root_slot(how: str):
    """("P1", 1) for "P1 stack slot 1", else None."""
    m = re.match(r"(\S+) stack slot (\d+)$", how)
    return (m.group(1), int(m.group(2))) if m else None


def _fold(lines: list[Line]) -> list[Line]:
    """Fold a run of one thread's identical lines into the first, "(n times)",
    and a run of one thread's loads of the lost object into one line naming
    each place it was loaded from."""
    out: list[Line] = []
    runs: list[list[Line]] = []
    for ln in lines:
        prev = out[-1] if out else None
        same = prev is not None and ln.thread == prev.thread and ln.kind == prev.kind
        if same and (ln.parts == prev.parts or ln.kind == "load"):
            runs[-1].append(ln)
            continue
        out.append(ln)
        runs.append([ln])
    for ln, run in zip(out, runs):
        if len(run) == 1:
            continue
        if all(r.parts == ln.parts for r in run):
            ln.parts = ln.parts + [f" ({len(run)} times)"]
            continue
        wheres: list[list] = []
        for r in run:
            if r.parts[3:] not in wheres:
                wheres.append(r.parts[3:])
        ln.parts = ln.parts[:3] + _join(wheres) + [f" ({len(run)} loads)"]
    return out


def _join(items: list[list]) -> list:
    out: list = []
    for k, it in enumerate(items):
        if k:
            out.append(" and " if k == len(items) - 1 else ", ")
        out += it
    return out


def _name(k: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA, ..."""
    s = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        s = chr(65 + r) + s
    return s
