"""`concalloc barrier-matrix`: every write barrier x stack-scan protocol, searched for lost objects.

Each cell runs the same workload under seeds 1..N with checkmark on
(GODEBUG gccheckmark=1) and the collector cycling back to back (GOGC off,
a memory limit of 0, so a cycle starts as soon as the last one ends), under
a controlled scheduler so that every failure replays exactly.  A cell
reports what theory expects of it (docs/barriers.md), the runs made, the
runs that lost an object, the runs and seconds to the first loss, and the
command that replays it.  A cell theory calls safe that loses an object is
a collector bug: the command then exits 1.

With --screen, a seed whose program the workload's screen rules out (it
cannot lose an object under the cell's barrier, whatever the schedule;
concalloc/workloads/__init__.py) is not run: the cell counts it as
screened, the runs and the first loss count only the runs made, and the
first loss names its seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .config import BARRIERS, STACK_SCANS, Config
from .runconfig import replay_command
from .runresult import EXIT_OK, EXIT_VIOLATION

# What theory says of each cell (proposal 17503; docs/barriers.md): True = safe.
SAFE = {("dijkstra", "rescan"), ("yuasa", "stw-snapshot"),
        *(("hybrid", s) for s in STACK_SCANS), *(("hybrid-cond", s) for s in STACK_SCANS)}


@dataclass
class Cell:
    barrier: str
    stack_scan: str
    runs: int = 0
    lost: int = 0
    errors: int = 0            # runs that ended otherwise (deadlock, internal error)
    screened: int = 0          # seeds not run: the workload's screen ruled their program out
    first_run: int | None = None   # runs made up to and including the first loss
    first_seed: int | None = None
    first_seconds: float | None = None
    replay: str | None = None
    what: str | None = None    # the first loss's invariant

    @property
    def expected(self) -> str:
        return "safe" if (self.barrier, self.stack_scan) in SAFE else "loses"

    @property
    def surprise(self) -> bool:
        """A cell theory calls safe lost an object."""
        return self.expected == "safe" and self.lost > 0

    def to_json(self) -> dict:
        return {"barrier": self.barrier, "stack_scan": self.stack_scan, "expected": self.expected,
                "runs": self.runs, "lost": self.lost, "errors": self.errors, "screened": self.screened,
                "first_loss_run": self.first_run, "first_loss_seed": self.first_seed, "first_loss_seconds": self.first_seconds,
                "invariant": self.what, "replay": self.replay, "explain": self.explain}

    @property
    def explain(self) -> str | None:
        """The command that tells the first loss as a story, shrunk (concalloc explain)."""
        return None if self.replay is None else self.replay.replace("concalloc run ", "concalloc explain ", 1) + " --shrink"


def cell_config(base: Config, barrier: str, stack_scan: str, seed: int) -> Config:
    return base.replace(barrier=barrier, stack_scan=stack_scan, seed=seed, gccheckmark=True,
                        gogc=-1, memory_limit=0)


def run_cell(base: Config, barrier: str, stack_scan: str, runs: int, runner, stop_at_first: bool,
             screen=None) -> Cell:
    """Seeds 1..runs; screen(cfg) -> False skips a seed (see the module comment)."""
    cell = Cell(barrier, stack_scan)
    t0 = time.monotonic()
    for seed in range(1, runs + 1):
        cfg = cell_config(base, barrier, stack_scan, seed)
        if screen is not None and not screen(cfg):
            cell.screened += 1
            continue
        res = runner(cfg)
        cell.runs += 1
        if res.exit_code == EXIT_VIOLATION:
            cell.lost += 1
            if cell.first_run is None:
                cell.first_run, cell.first_seed = cell.runs, seed
                cell.first_seconds = round(time.monotonic() - t0, 2)
                cell.replay = replay_command(cfg)
                cell.what = res.violations[0]["invariant"] if res.violations else None
            if stop_at_first:
                break
        elif res.exit_code != EXIT_OK:
            cell.errors += 1
    return cell


def run_matrix(base: Config, runs: int, runner, stop_at_first: bool = True, progress=None,
               barriers=BARRIERS, stack_scans=STACK_SCANS, cells=None, screen=None) -> list[Cell]:
    """Every barrier x stack-scan cell, or only `cells` ([(barrier, stack_scan)]) if given;
    screen: see run_cell."""
    todo = list(cells) if cells is not None else [(b, s) for b in barriers for s in stack_scans]
    out = []
    for i, (b, s) in enumerate(todo, 1):
        if progress:
            progress(f"[{i}/{len(todo)}] {b} + {s}")
        out.append(run_cell(base, b, s, runs, runner, stop_at_first, screen))
    return out


def screen_for(mode):
    """run_cell's screen under --screen [sound|likely]: keep a seed unless its
    workload's screen (or, 'likely', its heuristic tier) rules it out."""
    if not mode:
        return None
    from .workloads import screened_out
    likely = mode == "likely"
    return lambda cfg: not screened_out(cfg, likely)


def parse_cells(text: str) -> list[tuple[str, str]]:
    """'hybrid+concurrent,dijkstra+rescan' -> [(barrier, stack_scan), ...]; ValueError naming a bad one."""
    cells = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        b, plus, s = item.partition("+")
        if not plus or b not in BARRIERS or s not in STACK_SCANS:
            raise ValueError(f"expected BARRIER+STACKSCAN ({'|'.join(BARRIERS)} + {'|'.join(STACK_SCANS)}), "
                             f"got {item!r}")
        cells.append((b, s))
    if not cells:
        raise ValueError(f"expected a comma-separated list of BARRIER+STACKSCAN, got {text!r}")
    return cells


def _row(c: Cell) -> list:
    first = "-" if c.first_run is None else f"run {c.first_run}, {c.first_seconds:.1f} s"
    if c.first_seed is not None and c.first_seed != c.first_run:
        first += f" (seed {c.first_seed})"
    return [c.barrier, c.stack_scan, c.expected, c.runs, c.lost, c.errors, first,
            "SAFE CELL LOST AN OBJECT" if c.surprise else ""]


HEADERS = ["barrier", "stack scan", "theory", "runs", "lost", "errors", "first loss", ""]


def text_table(cells: list[Cell]) -> str:
    from .report import table
    out = table(HEADERS, [_row(c) for c in cells], title="barrier x stack-scan: lost objects (checkmark)")
    out += screened_note(cells)
    replays = [f"  {c.barrier} + {c.stack_scan}: {c.replay}" for c in cells if c.replay]
    return out + ("\n\nreplay the first loss of each cell:\n" + "\n".join(replays)
                  + "\n(`concalloc explain ... --shrink` with the same flags tells it as a story)" if replays else "")


def markdown_table(cells: list[Cell]) -> str:
    lines = ["| " + " | ".join(h or "note" for h in HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(str(x) for x in _row(c)) + " |" for c in cells]
    return "\n".join(lines) + screened_note(cells)


def screened_note(cells: list[Cell]) -> str:
    """--screen: the seeds each cell did not run (nothing when none was screened out)."""
    if not any(c.screened for c in cells):
        return ""
    per = ", ".join(f"{c.barrier} + {c.stack_scan}: {c.screened}" for c in cells)
    return (f"\n\nscreened out (the workload's screen: these programs cannot lose an object "
            f"under the cell's barrier, or with --screen likely are unlikely to; not run): {per}")
