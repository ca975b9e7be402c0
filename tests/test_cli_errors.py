"""Bad input: clear exceptions from the library, and from the command line
exit code 2 with exactly one line on stderr starting with "concalloc:" and
never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from concalloc import Config, ConfigError, Heap
from concalloc.cli import main
from concalloc.memory import Type, ptr_type
from concalloc.sysmem import OutOfMemory

ROOT = Path(__file__).resolve().parents[1]
T16 = ptr_type(2, name="cli_ptr2")


# ---------------------------------------------------------------- library: allocation

@pytest.mark.parametrize("size", [3.5, 16.0, 40000.0, "64", None, True, b"8", [8]],
                         ids=lambda v: type(v).__name__ + "-" + repr(v)[:8])
def test_non_int_size(heap, size):
    with pytest.raises(TypeError, match=r"mallocgc: size must be an int, got "):
        heap.malloc(size)
    with pytest.raises(TypeError, match=r"mallocgc: size must be an int, got "):
        heap.malloc(size, T16, p=2)
    heap.verify()
    assert not heap.mheap.allspans        # nothing was allocated on the way


@pytest.mark.parametrize("size", [-1, -16, -40000, -(1 << 70)])
def test_negative_size(heap, size):
    with pytest.raises(ValueError, match="negative size"):
        heap.malloc(size)
    heap.verify()


@pytest.mark.parametrize("size", [(1 << 30) + 1, 1 << 40, 1 << 70])
def test_size_bigger_than_reservation(heap, size):
    with pytest.raises(OutOfMemory, match="larger than the whole 1073741824-byte reservation"):
        heap.malloc(size)
    heap.verify()


class _LooksLikeAType:
    """Has the attributes mallocgc reads first, but is not a Type."""
    noscan = False
    size = 8
    ptrwords = (0,)


@pytest.mark.parametrize("typ", ["node", 8, object(), Config, Config(), _LooksLikeAType()],
                         ids=["str", "int", "object", "class", "config", "lookalike"])
@pytest.mark.parametrize("size", [64, 40000])
def test_unknown_type_object(heap, typ, size):
    with pytest.raises(TypeError, match="unknown type"):
        heap.malloc(size, typ)
    heap.verify()
    assert not heap.mheap.allspans        # rejected before any slot or span was taken


def test_size_not_a_whole_number_of_the_type(heap):
    with pytest.raises(ValueError, match="not a whole number"):
        heap.malloc(24, T16)
    with pytest.raises(ValueError, match="not a whole number"):
        heap.malloc(8, T16)


def test_int_subclass_size_is_accepted(heap):
    class Size(int):
        pass
    x = heap.malloc(Size(64))
    assert heap.mheap.spanOfHeap(x).elemsize == 64
    heap.verify()


@pytest.mark.parametrize("args,match", [
    (("t", 0), "size must be a positive int"),
    (("t", -8), "size must be a positive int"),
    (("t", 8.0), "size must be a positive int"),
    (("t", 16, [2]), "outside a 16-byte object"),
    (("t", 16, [-1]), "outside a 16-byte object"),
    (("t", 12, [0]), "multiple of 8"),
])
def test_bad_type_definitions(args, match):
    with pytest.raises(ValueError, match=match):
        Type(*args)


# ---------------------------------------------------------------- library: Config

@pytest.mark.parametrize("kw,field", [
    ({"procs": 0}, "procs"),
    ({"procs": 257}, "procs"),
    ({"procs": "4"}, "procs"),
    ({"procs": True}, "procs"),
    ({"scheduler": "x"}, "scheduler"),
    ({"scheduler": "replay"}, "replay_file"),
    ({"reserve_bytes": 100 << 20}, "reserve_bytes"),
    ({"reserve_bytes": 32 << 20}, "reserve_bytes"),
    ({"reserve_bytes": 1 << 47}, "reserve_bytes"),
    ({"heapcheck": 3}, "heapcheck"),
    ({"noise": 1.5}, "noise"),
    ({"seed": -1}, "seed"),
    ({"workload": "nope"}, "workload"),
    ({"steps": 0}, "steps"),
    ({"seconds": -1}, "seconds"),
    ({"mutators": 5}, "mutators"),
    ({"hang_seconds": 0}, "hang_seconds"),
])
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ConfigError) as ei:
        Config(**kw)
    assert ei.value.field == field
    assert str(ei.value).startswith(f"{field}: ")


def test_bad_config_replace_and_heap():
    with pytest.raises(ConfigError) as ei:
        Config().replace(nosuch=1)
    assert ei.value.field == "nosuch"
    with pytest.raises(ConfigError) as ei:
        Heap(reserve_bytes=100 << 20)
    assert ei.value.field == "reserve_bytes"
    with pytest.raises(ConfigError) as ei:
        Heap(nprocs=0)
    assert ei.value.field == "procs"


@pytest.mark.parametrize("text,match", [
    ("foo=1", "unknown setting 'foo=1'"),
    ("invalidptr", "unknown setting 'invalidptr'"),
    ("heapcheck=x", "heapcheck takes an integer"),
    ("heapcheck=-1", "heapcheck takes an integer"),
    ("heapcheck=7", "must be an integer in"),
])
def test_bad_godebug(text, match):
    with pytest.raises(ConfigError, match=match) as ei:
        Config.from_godebug(text)
    assert ei.value.field in ("GODEBUG", "heapcheck")


def test_good_godebug():
    c = Config.from_godebug("invalidptr=0, heapcheck=2,lockrank=1")
    assert (c.invalidptr, c.heapcheck, c.lockrank) == (False, 2, True)


# ---------------------------------------------------------------- the command line

BAD_ARGS = [
    [],
    ["bogus"],
    ["sizeclasses", "--bogus"],
    ["version", "extra"],
    ["run", "--procs", "0"],
    ["run", "--procs", "x"],
    ["run", "--steps", "x"],
    ["run", "--steps", "0"],
    ["run", "--reserve", "65MiB"],
    ["run", "--reserve", "abc"],
    ["run", "--reserve", "128TiB"],
    ["run", "--scheduler", "x"],
    ["run", "--workload", "x"],
    ["run", "--godebug", "foo=1"],
    ["run", "--godebug", "heapcheck=x"],
    ["run", "--noise", "2"],
    ["run", "--seed", "-3"],
    ["run", "--live", "0"],
    ["run", "--mutators", "9"],
    ["run", "--seconds", "-1"],
    ["run", "--replay", "/nonexistent/schedule.json"],
    ["contention", "--procs", "x"],
    ["contention", "--cache", "maybe"],
]


def _one_line_error(err: str) -> None:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("concalloc: ") and len(lines[0]) > len("concalloc: "), err


@pytest.mark.parametrize("argv", BAD_ARGS, ids=lambda a: " ".join(a) or "(none)")
def test_cli_bad_arguments_in_process(argv, capsys):
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _one_line_error(err)


def test_cli_error_names_the_problem(capsys):
    assert main(["run", "--procs", "0"]) == 2
    assert capsys.readouterr().err.startswith("concalloc: --procs: ")     # the flag, not the field
    assert main(["run", "--reserve", "65MiB"]) == 2
    assert "multiple of 64 MiB" in capsys.readouterr().err
    assert main(["run", "--godebug", "foo=1"]) == 2
    assert capsys.readouterr().err.startswith("concalloc: --godebug: unknown setting 'foo=1'")


@pytest.mark.parametrize("argv", [
    [],
    ["bogus"],
    ["run", "--procs", "0"],
    ["run", "--steps", "x"],
    ["run", "--reserve", "65MiB"],
    ["run", "--godebug", "foo=1"],
], ids=lambda a: " ".join(a) or "(none)")
def test_cli_bad_arguments_subprocess(argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "concalloc.cli", *argv], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stdout == ""
    _one_line_error(r.stderr)


@pytest.mark.parametrize("size", [3.5, 16.0, "64", None, True], ids=lambda v: type(v).__name__)
def test_non_int_size_with_the_cache_off(heap, size):
    from concalloc.malloc import mallocgc_nocache
    c = heap.mcaches[0]
    with pytest.raises(TypeError, match=r"mallocgc: size must be an int, got "):
        mallocgc_nocache(c, size)
    with pytest.raises(TypeError, match=r"mallocgc: size must be an int, got "):
        mallocgc_nocache(c, size, T16)
    assert not heap.mheap.allspans
