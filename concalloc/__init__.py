"""concalloc: Go's memory allocator and concurrent GC, modelled on real OS
threads and real memory (Go 1.19, with the lock-protected mcentral of Go <= 1.14).

Layers, top to bottom (see docs/architecture.md):

    mallocgc (malloc.py) -> mcache (per P, no lock) -> mcentral (one lock per
    span class) -> mheap (one lock: pages, spans, arenas) -> sysmem (one real
    MAP_NORESERVE mapping; 64 MiB arenas from 0xc000000000, 8 KiB pages)
"""

__version__ = "0.1.0"

from .config import Config, ConfigError  # noqa: E402
from .heap import Heap  # noqa: E402
from .memory import Type, ptr_type  # noqa: E402

__all__ = ["Config", "ConfigError", "Heap", "Type", "ptr_type", "__version__"]
