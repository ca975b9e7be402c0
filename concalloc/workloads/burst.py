"""burst: mostly small objects, with an occasional burst of large ones.

Small objects (16..256 B) fill a ring of `live` slots; every BURST_EVERY
steps a burst of BURST_LEN large objects (64 KiB .. 1 MiB) is allocated and
kept until the next burst replaces it."""

from __future__ import annotations

DESCRIPTION = "small objects with periodic bursts of large (64 KiB..1 MiB) objects"
BURST_EVERY = 200
BURST_LEN = 8


def slots(cfg) -> int:
    return cfg.live + BURST_LEN


def validate(cfg) -> None:
    pass


def run(m, cfg) -> None:
    rng = m.rng
    live = cfg.live
    i = 0
    while m.running():
        if i % BURST_EVERY == BURST_EVERY - 1:
            for k in range(BURST_LEN):
                if not m.running():
                    break
                m.set_slot(live + k, m.alloc(rng.randint(64 << 10, 1 << 20)))
        else:
            m.set_slot(i % live, m.alloc(rng.randint(16, 256)))
        i += 1
