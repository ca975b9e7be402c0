"""The concalloc command.

Subcommands:
    run           the demo: the whole runtime on sensible defaults
    sizeclasses   Go's size-class table, as sizeclasses.go prints it (--json)
    version

Exit codes: 0 ok; 1 an invariant violation; 2 bad arguments or config (one
line naming the problem, no traceback); 3 deadlock, hang or internal error.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .config import ConfigError

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(message)


def _cmd_sizeclasses(args) -> int:
    from .sizeclasses import format_table, table_rows
    if args.json:
        print(json.dumps(table_rows(), indent=1))
    else:
        print(format_table())
    return EXIT_OK


def _cmd_version(args) -> int:
    print(f"concalloc {__version__} (models Go 1.19 with the Go <= 1.14 locked mcentral)")
    return EXIT_OK


def _cmd_run(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="concalloc", description="A model of Go's allocator and concurrent GC on real threads.")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)
    sub.required = True
    sc = sub.add_parser("sizeclasses", help="print Go's size-class table")
    sc.add_argument("--json", action="store_true", help="a JSON list of objects instead of the table")
    sc.set_defaults(func=_cmd_sizeclasses)
    v = sub.add_parser("version", help="print the version")
    v.set_defaults(func=_cmd_version)
    r = sub.add_parser("run", help="run the demo")
    from .demo import add_run_arguments
    add_run_arguments(r)
    r.set_defaults(func=_cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UsageError, ConfigError) as e:
        print(f"concalloc: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        print("concalloc: interrupted", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
