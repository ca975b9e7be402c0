"""From a Config to what a run is built from, and back to a command line.

* with_run_bounds / scheduler_options: a run's bounds and its scheduler's options.
* FLAGS: the one table from each Config field to the `concalloc run` flag
  that sets it.  replay_command (the command line that repeats a run),
  flag_for (errors name the flag, not the field) and the replay checks are
  all derived from it; a Config field with no flag must be listed in
  NO_FLAG with the reason (tests/test_replay_file.py checks both).
* The schedule file: the whole Config (every field, plus the mcache
  setting) beside the controlled scheduler's decisions, under a format name
  and version, so that `--replay FILE` alone repeats the run.  read_schedule
  refuses a malformed or foreign file with one line; replay_config refuses a
  flag that contradicts the file, naming the difference.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from .config import MAX_INT64, Config, ConfigError

DEFAULT_CONTROLLED_STEPS = 2000
DEFAULT_SECONDS = 3.0

SCHEDULE_FORMAT, SCHEDULE_VERSION = "concalloc-schedule", 1
RUN_FORMAT, RUN_VERSION = "concalloc-run", 1            # `run --json`
CONTENTION_FORMAT, CONTENTION_VERSION = "concalloc-contention", 1
SIZECLASSES_FORMAT, SIZECLASSES_VERSION = "concalloc-sizeclasses", 1


def with_run_bounds(cfg: Config) -> Config:
    if cfg.steps is None and cfg.seconds is None:
        return cfg.replace(steps=DEFAULT_CONTROLLED_STEPS) if cfg.controlled() \
            else cfg.replace(seconds=DEFAULT_SECONDS)
    if cfg.controlled() and cfg.steps is None:
        raise ConfigError("seconds", "a controlled run is bounded by --steps, not wall time")
    return cfg


def schedule_seed(cfg: Config) -> int:
    """The controlled scheduler's seed: --schedule-seed when given, else --seed.
    Holding --seed (the workload's draws) and varying this one searches the
    schedules of one program; the other way round, the programs of one schedule."""
    return cfg.seed if cfg.schedule_seed is None else cfg.schedule_seed


def scheduler_options(cfg: Config) -> dict:
    if cfg.scheduler == "os":
        return {"noise": cfg.noise, "switch_interval": cfg.switch_interval}
    if cfg.scheduler == "vtime":
        from .costmodel import load
        return {"costs": load(cfg.cost_table, cfg.costs), "max_steps": cfg.max_steps}
    if cfg.scheduler == "pct":
        return {"depth": cfg.pct_depth, "pct_k": cfg.pct_k, "max_steps": cfg.max_steps}
    if cfg.scheduler == "sticky-random":
        return {"sticky": cfg.sticky, "max_steps": cfg.max_steps}
    if cfg.scheduler == "replay":
        return {"schedule": read_schedule(cfg.replay_file)["schedule"], "max_steps": cfg.max_steps}
    return {"max_steps": cfg.max_steps}


# --- the field -> flag table ---------------------------------------------------------------

def format_bytes(n: int) -> str:
    """64 << 30 -> '64GiB' (the largest unit that divides it), as --reserve reads it back."""
    for suffix, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


@dataclass(frozen=True)
class Flag:
    """How one Config field appears on the `run` command line.

    kind: "value" (--flag VALUE), "switch" (--flag sets True), "negated"
    (--flag sets False) or "godebug" (a key of --godebug's list).
    always: shown in the replay command even at its default value.
    observe: only observes the run (may differ from a replayed schedule file).
    in_command: part of the replay command (not an output file)."""
    option: str
    kind: str = "value"
    render: object = str
    always: bool = False
    observe: bool = False
    in_command: bool = True

    def text(self, field: str) -> str:
        """How an error names the field: '--procs', '--godebug heapcheck'."""
        return f"--godebug {field}" if self.kind == "godebug" else self.option


FLAGS: dict[str, Flag] = {       # in the order the replay command lists them
    "procs": Flag("--procs"),
    "mutators": Flag("--mutators"),
    "workload": Flag("--workload"),
    "steps": Flag("--steps", always=True),
    "seconds": Flag("--seconds"),
    "live": Flag("--live"),
    "size": Flag("--size"),
    "scheduler": Flag("--scheduler", always=True),
    "seed": Flag("--seed", always=True),
    "schedule_seed": Flag("--schedule-seed"),
    "noise": Flag("--noise"),
    "pct_depth": Flag("--pct-depth"),
    "pct_k": Flag("--pct-k"),
    "sticky": Flag("--sticky"),
    "replay_file": Flag("--replay"),
    "reserve_bytes": Flag("--reserve", render=format_bytes),
    "switch_interval": Flag("--switch-interval"),
    "hang_seconds": Flag("--hang-seconds", observe=True),
    "noscan": Flag("--noscan", kind="switch"),
    "lock_stats": Flag("--no-lock-stats", kind="negated", observe=True),
    "invalidptr": Flag("--godebug", kind="godebug"),
    "lockrank": Flag("--godebug", kind="godebug"),
    "heapcheck": Flag("--godebug", kind="godebug"),
    "trace": Flag("--trace", observe=True, in_command=False),
    "plot": Flag("--plot", observe=True, in_command=False),
    "max_steps": Flag("--max-steps"),
    "allocator": Flag("--allocator"),
    "gogc": Flag("--gogc", render=lambda v: "off" if v < 0 else str(v)),
    "memory_limit": Flag("--memlimit", render=lambda v: "off" if v >= MAX_INT64 else format_bytes(v)),
    "barrier": Flag("--barrier"),
    "stack_scan": Flag("--stack-scan"),
    "mark_order": Flag("--mark-order"),
    "gc_workers": Flag("--gc-workers"),
    "gctrace": Flag("--gctrace", kind="switch", observe=True),
    "gccheckmark": Flag("--godebug", kind="godebug"),
    "wbshadow": Flag("--godebug", kind="godebug"),
    "gcstoptheworld": Flag("--godebug", kind="godebug"),
    "cost_table": Flag("--cost-table"),
    "costs": Flag("--cost", kind="repeat"),
    "faults": Flag("--fault", kind="repeat"),
}

# Config fields with no `run` flag, and why.
NO_FLAG = {
    "events": "a library switch: the recorder is on for every controlled or traced run anyway",
    "extra": "free-form, not compared and not saved",
}

# Names other than Config fields that errors use, and the flags users know them by.
OTHER_NAMES = {"GODEBUG": "--godebug", "reserve": "--reserve", "save_schedule": "--save-schedule",
               "out": "--out", "repeat": "--repeat", "cache": "--cache", "vtime_report": "--vtime-report"}


def flag_for(name: str) -> str:
    """The flag a user typed for a Config field or option name ('procs' -> '--procs')."""
    if name in FLAGS:
        return FLAGS[name].text(name)
    return OTHER_NAMES.get(name, name)


def replay_command(cfg: Config, cache: bool = True) -> str:
    """The `concalloc run` command line that repeats this configuration."""
    d, defaults = cfg.to_dict(), Config().to_dict()
    parts = ["concalloc", "run"]
    godebug = []
    for name, flag in FLAGS.items():
        value = d[name]
        shown = flag.always or (name == "pct_k" and cfg.scheduler == "pct")   # `run` defaults to auto
        if not flag.in_command or value is None or (value == defaults[name] and not shown):
            continue
        if flag.kind == "godebug":
            godebug.append(f"{name}={int(value)}")
        elif flag.kind == "switch":
            parts += [flag.option] if value else []
        elif flag.kind == "repeat":
            for item in value:
                parts += [flag.option, shlex.quote(str(item))]
        elif flag.kind == "negated":
            parts += [] if value else [flag.option]
        else:
            parts += [flag.option, shlex.quote(flag.render(value))]
    if not cfg.lock_stats and "--no-lock-stats" not in parts:
        parts.append("--no-lock-stats")     # `run` turns them on unless told not to
    if not cache:
        parts += ["--cache", "off"]
    if godebug:
        parts += ["--godebug", ",".join(godebug)]
    return " ".join(parts)


# --- the schedule file ---------------------------------------------------------------------

def run_config_dict(cfg: Config, cache: bool) -> dict:
    """Every Config field, plus the mcache setting: what --json and a schedule file carry."""
    return {**cfg.to_dict(), "cache": cache}


def write_schedule(path: str, sched, cfg: Config, cache: bool) -> None:
    """The schedule file: format, the whole run config and the decisions, one per line."""
    head = {"format": SCHEDULE_FORMAT, "format_version": SCHEDULE_VERSION,
            "config": run_config_dict(cfg, cache), "kind": sched.kind, "seed": sched.seed,
            "scheduler": sched.config()}
    with open(path, "w") as f:
        f.write(json.dumps(head)[:-1] + ',\n"schedule": [\n')
        f.write(",\n".join(json.dumps(list(d)) for d in sched.schedule()))
        f.write("\n]}\n")


def _bad(path: str, what: str) -> ConfigError:
    return ConfigError("replay_file", f"{path!r} is not a schedule this concalloc can replay: {what}")


def read_schedule(path: str) -> dict:
    """{"config": Config, "cache": bool, "schedule": [(label, thread), ...]} from a schedule
    file, or ConfigError (for --replay) saying in one line what is wrong with it."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise ConfigError("replay_file", f"cannot read {path!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise _bad(path, f"not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != SCHEDULE_FORMAT:
        raise _bad(path, f"no \"format\": \"{SCHEDULE_FORMAT}\" (written by `run --save-schedule`?)")
    version = doc.get("format_version")
    if version != SCHEDULE_VERSION:
        raise _bad(path, f"format_version {version!r}; this concalloc reads version {SCHEDULE_VERSION}")
    fields = doc.get("config")
    sched = doc.get("schedule")
    if not isinstance(fields, dict):
        raise _bad(path, "\"config\" is not an object")
    if not isinstance(sched, list) or not all(
            isinstance(d, list) and len(d) == 2 and all(isinstance(x, str) for x in d) for d in sched):
        raise _bad(path, "\"schedule\" is not a list of [label, thread] pairs")
    fields = dict(fields)
    cache = fields.pop("cache", True)
    known = set(FLAGS) | set(NO_FLAG)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise _bad(path, f"unknown setting {unknown[0]!r} (written by another version?)")
    if not isinstance(cache, bool):
        raise _bad(path, f"\"cache\" must be true or false, got {cache!r}")
    try:
        cfg = Config(**fields)
    except (ConfigError, TypeError) as e:
        raise _bad(path, f"its config is invalid ({e})") from None
    return {"config": cfg, "cache": cache, "schedule": [tuple(d) for d in sched]}


def replay_config(path: str, given: Config, explicit: set[str], cache: str | None) -> tuple[Config, bool]:
    """The run that replays the schedule file `path`: the file's config and cache setting,
    with the observing fields (--trace, --no-lock-stats, ...) taken from the flags.
    `explicit` names the Config fields the user's flags set, `cache` the --cache given
    (None if not given).  A flag that contradicts the file raises ConfigError naming both."""
    doc = read_schedule(path)
    saved: Config = doc["config"]
    for name in sorted(explicit):
        flag = FLAGS.get(name)
        if flag is None or flag.observe or name in ("scheduler", "replay_file"):
            continue
        mine, theirs = getattr(given, name), getattr(saved, name)
        if mine != theirs:
            raise ConfigError("replay_file", f"{_show(name, mine)} contradicts the schedule file, "
                                             f"which has {_show(name, theirs)}")
    if "scheduler" in explicit and given.scheduler not in ("replay", saved.scheduler):
        raise ConfigError("replay_file", f"--scheduler {given.scheduler} contradicts the schedule file, "
                                         f"which was recorded under --scheduler {saved.scheduler}")
    if cache is not None and (cache == "on") != doc["cache"]:
        raise ConfigError("replay_file", f"--cache {cache} contradicts the schedule file, which has "
                                         f"--cache {'on' if doc['cache'] else 'off'}")
    observed = {n: getattr(given, n) for n, f in FLAGS.items() if f.observe}
    return saved.replace(scheduler="replay", replay_file=path, **observed), doc["cache"]


def _show(name: str, value) -> str:
    flag = FLAGS[name]
    if flag.kind == "godebug":
        return f"--godebug {name}={int(value)}"
    if flag.kind in ("switch", "negated"):
        return flag.option if value == (flag.kind == "switch") else f"no {flag.option}"
    return f"{flag.option} {'(unset)' if value is None else flag.render(value)}"
