"""The cost model of virtual time: how many nanoseconds each labelled step costs.

Under ``--scheduler vtime`` every managed thread has a virtual clock, and
every step it takes is priced from this table (docs/vtime.md):

* a **yield point** ``label`` charges ``cost(label)`` before its decision;
* a **charge** (``VtimeScheduler.charge(key, units)``) adds ``cost(key) * units``
  without a decision: memclr per byte, mheap pages, a lock class's critical
  section, a small allocation of size class c.

Keys are looked up in this order, so every label has a price, even one no
table names yet (the collector's, say):

    1. the key itself                       "mheap.lock", "alloc.small.5"
    2. indices dropped                      "mcentral[12].lock" -> "mcentral.lock"
    3. the family                           "wait ..." -> "wait"; "X.lock" -> "lock";
                                            "X.unlock" -> "unlock"; "X.critical" -> "critical";
                                            "spawn X" / "join X" -> "spawn" / "join";
                                            "alloc.small.c" -> "alloc.small"
    4. "default"                            (documented in the shipped table)

The table is a TOML file users can edit (``[meta]`` records the machine and
Go version it was measured with; ``[ns]`` holds the prices).  What-if knobs
(``--cost KEY=+500ns``, ``KEY=x4``, ``KEY=0``) change one key, or every key
under a prefix ("alloc.small=x2").  Prices are floats in ns; the scheduler
keeps integer picoseconds so that clocks add exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib

from .config import ConfigError

DEFAULT_TABLE = os.path.join(os.path.dirname(__file__), "data", "costs-default.toml")

# What each shipped key prices, and its unit: the table's comments and the docs.
KEY_DOC = {
    "default": "ns, any yield point no other key prices",
    "alloc": "ns, the allocation yield point itself (its size class is charged separately)",
    "alloc.small": "ns, a small allocation of a class without its own key",
    "alloc.tiny": "ns, one tiny-allocator allocation (pointer-free, < 16 B)",
    "alloc.large": "ns, one large allocation outside the mheap lock (pages and memclr extra)",
    "load": "ns, a pointer load from a heap object",
    "store": "ns, a pointer store into a heap object, barrier off",
    "store.wb": "ns, extra per pointer store while the write barrier is on",
    "lock": "ns, an uncontended lock+unlock pair of any runtime lock (charged at X.lock)",
    "unlock": "ns, the unlock yield point (0: the pair is priced at X.lock)",
    "release": "ns, the decision vtime makes just before a release (0: priced at X.lock)",
    "critical": "ns, the work inside a lock class's critical section, per acquisition",
    "mcentral.critical": "ns, an mcentral acquisition no operation prices (uncacheSpan, relocks)",
    "mcentral.critical.cacheSpan": "ns, a refill's work under mcentral.lock",
    "mcentral.critical.allocObject": "ns, the cache-off path's one slot under mcentral.lock",
    "mheap.critical": "ns, per mheap acquisition: allocSpan's fixed work",
    "mheap.alloc.page": "ns per 8 KiB page taken from the page allocator (mheap.lock held)",
    "memclr": "ns per byte cleared",
    "wait": "ns, a blocking wait itself (the wait is the clock's jump, not this)",
    "spawn": "ns, starting a thread",
    "join": "ns, the join yield point",
    "exit": "ns, a thread's exit",
    "start": "ns, the run's start decision",
    "gc.stw": "ns, fixed cost of a runtime.GC cycle (for the collector)",
    "gc.mark.object": "ns per object marked (for the collector)",
    "gc.mark.ptr": "ns per pointer word scanned (for the collector)",
    "gc.sweep.span": "ns per span swept (for the collector)",
}

_INDEX = re.compile(r"\[[^\]]*\]")
_KNOB = re.compile(r"^\s*([A-Za-z0-9_.\[\]-]+)\s*=\s*(\+|-|x|\*)?\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(ns|us|µs|ms)?\s*$")
_UNIT = {None: 1.0, "ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6}


class CostModel:
    """An immutable price list; ``ps(key)`` resolves and caches integer picoseconds."""

    def __init__(self, ns: dict[str, float], meta: dict | None = None, source: str = "?",
                 knobs: tuple[str, ...] = ()):
        if "default" not in ns:
            raise ConfigError("cost table", f"{source}: no 'default' entry in [ns]")
        for k, v in ns.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ConfigError("cost table", f"{source}: {k} must be a number >= 0 (ns), got {v!r}")
        self.ns = dict(ns)
        self.meta = dict(meta or {})
        self.source = source
        self.knobs = tuple(knobs)
        self._ps: dict[str, int] = {}      # resolution cache; filled by whichever thread holds the baton

    # -- lookup -----------------------------------------------------------------

    def resolve(self, label: str) -> str:
        """The table key that prices `label` (see the module comment)."""
        ns = self.ns
        if label in ns:
            return label
        bare = _INDEX.sub("", label)
        if bare in ns:
            return bare
        for fam in _families(bare):
            if fam in ns:
                return fam
        return "default"

    def cost_ns(self, label: str) -> float:
        return self.ns[self.resolve(label)]

    def ps(self, label: str) -> int:
        p = self._ps.get(label)
        if p is None:
            p = self._ps[label] = round(self.cost_ns(label) * 1000)
        return p

    # -- what-if knobs -------------------------------------------------------------

    def with_knobs(self, knobs) -> "CostModel":
        """A copy with each 'KEY=+500ns' / 'KEY=x4' / 'KEY=0' applied in order."""
        ns = dict(self.ns)
        for text in knobs:
            key, op, val = parse_knob(text)
            below = [k for k in ns if k.startswith(key + ".")]
            for k in ([key] if key in ns or not below else []) + below:
                base = ns[k] if k in ns else ns[CostModel(ns).resolve(k)]
                ns[k] = _apply(base, op, val, text)
        return CostModel(ns, self.meta, self.source, self.knobs + tuple(knobs))

    def digest(self) -> str:
        """A short hash of the prices: part of a run's identity."""
        blob = json.dumps(sorted(self.ns.items())).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"source": self.source, "digest": self.digest(), "knobs": list(self.knobs),
                "meta": self.meta}


