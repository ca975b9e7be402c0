"""sysmem: the heap's address space, backed by one real anonymous mapping.

Go reserves address space with PROT_NONE mmaps and walks it through the OS
memory states of runtime/mem.go:

    None --sysReserve--> Reserved --sysMap--> Prepared --sysUsed--> Ready
                                   Prepared <--sysUnused-- Ready

Here one MAP_NORESERVE mapping is taken up front (so even 64 GiB costs
nothing until touched) and its first byte is given Go's classic arena base
0xc000000000: model addresses are plain ints in Go's range and translate to
offsets in the mapping.  The states are byte counters kept by the callers'
word (as Go's are), except that sysUnused really releases the pages with
madvise(MADV_DONTNEED), so the process RSS falls as Go's would.

Protection: the state counters are AtomicCounters; everything else is set up
once in __init__ and read-only afterwards.
"""

from __future__ import annotations

import ctypes
import mmap

from .sync import AtomicCounters

ARENA_BASE = 0xC000000000
HEAP_ARENA_SHIFT = 26
HEAP_ARENA_BYTES = 1 << HEAP_ARENA_SHIFT  # 64 MiB
PAGE_SHIFT = 13
PAGE_SIZE = 1 << PAGE_SHIFT
PAGES_PER_ARENA = HEAP_ARENA_BYTES // PAGE_SIZE  # 8192
PHYS_PAGE_SIZE = mmap.PAGESIZE
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
_ZERO_CHUNK_BYTES = 64 << 10
_ZERO_VIEW = memoryview(bytes(_ZERO_CHUNK_BYTES))


class OutOfMemory(MemoryError):
    """Go: "runtime: out of memory: cannot allocate N-byte block (M in use)"."""


class SysMem:
    """One reservation: [ARENA_BASE, ARENA_BASE + reserve_bytes)."""

    def __init__(self, reserve_bytes: int):
        if reserve_bytes <= 0 or reserve_bytes % HEAP_ARENA_BYTES:
            raise ValueError(f"reservation must be a positive multiple of 64 MiB, got {reserve_bytes}")
        self.reserve_bytes = reserve_bytes
        self.base = ARENA_BASE
        self.end = ARENA_BASE + reserve_bytes
        # One pad page past the reservation gets different VMA flags
        # (MADV_DONTFORK), so the kernel never merges this mapping with a
        # neighbouring one made the same way (another Heap's): rss() reads
        # this mapping's own VMA in /proc/self/smaps.
        self._mm = mmap.mmap(-1, reserve_bytes + PHYS_PAGE_SIZE,
                             flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self._mm.madvise(mmap.MADV_DONTFORK, reserve_bytes, PHYS_PAGE_SIZE)
        self._cbuf = ctypes.c_char.from_buffer(self._mm)
        self.host_addr = ctypes.addressof(self._cbuf)
        # words[i] is the 8-byte word at model address base + 8*i.
        self.words = memoryview(self._mm)[:reserve_bytes].cast("Q")
        self.state = AtomicCounters("reserved", "prepared", "ready")
        self.state.add(reserved=reserve_bytes)

    # --- OS memory state transitions (accounting as in mem.go) ---
    def sysMap(self, addr: int, n: int) -> None:
        self._check_range(addr, n)
        self.state.add(reserved=-n, prepared=n)

    def sysUsed(self, addr: int, n: int) -> None:
        self._check_range(addr, n)
        self.state.add(prepared=-n, ready=n)

    def sysUnused(self, addr: int, n: int) -> None:
        """Return pages to the OS for real: madvise(MADV_DONTNEED) zero-fills them."""
        self._check_range(addr, n)
        lo = (addr - self.base)
        if lo % PHYS_PAGE_SIZE or n % PHYS_PAGE_SIZE:
            raise ValueError(f"sysUnused of unaligned range {addr:#x}+{n:#x}")
        self._mm.madvise(mmap.MADV_DONTNEED, lo, n)
        self.state.add(ready=-n, prepared=n)

    def _check_range(self, addr: int, n: int) -> None:
        if n < 0 or addr < self.base or addr + n > self.end:
            raise ValueError(f"range {addr:#x}+{n:#x} outside the reservation "
                             f"[{self.base:#x}, {self.end:#x})")

    # --- memory access ---
    def memclr(self, addr: int, n: int) -> None:
        """Clear n bytes: a slice store of zeros for object-sized ranges (a
        ctypes call costs several times more), memset for large ones."""
        off = addr - self.base
        if n <= _ZERO_CHUNK_BYTES:
            self._mm[off:off + n] = _ZERO_VIEW[:n]
        else:
            ctypes.memset(self.host_addr + off, 0, n)

    def read_bytes(self, addr: int, n: int) -> bytes:
        off = addr - self.base
        return self._mm[off:off + n]

    def write_bytes(self, addr: int, data: bytes) -> None:
        off = addr - self.base
        self._mm[off:off + len(data)] = data

    # --- observation ---
    def rss(self) -> int:
        """Resident bytes of this mapping, from /proc/self/smaps."""
        want = f"{self.host_addr:x}-"
        inside = False
        with open("/proc/self/smaps") as f:
            for line in f:
                if not inside:
                    inside = line.startswith(want)
                elif line.startswith("Rss:"):
                    return int(line.split()[1]) * 1024
        return 0

    def close(self) -> None:
        try:
            self.words.release()
            del self._cbuf
            self._mm.close()
        except (BufferError, AttributeError):
            pass  # a view is still alive somewhere; the mapping goes with the process
