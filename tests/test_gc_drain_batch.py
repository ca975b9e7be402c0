"""gcDrain's heap loop on the quiet path scans a run of objects per
scanobject call (drain=True): it must mark, count and queue exactly what
the one-object-per-call loop does, and stop a run where gcDrain would look
between two objects (the scan-work slack, blackening turned off)."""

from __future__ import annotations

import pytest

from bench.bench_gc import MarkHarness
from concalloc.gc import mark
from concalloc.gc.work import GC_CREDIT_SLACK
from concalloc.sync.sched import QUIET_YIELD


@pytest.fixture
def heap():
    h = MarkHarness(3000, garbage_every=3)
    yield h
    h.close()


def one_cycle(h, yp):
    """A full cycle drained with yield point yp; (mark bits of every span
    after the drain, heap scan work, bytes marked)."""
    gc = h.gc
    rec = h.start()
    saved, gc.yp = gc.yp, yp
    try:
        work0 = gc.ctl.heapScanWork.load()
        h.drain()
        bits = {s.startAddr: bytes(s.gcmarkBits) for s in gc.h.allspans}
        out = (bits, gc.ctl.heapScanWork.load() - work0, gc.bytesMarked.load())
    finally:
        gc.yp = saved
    h.finish(rec)
    return out


def test_batched_drain_marks_and_counts_what_the_per_object_drain_does(heap):
    one_cycle(heap, QUIET_YIELD)                 # the first cycle frees the garbage
    per_object = one_cycle(heap, lambda label: None)   # any other yield point: one object per call
    batched = one_cycle(heap, QUIET_YIELD)
    assert batched == per_object
    assert sum(int.from_bytes(b, "little").bit_count() for b in batched[0].values()) == 3000


def test_a_run_stops_at_the_scan_work_slack_and_when_blackening_ends(heap):
    gc = heap.gc
    rec = heap.start()
    gcw = gc.gcw
    for j in range(gc.markrootJobs):             # the roots first, as gcDrain does
        mark.markroot(gc, gcw, gc.claim_root_job())
        gc.root_job_done()
    gcw.heapScanWork = 0
    runs = 0
    while gcw.heapScanWork < GC_CREDIT_SLACK:   # a run ends at the slack, or with wbuf1 empty
        mark.scanobject(gc, gcw.tryGet(), gcw, None, True, 1)
        runs += 1
        assert gcw.heapScanWork >= GC_CREDIT_SLACK or not gcw.wbuf1
    assert gcw.heapScanWork < GC_CREDIT_SLACK + 16 and runs < GC_CREDIT_SLACK // 16
    gc.flush_scan_work(gcw, False)
    gc.blackenEnabled = False
    b = gcw.tryGet()
    mark.scanobject(gc, b, gcw, None, True, 1)   # preemptible: one object, then stop
    assert gcw.heapScanWork == 16
    mark.scanobject(gc, gcw.tryGet(), gcw, None, True, 0)   # not preemptible: goes on
    assert gcw.heapScanWork >= GC_CREDIT_SLACK
    gc.blackenEnabled = True
    heap.drain()
    heap.finish(rec)
