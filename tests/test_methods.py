"""The survey's allocation methods (concalloc/methods): every built-in workload
runs clean on each, each checker fails on a corrupted structure, Cheney's
collector fixes every pointer, and the oracle catches a stale address."""

import pytest

from concalloc.check.violation import Violation
from concalloc.config import Config, ConfigError
from concalloc.memory import Type
from concalloc.methods import header as H
from concalloc.runtime import EXIT_OK, EXIT_VIOLATION, Runtime
from concalloc.workloads import BUILTIN
from concalloc.workloads import get as get_workload

METHODS = ("bump", "first-fit", "next-fit", "best-fit", "segregated")
NODE = Type("methods-node", 16, [0])


def _cfg(method, workload="ring", **kw):
    base = dict(procs=2, workload=workload, steps=250, live=40, scheduler="random", seed=3, gogc=0,
                heapcheck=2, allocator=method, reserve_bytes=1 << 30)
    base.update(kw)
    return Config(**base)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("workload", BUILTIN)
def test_every_builtin_workload_runs_clean(method, workload):
    """heapcheck=2: the oracle on every load and store, the checker at every collection."""
    wl = get_workload(workload)
    try:
        if getattr(wl, "validate", None):
            wl.validate(_cfg(method, workload))
    except ConfigError as e:   # a scenario that needs Go's concurrent collector (weave, hide-pointer)
        pytest.skip(f"{workload} refuses --allocator {method}: {e}")
    with Runtime(_cfg(method, workload)) as rt:
        res = rt.run()
        assert res.exit_code == EXIT_OK, res.violations or res.error
        assert res.gc["num_gc"] >= 1 and res.gc["method"] == method
        assert rt.method.stats["allocs"] == sum(m["allocs"] for m in res.mutators.values())


def test_go_is_the_default_and_untouched():
    with Runtime(Config(procs=1, steps=50, scheduler="random", reserve_bytes=1 << 30)) as rt:
        assert rt.method is None and rt.config.allocator == "go"
        assert rt.mutators[0]._malloc.__name__ == "mallocgc"


def test_bad_allocator_is_refused():
    with pytest.raises(ConfigError, match="allocator"):
        Config(allocator="worst-fit")
    with pytest.raises(ConfigError, match="allocator"):
        Config(allocator="bump", scheduler="vtime")


# --- the checkers fail on corruption ----------------------------------------------------------

def _ran(method, workload="ring", **kw):
    rt = Runtime(_cfg(method, workload, heapcheck=1, **kw))
    res = rt.run()
    assert res.exit_code == EXIT_OK, res.violations
    rt.method.check()        # clean before we break it
    return rt


def _free_blocks(meth):
    b, out = meth.head, []
    while b:
        out.append(b)
        b = meth.ld(b + 8)
    return out


def _big_free_block(meth):
    return next(b for b in _free_blocks(meth) if meth.ld(b) & ~H.FLAGS >= 64)


@pytest.mark.parametrize("method", ("first-fit", "next-fit", "best-fit", "segregated"))
def test_freelist_checker_catches_a_cycle(method):
    rt = _ran(method)
    try:
        meth = rt.method
        b = _free_blocks(meth)[-1]
        meth.st(b + 8, meth.head)            # the last block links back to the first
        with pytest.raises(Violation, match="freelist.order"):
            meth.check()
    finally:
        rt.close()


@pytest.mark.parametrize("method", ("first-fit", "segregated"))
def test_freelist_checker_catches_uncoalesced_neighbours(method):
    rt = _ran(method)
    try:
        meth = rt.method
        b = _big_free_block(meth)
        bs = meth.ld(b) & ~H.FLAGS
        # split one free block into two free neighbours, both on the list
        meth.st(b, 32 | H.FREE)
        meth.st(b + 32, (bs - 32) | H.FREE)
        meth.st(b + 32 + 8, meth.ld(b + 8))
        meth.st(b + 8, b + 32)
        meth.nfree += 1
        with pytest.raises(Violation, match="freelist.coalesced"):
            meth.check()
    finally:
        rt.close()


