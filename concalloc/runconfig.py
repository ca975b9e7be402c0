"""From a Config to what a run is built from: its bounds, its scheduler's
options, and the `concalloc run` command line that repeats it."""

from __future__ import annotations

import shlex

from .config import Config, ConfigError
from .sync import load_schedule

DEFAULT_CONTROLLED_STEPS = 2000
DEFAULT_SECONDS = 3.0


def with_run_bounds(cfg: Config) -> Config:
    if cfg.steps is None and cfg.seconds is None:
        return cfg.replace(steps=DEFAULT_CONTROLLED_STEPS) if cfg.controlled() \
            else cfg.replace(seconds=DEFAULT_SECONDS)
    if cfg.controlled() and cfg.steps is None:
        raise ConfigError("seconds", "a controlled run is bounded by --steps, not wall time")
    return cfg


def scheduler_options(cfg: Config) -> dict:
    if cfg.scheduler == "os":
        return {"noise": cfg.noise, "switch_interval": cfg.switch_interval}
    if cfg.scheduler == "vtime":
        from .costmodel import load
        return {"costs": load(cfg.cost_table, cfg.costs)}
    if cfg.scheduler == "pct":
        return {"depth": cfg.pct_depth, "pct_k": cfg.pct_k}
    if cfg.scheduler == "replay":
        try:
            doc = load_schedule(cfg.replay_file)
            return {"schedule": doc["schedule"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError("replay_file", f"cannot read the schedule {cfg.replay_file!r}: "
                                             f"{type(e).__name__}: {e}") from None
    return {}


def replay_command(cfg: Config, cache: bool = True) -> str:
    """The `concalloc run` command line that repeats this configuration."""
    d = cfg.to_dict()
    parts = ["concalloc", "run"]
    flags = {"procs": "--procs", "mutators": "--mutators", "workload": "--workload", "steps": "--steps",
             "seconds": "--seconds", "live": "--live", "size": "--size", "scheduler": "--scheduler",
             "seed": "--seed", "noise": "--noise", "pct_depth": "--pct-depth", "pct_k": "--pct-k",
             "replay_file": "--replay", "reserve_bytes": "--reserve",
             "switch_interval": "--switch-interval", "hang_seconds": "--hang-seconds"}
    defaults = Config().to_dict()
    for k, flag in flags.items():
        if d[k] is not None and (d[k] != defaults[k] or k in ("scheduler", "seed", "steps")):
            parts += [flag, shlex.quote(str(d[k]))]
    if d["noscan"]:
        parts.append("--noscan")
    if d["cost_table"]:
        parts += ["--cost-table", shlex.quote(d["cost_table"])]
    for knob in d["costs"]:
        parts += ["--cost", shlex.quote(knob)]
    if not cache:
        parts += ["--cache", "off"]
    if not d["lock_stats"]:
        parts.append("--no-lock-stats")  # `run` turns them on unless told not to
    godebug = [f"{k}={int(d[k])}" for k in ("invalidptr", "lockrank", "heapcheck") if d[k] != defaults[k]]
    if godebug:
        parts += ["--godebug", ",".join(godebug)]
    return " ".join(parts)
