"""`concalloc calibrate`: measure Go 1.19 on this machine, write the cost table.

The Go program (calibrate/go/calib_test.go, testing.B, GOMAXPROCS=1)
measures what Go lets a program time: small allocations of one size per
size class, tiny and large allocations, memclr, pointer loads and stores,
stores with the write barrier on, runtime.GC() on live heaps of known shape,
a cycle's sweep of known garbage, and an uncontended sync.Mutex pair.  This
module runs it (or reads a saved output), fits the model's prices to it, and
writes a TOML table (costmodel.dump) with [meta] naming the machine and Go.

How each price follows from the measurements (docs/vtime.md repeats this):

    lock                 Mutex ns/op (Lock+Unlock; priced at X.lock, unlock 0)
    load / store         PtrLoad / PtrStore ns/op
    store.wb             PtrStoreWB: median ns/store with the barrier on minus off
    memclr               Memclr ns/op / 65536 (per byte)
    alloc.tiny           AllocTiny ns/op
    alloc.small.c        per class c (size s, n objects per span):
                         m_c = f + z*s + R/n is fitted over all classes
                         (least squares: f fast path, z per byte, R one
                         refill); then
                         alloc.small.c = m_c - memclr*s - R/n (>= 0) and
                         mcentral.critical.cacheSpan = R - lock (>= 0)
    mcentral.critical.allocObject
                         the cache-off path's one slot under the lock (no Go
                         counterpart): priced as alloc.small.2, the smallest
                         class's whole allocation
    mcentral.critical    0: other mcentral acquisitions (uncacheSpan, the
                         relock after a grow) are list moves
    large                m_p = a + b*p over p pages (least squares, p <= 32);
                         mheap.alloc.page = b - memclr*8192; the fixed part
                         a - lock is split half inside the mheap lock
                         (mheap.critical) and half outside (alloc.large)
    gc.mark.ptr/.object  GC on N objects of 1 or 8 pointer words: the slope in
                         N is object + K*ptr; gc.stw is the intercept
    gc.sweep.span        GCGarbage: slope of the cycle's time in spans of garbage

Each benchmark runs 5 times (-count) and keeps its fastest run, timed in
process CPU time (getrusage), not wall time: on a loaded machine wall time
counts the time the benchmark was not even running.  Every
price is clamped at 0: a noisy machine can make a difference negative.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess

from . import costmodel
from .config import ConfigError
from .sizeclasses import NUM_SIZE_CLASSES, PAGE_SIZE, class_to_allocnpages, class_to_size

GO = "/usr/lib/go-1.19/bin/go"
GO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "calibrate", "go")

_LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$")


def class_sizes() -> list[int]:
    """One size per small class: the class's own size (class 1, 8 B, is tiny: skipped)."""
    return [class_to_size[c] for c in range(2, NUM_SIZE_CLASSES)]


