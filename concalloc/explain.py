"""`concalloc explain`: how a controlled run lost an object, told as a story.

    concalloc explain --replay FILE [--shrink] [--json]
    concalloc explain <the flags of a `concalloc run` replay command> [--shrink]

(the barrier matrix's replay commands become explanations by writing
`explain` for `run`).  The run is repeated with checkmark on
(GODEBUG gccheckmark=1) and its scheduler's decisions recorded as choices
(concalloc/shrink.py).  With --shrink, the choices are delta-debugged down
to the fewest preemptions that still lose an object (--same-object: the same
object, named by who allocated it and when) within the original's steps.
The run explained (the shrunk one, with --shrink) is repeated once more with
a Narrator attached (concalloc/narrate.py) to tell its story (concalloc/story.py), its decisions
are written as a schedule file (--save-schedule FILE, default
explain-schedule.json), and that file is replayed twice through the ordinary
`--replay` path to show that it loses the object again with the same
event_log_hash.

Exit status: 1 when the run loses an object (or breaks another invariant),
as `run` would; 0 when it ends cleanly (nothing to explain); 2 for bad
arguments; 3 when the replay of the written schedule does not repeat the loss.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from .config import Config, ConfigError
from .narrate import Narrator
from .story import Story, aftermath, lost_identity, tell
from .runconfig import read_schedule, replay_config, write_schedule
from .runresult import EXIT_INTERNAL, EXIT_OK, EXIT_VIOLATION
from .runtime import Runtime
from .shrink import Attempt, ChoiceStrategy, ShrinkResult, attempt, shrink

FORMAT, VERSION = "concalloc-explain", 1
DEFAULT_SCHEDULE = "explain-schedule.json"
NARRATABLE = "gc.checkmark"
SHOW_CHOICES = 12       # the text lists this many of the kept choices (--json has them all)


@dataclass
class Explanation:
    config: Config
    original: Attempt
    final: Attempt
    shrunk: ShrinkResult | None
    story: Story | None
    violation: str | None          # the final run's violation text
    schedule_file: str
    replay_hashes: list            # event_log_hash of each replay of schedule_file
    replay_exits: list
    after: list | None = None      # aftermath lines: the same run going on without checkmark

    @property
    def replays_exactly(self) -> bool:
        if not self.replay_hashes:
            return False
        return (all(e == self.final.exit_code for e in self.replay_exits)
                and len(set(self.replay_hashes)) == 1 and self.replay_hashes[0] == self.final.event_log_hash)

    def to_json(self) -> dict:
        return {"format": FORMAT, "format_version": VERSION, "config": self.config.to_dict(),
                "lost": self.final.invariant == NARRATABLE, "invariant": self.final.invariant,
                "violation": self.violation, "story": self.story.to_json() if self.story else None,
                "original": self.original.size(), "final": self.final.size(),
                "choices": [[t, k, u] for (t, k), u in sorted(self.final.choices.items())],
                "shrink": None if self.shrunk is None else
                {"runs": self.shrunk.runs, "seconds": self.shrunk.seconds, "complete": self.shrunk.complete},
                "schedule_file": self.schedule_file or None,
                "replay": f"concalloc run --replay {self.schedule_file}" if self.schedule_file else None,
                "event_log_hash": self.final.event_log_hash, "replay_hashes": self.replay_hashes,
                "replays_exactly": self.replays_exactly}


def _narrating(rt, full: bool = False):
    narr = Narrator(rt)

    def probe(res):
        err = res.error
        if getattr(err, "invariant", None) == NARRATABLE:
            return tell(narr, err, full), lost_identity(narr, err), str(err)
        return None, None, str(err) if res.violations else None
    return probe


def _identifying(rt):
    narr = Narrator(rt)

    def probe(res):
        err = res.error
        return lost_identity(narr, err) if getattr(err, "invariant", None) == NARRATABLE else None
    return probe


def explain(cfg: Config, cache: bool = True, *, save_cfg: Config | None = None, do_shrink: bool = False,
            schedule_file: str = DEFAULT_SCHEDULE, same_object: bool = False, max_runs: int = 400,
            max_seconds: float = 120.0, replays: int = 2, full: bool = False, progress=None) -> Explanation:
    """Explain the run of cfg (a controlled scheduler or a replay), shrunk if asked.
    save_cfg is the configuration written into the schedule file (default cfg)."""
    if cfg.scheduler not in ("random", "pct", "sticky-random", "replay"):
        raise ConfigError("scheduler", "explain needs a controlled run (--scheduler random, pct, "
                                       "sticky-random, or --replay FILE)")
    wanted = cfg.replace(gccheckmark=True)                 # with the user's --trace, --plot, --gctrace
    cfg = wanted.replace(trace=None, plot=None, gctrace=False)    # every other run observes nothing
    save_cfg = (save_cfg or cfg).replace(gccheckmark=True)
    original = attempt(cfg, cache, None, _identifying)
    if original.exit_code == EXIT_OK:         # nothing lost: nothing to tell, write or replay
        return Explanation(cfg, original, original, None, None, None, "", [], [])
    final, shrunk = original, None
    if do_shrink and original.exit_code == EXIT_VIOLATION:
        want = original.lost

        def fails(a: Attempt) -> bool:
            return (a.exit_code == EXIT_VIOLATION and a.invariant == original.invariant
                    and (not same_object or a.lost == want))
        if progress:
            progress(f"shrinking {len(original.choices)} choices, {original.preemptions} preemptions, "
                     f"{original.steps} steps")
        shrunk = shrink(cfg, cache, original, fails, max_runs, max_seconds,
                        _identifying if same_object else None)
        final = shrunk.best
    # The run explained, once more, narrated; its decisions become the schedule file.
    capped = wanted.replace(max_steps=max(final.steps, 1))
    with Runtime(capped, cache=cache) as rt:
        strategy = ChoiceStrategy(final.choices)
        rt.sched.strategy = strategy
        probe = _narrating(rt, full)
        res = rt.run()
        story, _, violation = probe(res)
        write_schedule(schedule_file, rt.sched, save_cfg, cache)
        told = Attempt(res.exit_code, res.violations[0]["invariant"] if res.violations else None, rt.sched.steps,
                       strategy.preemptions, strategy.switches, dict(strategy.taken), res.event_log_hash,
                       rt.sched.schedule(), order=dict(strategy.order))
    after = _aftermath(cfg, cache, told, story) if story is not None else None
    hashes, exits = [], []
    for _ in range(replays):
        rcfg, rcache = replay_config(schedule_file, Config(), set(), None)
        with Runtime(rcfg, cache=rcache) as rt:
            r = rt.run()
            hashes.append(r.event_log_hash)
            exits.append(r.exit_code)
    return Explanation(cfg, original, told, shrunk, story, violation, schedule_file, hashes, exits, after)


AFTER_STEPS = 20_000        # the aftermath run stops this many steps after the loss at most


def _aftermath(cfg: Config, cache: bool, told: Attempt, story: Story) -> list:
    """The explained run again with checkmark off (it takes no decision, so the
    run is the same up to the loss) going on with the default choice: what
    became of the lost object."""
    after_cfg = cfg.replace(gccheckmark=False, max_steps=told.steps + AFTER_STEPS)
    with Runtime(after_cfg, cache=cache) as rt:
        rt.sched.strategy = ChoiceStrategy(told.choices)
        narr = Narrator(rt, watch=(story.address, story.size))
        res = rt.run()
        if rt.sched.schedule()[:told.steps] != told.schedule:
            return [{"step": told.steps, "thread": "run", "kind": "diverged",
                     "text": "without checkmark the run takes other decisions: no aftermath to tell"}]
        return aftermath(narr, story, told.steps, res)


def text(e: Explanation) -> str:
    out = []
    if e.final.exit_code == EXIT_OK:
        return (f"the run ends cleanly after {e.final.steps} steps: no object lost, nothing to explain\n"
                f"(explain turns checkmark on; try more seeds, e.g. concalloc barrier-matrix)")
    if e.story is not None:
        out.append(e.story.text())
        if e.after:
            out.append("without checkmark the same run goes on (then each thread runs until it blocks):")
            width = max(len(ln["thread"]) for ln in e.after)
            out += [f"  step {ln['step']:>5}  {ln['thread']:<{width}}  {ln['text']}" for ln in e.after]
    else:
        out.append(f"the run ends with {e.final.invariant or 'an error'} (no story: only lost objects "
                   f"that checkmark finds are narrated)")
        if e.violation:
            out.append(e.violation)
    o, f = e.original.size(), e.final.size()
    if e.shrunk is not None:
        s = e.shrunk
        out.append(f"\nshrunk: {o['steps']} steps, {o['preemptions']} preemptions, {o['context_switches']} "
                   f"context switches -> {f['steps']} steps, {f['preemptions']} preemptions, "
                   f"{f['context_switches']} context switches ({s.runs} runs, {s.seconds:.1f} s"
                   f"{', 1-minimal' if s.complete else ', budget spent: not minimal'})")
        if f["choices"]:
            kept = sorted(e.final.choices.items(), key=lambda kv: e.final.order.get(kv[0], 0))
            shown = ", ".join(f"{t}'s decision {k} -> {u}" for (t, k), u in kept[:SHOW_CHOICES])
            more = f", ... ({len(kept) - SHOW_CHOICES} more)" if len(kept) > SHOW_CHOICES else ""
            out.append(f"  the choices kept (thread's n-th decision -> thread run next): {shown}{more}")
    else:
        out.append(f"\n{f['steps']} steps, {f['preemptions']} preemptions, {f['context_switches']} context "
                   "switches (--shrink to minimise)")
    same = "the same" if e.replays_exactly else "NOT the same"
    out.append(f"replay: concalloc run --replay {e.schedule_file}  ({len(e.replay_hashes)} replays: exit "
               f"{', '.join(map(str, e.replay_exits))}, {same} event_log_hash {e.final.event_log_hash[:16]}...)")
    return "\n".join(out)


# --- the command ---------------------------------------------------------------------------

def register(sub) -> None:
    from .demo import add_run_arguments
    p = sub.add_parser("explain", help="tell how a controlled run lost an object, as a story; --shrink "
                                       "minimises its preemptions (see docs/explain.md)")
    add_run_arguments(p)
    x = p.add_argument_group("explaining")
    x.add_argument("--shrink", action="store_true",
                   help="delta-debug the schedule to the fewest preemptions that still lose an object "
                        "(default: off)")
    x.add_argument("--same-object", action="store_true",
                   help="--shrink keeps only schedules that lose the same object (default: any object)")
    x.add_argument("--full", action="store_true",
                   help="tell every line from the start of mark, not only from the decisive moment (default: off)")
    x.add_argument("--max-runs", type=int, default=400, help="--shrink: at most this many runs (default: 400)")
    x.add_argument("--budget", type=float, default=120.0, metavar="SECONDS",
                   help="--shrink: at most this long (default: 120)")
    p.set_defaults(func=_cmd_explain)


def _cmd_explain(args) -> int:
    from .cli import UsageError
    from .demo import config_from_args
    if args.max_runs < 1 or args.budget <= 0:
        raise UsageError("--max-runs and --budget must be positive")
    cfg = config_from_args(args)
    cache = args.cache == "on"
    save_cfg = cfg
    if args.replay:
        cfg, cache = replay_config(args.replay, cfg.replace(scheduler=args.scheduler), set(), None)
        save_cfg = read_schedule(args.replay)["config"]
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    e = explain(cfg, cache, save_cfg=save_cfg, do_shrink=args.shrink,
                schedule_file=args.save_schedule or DEFAULT_SCHEDULE, same_object=args.same_object,
                max_runs=args.max_runs, max_seconds=args.budget, full=args.full, progress=say)
    if args.json:
        print(json.dumps(e.to_json()))
    else:
        print(text(e))
    if e.final.exit_code != EXIT_OK and not e.replays_exactly:
        print("concalloc: the written schedule does not replay the same run", file=sys.stderr)
        return EXIT_INTERNAL
    return e.final.exit_code if e.final.exit_code in (EXIT_OK, EXIT_VIOLATION) else EXIT_INTERNAL
