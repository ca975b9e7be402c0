"""Benchmarks: `python -m bench [--only PREFIX] [--quick]`.

Every `bench/bench_<name>.py` module exposes `run() -> dict[str, float]`
(optionally `run(quick=False)`), returning figures keyed `<name>.<figure>`.
Each ratio is measured against its floor in the same run (floor and subject
repetitions interleaved, medians taken); the raw medians in ns/op sit beside
it so a reader can see what was divided.

The harness runs each module in a child process of its own (a crash, a hang
or state left behind by one module cannot touch another's figures), prints
one JSON object of all figures with sorted keys on stdout, and progress on
stderr.  A module that raises or dies is reported as
`"<name>": {"error": "..."}`; the others still run, and the exit code is 1.
Figures named in TARGETS are checked under "targets".
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import pkgutil
import subprocess
import sys
import time
import traceback

PREFIX = "bench_"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# figure -> (target, direction): "<=" lower is better, ">=" higher is better.
TARGETS: dict[str, tuple[float, str]] = {
    "alloc.fast_path_ratio": (4, "<="),
    "alloc.steady_ratio": (8, "<="),
    "alloc.python_bytes_per_object": (16, "<="),
    # stated in bench_locks.py, bench_sched.py and bench_runtime.py
    "locks.stats_ratio": (3, "<="),
    "locks.ranked_ratio": (5, "<="),
    "locks.plain_ratio": (1.2, "<="),
    "sched.controlled_ratio": (4, "<="),
    "procs.scaling_8_over_1": (0.8, ">="),
    # stated in bench_vtime.py
    "vtime.overhead_ratio": (1.5, "<="),
    "vtime.model_error": (0.10, "<="),
    # stated in bench_gc.py
    "gc.mark_vs_bfs": (0.33, ">="),
    "gc.stw_mark_term_fraction": (0.05, "<="),
    "gc.barrier_store_ratio": (2, "<="),
    "gc.throughput_ratio": (0.5, ">="),
    # stated in bench_stress.py
    "stress.weave_runs_per_min": (1000, ">="),
    "stress.weave_first_loss.none_concurrent": (60, "<="),
    "stress.weave_first_loss.dijkstra_concurrent": (60, "<="),
    "stress.weave_first_loss.yuasa_concurrent": (60, "<="),
    "stress.weave_safe_lost": (0, "<="),
}


def discover() -> list[str]:
    """Short names (bench_<name>.py -> <name>) of every bench module, sorted."""
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(m.name[len(PREFIX):] for m in pkgutil.iter_modules([here])
                  if m.name.startswith(PREFIX) and not m.ispkg)


def selected(name: str, only: list[str] | None) -> bool:
    """--only alloc runs bench_alloc; --only alloc.fast runs it and keeps the
    figures under that prefix."""
    if not only:
        return True
    return any(name.startswith(p) or p.startswith(name + ".") for p in only)


def keep_figure(key: str, name: str, only: list[str] | None) -> bool:
    if not only:
        return True
    return any(name.startswith(p) or key.startswith(p) for p in only)


def check_result(res) -> dict[str, float]:
    if not isinstance(res, dict):
        raise TypeError(f"run() returned {type(res).__name__}, want dict[str, float]")
    for k, v in res.items():
        if not isinstance(k, str):
            raise TypeError(f"run() returned a non-string key {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TypeError(f"run() returned {k}={v!r}, want a finite number")
    return res


def run_in_process(name: str, quick: bool) -> dict[str, float]:
    """Import bench_<name> and call its run(), passing quick if it takes it."""
    mod = importlib.import_module(f"{__name__}.{PREFIX}{name}")
    run = mod.run
    kwargs = {}
    if quick:
        try:
            params = inspect.signature(run).parameters
        except (TypeError, ValueError):
            params = {}
        if "quick" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            kwargs["quick"] = True
    return check_result(run(**kwargs))


def child_main(name: str, quick: bool) -> int:
    """In the child: run one module, write {"ok": figures} or {"error": text}
    as the only line on the real stdout (the module's own prints go to stderr)."""
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        msg = {"ok": run_in_process(name, quick)}
    except BaseException as e:  # noqa: BLE001 - every failure is reported, none kills the harness
        traceback.print_exc(file=sys.stderr)
        msg = {"error": f"{type(e).__name__}: {e}"}
    finally:
        sys.stdout = out
    out.write(json.dumps(msg) + "\n")
    out.flush()
    return 0


def run_module(name: str, quick: bool, timeout: float) -> dict:
    """Run one module in a child process; {"ok": figures} or {"error": text}."""
    cmd = [sys.executable, "-m", __name__, "--child", name] + (["--quick"] if quick else [])
    try:
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = p.stdout.strip().splitlines()
    if lines:
        try:
            msg = json.loads(lines[-1])
            if isinstance(msg, dict) and ("ok" in msg or "error" in msg):
                return msg
        except json.JSONDecodeError:
            pass
    return {"error": f"child exited with code {p.returncode} and no result"}


def targets_for(figures: dict[str, float]) -> dict[str, dict]:
    out = {}
    for key, (target, direction) in TARGETS.items():
        if key in figures:
            v = figures[key]
            ok = v <= target if direction == "<=" else v >= target
            out[key] = {"target": target, "direction": direction, "ok": ok}
    return out


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", metavar="PREFIX",
                    help="run only modules/figures with this prefix (e.g. alloc); repeatable")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions: honest figures, just noisier")
    ap.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                    help="per-module time limit (default 600)")
    ap.add_argument("--list", action="store_true", help="list the bench modules and exit")
    ap.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        return child_main(args.child, args.quick)
    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    chosen = [n for n in names if selected(n, args.only)]
    if not chosen:
        print(f"python -m bench: no bench module matches {args.only} (have: {', '.join(names) or 'none'})",
              file=sys.stderr)
        return 2
    try:
        load = os.getloadavg()[0]
        print(f"[bench] 1-minute load average {load:.2f} on {os.cpu_count()} CPUs"
              f"{' (busy machine: expect noisier figures)' if load >= 1 else ''}",
              file=sys.stderr, flush=True)
    except OSError:
        pass
    figures: dict[str, float] = {}
    errors: dict[str, dict] = {}
    for name in chosen:
        print(f"[bench] {name}: start{' (quick)' if args.quick else ''}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        msg = run_module(name, args.quick, args.timeout)
        dt = time.monotonic() - t0
        if "ok" in msg:
            figures.update({k: v for k, v in msg["ok"].items() if keep_figure(k, name, args.only)})
            print(f"[bench] {name}: done in {dt:.1f} s", file=sys.stderr, flush=True)
        else:
            errors[name] = {"error": msg["error"]}
            print(f"[bench] {name}: FAILED in {dt:.1f} s: {msg['error']}", file=sys.stderr, flush=True)
    result: dict = dict(figures)
    result.update(errors)
    result["targets"] = targets_for(figures)
    print(json.dumps(result, sort_keys=True, indent=2))
    return 1 if errors else 0
