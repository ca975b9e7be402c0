"""bench/bench_gc.py in its tiny mode: every figure is produced, finite and
sane (no speed assertions: speed targets live in bench/), and the harness
really drives the collector."""

from __future__ import annotations

import math

import pytest

from bench import TARGETS, check_result, discover
from bench import bench_gc


def test_bench_gc_is_registered_with_targets():
    assert "gc" in discover()
    for key in ("gc.mark_vs_bfs", "gc.stw_mark_term_fraction", "gc.barrier_store_ratio",
                "gc.throughput_ratio"):
        assert key in TARGETS


def test_tiny_run_gives_sane_figures():
    out = check_result(bench_gc.run(tiny=True))
    for key in ("gc.mark_vs_bfs", "gc.stw_mark_term_fraction", "gc.barrier_store_ratio",
                "gc.throughput_ratio"):
        assert key in out
        assert math.isfinite(out[key]) and out[key] > 0, (key, out[key])
    assert out["gc.mark_objects"] == 500
    assert out["gc.barrier_store_ratio_marked"] > 0
    assert out["gc.mark_vs_bfs"] == pytest.approx(out["gc.mark_bfs_ns_per_object"] / out["gc.mark_ns_per_object"])
    assert out["gc.stw_mark_term_ns"] > 0 and out["gc.concurrent_mark_ns"] > 0
    assert out["gc.stw_cycles_per_run"] >= 1
    assert out["gc.throughput_cycles_per_run"] >= 1
    assert out["gc.allocs_per_s_gc_on"] > 0 and out["gc.allocs_per_s_gc_off"] > 0


def test_harness_marks_exactly_the_reachable_graph():
    h = bench_gc.MarkHarness(300, garbage_every=3)
    try:
        reached = bench_gc.bfs(h.roots(), h.mem.load)
        assert reached == 300
        rec = h.start()
        assert h.m._wb is not None and h.m._wb.kind == "hybrid"
        h.drain()
        # garbage (one node in four) stays white in the first cycle
        assert h.marked_objects() == 300
        h.finish(rec)
        assert rec["heap_marked"] == 300 * bench_gc.NODE.size
        assert h.m._wb is None
    finally:
        h.close()


def test_bfs_floor_can_tell_a_broken_graph():
    """The floor is a real walk: cut the chain and it reaches fewer objects."""
    h = bench_gc.MarkHarness(50, garbage_every=0)
    try:
        # node 25's "next" and every "other" pointer into the first 25 nodes gone:
        # only the last 25 nodes stay reachable
        for i, x in enumerate(h.nodes):
            if i >= 25 and h.mem.load(x + 8) in h.nodes[:25]:
                h.m.write_word(x, 1, 0)
        h.m.write_word(h.nodes[25], 0, 0)
        assert bench_gc.bfs(h.roots(), h.mem.load) == 25
        rec = h.start()
        h.drain()
        assert h.marked_objects() == 25
        h.finish(rec)
    finally:
        h.close()
