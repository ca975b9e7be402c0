"""`concalloc advice`: every experiment's arms run for real, and the numbers the
advice rests on come out the way round the advice says (ratios measured in the
same run, never fixed figures); tailwaste's arithmetic is checked against
Go's size-class table by hand."""

from __future__ import annotations

import json

import pytest

from concalloc import advice
from concalloc.cli import main
from concalloc.config import Config, ConfigError
from concalloc.sizeclasses import PAGE_SIZE, table_rows
from concalloc.tailwaste import SizesError, moves, parse_sizes, report, slot_of


@pytest.fixture(scope="module")
def pool_doc():
    return advice.run_experiment("pool", seconds=1.0, gogc=10, size=4096)


def test_pool_arm_allocates_less_and_collects_less(pool_doc):
    fresh, pooled = pool_doc["arms"]["fresh"], pool_doc["arms"]["pooled"]
    assert fresh["requests"] > 0 and pooled["requests"] > 0
    # fresh: the request object and 1-3 buffers; pooled: the request object and a New now and then
    assert fresh["mallocs_per_request"] > 1.5 > pooled["mallocs_per_request"] >= 1
    assert pooled["bytes_per_request"] * 10 < fresh["bytes_per_request"]
    assert fresh["num_gc"] >= 1, "GOGC 10 and 4 KiB buffers: the fresh arm must cycle"
    assert pooled["gc_per_1000_requests"] < fresh["gc_per_1000_requests"]
    st = pooled["pool"]
    assert st["gets"] == st["private"] + st["shared"] + st["steals"] + st["victim"] + st["news"] + st["empty"]
    assert st["news"] < st["gets"] / 10, "after warm-up almost every Get is served by the pool"
    assert pooled["pool_cleanups"] == pooled["num_gc"], "poolCleanup runs once per cycle"
    assert pool_doc["ratio"]["mallocs_per_request"] == round(
        pooled["mallocs_per_request"] / fresh["mallocs_per_request"], 3)


def test_pool_report_shows_both_arms_side_by_side(pool_doc):
    text = advice.text_report(pool_doc)
    assert "pool:fresh vs pool:pooled" in text and "pooled/fresh" in text
    for label in ("GC cycles", "allocation rate (mallocs/s)", "heap goal (mean over cycles)", "pool: steals"):
        assert label in text


def test_reuse_arm_allocates_one_buffer_per_goroutine():
    doc = advice.run_experiment("reuse", seconds=1.0, size=16384)
    fresh, reuse = doc["arms"]["fresh"], doc["arms"]["reuse"]
    assert fresh["mallocs_per_request"] == 2, "a request object and a buffer, every request"
    assert 1 <= reuse["mallocs_per_request"] < 1.01, "the buffer only while it grows"
    assert reuse["bytes_per_request"] * 10 < fresh["bytes_per_request"]
    assert reuse["num_gc"] <= fresh["num_gc"]


def test_burst_chunked_keeps_heap_and_rss_small():
    size = 16 << 20           # past the 4 MiB minimum heap goal the chunked arm lives under
    doc = advice.run_experiment("burst", seconds=1.5, size=size)
    huge, chunked = doc["arms"]["huge"], doc["arms"]["chunked"]
    assert huge["jobs"] >= 1 and chunked["jobs"] >= 1
    assert huge["peak_heap"] >= size > chunked["peak_heap"]
    assert huge["peak_heap"] > 2 * chunked["peak_heap"]
    assert huge["peak_rss"] >= size > chunked["peak_rss"]
    assert huge["heap_goal_max"] > chunked["heap_goal_max"]


# --- tailwaste ---------------------------------------------------------------------------

def _class_row(c):
    return next(r for r in table_rows() if r["class"] == c)


def test_tailwaste_arithmetic_by_hand():
    r = report({33: 1000, 1025: 7, 40000: 2, 48: 3})
    rows = {row["slot"]: row for row in r["classes"]}
    # 33 B -> class 5, 48-byte slots: 8192 B spans of 170 objects, 32 B of tail (sizeclasses.go)
    c5 = _class_row(5)
    assert (c5["bytes_per_obj"], c5["objects"], c5["tail_waste"]) == (48, 170, 32)
    assert rows[48]["objects"] == 1003 and rows[48]["sizes"] == 2
    assert rows[48]["rounding"] == 15 * 1000                  # 48 - 33 per object; 48 B objects lose none
    assert rows[48]["tail_share"] == round(32 * 1003 / 170, 1)
    # 1025 B -> class 33, 1152-byte slots: 8192 B spans of 7 objects, 128 B of tail
    c33 = _class_row(33)
    assert (c33["bytes_per_obj"], c33["objects"], c33["tail_waste"]) == (1152, 7, 128)
    assert rows[1152]["rounding"] == 127 * 7 and rows[1152]["tail_share"] == 128.0
    # a large object gets whole pages, no span tail
    assert rows[5 * PAGE_SIZE]["rounding"] == 2 * (5 * PAGE_SIZE - 40000) and rows[5 * PAGE_SIZE]["class"] == 0
    t = r["total"]
    assert t["requested"] == 33 * 1000 + 1025 * 7 + 40000 * 2 + 48 * 3
    assert t["allocated"] == 48 * 1003 + 1152 * 7 + 5 * PAGE_SIZE * 2
    assert t["rounding"] == t["allocated"] - t["requested"]


