"""Run the Go side of the fidelity experiment (see docs/gc-fidelity.md).

Builds fidelity/ring with Go 1.19 and runs every concalloc.fidelity
experiment RUNS times with GOMAXPROCS=2 and GODEBUG=gctrace=1,gcpacertrace=1.
Each run's stderr (the traces) is kept as fidelity/go119/<experiment>.<k>.txt
and its stdout (one JSON line of runtime.MemStats) as .<k>.json; the
summary of all of them is fidelity/go119/summary.json.

    python fidelity/run_go119.py [--go /usr/lib/go-1.19/bin/go]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from concalloc.fidelity import EXPERIMENTS, summarize
from concalloc.gc.gctrace import parse_trace

HERE = Path(__file__).resolve().parent
OUT = HERE / "go119"
RUNS = 3
GODEBUG = "gctrace=1,gcpacertrace=1"
FIRST = 3          # trace lines of the first cycles kept in the summary


def build(go: str, exe: Path) -> str:
    env = dict(os.environ, GOFLAGS="-mod=mod", GO111MODULE="on")
    subprocess.run([go, "build", "-o", str(exe), "."], cwd=HERE / "ring", env=env, check=True)
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()


def run_one(exe: Path, exp, k: int) -> dict:
    env = dict(os.environ, GOMAXPROCS="2", GODEBUG=GODEBUG, GOGC=str(exp.gogc))
    p = subprocess.run([str(exe), *exp.go_args()], env=env, capture_output=True, text=True, check=True)
    (OUT / f"{exp.name}.{k}.txt").write_text(p.stderr)
    (OUT / f"{exp.name}.{k}.json").write_text(p.stdout)
    return {"cycles": parse_trace(p.stderr), "memstats": json.loads(p.stdout),
            "gctrace": [l for l in p.stderr.splitlines() if l.startswith("gc ")]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--go", default="/usr/lib/go-1.19/bin/go")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "ring"
        version = build(args.go, exe)
        experiments = {}
        for exp in EXPERIMENTS:
            runs = [run_one(exe, exp, k) for k in range(1, RUNS + 1)]
            experiments[exp.name] = {
                "command": f"GOMAXPROCS=2 GOGC={exp.gogc} GODEBUG={GODEBUG} ring {' '.join(exp.go_args())}",
                "summary": summarize([r["cycles"] for r in runs]),
                "first_cycles": runs[0]["gctrace"][:FIRST],
                "memstats": [r["memstats"] for r in runs],
            }
            print(exp.name, experiments[exp.name]["summary"], file=sys.stderr)
    meta = {"go": version, "runs": RUNS, "godebug": GODEBUG, "gomaxprocs": 2,
            "build": f"{args.go} build (in fidelity/ring)", "nproc": os.cpu_count(),
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    (OUT / "summary.json").write_text(json.dumps({"meta": meta, "experiments": experiments}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
