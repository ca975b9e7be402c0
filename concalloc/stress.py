"""`concalloc stress` and `concalloc stress-report`: resumable, sharded campaigns.

A campaign is a grid of configurations (cells: the product of the axes
given as comma lists, e.g. --barrier none,hybrid --scheduler random,pct)
times a range of seeds.  Each (cell, seed) is one job: one Runtime run in
a worker process.  Workers are processes of our own (forkserver, else
spawn: never a fork of a parent that runs threads), each running one job
at a time and reused for the next; a worker whose run left a thread that
did not unwind retires after reporting, and one that dies is replaced (its
job is recorded as a crash).  Per finished job the parent appends one
JSON line to --out and flushes and fsyncs it before anything else, so a
campaign killed with kill -9 loses at most the jobs in flight.  Restarted
with the same file, it skips every job whose key is already there: the
key is a hash of the job's whole configuration (seed included), so a
changed flag makes new jobs rather than reusing old ones.

--shard i/n keeps the jobs whose index (seed-major, then cell) is i-1
modulo n: n copies run anywhere a job array runs, each into its own file;
`stress-report FILE...` merges them (a job present twice counts once).

PCT cells with --pct-k auto (the default) take k from a pilot run of the
cell under the random scheduler with the first seed (concalloc/pct.py);
the pilot is recorded in the file too, so a restart or another shard gets
the same k, and every replay command names it.

--screen skips the seeds whose program the workload's screen rules out
(it cannot lose an object under the cell's configuration, whatever the
schedule; concalloc/workloads/__init__.py): each is recorded as a line of
kind "screened" (no run), and the report counts them per cell beside the
runs, so a screened campaign says how many programs it did not run.

Exit codes: 0 every run ok; 1 some run found a violation; 3 runs ended
otherwise (deadlock, hang, crash) and none found a violation; 2 bad
arguments; 130 interrupted (what finished is in the file).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_ready

from .config import BARRIERS, MARK_ORDERS, SCHEDULERS, STACK_SCANS, Config, ConfigError, parse_bytes
from .pct import k_from_steps
from .runconfig import replay_command, run_config_dict
from .runresult import EXIT_INTERNAL, EXIT_OK, EXIT_VIOLATION

RECORD_FORMAT = "concalloc-stress"          # each line's "format"
REPORT_FORMAT, REPORT_VERSION = "concalloc-stress-report", 1
EXIT_INTERRUPTED = 130
DEFAULT_GODEBUG = "gccheckmark=1"

# The axes: flag, Config field, how one value is read.  A comma list makes a grid.
AXES = (("--workload", "workload", str), ("--procs", "procs", int), ("--barrier", "barrier", str),
        ("--stack-scan", "stack_scan", str), ("--mark-order", "mark_order", str), ("--scheduler", "scheduler", str),
        ("--gogc", "gogc", None),
        ("--pct-depth", "pct_depth", int), ("--cache", "cache", None), ("--godebug", "godebug", None))


# --- jobs --------------------------------------------------------------------------------

@dataclass
class Job:
    kind: str                  # "run", "pilot" (a PCT cell's k, see concalloc/pct.py) or "screened" (--screen)
    cell: dict                 # the axis values, for people
    cfg: Config
    cache: bool
    timeout: float
    key: str = ""

    def __post_init__(self):
        self.key = self.key or job_key(self.kind, self.cfg, self.cache)


def job_key(kind: str, cfg: Config, cache: bool) -> str:
    """The job's identity: a hash of its whole configuration (seed included)."""
    doc = json.dumps([kind, run_config_dict(cfg, cache)], sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def cell_id(config: dict) -> str:
    """A cell: the configuration without its seed and without the settings
    left at their defaults, so that records written before a Config field
    existed share a cell with those written after it."""
    defaults = _default_config()
    return json.dumps({k: v for k, v in config.items() if k != "seed" and defaults.get(k, _NO_DEFAULT) != v},
                      sort_keys=True, default=str)


_NO_DEFAULT = object()


@functools.cache
def _default_config() -> dict:
    """The default configuration as a results file stores it (JSON types)."""
    return json.loads(json.dumps(run_config_dict(Config(), True), default=str))


def summarize_violation(v: dict) -> dict:
    message = (v.get("message") or "").splitlines()
    return {"invariant": v.get("invariant"), "message": message[0] if message else "",
            "cycle": v.get("cycle"), "phase": v.get("phase"), "thread": v.get("thread")}


def execute(job: Job) -> dict:
    """Run one job in this process; its record (plus "retire": the process should exit)."""
    from .runtime import Runtime, RunTimeout
    cfg = job.cfg
    rec = {"format": RECORD_FORMAT, "kind": job.kind, "key": job.key, "cell": job.cell, "seed": cfg.seed,
           "config": run_config_dict(cfg, job.cache), "replay": replay_command(cfg, job.cache),
           "exit_code": EXIT_INTERNAL, "outcome": "error", "violation": None, "error": None}
    t0 = time.monotonic()
    retire = False
    try:
        rt = Runtime(cfg, cache=job.cache)
    except Exception as e:  # noqa: BLE001 - recorded
        rec["error"] = f"{type(e).__name__}: {e}"
        rec["seconds"] = round(time.monotonic() - t0, 3)
        return rec
    try:
        res = rt.run_bounded(job.timeout)
    except RunTimeout as e:
        rec.update(outcome="timeout", error=str(e).splitlines()[0])
    except BaseException as e:  # noqa: BLE001 - recorded
        rec["error"] = f"{type(e).__name__}: {e}"
    else:
        rec["exit_code"] = res.exit_code
        rec["outcome"] = {EXIT_OK: "ok", EXIT_VIOLATION: "violation"}.get(res.exit_code, "error")
        if res.violations:
            rec["violation"] = summarize_violation(res.violations[0])
        elif res.error is not None:
            rec["error"] = f"{type(res.error).__name__}: {str(res.error).splitlines()[0] if str(res.error) else ''}"
        rec["steps"] = res.sched.get("steps")
        rec["num_gc"] = res.gc.get("num_gc")
        rec["event_log_hash"] = res.event_log_hash
        if hasattr(rt.sched, "priorities"):
            rec["threads"] = len(rt.sched.priorities())
    finally:
        retire = rt.sched.alive()       # a thread did not unwind: this process is spent
        rt.close()
    rec["seconds"] = round(time.monotonic() - t0, 3)
    rec["retire"] = retire
    return rec


# --- worker processes ----------------------------------------------------------------------

def _worker_main(conn) -> None:
    """A worker: run the jobs the parent sends until told to stop (None) or spent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to handle
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        rec = execute(job)
        try:
            conn.send(rec)
        except OSError:
            return
        if rec.get("retire"):
            return


def _context():
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["concalloc.stress", "concalloc.runtime"])
    return ctx


class _Proc:
    """The parent's handle on one worker process."""

    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="concalloc-stress")
        self.proc.start()
        child.close()
        self.job: Job | None = None

    def stop(self, force: bool = False) -> None:
        if force:
            self.proc.terminate()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def crash_record(job: Job, exitcode) -> dict:
    how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    return {"format": RECORD_FORMAT, "kind": job.kind, "key": job.key, "cell": job.cell, "seed": job.cfg.seed,
            "config": run_config_dict(job.cfg, job.cache), "replay": replay_command(job.cfg, job.cache),
            "exit_code": EXIT_INTERNAL, "outcome": "crash", "violation": None,
            "error": f"the worker process died ({how})", "seconds": None}


