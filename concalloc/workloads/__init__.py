"""Mutator programs: the built-in ones, and the user's.

A workload is a module (or any object with the same attributes) with

    run(m, cfg)        the program one mutator runs, bounded by m.running()
    slots(cfg)         how many stack slots each mutator needs
    validate(cfg)      optional: raise ConfigError for a Config it cannot run
    globals(cfg)       optional: how many global pointer words the program has
                       (its data segment; default moduledata.NGLOBALS)
    setup(m, cfg)      optional: runs once on P0 before any mutator's run
                       (the other mutators wait for it to return)
    screen(cfg)        optional: False only if the program cfg.seed draws cannot
                       lose an object under cfg (its barrier, stack scan, ...)
                       whatever the schedule; True if it may.  It must be sound:
                       `--screen` (stress, barrier-matrix) skips the seeds it
                       rules out, so a False that is wrong hides a loss.
                       It may take `likely=False`: with True (`--screen
                       likely`) a heuristic tier that may also drop programs
                       that lose only rarely (weave's does)
    DESCRIPTION        optional: one line saying what it does

It gets the run's Config and one Mutator.  All randomness comes from m.rng,
which is derived from (seed, P name), so a controlled run is a pure function
of (config, seed).

The rule every workload keeps: an address held in a Python local across an
allocation (a safe point, where the collector may run) must also sit in a
stack slot or be reachable from one, exactly as a Go compiler's stack maps
would see it.

Config.workload names one, as a string that survives into the replay
command, the schedule file and --json:

    ring, tree, ...            a built-in (BUILTIN)
    pool:fresh                 a variant of a built-in (its module's VARIANTS)
    path/to/file.py            a file, loaded once per process
    package.module             a module on sys.path (or under the current directory)
    package.module:name        an object of that module

get(ref) returns the workload or raises ConfigError("workload", ...) saying
in one line what is wrong: no such file, not a module, no run or slots.
docs/workloads.md says how to write one.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import threading
import traceback

from ..config import ConfigError
from . import burst, churn, graph, hide_pointer, hugealloc, pool, random_program, reuse, ring, tree, weave

WORKLOADS = {
    "ring": ring,
    "tree": tree,
    "churn": churn,
    "graph": graph,
    "burst": burst,
    "weave": weave,
    "hide-pointer": hide_pointer,
    "random-program": random_program,
    "pool": pool,
    "reuse": reuse,
    "hugealloc": hugealloc,
}
BUILTIN = tuple(WORKLOADS)

REQUIRED = ("run", "slots")       # callables every workload has
OPTIONAL = ("validate", "setup", "globals", "screen")  # callables it may have

_MODULE_REF = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?")

_loaded: dict[str, object] = {}   # reference -> workload; _load_lock
_load_lock = threading.RLock()       # re-entrant: a workload module may itself build a Config


def is_file_ref(ref: str) -> bool:
    """A reference to a file rather than to an importable module."""
    return ref.endswith(".py") or "/" in ref or os.sep in ref


def check_ref(ref) -> None:
    """The reference's form only (no loading): what Config.validate can say cheaply."""
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError("workload", f"expected a built-in ({', '.join(BUILTIN)}), a FILE.py or "
                                      f"package.module[:name], got {ref!r}")
    if ref in WORKLOADS or is_file_ref(ref) or _MODULE_REF.fullmatch(ref):
        return
    raise ConfigError("workload", f"{ref!r} is neither a built-in ({', '.join(BUILTIN)}), a FILE.py "
                                  f"nor package.module[:name]")


def get(ref: str):
    """The workload `ref` names (see the module comment), loaded at most once per process."""
    if isinstance(ref, str) and ref in WORKLOADS:
        return WORKLOADS[ref]
    if isinstance(ref, str) and ref.partition(":")[0] in WORKLOADS:
        return variant(ref)
    check_ref(ref)
    key = os.path.abspath(ref) if is_file_ref(ref) else ref
    with _load_lock:
        wl = _loaded.get(key)
        if wl is None:
            wl = _load_file(ref) if is_file_ref(ref) else _load_module(ref)
            check_workload(wl, ref)
            _loaded[key] = wl
    return wl


def variant(ref: str):
    """'pool:fresh': a new instance of the built-in's variant (its module's VARIANTS)."""
    name, _, which = ref.partition(":")
    variants = getattr(WORKLOADS[name], "VARIANTS", {})
    if which not in variants:
        known = ", ".join(f"{name}:{v}" for v in variants) or "none"
        raise ConfigError("workload", f"{ref!r}: built-in {name!r} has no variant {which!r} (variants: {known})")
    return variants[which]()


def screened_out(cfg, likely: bool = False) -> bool:
    """True if cfg's workload has a screen and it rules out cfg's program (see the
    module comment); a workload without one screens nothing out.  likely: ask for
    the screen's heuristic tier (`screen(cfg, likely=True)`) if it has one, else
    its proof."""
    screen = getattr(get(cfg.workload), "screen", None)
    if screen is None:
        return False
    if likely and "likely" in inspect.signature(screen).parameters:
        return not screen(cfg, likely=True)
    return not screen(cfg)


def check_workload(wl, ref: str) -> None:
    """Refuse an object without run(m, cfg) and slots(cfg), or with a setup/validate
    that is not callable."""
    for name in REQUIRED:
        if not callable(getattr(wl, name, None)):
            sig = "run(m, cfg)" if name == "run" else "slots(cfg)"
            raise ConfigError("workload", f"{ref!r} has no {sig}: a workload defines run(m, cfg) and "
                                          f"slots(cfg) (see docs/workloads.md)")
    for name in OPTIONAL:
        if getattr(wl, name, None) is not None and not callable(getattr(wl, name)):
            raise ConfigError("workload", f"{ref!r}: {name} is not a function")


def _load_file(ref: str):
    path = os.path.abspath(ref)
    if not os.path.exists(path):
        raise ConfigError("workload", f"no such file {ref!r} (and not a built-in: {', '.join(BUILTIN)})")
    if os.path.isdir(path) or not path.endswith(".py"):
        raise ConfigError("workload", f"{ref!r} is not a Python module (expected a .py file)")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    name = f"concalloc_workload_{stem}_{len(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod          # so that its dataclasses, pickles and tracebacks find it
    try:
        spec.loader.exec_module(mod)
    except BaseException as e:  # noqa: BLE001 - the user's code: said in one line
        sys.modules.pop(name, None)
        raise ConfigError("workload", f"{ref!r} does not load: {_one_line(e, path)}") from None
    return mod


def _load_module(ref: str):
    modname, _, attr = ref.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)         # `concalloc` (the script) does not look in the current directory
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name and modname.startswith(e.name) and modname[len(e.name):][:1] in ("", "."):
            raise ConfigError("workload", f"{ref!r} is not a built-in ({', '.join(BUILTIN)}), a file or an "
                                          f"importable module: no module named {e.name!r}") from None
        raise ConfigError("workload", f"{modname!r} does not import: {_one_line(e, None)}") from None
    except BaseException as e:  # noqa: BLE001 - the user's code: said in one line
        raise ConfigError("workload", f"{modname!r} does not import: {_one_line(e, None)}") from None
    if not attr:
        return mod
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError("workload", f"module {modname!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _one_line(e: BaseException, path: str | None) -> str:
    """An exception raised while loading user code, with where it happened."""
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} (line {e.lineno})"
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if path is None or f.filename == path]
    where = f" (line {mine[-1].lineno})" if mine and path else (
        f" ({os.path.basename(frames[-1].filename)} line {frames[-1].lineno})" if frames else "")
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}{where}" if text else f"{type(e).__name__}{where}"
