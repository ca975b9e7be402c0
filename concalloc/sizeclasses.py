"""Size classes: Go's generator algorithm (mksizeclasses.go) and the lookup tables.

The table is computed here, not pasted: candidate sizes step by an alignment
that grows at powers of two; each candidate gets the smallest span (a multiple
of the 8 KiB page) whose tail waste is at most 1/8 of the span; a candidate
that packs the same number of objects into the same span widens the previous
class instead of adding one; finally every class grows to the largest
128-byte-aligned size that keeps its object count.  The result is Go 1.19's
68 classes (class 0 stands for large objects).

Lookup follows malloc.go: ``size_to_class8[ceil(size/8)]`` up to 1024-8 bytes,
``size_to_class128[ceil((size-1024)/128)]`` above; span class is
``sizeclass<<1 | noscan``.
"""

from __future__ import annotations

PAGE_SHIFT = 13
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_SMALL_SIZE = 32768
SMALL_SIZE_DIV = 8
SMALL_SIZE_MAX = 1024
LARGE_SIZE_DIV = 128
MIN_HEAP_ALIGN = 8
NUM_SIZE_CLASSES = 68
NUM_SPAN_CLASSES = NUM_SIZE_CLASSES << 1
TINY_SIZE = 16
TINY_SIZE_CLASS = 2
TINY_SPAN_CLASS = TINY_SIZE_CLASS << 1 | 1


def _is_pow2(x: int) -> bool:
    return x & (x - 1) == 0


def make_classes() -> list[tuple[int, int]]:
    """Return [(size, npages)] for classes 0..67 by Go's makeClasses rule."""
    classes = [[0, 0]]
    align = MIN_HEAP_ALIGN
    size = align
    while size <= MAX_SMALL_SIZE:
        if _is_pow2(size):
            if size >= 2048:
                align = 256
            elif size >= 128:
                align = size // 8
            elif size >= 32:
                align = 16
        allocsize = PAGE_SIZE
        while allocsize % size > allocsize // 8:
            allocsize += PAGE_SIZE
        npages = allocsize // PAGE_SIZE
        prev = classes[-1]
        if (len(classes) > 1 and npages == prev[1]
                and allocsize // size == allocsize // prev[0]):
            prev[0] = size
        else:
            classes.append([size, npages])
        size += align
    for c in classes[1:]:
        psize = c[1] * PAGE_SIZE
        new = (psize // (psize // c[0])) & ~(LARGE_SIZE_DIV - 1)
        if new > c[0]:
            c[0] = new
    if len(classes) != NUM_SIZE_CLASSES:
        raise AssertionError(f"size class generator produced {len(classes)} classes, want {NUM_SIZE_CLASSES}")
    return [(s, p) for s, p in classes]


_CLASSES = make_classes()
class_to_size: tuple[int, ...] = tuple(s for s, _ in _CLASSES)
class_to_allocnpages: tuple[int, ...] = tuple(p for _, p in _CLASSES)
class_to_nobjs: tuple[int, ...] = (0,) + tuple(
    p * PAGE_SIZE // s for s, p in _CLASSES[1:])
# ^uint32(0)/size + 1: objIndex = (offset * magic) >> 32, exact within a span.
class_to_divmagic: tuple[int, ...] = (0,) + tuple(
    0xFFFFFFFF // s + 1 for s, _ in _CLASSES[1:])


def _smallest_class_at_least(n: int) -> int:
    for c in range(1, NUM_SIZE_CLASSES):
        if class_to_size[c] >= n:
            return c
    raise AssertionError(n)


size_to_class8: tuple[int, ...] = (0,) + tuple(   # Go's table starts with class 0 for size 0
    _smallest_class_at_least(i * SMALL_SIZE_DIV)
    for i in range(1, SMALL_SIZE_MAX // SMALL_SIZE_DIV + 1))
size_to_class128: tuple[int, ...] = tuple(
    _smallest_class_at_least(SMALL_SIZE_MAX + i * LARGE_SIZE_DIV)
    for i in range((MAX_SMALL_SIZE - SMALL_SIZE_MAX) // LARGE_SIZE_DIV + 1))


def size_to_class(size: int) -> int:
    """Size class for a small size (1..32768); 0 means large."""
    if size <= SMALL_SIZE_MAX - 8:
        return size_to_class8[(size + SMALL_SIZE_DIV - 1) // SMALL_SIZE_DIV]
    if size <= MAX_SMALL_SIZE:
        return size_to_class128[(size - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) // LARGE_SIZE_DIV]
    return 0


# Direct size -> span class lookups for the allocation fast path: one tuple
# index instead of two comparisons and a division.  Index by size.
_SMALL_SPC_NOSCAN = tuple(
    (size_to_class(s) << 1 | 1) if s else 0 for s in range(MAX_SMALL_SIZE + 1))
_SMALL_SPC_SCAN = tuple(
    (size_to_class(s) << 1) if s else 0 for s in range(MAX_SMALL_SIZE + 1))


def make_span_class(sizeclass: int, noscan: bool) -> int:
    return sizeclass << 1 | int(noscan)


def span_class_sizeclass(spc: int) -> int:
    return spc >> 1


def span_class_noscan(spc: int) -> bool:
    return bool(spc & 1)


def span_class_name(spc: int) -> str:
    """Go prints span classes as e.g. '12' ; we add the size for humans."""
    sc = spc >> 1
    kind = "noscan" if spc & 1 else "scan"
    size = "large" if sc == 0 else f"{class_to_size[sc]}B"
    return f"{spc} ({size} {kind})"


def table_rows() -> list[dict]:
    """Rows with the columns of Go's sizeclasses.go header comment."""
    rows = []
    for c in range(1, NUM_SIZE_CLASSES):
        size = class_to_size[c]
        span = class_to_allocnpages[c] * PAGE_SIZE
        objs = span // size
        tail = span - objs * size
        prev = class_to_size[c - 1]
        waste = ((size - prev - 1) * objs + tail) / span * 100
        rows.append({"class": c, "bytes_per_obj": size, "bytes_per_span": span,
                     "objects": objs, "tail_waste": tail,
                     "max_waste_pct": float(f"{waste:.2f}")})
    return rows


def format_table() -> str:
    """The header comment of Go's sizeclasses.go, column for column."""
    out = ["// class  bytes/obj  bytes/span  objects  tail waste  max waste"]
    for r in table_rows():
        out.append("//  %5d  %9d  %10d  %7d  %10d  %8.2f%%" % (
            r["class"], r["bytes_per_obj"], r["bytes_per_span"], r["objects"],
            r["tail_waste"], r["max_waste_pct"]))
    return "\n".join(out)