def run_pool(jobs: list[Job], nworkers: int, on_record) -> None:
    """Run the jobs on up to nworkers worker processes, calling on_record(rec) in the
    parent as each finishes.  KeyboardInterrupt stops every worker and is re-raised."""
    if not jobs:
        return
    ctx = _context()
    pending = deque(jobs)
    idle = [_Proc(ctx) for _ in range(min(nworkers, len(jobs)))]
    busy: list[_Proc] = []
    try:
        while pending or busy:
            while pending and idle:
                w = idle.pop()
                w.job = pending.popleft()
                try:
                    w.conn.send(w.job)
                except OSError:         # it died while idle: a new one takes the job
                    pending.appendleft(w.job)
                    w.stop(force=True)
                    idle.append(_Proc(ctx))
                    continue
                busy.append(w)
            ready = set(wait_ready([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in [w for w in busy if w.conn in ready or w.proc.sentinel in ready]:
                rec = None
                try:
                    if w.conn.poll():
                        rec = w.conn.recv()
                except (EOFError, OSError):
                    rec = None
                if rec is None and w.proc.is_alive():
                    continue            # woken by the pipe before the data: wait again
                busy.remove(w)
                if rec is None:         # the process died with its job
                    w.proc.join()
                    rec = crash_record(w.job, w.proc.exitcode)
                    w.conn.close()
                    idle.append(_Proc(ctx))
                elif rec.pop("retire", False):
                    w.stop()
                    idle.append(_Proc(ctx))
                else:
                    idle.append(w)
                on_record(rec)
    except BaseException:
        for w in busy + idle:
            w.stop(force=True)
        raise
    for w in idle:
        w.stop()


# --- the results file ----------------------------------------------------------------------

def read_records(path: str, repair: bool = False) -> list[dict]:
    """The records of a results file.  A last line cut short (the writer was killed) is
    ignored, and with repair cut off the file so that appending starts a fresh line."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    if repair and end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    out = []
    for n, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise ConfigError("--out", f"{path}:{n} is not a JSON line (not a stress results file?)") from None
        if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT or "key" not in rec:
            raise ConfigError("--out", f"{path}:{n} is not a {RECORD_FORMAT} record")
        out.append(rec)
    return out


class Writer:
    """Appends records to the results file, each flushed and fsync'd at once."""

    def __init__(self, path: str):
        self.f = open(path, "a")

    def write(self, rec: dict) -> None:
        self.f.write(json.dumps(rec, default=str) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


# --- progress --------------------------------------------------------------------------

def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """One line on stderr: jobs done of all, elapsed, ETA, violations and errors so far.
    On a terminal it is redrawn (at most every 0.5 s); elsewhere printed every `every` s."""

    def __init__(self, total: int, stream=None, every: float = 10.0):
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.5 if self.tty else every
        self.done = self.violations = self.errors = 0
        self.cells: set[str] = set()
        self.t0 = time.monotonic()
        self.last = self.t0

    def update(self, rec: dict) -> None:
        self.done += 1
        if rec["outcome"] == "violation":
            self.violations += 1
            self.cells.add(cell_id(rec["config"]))
        elif rec["outcome"] != "ok":
            self.errors += 1
        now = time.monotonic()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            self.show(end=self.done == self.total)

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        eta = clock(elapsed / self.done * (self.total - self.done)) if self.done else "--"
        return (f"stress: {self.done:,}/{self.total:,} ({self.done / max(self.total, 1):.0%}) "
                f"in {clock(elapsed)}, ETA {eta}; {self.violations:,} violation(s) in "
                f"{len(self.cells)} cell(s), {self.errors:,} error(s)")

    def show(self, end: bool = False) -> None:
        if self.tty:
            print("\r" + self.line(), end="\n" if end else "", file=self.stream, flush=True)
        else:
            print(self.line(), file=self.stream, flush=True)


# --- planning ------------------------------------------------------------------------------

def parse_seeds(text: str) -> range:
    """'A:B' (A..B inclusive) or 'N' (one seed)."""
    a, sep, b = str(text).partition(":")
    try:
        lo, hi = int(a), int(b) if sep else int(a)
    except ValueError:
        lo = hi = -1
    if lo < 0 or hi < lo:
        raise ConfigError("--seeds", f"expected A:B (seeds A to B inclusive, 0 <= A <= B) or N, got {text!r}")
    return range(lo, hi + 1)


def parse_shard(text: str) -> tuple[int, int]:
    i, sep, n = str(text).partition("/")
    if not (sep and i.isdigit() and n.isdigit() and 1 <= int(i) <= int(n)):
        raise ConfigError("--shard", f"expected i/n with 1 <= i <= n, e.g. 1/4, got {text!r}")
    return int(i), int(n)


def axis_values(flag: str, text) -> list:
    from .demo import parse_gogc
    if flag == "--godebug":        # repeatable: each value one cell (a value holds commas)
        vals = list(text) or [DEFAULT_GODEBUG]
    else:
        vals = [x.strip() for x in str(text).split(",") if x.strip()]
    if not vals:
        raise ConfigError(flag, "no value given")
    if flag == "--scheduler" and "replay" in vals:
        raise ConfigError(flag, "a campaign draws its schedules from seeds: not replay")
    if flag == "--gogc":
        return list(dict.fromkeys(parse_gogc(v) for v in vals))
    if flag == "--cache":
        if any(v not in ("on", "off") for v in vals):
            raise ConfigError(flag, f"expected on, off or on,off, got {text!r}")
        return list(dict.fromkeys(v == "on" for v in vals))
    if flag in ("--procs", "--pct-depth"):
        try:
            return list(dict.fromkeys(int(v) for v in vals))
        except ValueError:
            raise ConfigError(flag, f"expected integers, got {text!r}") from None
    return list(dict.fromkeys(vals))


def cells(base: Config, axes: dict[str, list]) -> list[tuple[dict, Config, bool]]:
    """(cell, config, cache) for every combination of the axes' values, validated."""
    out = []
    names = list(axes)
    for values in itertools.product(*(axes[n] for n in names)):
        cell = dict(zip(names, values))
        fields = {k: v for k, v in cell.items() if k not in ("cache", "godebug")}
        cfg = base.replace(**fields)
        cfg = Config.from_godebug(cell.get("godebug", ""), cfg)
        if cfg.scheduler != "pct":     # depth means nothing to it: one cell, not one per depth
            cell.pop("pct_depth", None)
            cfg = cfg.replace(pct_depth=base.pct_depth)
        cell["cache"] = "on" if cell.get("cache", True) else "off"
        out.append((cell, cfg, cell["cache"] == "on"))
    seen = {}
    for cell, cfg, cache in out:    # non-pct cells that differ only in --pct-depth are one cell
        seen.setdefault(job_key("run", cfg, cache), (cell, cfg, cache))
    return list(seen.values())


def plan(grid: list[tuple[dict, Config, bool]], seeds: range, shard: tuple[int, int], timeout: float,
         ks: dict[str, int] | None = None) -> list[Job]:
    """The shard's jobs, seed-major so that a partial campaign covers every cell evenly.
    ks: the pilot's steps of each PCT cell (by pilot key) under --pct-k auto."""
    i, n = shard
    jobs = []
    for idx, (seed, (cell, cfg, cache)) in enumerate(itertools.product(seeds, grid)):
        if idx % n != i - 1:
            continue
        c = cfg.replace(seed=seed)
        if ks is not None and cfg.scheduler == "pct":
            c = c.replace(pct_k=k_from_steps(ks[pilot_job(cell, cfg, cache, seeds[0], timeout).key],
                                             cfg.pct_depth))
        jobs.append(Job("run", cell, c, cache, timeout))
    return jobs


def pilot_job(cell: dict, cfg: Config, cache: bool, seed: int, timeout: float) -> Job:
    """The run that measures a PCT cell's k: the cell under random, with the first seed
    (cells that differ only in their depth share it)."""
    return Job("pilot", cell, cfg.replace(scheduler="random", seed=seed, pct_depth=Config.pct_depth),
               cache, timeout)


def pct_ks(grid, seeds: range, timeout: float, done: dict, run) -> dict[str, int]:
    """{pilot key: its steps} for every PCT cell (k is k_from_steps of them): pilots found
    in `done` are reused, the others run through run(jobs) (which records them)."""
    pilots = {}
    for cell, cfg, cache in grid:
        if cfg.scheduler == "pct":
            j = pilot_job(cell, cfg, cache, seeds[0], timeout)
            pilots.setdefault(j.key, j)
    for rec in run([j for j in pilots.values() if j.key not in done]):
        done[rec["key"]] = rec
    ks = {}
    for key in pilots:
        steps = done[key].get("steps")
        if not steps:
            raise ConfigError("--pct-k", f"the pilot run for k failed ({done[key].get('error')}): "
                                         f"give --pct-k K; replay it with {done[key]['replay']}")
        ks[key] = steps
    return ks


def pct_plan(grid, seeds: range, timeout: float, ks: dict, done: dict, confidence: float) -> list[str]:
    """Before the campaign, per PCT cell: its guarantee (n from the pilot) and what the seeds give."""
    from .pct import Guarantee, confidence_after
    out = []
    for cell, cfg, cache in grid:
        if cfg.scheduler != "pct":
            continue
        key = pilot_job(cell, cfg, cache, seeds[0], timeout).key
        n = done[key].get("threads")
        if not n:
            continue
        g = Guarantee(n=n, k=k_from_steps(ks[key], cfg.pct_depth), d=cfg.pct_depth, confidence=confidence)
        label = " ".join(str(v) for k, v in cell.items() if k in ("workload", "barrier", "stack_scan", "procs"))
        out.append(f"stress: {label}: {g.text()}; {len(seeds):,} seeds give "
                   f"{100 * confidence_after(g.p, len(seeds)):.3g}%")
    return out


# --- the report ------------------------------------------------------------------------------

@dataclass
class CellReport:
    cell: dict
    config: dict
    runs: int = 0
    violations: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_seed: int | None = None
    first_replay: str | None = None
    first_invariant: str | None = None
    threads: int = 0
    seeds: list = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)
    screened: list = field(default_factory=list)    # seeds --screen did not run

    def add(self, rec: dict) -> None:
        if rec["kind"] == "screened":
            self.screened.append(rec["seed"])
            return
        self.runs += 1
        self.seeds.append(rec["seed"])
        self.seconds += rec.get("seconds") or 0.0
        self.threads = max(self.threads, rec.get("threads") or 0)
        self.outcomes[rec["outcome"]] = self.outcomes.get(rec["outcome"], 0) + 1
        if rec["outcome"] == "violation":
            self.violations += 1
            if self.first_seed is None or rec["seed"] < self.first_seed:
                self.first_seed, self.first_replay = rec["seed"], rec["replay"]
                self.first_invariant = (rec.get("violation") or {}).get("invariant")
        elif rec["outcome"] != "ok":
            self.errors += 1

    @property
    def rate(self) -> float:
        return self.violations / self.runs if self.runs else 0.0

    def runs_to_first(self) -> int | None:
        """Runs in seed order up to and including the first violating seed."""
        return None if self.first_seed is None else sum(1 for s in self.seeds if s <= self.first_seed)

    def programs_to_first(self) -> int | None:
        """Seeds in order up to and including the first violating one, screened ones included."""
        return None if self.first_seed is None else \
            self.runs_to_first() + sum(1 for s in self.screened if s <= self.first_seed)

    def guarantee(self, confidence: float):
        if self.config.get("scheduler") != "pct" or not self.threads:
            return None
        from .pct import Guarantee
        return Guarantee(n=self.threads, k=self.config["pct_k"], d=self.config["pct_depth"],
                         confidence=confidence)

    def to_json(self, confidence: float) -> dict:
        d = {"cell": self.cell, "runs": self.runs, "violations": self.violations, "errors": self.errors,
             "outcomes": self.outcomes, "violation_rate": self.rate, "screened": len(self.screened),
             "seeds": [min(self.seeds + self.screened), max(self.seeds + self.screened)],
             "first_violation": None if self.first_seed is None else
             {"seed": self.first_seed, "runs_to_first": self.runs_to_first(),
              "programs_to_first": self.programs_to_first(),
              "invariant": self.first_invariant, "replay": self.first_replay},
             "seconds": round(self.seconds, 3), "config": self.config}
        g = self.guarantee(confidence)
        if g:
            from .pct import confidence_after
            d["pct"] = {**g.to_json(), "confidence_reached": confidence_after(g.p, self.runs)}
        return d


def merge(records: list[dict]) -> list[CellReport]:
    """Per cell, the run and screened records (each job key once, each seed once: a
    seed both run and screened counts as run), in the order cells first appear."""
    seen: set[str] = set()
    by_cell: dict[str, CellReport] = {}
    for rec in records:
        if rec.get("kind") not in ("run", "screened") or rec["key"] in seen:
            continue
        seen.add(rec["key"])
        cid = cell_id(rec["config"])
        if cid not in by_cell:
            by_cell[cid] = CellReport(rec["cell"], {k: v for k, v in rec["config"].items() if k != "seed"})
        by_cell[cid].add(rec)
    for c in by_cell.values():       # a seed run in some campaign is a run, whatever a screen said of it
        ran = set(c.seeds)
        c.screened = sorted({s for s in c.screened if s not in ran})
    return sorted(by_cell.values(), key=lambda c: cell_order(c.cell))


def cell_order(cell: dict) -> tuple:
    """Cells in the order the axes list their values (barriers as BARRIERS lists them, ...)."""
    known = {"barrier": BARRIERS, "stack_scan": STACK_SCANS, "mark_order": MARK_ORDERS, "scheduler": SCHEDULERS}
    out = []
    for _, k, _ in AXES:
        v = cell.get(k)
        out.append((known[k].index(v), "") if k in known and v in known[k] else (-1, str(v)))
    return tuple(out)


def _label(c: CellReport, varying: list[str]) -> str:
    return " ".join(str(c.cell[k]) for k in varying if k in c.cell) or c.cell.get("workload", "")


def text_report(reports: list[CellReport], confidence: float = 0.99) -> str:
    from .report import table
    keys = [k for _, k, _ in AXES if len({str(c.cell.get(k)) for c in reports}) > 1]
    keys = keys or ["workload"]
    rows = []
    for c in reports:
        first = "-" if c.first_seed is None else f"seed {c.first_seed} (run {c.runs_to_first()})"
        rows.append([_label(c, keys), f"{c.runs:,}", f"{c.violations:,}", f"{c.errors:,}",
                     f"{100 * c.rate:.2f}%", first, clock(c.seconds)])
    total = sum(c.runs for c in reports)
    out = table([" ".join(keys), "runs", "violations", "errors", "rate", "first violation", "run time"],
                rows, title=f"stress: {len(reports)} cell(s), {total:,} runs")
    replays = [f"  {_label(c, keys)}: {c.first_invariant}\n    {c.first_replay}" for c in reports if c.first_replay]
    if replays:
        out += "\n\nreplay the first violation of each cell:\n" + "\n".join(replays)
    lines = []
    for c in reports:
        g = c.guarantee(confidence)
        if g:
            from .pct import confidence_after
            lines.append(f"  {_label(c, keys)}: {g.text()[5:]}; these {c.runs:,} runs: "
                         f"{100 * confidence_after(g.p, c.runs):.3g}%")
    if lines:
        out += "\n\nPCT's guarantee per cell:\n" + "\n".join(lines)
    screened = [f"  {_label(c, keys)}: {len(c.screened):,} of {len(c.screened) + c.runs:,} seeds"
                + ("" if c.first_seed is None else f" (first violation after {c.programs_to_first():,} seeds)")
                for c in reports if c.screened]
    if screened:
        out += ("\n\nscreened out by the workload's screen (--screen: the program cannot lose anything "
                "under the cell; --screen likely: it is unlikely to; not run):\n" + "\n".join(screened))
    return out


def json_report(reports: list[CellReport], files: list[str], confidence: float) -> dict:
    return {"format": REPORT_FORMAT, "format_version": REPORT_VERSION, "files": files,
            "runs": sum(c.runs for c in reports), "screened": sum(len(c.screened) for c in reports),
            "violations": sum(c.violations for c in reports),
            "errors": sum(c.errors for c in reports), "cells": [c.to_json(confidence) for c in reports]}


def exit_code(reports: list[CellReport]) -> int:
    if any(c.violations for c in reports):
        return EXIT_VIOLATION
    return EXIT_INTERNAL if any(c.errors for c in reports) else EXIT_OK


# --- the commands --------------------------------------------------------------------------

def base_config(args) -> Config:
    from .demo import parse_memlimit
    return Config(procs=2, steps=args.steps, live=args.live, size=args.size, max_steps=args.max_steps,
                  memory_limit=parse_memlimit(args.memlimit), gc_workers=args.gc_workers,
                  reserve_bytes=parse_bytes(args.reserve, "reserve"), sticky=args.sticky,
                  pct_k=args.pct_k if args.pct_k != "auto" else Config.pct_k, mutators=args.mutators,
                  gccheckmark=False, lock_stats=False)


def campaign(args) -> tuple[list, range, tuple[int, int]]:
    """(grid, seeds, shard) from the stress command's arguments, every cell validated."""
    from .cli import UsageError
    seeds = parse_seeds(args.seeds)
    shard = parse_shard(args.shard)
    if args.jobs < 1:
        raise UsageError(f"--jobs: must be at least 1, got {args.jobs}")
    if not args.timeout > 0:
        raise UsageError(f"--timeout: must be positive, got {args.timeout}")
    axes = {name: axis_values(flag, getattr(args, name)) for flag, name, _ in AXES}
    return cells(base_config(args), axes), seeds, shard


def cmd_stress(args) -> int:
    grid, seeds, shard = campaign(args)
    done = {r["key"]: r for r in read_records(args.out, repair=True)}
    writer = Writer(args.out)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))

    def run_and_record(jobs: list[Job], progress: Progress | None = None) -> list[dict]:
        got = []

        def on_record(rec):
            writer.write(rec)
            got.append(rec)
            if progress:
                progress.update(rec)
        run_pool(jobs, args.jobs, on_record)
        return got

    try:
        ks = None
        if args.pct_k == "auto" and any(cfg.scheduler == "pct" for _, cfg, _ in grid):
            say("stress: measuring k for the PCT cells (a pilot run each, --pct-k auto)")
            ks = pct_ks(grid, seeds, args.timeout, done, run_and_record)
            for line in pct_plan(grid, seeds, args.timeout, ks, done, args.confidence):
                say(line)
        jobs = plan(grid, seeds, shard, args.timeout, ks)
        if args.screen:
            jobs = screen_jobs(jobs, done, writer, likely=args.screen == "likely")
        todo = [j for j in jobs if j.key not in done and j.kind == "run"]
        nscreened = sum(1 for j in jobs if j.kind == "screened")
        say(f"stress: {len(grid)} cell(s) x {len(seeds):,} seed(s) = {len(grid) * len(seeds):,} jobs; "
            f"shard {shard[0]}/{shard[1]}: {len(jobs):,}"
            + (f", {nscreened:,} screened out" if args.screen else "")
            + f", {len(jobs) - len(todo) - nscreened:,} already in {args.out}, "
            f"{len(todo):,} to run on {min(args.jobs, max(len(todo), 1))} worker(s)")
        progress = None if args.quiet else Progress(len(todo), every=args.progress_every)
        run_and_record(todo, progress)
    except KeyboardInterrupt:
        writer.close()
        print(f"\nconcalloc: interrupted; the finished jobs are in {args.out} (run again to resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    writer.close()
    mine = {j.key for j in jobs}
    reports = merge([r for r in read_records(args.out) if r["key"] in mine])
    if args.json:
        print(json.dumps(json_report(reports, [args.out], args.confidence)))
    else:
        print(text_report(reports, args.confidence))
    return exit_code(reports)


def screen_jobs(jobs: list[Job], done: dict, writer, likely: bool = False) -> list[Job]:
    """--screen: each job whose program the workload's screen rules out becomes a
    "screened" job, recorded at once (no run).  A job already run stays a run;
    the two screens keep separate records (keys), so a seed the likely tier
    skipped is still run by a later campaign with the sound screen."""
    from .workloads import screened_out
    mode = "likely" if likely else "sound"
    out = []
    for j in jobs:
        if j.key not in done and screened_out(j.cfg, likely):
            j = Job("screened", j.cell, j.cfg, j.cache, j.timeout,
                    key=job_key("screened" if mode == "sound" else "screened-likely", j.cfg, j.cache))
            if j.key not in done:
                rec = {"format": RECORD_FORMAT, "kind": "screened", "screen": mode, "key": j.key, "cell": j.cell,
                       "seed": j.cfg.seed, "config": run_config_dict(j.cfg, j.cache),
                       "replay": replay_command(j.cfg, j.cache), "outcome": "screened"}
                writer.write(rec)
                done[j.key] = rec
        out.append(j)
    return out


def cmd_report(args) -> int:
    records = []
    for path in args.files:
        if not os.path.exists(path):
            raise ConfigError("stress-report", f"no such file {path!r}")
        records += read_records(path)
    reports = merge(records)
    if args.json:
        print(json.dumps(json_report(reports, args.files, args.confidence)))
    else:
        print(text_report(reports, args.confidence))
    return exit_code(reports) if args.exit_code else EXIT_OK


def register(sub) -> None:
    from .pct import AUTO, parse_confidence, parse_k
    d = Config()
    p = sub.add_parser("stress", help="a resumable, sharded campaign: configs x seeds in worker processes, "
                                      "one JSON line per run (see docs/stress.md)")
    c = p.add_argument_group("campaign")
    c.add_argument("--seeds", default="1:20", metavar="A:B",
                   help="seeds A to B inclusive, or one seed N (default: %(default)s)")
    c.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: the CPUs, %(default)s)")
    c.add_argument("--shard", default="1/1", metavar="i/n",
                   help="run only the i-th of n interleaved slices of the jobs (default: %(default)s)")
    c.add_argument("--out", default="stress.jsonl", metavar="FILE",
                   help="results, one JSON line per job; jobs already in it are skipped (default: %(default)s)")
    c.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="a run still going after this long is stopped and recorded as a timeout "
                        "(default: %(default)s)")
    c.add_argument("--quiet", action="store_true", help="no progress on stderr")
    c.add_argument("--progress-every", type=float, default=10.0, metavar="SECONDS",
                   help="progress line interval when stderr is not a terminal (default: %(default)s)")
    c.add_argument("--json", action="store_true", help="print the report as one JSON object")
    c.add_argument("--screen", nargs="?", const="sound", choices=("sound", "likely"),
                   help="skip the seeds whose program the workload's screen rules out (weave: cannot lose "
                        "under the cell); recorded and counted as screened, not run.  'likely': the "
                        "screen's heuristic tier (weave: only programs that can lose in the usual ending), "
                        "to find a first loss fast; never to call a cell safe")
    g = p.add_argument_group("grid axes (a comma list makes one cell per value)")
    g.add_argument("--workload", required=True, metavar="NAME|FILE,...",
                   help="built-in workloads, scenario files or module[:name] (docs/workloads.md)")
    g.add_argument("--procs", default="2", metavar="N,...", help="GOMAXPROCS (default: %(default)s)")
    g.add_argument("--barrier", default=d.barrier, metavar=",".join(BARRIERS),
                   help="write barriers (default: %(default)s)")
    g.add_argument("--stack-scan", dest="stack_scan", default=d.stack_scan, metavar=",".join(STACK_SCANS),
                   help="stack-scan protocols (default: %(default)s)")
    g.add_argument("--mark-order", dest="mark_order", default=d.mark_order, metavar=",".join(MARK_ORDERS),
                   help="the marker's drain orders: Go's, or go-weave's any order (default: %(default)s)")
    g.add_argument("--scheduler", default="random", metavar=",".join(k for k in SCHEDULERS if k != "replay"),
                   help="schedulers; the controlled ones replay exactly (default: %(default)s)")
    g.add_argument("--gogc", default="100", metavar="N|off,...", help="GOGC values (default: %(default)s)")
    g.add_argument("--pct-depth", "--depth", dest="pct_depth", default=str(d.pct_depth), metavar="D,...",
                   help="pct: bug depths (default: %(default)s)")
    g.add_argument("--cache", default="on", metavar="on,off", help="mcache settings (default: %(default)s)")
    g.add_argument("--godebug", action="append", default=[], metavar="K=V,...",
                   help=f"GODEBUG settings; repeat the flag for several cells (default: {DEFAULT_GODEBUG})")
    r = p.add_argument_group("every run")
    r.add_argument("--steps", type=int, default=None, help="allocations per mutator (default: run's, 2000)")
    r.add_argument("--live", type=int, default=d.live, help="live slots per mutator (default: %(default)s)")
    r.add_argument("--size", type=int, default=d.size, help="ring: object size (default: %(default)s)")
    r.add_argument("--mutators", type=int, default=None, help="Ps that run mutators (default: all)")
    r.add_argument("--memlimit", default="off", help="GOMEMLIMIT (default: off)")
    r.add_argument("--gc-workers", type=int, default=None, help="mark workers (default: 25%% of procs)")
    r.add_argument("--max-steps", type=int, default=d.max_steps,
                   help="decision cap per controlled run (default: %(default)s)")
    r.add_argument("--reserve", default="1GiB", help="address-space reservation per run (default: %(default)s)")
    r.add_argument("--sticky", type=float, default=d.sticky, help="sticky-random: switch probability "
                                                                  "(default: %(default)s)")
    r.add_argument("--pct-k", type=parse_k, default=AUTO, metavar="K|auto",
                   help="pct: k; auto measures it per cell with a pilot run (default: %(default)s)")
    r.add_argument("--confidence", type=parse_confidence, default=0.99, metavar="C",
                   help="pct: the confidence the report's runs-needed figure is for (default: %(default)s)")
    p.set_defaults(func=cmd_stress)

    q = sub.add_parser("stress-report", help="merge stress results files (shards) into one report per cell")
    q.add_argument("files", nargs="+", metavar="FILE", help="results files written by `concalloc stress --out`")
    q.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    q.add_argument("--confidence", type=parse_confidence, default=0.99, metavar="C",
                   help="pct: the confidence the runs-needed figure is for (default: %(default)s)")
    q.add_argument("--exit-code", action="store_true",
                   help="exit 1 if any run found a violation, 3 if any ended otherwise (default: exit 0)")
    q.set_defaults(func=cmd_report)
