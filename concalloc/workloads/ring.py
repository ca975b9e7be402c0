"""ring: a ring of `live` slots; step i allocates a fresh object of `size`
bytes into slot i mod live.  With noscan the object is pointer-free bytes;
otherwise its first word points to the object in the previous slot, and the
object in the next slot (the oldest) drops its pointer to the object being
replaced, so the live heap is a chain of exactly `live` objects and every
replaced object is garbage."""

from __future__ import annotations

from ..config import ConfigError
from ..memory import Type

DESCRIPTION = "a ring of --live slots, each step replaces one with a fresh --size object"


def slots(cfg) -> int:
    return cfg.live


def validate(cfg) -> None:
    if not cfg.noscan and (cfg.size < 8 or cfg.size % 8):
        raise ConfigError("size", f"a ring object with a pointer needs a multiple of 8 bytes >= 8 "
                                  f"(got {cfg.size}); use --noscan for pointer-free objects")


def run(m, cfg) -> None:
    live, size = cfg.live, cfg.size
    typ = None if cfg.noscan else Type(f"ring{size}", size, [0])
    i = 0
    while m.running():
        x = m.alloc(size, typ)
        if typ is not None:
            prev = m.slot((i - 1) % live)
            if prev:
                m.store(x, 0, prev)
            oldest = m.slot((i + 1) % live)
            if oldest and live > 1:
                m.store(oldest, 0, 0)     # it pointed at the object slot i held
        m.set_slot(i % live, x)
        i += 1
