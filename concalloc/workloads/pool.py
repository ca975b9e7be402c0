"""pool: requests that each need a few buffers, taken fresh or from a sync.Pool.

Each request allocates a small request object (48 B, one pointer field),
needs 1..MAX_BUFS buffers of cfg.size bytes (pointer-free, a []byte),
writes into each, links the first to the request object (a barriered
store), then lets everything go.  The two variants differ only in where
the buffers come from:

    pool:pooled (or pool)  Get from the sync.Pool "buffers" (New allocates
                           one), Put back at the end of the request
    pool:fresh             a new allocation per buffer, dropped at the end

A run ends at `steps` requests or `steps` allocations, whichever comes
first, or after `seconds`: compare the variants over the same --seconds.
"""

from __future__ import annotations

from .. import syncpool
from ..memory import Type
from .arms import TwoArms

DESCRIPTION = "requests needing 1-3 buffers of --size bytes, fresh (pool:fresh) or from a sync.Pool (pool:pooled)"
MAX_BUFS = 3
REQ = Type("request", 48, [0])


def touch(m, b: int, size: int) -> None:
    """Write the buffer's first and last words (as a request fills it)."""
    m.write_word(b, 0, size)
    if size >= 16:
        m.write_word(b, size // 8 - 1, size)


class PoolWorkload(TwoArms):
    NAME, MODES, DESCRIPTION = "pool", ("pooled", "fresh"), DESCRIPTION

    def __init__(self, mode: str = "pooled"):
        super().__init__(mode)
        self.requests: list[int] = []      # per P, each written by its own P

    def slots(self, cfg) -> int:
        return MAX_BUFS + 1

    def setup(self, m, cfg) -> None:
        self.requests = [0] * cfg.procs
        if self.mode == "pooled":
            size = max(cfg.size, 1)
            syncpool.pool(m.rt, "buffers", new=lambda mm: mm.alloc(size))

    def run(self, m, cfg) -> None:
        pool = syncpool.pool(m.rt, "buffers") if self.mode == "pooled" else None
        rng = m.rng
        size = max(cfg.size, 1)
        limit = cfg.steps
        n = 0
        while (limit is None or n < limit) and m.running():
            req = m.alloc(REQ.size, REQ)
            m.set_slot(MAX_BUFS, req)
            k = rng.randint(1, MAX_BUFS)
            for i in range(k):
                b = pool.Get(m) if pool else m.alloc(size)
                m.set_slot(i, b)
                touch(m, b, size)
            m.store(req, 0, m.slot(0))
            for i in range(k):
                if pool:
                    pool.Put(m, m.slot(i))
                m.clear_slot(i)
            m.clear_slot(MAX_BUFS)
            n += 1
            self.requests[m.p.id] = n


VARIANTS = {"pooled": lambda: PoolWorkload("pooled"), "fresh": lambda: PoolWorkload("fresh")}
_default = PoolWorkload("pooled")
slots, setup, run = _default.slots, _default.setup, _default.run
