"""Replaying a violation from its record: the replay command back to a run.

A violation's `replay_command` is a `concalloc run` command line.  Under a
controlled scheduler the run is a function of (config, seed), so running
that command again gives the same violation record, field for field, and
the same event_log_hash (tests/test_violation_record.py checks it, and
stress/test_replay_violation.py 100 times over).  These helpers parse the
command with the CLI's own parser, so what is replayed is exactly what a
user would run:

    cfg, cache = config_from_command(v["replay_command"])
    res = replay(v["replay_command"])          # a RunResult
    assert res.violations[0] == v
"""

from __future__ import annotations

import shlex


def config_from_command(cmd: str):
    """(Config, cache) of a `concalloc run ...` command line."""
    from ..cli import build_parser
    from ..demo import config_from_args
    argv = shlex.split(cmd)
    if argv[:2] != ["concalloc", "run"]:
        raise ValueError(f"not a `concalloc run` command: {cmd!r}")
    args = build_parser().parse_args(argv[1:])
    return config_from_args(args), args.cache == "on"


def replay(cmd: str, workload=None):
    """Run the command's configuration once more and return its RunResult
    (`workload`: a workload object for a run made with one the command cannot name)."""
    from ..runtime import Runtime
    cfg, cache = config_from_command(cmd)
    with Runtime(cfg, cache=cache, workload=workload) as rt:
        return rt.run()