def test_freelist_checker_catches_overlap_and_a_lost_block():
    rt = _ran("first-fit")
    try:
        meth = rt.method
        start, end = meth.chunks[0]
        w0 = meth.ld(start)
        meth.st(start, ((end - start) + 16) | (w0 & H.FLAGS))    # the first block overruns its chunk
        with pytest.raises(Violation, match="freelist.overlap"):
            meth.check()
        meth.st(start, w0)
        meth.check()
        meth.head = meth.ld(meth.head + 8)    # the first free block falls off the list
        with pytest.raises(Violation, match="freelist.list"):
            meth.check()
    finally:
        rt.close()


def test_segregated_checker_catches_a_wrong_class_entry():
    rt = _ran("segregated")
    try:
        meth = rt.method
        c = next(c for c, b in enumerate(meth.cls_head) if b)
        other = next(d for d, b in enumerate(meth.cls_head) if b and d != c) if sum(map(bool, meth.cls_head)) > 1 \
            else None
        if other is None:        # only one class in use: point the list at an allocated block instead
            start, _ = meth.chunks[0]
            b = start
            while meth.ld(b) & H.FREE:
                b += meth.ld(b) & ~H.FLAGS
            meth.cls_head[c] = b
        else:
            meth.cls_head[c] = meth.cls_head[other]
        with pytest.raises(Violation, match="segregated.list"):
            meth.check()
    finally:
        rt.close()


def test_cheney_checker_catches_an_unfixed_pointer_and_an_unreachable_copy():
    rt = _ran("bump", live=20)
    try:
        meth = rt.method
        assert meth.numgc >= 1 and meth.idle is not None
        m0 = rt.mutators[0]
        x = next(v for v in m0.stack if v)
        meth.st(x, meth.idle[0] + 16)        # ring field 0 now points into from-space
        with pytest.raises(Violation, match="cheney.unfixed"):
            meth.check()
        meth.st(x, 0)
        meth.check()
        for m in rt.mutators:                # drop every root: to-space is all garbage
            m.stack[:] = [0] * len(m.stack)
            m.regs[0] = 0
        meth.check()                         # reachability is only asked right after a copy
        with pytest.raises(Violation, match="cheney.unreachable"):
            meth.check_after()
    finally:
        rt.close()


# --- Cheney fixes every pointer ------------------------------------------------------------------

def test_cheney_moves_objects_and_fixes_every_pointer():
    """ring: slot i's object points at slot i-1's.  After many copies that still
    holds, every object sits in the current space, and bytes were copied."""
    cfg = _cfg("bump", "ring", procs=1, steps=600, live=30, heapcheck=1)
    with Runtime(cfg) as rt:
        res = rt.run()
        assert res.exit_code == EXIT_OK, res.violations
        meth = rt.method
        assert meth.numgc >= 3 and meth.stats["bytes_copied"] > 0
        s, top = meth.space[0], meth.top
        stack = rt.mutators[0].stack
        i = (600 - 1) % 30                  # the newest slot
        for k in range(29):                 # follow the chain from the newest back
            x, prev = stack[(i - k) % 30], stack[(i - k - 1) % 30]
            assert s <= x < top
            assert meth.ld(x) == prev
        assert meth.ld(stack[(i + 1) % 30]) == 0     # the oldest dropped its pointer


# --- the oracle catches a stale address ------------------------------------------------------------

class HoldsAddress:
    """Keeps one object's address in a Python local across allocations (and
    in a slot, so it stays alive): legal for a non-moving method, stale for bump."""

    def slots(self, cfg):
        return 1

    def run(self, m, cfg):
        x = m.new(NODE)
        m.set_slot(0, x)
        while m.running():
            m.alloc(256)
            m.store(x, 0, 0)


