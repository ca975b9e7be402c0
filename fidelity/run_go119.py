"""Run the Go side of the fidelity experiment (see docs/gc-fidelity.md).

Builds fidelity/ring with Go 1.19 and runs every concalloc.fidelity
experiment RUNS times with GOMAXPROCS=2 and GODEBUG=gctrace=1,gcpacertrace=1.
Each run's stderr (the traces) is kept as fidelity/go119/<experiment>.<k>.txt
and its stdout (one JSON line of runtime.MemStats) as .<k>.json; the
summary of all of them is fidelity/go119/summary.json.

Go's marks are short (about 0.6 ms) only while its threads have the CPU:
on a busy machine they stretch to 5-20 ms, the mutator allocates through
them (allocate-black), and Go runs half as many cycles with twice the goal
(docs/gc-fidelity.md).  So measure on an idle machine; the load average is
recorded in the summary, and a warning is printed if the machine is busy.
`--hog N` runs N busy processes beside Go on purpose, to show that effect:

    python fidelity/run_go119.py [--go /usr/lib/go-1.19/bin/go]
    python fidelity/run_go119.py --hog 2 --out fidelity/go119-loaded
"""

from __future__ import annotations

import argparse
import contextlib
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


def run_one(exe: Path, exp, k: int, out: Path) -> dict:
    env = dict(os.environ, GOMAXPROCS="2", GODEBUG=GODEBUG, GOGC=str(exp.gogc))
    p = subprocess.run([str(exe), *exp.go_args()], env=env, capture_output=True, text=True, check=True)
    (out / f"{exp.name}.{k}.txt").write_text(p.stderr)
    (out / f"{exp.name}.{k}.json").write_text(p.stdout)
    return {"cycles": parse_trace(p.stderr), "memstats": json.loads(p.stdout),
            "gctrace": [l for l in p.stderr.splitlines() if l.startswith("gc ")]}


@contextlib.contextmanager
def hogs(n: int):
    """n busy processes (one spinning Python each) for the duration."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--go", default="/usr/lib/go-1.19/bin/go")
    ap.add_argument("--out", type=Path, default=OUT, help="where the traces and summary.json go")
    ap.add_argument("--hog", type=int, default=0, metavar="N",
                    help="run N busy processes beside Go (to measure a loaded machine)")
    args = ap.parse_args()
    out = args.out
    out.mkdir(exist_ok=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    if not args.hog and load_before[0] > 0.5:
        print(f"run_go119: the machine is busy (load {load_before[0]}): Go's marks stretch when its "
              "threads lose the CPU, and its cycle counts with them (docs/gc-fidelity.md)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp, hogs(args.hog):
        exe = Path(tmp) / "ring"
        version = build(args.go, exe)
        experiments = {}
        for exp in EXPERIMENTS:
            runs = [run_one(exe, exp, k, out) for k in range(1, RUNS + 1)]
            experiments[exp.name] = {
                "command": f"GOMAXPROCS=2 GOGC={exp.gogc} GODEBUG={GODEBUG} ring {' '.join(exp.go_args())}",
                "summary": summarize([r["cycles"] for r in runs]),
                "first_cycles": runs[0]["gctrace"][:FIRST],
                "memstats": [r["memstats"] for r in runs],
            }
            print(exp.name, experiments[exp.name]["summary"], file=sys.stderr)
    meta = {"go": version, "runs": RUNS, "godebug": GODEBUG, "gomaxprocs": 2,
            "build": f"{args.go} build (in fidelity/ring)", "nproc": os.cpu_count(),
            "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "hog": args.hog}
    (out / "summary.json").write_text(json.dumps({"meta": meta, "experiments": experiments}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
