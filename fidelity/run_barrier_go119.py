"""Run the Go side of gc.barrier_store_ratio (see docs/gc-bench.md).

Builds fidelity/barrier with Go 1.19 and runs it RUNS times with
GOMAXPROCS=1 (no mark worker takes the P during a batch, so the stores see
an unmarked heap, as the bench's subject does).  Each run prints one JSON
object of medians; all of them, with the machine's load, go to
fidelity/go119/barrier.json:

    python fidelity/run_barrier_go119.py [--go /usr/lib/go-1.19/bin/go]

The graph and the stores have the bench's full-run shape (12,500 live nodes,
8,192 stores); tests/test_fidelity_barrier.py checks that they still do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "go119" / "barrier.json"
RUNS = 3
ENV = {"GOMAXPROCS": "1", "GOFLAGS": "-mod=mod", "GO111MODULE": "on"}


def build(go: str, exe: Path) -> str:
    # -w: no DWARF; the linker cannot describe a linknamed runtime variable.
    subprocess.run([go, "build", "-ldflags=-w", "-o", str(exe), "."], cwd=HERE / "barrier",
                   env=dict(os.environ, **ENV), check=True)
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--go", default="/usr/lib/go-1.19/bin/go")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    if load_before[0] > 0.5:
        print(f"run_barrier_go119: the machine is busy (load {load_before[0]}): "
              "the timings will be noisy", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "barrier"
        version = build(args.go, exe)
        runs = [json.loads(subprocess.run([str(exe)], env=dict(os.environ, **ENV), capture_output=True,
                                          text=True, check=True).stdout) for _ in range(RUNS)]
    for r in runs:
        print(f"store {r['store_nobarrier_ns']:.2f} ns, during mark {r['store_barrier_ns']:.2f} ns "
              f"(ratio {r['barrier_store_ratio']:.1f}), marked {r['store_barrier_marked_ns']:.2f} ns "
              f"(ratio {r['barrier_store_ratio_marked']:.1f})", file=sys.stderr)
    meta = {"go": version, "runs": RUNS, "gomaxprocs": 1, "nproc": os.cpu_count(),
            "command": "GOMAXPROCS=1 barrier (fidelity/barrier, built with -ldflags=-w)",
            "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    summary = {k: statistics.median(r[k] for r in runs)
               for k in ("store_nobarrier_ns", "store_barrier_ns", "store_barrier_marked_ns",
                         "barrier_store_ratio", "barrier_store_ratio_marked")}
    args.out.write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