def test_oracle_catches_a_stale_address_under_bump():
    cfg = Config(procs=1, steps=400, scheduler="random", gogc=0, heapcheck=2, allocator="bump",
                 reserve_bytes=1 << 30)
    with Runtime(cfg, workload=HoldsAddress()) as rt:
        res = rt.run()
    assert res.exit_code == EXIT_VIOLATION
    assert res.violations[0]["invariant"] == "mutator.stale_pointer"


@pytest.mark.parametrize("method", ("first-fit", "segregated"))
def test_the_same_workload_is_fine_where_objects_do_not_move(method):
    cfg = Config(procs=1, steps=400, scheduler="random", gogc=0, heapcheck=2, allocator=method,
                 reserve_bytes=1 << 30)
    with Runtime(cfg, workload=HoldsAddress()) as rt:
        res = rt.run()
        assert res.exit_code == EXIT_OK, res.violations
        assert rt.method.numgc >= 1


def test_oracle_catches_a_use_after_free_on_a_free_list():
    class Dangling:
        def slots(self, cfg):
            return 1

        def run(self, m, cfg):
            x = m.new(NODE)            # in no slot: freed by the first collection
            while m.running():
                m.alloc(256)
                m.store(x, 0, 0)

    cfg = Config(procs=1, steps=400, scheduler="random", gogc=0, heapcheck=2, allocator="first-fit",
                 reserve_bytes=1 << 30)
    with Runtime(cfg, workload=Dangling()) as rt:
        res = rt.run()
    assert res.exit_code == EXIT_VIOLATION
    # freed, then (first fit) usually handed out again: as a pointer-free 256-byte object
    assert res.violations[0]["invariant"] in ("mutator.free_object", "mutator.bad_object",
                                              "mutator.not_a_pointer")


# --- the policies differ as the survey says ------------------------------------------------------------

def test_first_fit_searches_longer_than_segregated_fit():
    means = {}
    for method in ("first-fit", "segregated", "bump"):
        with Runtime(_cfg(method, "churn", procs=1, steps=400, live=200, heapcheck=0, gogc=20)) as rt:
            assert rt.run().exit_code == EXIT_OK
            means[method] = rt.method.metrics()["search_mean"]
    assert means["bump"] == 0 and means["segregated"] < means["first-fit"]


# --- compare-allocators ------------------------------------------------------------------------------

