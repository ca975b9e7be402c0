"""reuse: requests that each need a buffer, a fresh []byte or one reused buffer.

Each request allocates a small request object (48 B, one pointer field)
and needs a buffer of a random size between cfg.size/4 and cfg.size bytes.

    reuse:reuse (or reuse)  each mutator keeps one buffer (a stack slot) and
                            its capacity; a request that needs more grows it
                            as append does (max(need, 2*cap)), else reuses it
                            (bytes.Buffer.Reset, buf = buf[:0])
    reuse:fresh             a new buffer of exactly the size needed, dropped
                            at the end of the request

A run ends at `steps` requests or `steps` allocations, whichever comes
first, or after `seconds`.
"""

from __future__ import annotations

from ..memory import Type
from .arms import TwoArms
from .pool import touch

DESCRIPTION = "requests needing a buffer of --size/4..--size bytes, fresh (reuse:fresh) or reused (reuse:reuse)"
REQ = Type("request", 48, [0])
BUF, REQ_SLOT = 0, 1


class ReuseWorkload(TwoArms):
    NAME, MODES, DESCRIPTION = "reuse", ("reuse", "fresh"), DESCRIPTION

    def __init__(self, mode: str = "reuse"):
        super().__init__(mode)
        self.requests: list[int] = []

    def slots(self, cfg) -> int:
        return 2

    def setup(self, m, cfg) -> None:
        self.requests = [0] * cfg.procs

    def run(self, m, cfg) -> None:
        rng = m.rng
        hi = max(cfg.size, 4)
        lo = max(hi // 4, 1)
        reuse = self.mode == "reuse"
        cap = 0
        limit = cfg.steps
        n = 0
        while (limit is None or n < limit) and m.running():
            req = m.alloc(REQ.size, REQ)
            m.set_slot(REQ_SLOT, req)
            need = rng.randint(lo, hi)
            if not reuse or need > cap:
                cap = max(need, 2 * cap) if reuse else need
                m.set_slot(BUF, m.alloc(cap))
            b = m.slot(BUF)
            touch(m, b, need)
            m.store(req, 0, b)
            if not reuse:
                m.clear_slot(BUF)
            m.clear_slot(REQ_SLOT)
            n += 1
            self.requests[m.p.id] = n


VARIANTS = {"reuse": lambda: ReuseWorkload("reuse"), "fresh": lambda: ReuseWorkload("fresh")}
_default = ReuseWorkload("reuse")
slots, setup, run = _default.slots, _default.setup, _default.run