def run_go(go: str = GO, benchtime: str = "100ms", count: int = 5, src: str = GO_DIR) -> str:
    """Run the Go benchmarks; returns their text output."""
    if not os.path.exists(go):
        raise ConfigError("--go", f"no Go toolchain at {go!r}")
    env = dict(os.environ, GOMAXPROCS="1", GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
    env.setdefault("GOCACHE", os.path.join("/tmp", f"concalloc-gocache-{os.getuid()}"))
    env.setdefault("GOPATH", os.path.join("/tmp", f"concalloc-gopath-{os.getuid()}"))
    cmd = [go, "test", "-run", "XXX", "-bench", ".", "-benchtime", benchtime, "-count", str(count), "-timeout", "60m",
           "-args", "-sizes=" + ",".join(map(str, class_sizes()))]
    p = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"go test failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def parse(text: str) -> dict[str, dict[str, float]]:
    """{benchmark name: {unit: value}} from `go test -bench` output.  A benchmark
    run several times (-count) keeps, per unit, its smallest value: on a shared
    machine the fastest run is the one least disturbed.  "ns/op" is the CPU
    time per op (the program's cpu-ns/op) when the output has it, wall time
    otherwise; wall time stays under "wall-ns/op"."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        name, _n, rest = m.groups()
        vals = rest.split()
        row = out.setdefault(name, {})
        for i in range(0, len(vals) - 1, 2):
            v, unit = float(vals[i]), vals[i + 1]
            unit = {"ns/op": "wall-ns/op", "cpu-ns/op": "ns/op"}.get(unit, unit)
            row[unit] = min(row.get(unit, v), v)
    for row in out.values():        # an output without CPU times: wall time it is
        if "ns/op" not in row and "wall-ns/op" in row:
            row["ns/op"] = row["wall-ns/op"]
    return out


def _header(text: str, key: str) -> str:
    m = re.search(rf"^{key}:\s*(.*)$", text, re.M)
    return m.group(1).strip() if m else "?"


def _linfit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b*x; returns (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - b * mx, b


def _lstsq(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares for a few unknowns (numpy comes with matplotlib)."""
    import numpy as np
    sol, *_ = np.linalg.lstsq(np.array(rows), np.array(ys), rcond=None)
    return [float(v) for v in sol]


def _ns(res: dict, name: str, unit: str = "ns/op") -> float:
    try:
        return res[name][unit]
    except KeyError:
        raise ValueError(f"the Go output has no {name} ({unit}): was the whole benchmark run?") from None


def fit(res: dict[str, dict[str, float]]) -> tuple[dict[str, float], dict[str, str]]:
    """The cost table's [ns] and a note per fitted key (see the module comment)."""
    ns: dict[str, float] = {}
    notes: dict[str, str] = {}
    lock = ns["lock"] = _ns(res, "BenchmarkMutex")
    ns["unlock"] = 0.0
    ns["load"] = _ns(res, "BenchmarkPtrLoad")
    ns["store"] = _ns(res, "BenchmarkPtrStore")
    wb = res.get("BenchmarkPtrStoreWB", {})
    if wb.get("batches-wb", 0) > 0:
        ns["store.wb"] = max(0.0, wb["ns/store-wb"] - wb["ns/store-nowb"])
    else:
        ns["store.wb"] = 0.0
        notes["store.wb"] = "the barrier was never seen on during the benchmark: left at 0"
    memclr = ns["memclr"] = _ns(res, "BenchmarkMemclr") / 65536
    ns["alloc.tiny"] = _ns(res, "BenchmarkAllocTiny")
    # small classes: m = f + z*s + R/n
    rows = []
    for c in range(2, NUM_SIZE_CLASSES):
        s = class_to_size[c]
        key = f"BenchmarkAllocSmall/size={s}"
        if key in res:
            n = class_to_allocnpages[c] * PAGE_SIZE // s
            rows.append((c, s, n, res[key]["ns/op"]))
    if len(rows) < 3:
        raise ValueError("the Go output has fewer than three small size classes")
    f, _z, refill = _lstsq([[1.0, s, 1 / n] for _, s, n, _ in rows], [m for *_, m in rows])
    refill = max(0.0, refill)
    for c, s, n, m in rows:
        ns[f"alloc.small.{c}"] = max(0.0, m - memclr * s - refill / n)
        notes[f"alloc.small.{c}"] = f"ns, one allocation of class {c} ({s} B; Go: {m:.4g} ns)"
    ns["alloc.small"] = max(0.0, f)
    ns["alloc.small.1"] = ns["alloc.small.2"]
    notes["alloc.small.1"] = "ns, class 1 (8 B): as class 2 (8-byte pointer-free objects go to the tiny allocator)"
    ns["mcentral.critical.cacheSpan"] = max(0.0, refill - lock)
    notes["mcentral.critical.cacheSpan"] = f"ns, a refill's work under mcentral.lock: the fitted refill " \
                                          f"{refill:.0f} ns minus the lock pair"
    ns["mcentral.critical.allocObject"] = ns["alloc.small.2"]
    ns["mcentral.critical"] = 0.0
    # large: m = a + b*pages
    large = [(int(k.split("=")[1]), v["ns/op"]) for k, v in res.items()
             if k.startswith("BenchmarkAllocLarge/pages=") and int(k.split("=")[1]) <= 32]
    if len(large) >= 2:
        a, b = _linfit([p for p, _ in large], [t for _, t in large])
        ns["mheap.alloc.page"] = max(0.0, b - memclr * PAGE_SIZE)
        fixed = max(0.0, a - lock)
        ns["mheap.critical"] = ns["alloc.large"] = fixed / 2
        notes["mheap.critical"] = f"half of the large fit's fixed {a:.0f} ns minus the lock pair"
    # the collector
    gc = {}
    for k, v in res.items():
        m = re.match(r"BenchmarkGC/objs=(\d+)/ptrs=(\d+)$", k)
        if m:
            gc.setdefault(int(m.group(2)), []).append((int(m.group(1)), v["ns/op"]))
    if 1 in gc and 8 in gc and len(gc[1]) >= 2 and len(gc[8]) >= 2:
        a1, s1 = _linfit(*zip(*gc[1]))
        a8, s8 = _linfit(*zip(*gc[8]))
        ptr = max(0.0, (s8 - s1) / 7)
        ns["gc.mark.ptr"] = ptr
        ns["gc.mark.object"] = max(0.0, s1 - ptr)
        ns["gc.stw"] = max(0.0, (a1 + a8) / 2)
    sweep = [(int(k.split("=")[1]), v["ns/op"]) for k, v in res.items()
             if k.startswith("BenchmarkGCGarbage/spans=")]
    if len(sweep) >= 2:
        ns["gc.sweep.span"] = max(0.0, _linfit(*zip(*sweep))[1])
    ns.update({"default": 5.0, "alloc": 0.0, "critical": 0.0, "wait": 0.0, "release": 0.0,
               "spawn": 0.0, "join": 0.0, "exit": 0.0, "start": 0.0})
    notes["default"] = "ns, any label nothing else prices (a guess: a few instructions)"
    return ns, notes


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else cpu
    except OSError:
        pass
    return f"{platform.node()} {platform.machine()} {cpu}, {os.cpu_count()} CPUs"


def calibrate(out: str, go: str = GO, benchtime: str = "100ms", raw_in: str | None = None,
              raw_out: str | None = None) -> dict:
    """Measure (or read `raw_in`), fit, write the table to `out`; returns the meta and prices."""
    if raw_in:
        with open(raw_in) as f:
            text = f.read()
    else:
        text = run_go(go, benchtime)
    if raw_out:
        with open(raw_out, "w") as f:
            f.write(text)
    ns, notes = fit(parse(text))
    gover = subprocess.run([go, "version"], capture_output=True, text=True).stdout.strip() \
        if os.path.exists(go) else "?"
    meta = {"go": gover, "machine": machine(), "cpu": _header(text, "cpu"),
            "gomaxprocs": 1, "benchtime": benchtime,
            "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "source": "concalloc calibrate (calibrate/go/calib_test.go)"}
    if raw_in:
        mtime = datetime.datetime.fromtimestamp(os.path.getmtime(raw_in), datetime.timezone.utc)
        meta.update(measured=mtime.strftime("%Y-%m-%d %H:%M UTC"), fitted_from=os.path.basename(raw_in))
    costmodel.dump(ns, meta, out, notes)
    return {"meta": meta, "ns": ns, "out": out}
