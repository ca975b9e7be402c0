"""Shared helpers for the allocator tests.

Every Heap maps its own address-space reservation (MAP_NORESERVE), so heaps
are always closed when a test ends: the `heap` fixture does it, and helpers
that build heaps for a test hand them to `heaps` (a list closed at teardown).
"""

from __future__ import annotations

import pytest

from concalloc import Heap

GiB = 1 << 30


@pytest.fixture
def heap():
    """A fresh heap: 1 GiB reservation, 4 Ps, Go's default checks."""
    h = Heap(reserve_bytes=GiB, nprocs=4)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def heaps():
    """A list to append extra heaps to; each is closed at teardown."""
    made: list[Heap] = []
    yield made
    for h in made:
        h.close()