def test_tailwaste_moves_say_what_trimming_a_size_saves():
    mv = {m["size"]: m for m in moves({33: 1000, 1025: 7, 40: 5, 48: 9, 64: 1})}
    assert mv[33]["to"] == 32 and mv[33]["saved_per_object"] == 16 and mv[33]["saved"] == 16000
    assert mv[1025]["to"] == 1024 and mv[1025]["saved"] == 128 * 7
    assert mv[40]["to"] == 32 and mv[40]["trim"] == 8
    assert 48 in mv and mv[48]["trim"] == 16          # 48 is 16 B above the 32 B class
    assert 64 in mv                                    # 64 is 16 above 48
    assert list(moves({33: 1000, 1025: 7}))[0]["size"] == 33, "largest saving first"
    assert moves({33: 1}, shrink=0) == []


def test_slot_of_agrees_with_the_table():
    for r in table_rows():
        s = slot_of(r["bytes_per_obj"])
        assert (s["class"], s["slot"], s["per_span"], s["tail"]) == (
            r["class"], r["bytes_per_obj"], r["objects"], r["tail_waste"])


def test_parse_sizes_lists_histograms_and_errors():
    assert parse_sizes("24\n33 10\n# a comment\n\n24 2\n") == {24: 3, 33: 10}
    assert parse_sizes("24,100x5") == {24: 1, 100: 5}
    for bad in ("", "# nothing", "a", "0", "5 -1", "1 2 3"):
        with pytest.raises(SizesError):
            parse_sizes(bad)


# --- the command -----------------------------------------------------------------------------

def test_cli_tailwaste_json_and_text(tmp_path, capsys):
    f = tmp_path / "sizes.txt"
    f.write_text("33 1000\n1025 7\n")
    assert main(["advice", "--experiment", "tailwaste", "--sizes", str(f), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "concalloc-advice" and doc["experiment"] == "tailwaste"
    assert doc["total"]["rounding"] == 15 * 1000 + 127 * 7
    assert doc["moves"][0]["size"] == 33
    assert main(["advice", "--experiment", "tailwaste", "--sizes", str(f)]) == 0
    out = capsys.readouterr().out
    assert "size-class waste" in out and "moving a size a few bytes" in out


@pytest.mark.parametrize("argv,needle", [
    (["advice", "--experiment", "tailwaste"], "--sizes"),
    (["advice", "--experiment", "tailwaste", "--sizes", "no/such/file"], "no such file"),
    (["advice", "--experiment", "tailwaste", "--sizes", "1,zz"], "entry 2"),
    (["advice", "--experiment", "nope"], "--experiment"),
    (["advice", "--experiment", "pool", "--size", "lots"], "--size"),
    (["advice", "--experiment", "pool", "--seconds", "0"], "--seconds"),
    (["advice", "--experiment", "pool", "--gogc", "x"], "--gogc"),
    (["advice", "--experiment", "pool", "--procs", "0"], "--procs"),
])
def test_cli_bad_arguments_exit_2_with_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_cli_pool_json_runs_both_arms(capsys):
    assert main(["advice", "--experiment", "pool", "--seconds", "0.5", "--json"]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert set(doc["arms"]) == {"fresh", "pooled"} and doc["config"]["seconds"] == 0.5
    assert "advice pool: pool:fresh" in cap.err, "progress goes to stderr"


# --- workload variants -----------------------------------------------------------------

def test_builtin_variants_resolve_and_unknown_ones_are_refused():
    from concalloc.workloads import get
    assert get("pool:fresh").mode == "fresh" and get("reuse:reuse").mode == "reuse"
    assert get("hugealloc:chunked") is not get("hugealloc:chunked"), "a fresh instance per run"
    Config(workload="pool:fresh")
    with pytest.raises(ConfigError, match="no variant 'nope'.*pool:pooled, pool:fresh"):
        Config(workload="pool:nope")


@pytest.mark.parametrize("workload", ["pool:pooled", "pool:fresh", "reuse:reuse", "hugealloc:chunked",
                                      "hugealloc:huge"])
def test_variant_workloads_are_deterministic_under_a_controlled_scheduler(workload):
    """Same (config, seed), same event log: the arms replay like any workload."""
    from concalloc.runtime import EXIT_OK, Runtime
    cfg = Config(procs=2, workload=workload, scheduler="random", steps=250, size=1 << 20 if "huge" in workload
                 else 1024, live=16, gogc=5, events=True, reserve_bytes=1 << 30, seed=3)
    hashes = []
    for _ in range(2):
        with Runtime(cfg) as rt:
            res = rt.run()
        assert res.exit_code == EXIT_OK, res.error
        hashes.append(res.event_log_hash)
    assert hashes[0] and hashes[0] == hashes[1]
