"""Atomics under real contention: no lost updates."""

import time

from concalloc.sync import AtomicCounters, AtomicInt, SyncContext, add_attr, cas_attr, make_scheduler, or8

N_THREADS, M_OPS = 6, 3000


class _Span:
    def __init__(self):
        self.sweepgen = 0
        self.nfree = 0


def test_concurrent_adds_and_cas_lose_nothing():
    sched = make_scheduler("os", 0, switch_interval=1e-6)
    SyncContext(sched)
    counter = AtomicInt(0)
    counters = AtomicCounters("a", "b")
    span = _Span()
    bits = bytearray(1)
    wins = AtomicInt(0)

    def body(i):
        def run():
            for _ in range(M_OPS):
                counter.add(1)
                counters.add(a=1, b=2)
                add_attr(span, "nfree", 1)
            for g in range(50):   # every thread races to move sweepgen g -> g+1 ... only one may win each
                if cas_attr(span, "sweepgen", g, g + 1):
                    wins.add(1)
            or8(bits, 0, 1 << i)
        return run

    for i in range(N_THREADS):
        sched.start_thread(f"T{i}", body(i))
    sched.join_all(timeout=60)
    assert counter.load() == N_THREADS * M_OPS
    assert counters.snapshot() == {"a": N_THREADS * M_OPS, "b": 2 * N_THREADS * M_OPS}
    assert span.nfree == N_THREADS * M_OPS
    assert span.sweepgen == wins.load() == 50
    assert bits[0] == (1 << N_THREADS) - 1


def test_atomic_int_ops():
    a = AtomicInt(5)
    assert a.cas(5, 7) and not a.cas(5, 9)
    assert a.swap(1) == 7 and a.add(-3) == -2 and a.load() == -2


class _SlowInt(int):
    """An int whose + gives up the CPU halfway, so an unlocked read-modify-write loses updates."""

    def __add__(self, other):
        time.sleep(0)
        return _SlowInt(int(self) + int(other))


def test_read_modify_writes_hold_their_lock_across_the_update():
    """Even on a GIL build: the + in the middle of each update lets the other threads run."""
    sched = make_scheduler("os", 0)
    counter = AtomicInt(_SlowInt(0))
    span = _Span()
    span.nfree = _SlowInt(0)
    n_threads, n_ops = 4, 200

    def run():
        for _ in range(n_ops):
            counter.add(1)
            add_attr(span, "nfree", 1)

    for i in range(n_threads):
        sched.start_thread(f"T{i}", run)
    sched.join_all(timeout=60)
    assert counter.load() == span.nfree == n_threads * n_ops
