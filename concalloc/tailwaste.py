"""Tail waste of Go's size classes for a user's size distribution (sizeclasses.go's arithmetic).

mallocgc rounds a small request up to its size class, and each span of a
class holds a whole number of objects, so two kinds of bytes are lost:

    rounding   class size - requested size, per object (internal fragmentation)
    span tail  bytes at the end of a span no object fits in (sizeclasses.go's
               "tail waste"), spread over the span's objects:
               tail / objects-per-span per object

A large object (> 32768 B) gets whole 8 KiB pages: its rounding is up to the
next page and it has no span tail.  Noscan objects under 16 B go to the tiny
allocator, which packs several into one 16-byte block; they are counted
here by their class, as if each had its own slot (an upper bound).

"Moving a size a few bytes": a size just above a class boundary pays for the
whole next class.  For each distinct small size within `shrink` bytes above
the previous class's size, report what trimming it to that size would save
(class sizes are Go's, so the saving is exact per object), and for every size
the bytes it could grow for free (up to its class size).

Input: one size per line, or "size count" (a histogram), "#" comments;
or the same inline, comma-separated ("24,100x5,1000").
"""

from __future__ import annotations

from .sizeclasses import (MAX_SMALL_SIZE, PAGE_SIZE, class_to_allocnpages, class_to_nobjs, class_to_size,
                          size_to_class)

SHRINK = 16        #: default: a size at most this many bytes above a boundary is worth trimming


class SizesError(ValueError):
    """A size list or histogram that cannot be read (one line, for exit 2)."""


def parse_sizes(text: str, where: str = "sizes") -> dict[int, int]:
    """size -> count from a list/histogram text (lines) or an inline list (commas)."""
    items = text.split(",") if "\n" not in text.strip() and "," in text else text.splitlines()
    hist: dict[int, int] = {}
    for lineno, raw in enumerate(items, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace("x", " ").replace("\t", " ").split()
        try:
            size = int(parts[0])
            count = int(parts[1]) if len(parts) > 1 else 1
        except ValueError:
            raise SizesError(f"{where}: entry {lineno}: expected 'size' or 'size count', got {raw.strip()!r}") from None
        if len(parts) > 2 or size < 1 or count < 0:
            raise SizesError(f"{where}: entry {lineno}: expected a size >= 1 and a count >= 0, got {raw.strip()!r}")
        hist[size] = hist.get(size, 0) + count
    if not hist:
        raise SizesError(f"{where}: no sizes")
    return hist


def slot_of(size: int) -> dict:
    """Where mallocgc puts one object of `size` bytes: its class, slot size,
    span, objects per span and the span's tail."""
    if size > MAX_SMALL_SIZE:
        slot = -(-size // PAGE_SIZE) * PAGE_SIZE
        return {"class": 0, "slot": slot, "span": slot, "per_span": 1, "tail": 0}
    c = size_to_class(size)
    span = class_to_allocnpages[c] * PAGE_SIZE
    n = class_to_nobjs[c]
    return {"class": c, "slot": class_to_size[c], "span": span, "per_span": n, "tail": span - n * class_to_size[c]}


def report(hist: dict[int, int], shrink: int = SHRINK) -> dict:
    """Per class and in total: objects, bytes requested, bytes in slots,
    rounding waste, span-tail share; and the sizes worth moving."""
    classes: dict[int, dict] = {}
    for size, count in sorted(hist.items()):
        s = slot_of(size)
        key = s["class"] if s["class"] else -s["slot"]       # each large slot size its own row
        row = classes.setdefault(key, {"class": s["class"], "slot": s["slot"], "sizes": 0, "objects": 0,
                                       "requested": 0, "rounding": 0, "tail_share": 0.0})
        row["sizes"] += 1
        row["objects"] += count
        row["requested"] += size * count
        row["rounding"] += (s["slot"] - size) * count
        row["tail_share"] += s["tail"] * count / s["per_span"]
    rows = sorted(classes.values(), key=lambda r: r["slot"])
    for r in rows:
        r["allocated"] = r["slot"] * r["objects"]
        r["tail_share"] = round(r["tail_share"], 1)
        r["waste"] = round(r["rounding"] + r["tail_share"], 1)
        r["waste_pct"] = _pct(r["waste"], r["allocated"] + r["tail_share"])
    total = {k: sum(r[k] for r in rows) for k in ("objects", "requested", "allocated", "rounding")}
    total["tail_share"] = round(sum(r["tail_share"] for r in rows), 1)
    total["waste"] = round(total["rounding"] + total["tail_share"], 1)
    total["waste_pct"] = _pct(total["waste"], total["allocated"] + total["tail_share"])
    return {"classes": rows, "total": total, "moves": moves(hist, shrink), "shrink": shrink}


def moves(hist: dict[int, int], shrink: int = SHRINK) -> list[dict]:
    """Sizes within `shrink` bytes above the previous class: trimming them to
    it saves (slot - previous slot) bytes per object, largest total first."""
    out = []
    for size, count in hist.items():
        if size > MAX_SMALL_SIZE or not count:
            continue
        c = size_to_class(size)
        if c <= 1:
            continue
        prev = class_to_size[c - 1]
        by = size - prev
        if by <= shrink:
            saved = class_to_size[c] - prev
            out.append({"size": size, "count": count, "to": prev, "trim": by, "class": c, "to_class": c - 1,
                        "saved_per_object": saved, "saved": saved * count})
    return sorted(out, key=lambda m: (-m["saved"], m["size"]))


def free_growth(hist: dict[int, int]) -> list[dict]:
    """Bytes each size could grow without using more memory (its slot's slack)."""
    return [{"size": s, "room": slot_of(s)["slot"] - s} for s in sorted(hist) if slot_of(s)["slot"] > s]


def _pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 2) if whole else 0.0