def test_compare_allocators_table_csv_json_and_plots(tmp_path, capsys):
    import csv
    import json

    from concalloc.cli import main
    out = tmp_path / "plots"
    rc = main(["compare-allocators", "--workload", "churn", "--procs", "1,2", "--methods", "go,bump,first-fit,segregated",
               "--steps", "150", "--live", "100", "--gogc", "10", "--reserve", "1GiB", "--json",
               "--csv", str(tmp_path / "c.csv"), "--plot", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = json.loads(cap.out)
    assert res["format"] == "concalloc-compare-allocators"
    rows = {(r["method"], r["procs"]): r for r in res["rows"]}
    assert set(rows) == {(m, p) for m in ("go", "bump", "first-fit", "segregated") for p in (1, 2)}
    assert rows[("bump", 1)]["search_mean"] == 0 and rows[("bump", 1)]["bytes_copied"] > 0
    assert rows[("first-fit", 1)]["search_mean"] > rows[("segregated", 1)]["search_mean"] >= 1
    assert rows[("go", 1)]["search_mean"] is None and 0 < rows[("go", 1)]["internal_frag"] < 0.5
    assert all(r["lock_acquisitions"] >= r["allocs"] for (m, _), r in rows.items() if m != "go")
    assert "first-fit at 2 Ps" in cap.err                  # progress on stderr
    with open(tmp_path / "c.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    for name in ("search.png", "fragmentation.png", "scaling.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, flag", [(["--methods", "go,worst-fit"], "--methods"),
                                        (["--procs", "0"], "--procs"),
                                        (["--steps", "5", "--seconds", "1"], "--seconds")])
def test_compare_allocators_bad_arguments(argv, flag, capsys):
    from concalloc.cli import main
    assert main(["compare-allocators", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"concalloc: {flag}") and len(err.strip().splitlines()) == 1


def test_run_allocator_flag(capsys):
    from concalloc.cli import main
    rc = main(["run", "--allocator", "segregated", "--workload", "ring", "--procs", "1", "--steps", "200",
               "--scheduler", "random", "--gogc", "0", "--reserve", "1GiB", "--json"])
    import json
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["config"]["allocator"] == "segregated" and d["gc"]["num_gc"] >= 1
    assert main(["run", "--allocator", "worst-fit"]) == 2


class CallsGC:
    """runtime.GC and a started cycle, with the trigger off: only they collect."""

    def slots(self, cfg):
        return 2

    def run(self, m, cfg):
        m.set_slot(0, m.new(NODE))
        m.gc()
        assert m.gc_start()
        while m.running():
            m.set_slot(1, m.alloc(48))


@pytest.mark.parametrize("method", METHODS)
def test_runtime_gc_collects_on_every_method(method):
    cfg = Config(procs=1, steps=50, scheduler="random", gogc=-1, heapcheck=2, allocator=method,
                 reserve_bytes=1 << 30)
    with Runtime(cfg, workload=CallsGC()) as rt:
        res = rt.run()
        assert res.exit_code == EXIT_OK, res.violations or res.error
        # m.gc(), then the started cycle at the next allocation; GOGC off starts none of its own
        assert rt.method.numgc == 2


@pytest.mark.parametrize("method, clean", [("bump", False), ("first-fit", True)])
def test_stale_address_example(method, clean):
    """examples/stale_address.py, as docs/allocation-methods.md runs it."""
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "stale_address.py")
    cfg = Config(procs=2, workload=path, steps=200, scheduler="random", gogc=0, heapcheck=2,
                 allocator=method, reserve_bytes=1 << 30)
    with Runtime(cfg) as rt:
        res = rt.run()
    if clean:
        assert res.exit_code == EXIT_OK, res.violations
    else:
        assert res.violations[0]["invariant"] == "mutator.stale_pointer"


def test_go_only_options_are_refused_for_methods():
    with pytest.raises(ConfigError, match="plot"):
        Config(allocator="first-fit", plot="x.png")


@pytest.mark.parametrize("method", ("bump", "segregated"))
def test_a_controlled_method_run_replays(method):
    """A controlled run on a method is still a pure function of (config, seed)."""
    hashes = set()
    for _ in range(2):
        with Runtime(_cfg(method, "graph", steps=120, heapcheck=1)) as rt:
            res = rt.run()
            assert res.exit_code == EXIT_OK and res.event_log_hash
            hashes.add(res.event_log_hash)
    assert len(hashes) == 1


class CorruptsThenCollects:
    """Breaks the method's structure mid-run, then asks for a collection: the
    checker at the collection's stop-the-world point must end the run."""

    def __init__(self, breaker):
        self.breaker = breaker

    def slots(self, cfg):
        return 4

    def run(self, m, cfg):
        for i in range(4):
            m.set_slot(i, m.new(NODE))
        meth = m.rt.method
        with meth.lock:
            self.breaker(meth, m)
        m.gc()


def _cycle_in_free_list(meth, m):
    b = meth.head
    meth.st(b + 8, b)


def _bad_header_in_space(meth, m):
    meth.st(m.slot(1) - 8, 0)          # the info word of a live object


@pytest.mark.parametrize("method, breaker, invariant", [
    ("first-fit", _cycle_in_free_list, "freelist.order"),
    ("segregated", _cycle_in_free_list, "freelist.order"),
    ("bump", _bad_header_in_space, "cheney.walk")])
def test_checker_runs_at_the_collection(method, breaker, invariant):
    cfg = Config(procs=1, steps=50, scheduler="random", gogc=-1, heapcheck=1, allocator=method,
                 reserve_bytes=1 << 30)
    with Runtime(cfg, workload=CorruptsThenCollects(breaker)) as rt:
        res = rt.run()
    assert res.exit_code == EXIT_VIOLATION
    assert res.violations[0]["invariant"] == invariant
