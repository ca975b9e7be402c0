"""Program: a small mutator program as data, runnable as a workload and saved as a file.

A Program is go-weave's kind of scenario written out: an initial heap of
`objects` objects with `fields` pointer fields each (edges between them,
some held by globals), and per mutator a list of operations on its
`slots` stack slots:

    ("alloc", s)            slot s = a new object
    ("load", d, s, f)       slot d = slot s's object, field f (nil if slot s is nil)
    ("store", d, f, s)      slot d's object, field f = slot s (s = -1: nil); barriered
    ("gload", s, g)         slot s = global g
    ("gstore", g, s)        global g = slot s (s = -1: nil); barriered
    ("clear", s)            slot s = nil
    ("gc",)                 start a GC cycle and go on (runtime.GC without the wait)

An operation on a nil object does nothing.  Mutator i (P i) runs thread i;
setup (on P0, before any thread) allocates the initial objects, links
them and stores the roots into globals, clears its slots (an initial
object no global reaches is garbage from the start) and runs one full GC
cycle (runtime.GC), so that the initial objects are not allocated black in
the cycle the threads run against.  Every value lives in
a stack slot between operations (no Python local crosses a safe point), as
the workload rule asks (docs/workloads.md).

A Program is plain data (tuples), so it prints as Python Hypothesis can
show, and save(dir) writes it as a workload file named by its content's
hash: `concalloc run --workload THAT_FILE` replays it, and so does every
replay command a run of it prints.  concalloc/strategies.py draws them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

from .config import ConfigError
from .memory import Type
from .moduledata import NGLOBALS

OPS = {"alloc": 1, "load": 3, "store": 3, "gload": 2, "gstore": 2, "clear": 1, "gc": 0}


@dataclass(frozen=True)
class Program:
    threads: tuple                # per mutator: a tuple of operations
    objects: int = 3
    fields: int = 2
    slots: int = 2
    globals: int = 2
    edges: tuple = ()             # (object, field, object) of the initial heap
    roots: tuple = ()             # (global, object) of the initial heap

    def __post_init__(self):
        self.check()

    # --- validation ---
    def check(self) -> None:
        """Raise ConfigError("workload", ...) naming the first thing out of range."""
        def bad(what: str):
            raise ConfigError("workload", f"program: {what}")
        if not 1 <= self.fields <= 64 or self.slots < 1 or self.objects < 0 or not 0 <= self.globals <= NGLOBALS:
            bad(f"fields in [1, 64], slots >= 1, objects >= 0, globals in [0, {NGLOBALS}] "
                f"(got {self.fields}, {self.slots}, {self.objects}, {self.globals})")
        for o, f, t in self.edges:
            if not (0 <= o < self.objects and 0 <= f < self.fields and 0 <= t < self.objects):
                bad(f"edge {(o, f, t)} out of range")
        for g, o in self.roots:
            if not (0 <= g < self.globals and 0 <= o < self.objects):
                bad(f"root {(g, o)} out of range")
        for i, ops in enumerate(self.threads):
            for op in ops:
                if not op or op[0] not in OPS or len(op) != 1 + OPS[op[0]] or not self._in_range(op):
                    bad(f"thread {i}: bad operation {op!r}")

    def _in_range(self, op) -> bool:
        s, f, g = range(self.slots), range(self.fields), range(self.globals)
        src = range(-1, self.slots)
        name, *a = op
        return {"alloc": lambda: a[0] in s, "clear": lambda: a[0] in s, "gc": lambda: True,
                "load": lambda: a[0] in s and a[1] in s and a[2] in f,
                "store": lambda: a[0] in s and a[1] in f and a[2] in src,
                "gload": lambda: a[0] in s and a[1] in g,
                "gstore": lambda: a[0] in g and a[1] in src}[name]()

    # --- the workload protocol ---
    @property
    def type(self) -> Type:
        return Type(f"progobj{self.fields}", 8 * self.fields, range(self.fields))

    def nslots(self, cfg=None) -> int:
        return max(self.slots, self.objects, 1)

    def validate(self, cfg) -> None:
        if cfg.nmutators() < len(self.threads):
            raise ConfigError("mutators", f"the program has {len(self.threads)} threads: needs as many "
                                          f"mutators, got {cfg.nmutators()}")

    def setup(self, m, cfg) -> None:
        t = self.type
        for i in range(self.objects):           # each in its slot until linked and rooted
            m.set_slot(i, m.alloc(t.size, t))
        for o, f, dst in self.edges:
            m.store(m.slot(o), f, m.slot(dst))
        for g, o in self.roots:
            m.set_global(g, m.slot(o))
        for i in range(self.nslots()):
            m.clear_slot(i)
        m.gc()      # a full cycle: the initial objects are no longer this cycle's (allocated black)

    def run(self, m, cfg) -> None:
        if m.p.id >= len(self.threads):
            return
        t = self.type
        for op in self.threads[m.p.id]:
            self.step(m, t, op)

    @staticmethod
    def step(m, t: Type, op) -> None:
        name = op[0]
        if name == "alloc":
            m.set_slot(op[1], m.alloc(t.size, t))
        elif name == "load":
            src = m.slot(op[2])
            m.set_slot(op[1], m.load(src, op[3]) if src else 0)
        elif name == "store":
            dst = m.slot(op[1])
            if dst:
                m.store(dst, op[2], m.slot(op[3]) if op[3] >= 0 else 0)
        elif name == "gload":
            m.set_slot(op[1], m.get_global(op[2]))
        elif name == "gstore":
            m.set_global(op[1], m.slot(op[2]) if op[2] >= 0 else 0)
        elif name == "clear":
            m.clear_slot(op[1])
        else:
            m.gc_start()

    # --- as data and as a file ---
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Program":
        d = json.loads(text)
        tup = lambda x: tuple(tup(y) for y in x) if isinstance(x, list) else x  # noqa: E731
        return cls(**{k: tup(v) for k, v in d.items()})

    def ops(self) -> int:
        return sum(len(t) for t in self.threads)

    def allocations(self) -> int:
        """Objects the run allocates: the initial heap and every alloc operation."""
        return self.objects + sum(1 for t in self.threads for op in t if op[0] == "alloc")

    def save(self, directory: str) -> str:
        """Write the program as a workload file (named by its hash) and return its path."""
        text = self.to_json()
        path = os.path.join(directory, f"program-{hashlib.sha256(text.encode()).hexdigest()[:16]}.py")
        if not os.path.exists(path):
            os.makedirs(directory, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(FILE_TEMPLATE.format(json=text))
            os.replace(tmp, path)
        return path


FILE_TEMPLATE = '''"""A concalloc Program (concalloc/program.py): `concalloc run --workload THIS_FILE` runs it."""
from concalloc.program import Program

PROGRAM = Program.from_json({json!r})
DESCRIPTION = f"a program of {{PROGRAM.ops()}} operations on {{len(PROGRAM.threads)}} mutators"
slots, validate, setup, run = PROGRAM.nslots, PROGRAM.validate, PROGRAM.setup, PROGRAM.run
'''
