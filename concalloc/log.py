"""The tool's log: warnings, progress of long commands, gctrace-style lines.

Library code logs through ``from concalloc.log import logger`` (loguru).  As
loguru advises for libraries, concalloc's messages are disabled until the
command line turns them on with setup(level), so importing concalloc never
prints anything.  The CLI's --log-level picks the level (default info):
info and debug lines are printed as they are, warnings and errors with
"concalloc: warning: " in front, all on stderr (stdout is for results).
"""

from __future__ import annotations

import sys

from loguru import logger

LEVELS = ("debug", "info", "warning", "error")

logger.disable("concalloc")
_handler: int | None = None      # the sink setup() added
_level = "info"


def _format(record) -> str:
    if record["level"].no >= 30:
        return "concalloc: " + record["level"].name.lower() + ": {message}\n{exception}"
    return "{message}\n{exception}"


def setup(level: str = "info") -> None:
    """Send concalloc's log at `level` and above to the current stderr."""
    global _handler, _level
    logger.remove()     # the command line owns the process's log: loguru's default sink goes too
    _level = level
    _handler = logger.add(sys.stderr, level=level.upper(), format=_format, colorize=False,
                          filter="concalloc")
    logger.enable("concalloc")


def shows(level: str) -> bool:
    """Would a message at `level` be printed (progress lines ask for 'info')?"""
    return LEVELS.index(level) >= LEVELS.index(_level)
