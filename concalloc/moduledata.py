"""moduledata: the data segment, where the program's globals live (symtab.go).

A Go binary's globals are not in the heap: they sit in the data and bss
sections, described by the module's moduledata record.  Its fields give each
section's bounds (data/edata, bss/ebss) and a pointer mask (gcdata/gcbss, one
bit per word, least significant first) saying which words hold pointers; the
collector scans those words as roots (markrootBlock), and a pointer store
into one goes through the write barrier like a heap store, with the word's
address as the slot.

Here the data section holds the runtime's NGLOBALS globals, 8-byte words at
a fixed address below the heap, every one of them a pointer word:

    DATA  = 0xbffffff000  (one page below the arena base 0xc000000000)
    EDATA = DATA + 8 * NGLOBALS
    zerobase (malloc.ZEROBASE, 0xbffffffff8) stays outside, as in Go, where
    it is in noptrbss

so every slot a write barrier sees is an integer address, in the heap or
here.  Memory.load/store reach these words through their slow branch
(an address below the heap), so heap accesses pay nothing for them.

Protection: `words` are single-word stores and loads (by mutators through
Memory, by the collector with the world stopped or racily while marking, as
heap words are); everything else is set in __init__ and read-only.
"""

from __future__ import annotations

from array import array

from .sysmem import ARENA_BASE

NGLOBALS = 16
DATA = ARENA_BASE - 0x1000


class ModuleData:
    __slots__ = ("data", "edata", "gcdata", "words")

    def __init__(self, nglobals: int = NGLOBALS, data: int = DATA):
        if data & 7 or nglobals <= 0 or data + 8 * nglobals > ARENA_BASE - 8:
            raise ValueError(f"data segment of {nglobals} words at {data:#x} must be aligned "
                             "and below zerobase")
        self.data = data
        self.edata = data + 8 * nglobals
        self.gcdata = ((1 << nglobals) - 1).to_bytes((nglobals + 7) // 8, "little")  # all pointers
        self.words = array("Q", bytes(8 * nglobals))

    def contains(self, addr: int) -> bool:
        """addr is an aligned word of the data section."""
        return self.data <= addr < self.edata and not addr & 7

    def global_addr(self, i: int) -> int:
        """Address of global i (the slot a barrier sees for it)."""
        if not 0 <= i < len(self.words):
            raise IndexError(f"global {i} out of range [0, {len(self.words)})")
        return self.data + 8 * i

    def load(self, addr: int) -> int:
        return self.words[(addr - self.data) >> 3]

    def store(self, addr: int, value: int) -> None:
        self.words[(addr - self.data) >> 3] = value

    def pointer_slots(self) -> list[int]:
        """Addresses of the data words whose gcdata bit is set, in order: the
        root words markrootBlock scans."""
        mask = int.from_bytes(self.gcdata, "little")
        return [self.data + 8 * i for i in range(len(self.words)) if mask >> i & 1]

    def values(self) -> tuple[int, ...]:
        """The globals' current values (a snapshot)."""
        return tuple(self.words)