def _families(bare: str) -> list[str]:
    out = []
    if bare.startswith("wait "):
        out.append("wait")
    head, _, _ = bare.partition(" ")
    if head in ("spawn", "join") and " " in bare:
        out.append(head)
    parts = bare.split(".")
    for n in range(len(parts) - 1, 0, -1):       # alloc.small.5 -> alloc.small
        out.append(".".join(parts[:n]))
    if len(parts) > 1:
        out.append(parts[-1])                    # X.lock -> lock, X.critical -> critical
    return out


def parse_knob(text: str) -> tuple[str, str, float]:
    """'mheap.lock=+500ns' -> ('mheap.lock', '+', 500.0); ops: + - x (or *) and = (set)."""
    m = _KNOB.match(str(text))
    if not m:
        raise ConfigError("--cost", f"expected KEY=+500ns, KEY=x4 or KEY=0, got {text!r}")
    key, op, num, unit = m.groups()
    if op in ("x", "*"):
        if unit:
            raise ConfigError("--cost", f"a factor takes no unit: {text!r}")
        return key, "x", float(num)
    return key, op or "=", float(num) * _UNIT[unit]


def _apply(base: float, op: str, val: float, text: str) -> float:
    out = {"=": val, "+": base + val, "-": base - val, "x": base * val}[op]
    if out < 0:
        raise ConfigError("--cost", f"{text!r} makes a cost negative ({out:g} ns)")
    return out


# -- the file ---------------------------------------------------------------------

def load(path: str | None = None, knobs=()) -> CostModel:
    """The table at `path` (the shipped default if None), with knobs applied."""
    path = path or DEFAULT_TABLE
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ConfigError("cost_table", f"cannot read {path!r}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("cost_table", f"{path!r} is not valid TOML: {e}") from None
    if not isinstance(doc.get("ns"), dict):
        raise ConfigError("cost_table", f"{path!r} has no [ns] table")
    model = CostModel(doc["ns"], doc.get("meta", {}), source=os.path.basename(path))
    return model.with_knobs(knobs) if knobs else model


def dump(ns: dict[str, float], meta: dict, path: str, notes: dict[str, str] | None = None) -> None:
    """Write a table users can edit: [meta], then [ns] with each key's unit and origin."""
    notes = notes or {}
    lines = ["# concalloc virtual-time cost table (docs/vtime.md).",
             "# Edit freely: prices are ns (floats); keys not listed fall back as",
             "# concalloc/costmodel.py explains, and finally to 'default'.", "", "[meta]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in meta.items()]
    lines += ["", "[ns]"]
    for k in sorted(ns, key=_key_order):
        doc = notes.get(k) or KEY_DOC.get(k) or KEY_DOC.get(k.rsplit(".", 1)[0], "")
        lines.append(f"{json.dumps(k)} = {ns[k]:.4g}" + (f"  # {doc}" if doc else ""))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _key_order(k: str):
    m = re.match(r"^(.*\.)(\d+)$", k)
    return (m.group(1), int(m.group(2))) if m else (k, -1)
