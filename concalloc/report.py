"""Terminal tables for people: MemStats, span-class occupancy, lock statistics.

Plain fixed-width text (no dependency), one function per table, each taking
the JSON-ready dicts the rest of the program already produces.
"""

from __future__ import annotations

from .sizeclasses import class_to_size, span_class_name

MEMSTATS_FIELDS = ("HeapAlloc", "TotalAlloc", "HeapSys", "HeapInuse", "HeapIdle",
                   "HeapReleased", "HeapObjects", "Mallocs", "Frees", "NumGC")


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def table(headers, rows, title: str | None = None) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    out = [title] if title else []
    out.append("  ".join(str(h).rjust(w) for h, w in zip(headers, widths)))
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)
    return "\n".join(out)


def memstats_table(ms: dict) -> str:
    rows = []
    for k in MEMSTATS_FIELDS:
        v = ms.get(k, 0)
        pretty = human_bytes(v) if k.startswith(("Heap", "Total")) and k != "HeapObjects" else ""
        rows.append([k, v, pretty])
    return table(["MemStats", "value", ""], rows, title="runtime.MemStats")


def occupancy_rows(mheap) -> list[dict]:
    """Per span class: spans in use, slots, allocated slots (world stopped)."""
    per: dict[int, dict] = {}
    for s in mheap.allspans:
        d = per.setdefault(s.spanclass, {"spanclass": s.spanclass, "spans": 0, "pages": 0,
                                         "slots": 0, "allocated": 0})
        d["spans"] += 1
        d["pages"] += s.npages
        d["slots"] += s.nelems
        d["allocated"] += s.allocCount
    return [per[k] for k in sorted(per)]


def occupancy_table(mheap) -> str:
    rows = []
    for d in occupancy_rows(mheap):
        sc = d["spanclass"] >> 1
        fill = 100.0 * d["allocated"] / d["slots"] if d["slots"] else 0.0
        rows.append([span_class_name(d["spanclass"]), class_to_size[sc] if sc else "-",
                     d["spans"], d["pages"], d["allocated"], d["slots"], f"{fill:.1f}%"])
    return table(["span class", "elemsize", "spans", "pages", "objects", "slots", "full"], rows,
                 title="span classes in use")
