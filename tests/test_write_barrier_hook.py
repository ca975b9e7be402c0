"""Runtime.set_write_barrier: every pointer store of every mutator goes
through the installed barrier, and it may change only with the world stopped."""

from concalloc.config import Config
from concalloc.runtime import EXIT_INTERNAL, EXIT_OK, Runtime


def test_every_store_passes_the_barrier():
    cfg = Config(procs=3, workload="graph", steps=300, live=40, scheduler="random", reserve_bytes=1 << 30)
    seen = []
    with Runtime(cfg) as rt:
        stores = {m.name: 0 for m in rt.mutators}

        def barrier(m, slot, new):
            seen.append((m.name, slot, new))
            stores[m.name] += 1
        rt.set_write_barrier(barrier)          # no P is running yet: allowed
        res = rt.run()
    assert res.exit_code == EXIT_OK, res.error
    assert seen, "the graph workload stores pointers"
    assert all(isinstance(slot, int) and slot % 8 == 0 for _, slot, _ in seen)
    assert set(stores) == {"P0", "P1", "P2"} and all(stores.values())


def test_barrier_change_while_running_is_refused():
    class Flip:
        def slots(self, cfg):
            return 1

        def run(self, m, cfg):
            m.alloc(16)
            m.rt.set_write_barrier(lambda *a: None)   # this P is running: refused

    with Runtime(Config(procs=1, steps=10, reserve_bytes=1 << 30), workload=Flip()) as rt:
        res = rt.run()
    assert res.exit_code == EXIT_INTERNAL and "world stopped" in str(res.error)
