"""churn: sizes drawn from a mix of tiny, small and large; each step replaces
a random one of `live` slots, so objects die at random ages."""

from __future__ import annotations

from ..memory import Type

DESCRIPTION = "random sizes (tiny, small, large) replacing random live slots"
# (size range, weight, has pointers)
MIX = (((1, 15), 30, False), ((16, 512), 45, False), ((16, 512), 10, True),
       ((513, 32768), 12, False), ((32769, 256 << 10), 3, False))


def slots(cfg) -> int:
    return cfg.live


def validate(cfg) -> None:
    pass


def run(m, cfg) -> None:
    rng = m.rng
    live = cfg.live
    kinds = [k for k in MIX for _ in range(k[1])]
    ptr = Type("churnptr", 8, [0])
    while m.running():
        (lo, hi), _w, pointers = rng.choice(kinds)
        size = rng.randint(lo, hi)
        if pointers:
            x = m.alloc((size + 7) // 8 * 8, ptr)
            other = m.slot(rng.randrange(live))
            if other:
                m.store(x, 0, other)
        else:
            x = m.alloc(size)
        m.set_slot(rng.randrange(live), x)
