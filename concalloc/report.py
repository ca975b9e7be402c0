"""Terminal tables for people: MemStats, span-class occupancy, lock statistics.

Plain fixed-width text, one function per table, each taking the JSON-ready
dicts the rest of the program already produces.  Times are shown in human
units (ns, µs, ms, s) or as scheduler steps; lock tables fit 100 columns
(WIDTH) and no lock's row is printed twice.
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


WIDTH = 100       # the widest line a lock table prints


def table(headers, rows, title: str | None = None, left: int = 1) -> str:
    """Columns two spaces apart: the first `left` left-aligned (names), the rest right-aligned."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]

    def line(cells) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [title] if title else []
    out.append(line([str(h) for h in headers]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def duration(v, unit: str = "ns") -> str:
    """A time for people: 812 ns, 12.3 µs, 8.96 ms, 1.20 s; or 'N steps' for a logical clock."""
    if v is None:
        return "-"
    if unit != "ns":
        return f"{v:,.0f} {unit}" if isinstance(v, int) or v >= 10 else f"{v:.1f} {unit}"
    for scale, name in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if v >= scale:
            x = v / scale
            return f"{x:.3g} {name}" if x < 100 else f"{x:.0f} {name}"
    return f"{v:.0f} ns"


def hist_quantile(hist: dict, q: float, cap: int | None = None):
    """The q-quantile of a log2 histogram {lower bound: count}: the upper end of the
    bucket holding it (2 * lower bound, 1 for the 0 bucket), at most `cap` (the max).
    None when the histogram is empty."""
    buckets = sorted((int(k), n) for k, n in hist.items())
    total = sum(n for _, n in buckets)
    if not total:
        return None
    seen, rank = 0, q * total
    for lo, n in buckets:
        seen += n
        if seen >= rank:
            hi = max(2 * lo, 1)
            return min(hi, cap) if cap is not None else hi
    return cap


def memstats_table(ms: dict) -> str:
    rows = []
    for k in MEMSTATS_FIELDS:
        v = ms.get(k, 0)
        pretty = human_bytes(v) if k.startswith(("Heap", "Total")) and k != "HeapObjects" else ""
        rows.append([k, f"{v:,}", pretty])
    return table(["MemStats", "value", "in bytes"], rows, title="runtime.MemStats")


# --- lock statistics ----------------------------------------------------------------------

LOCK_HEADERS = ["acquired", "contended", "rate", "p50 wait", "p99 wait", "max wait", "total wait",
                "hold total"]


def lock_row(name: str, st: dict, unit: str) -> list:
    acq, cont = st["acquisitions"], st["contended"]
    rate = f"{100.0 * cont / acq:.2f}%" if acq else "-"
    p50 = hist_quantile(st["wait_hist"], 0.50, st["wait_max"])
    p99 = hist_quantile(st["wait_hist"], 0.99, st["wait_max"])
    return [name, f"{acq:,}", f"{cont:,}", rate, duration(p50, unit), duration(p99, unit),
            duration(st["wait_max"] if cont else None, unit), duration(st["wait_total"] if cont else None, unit),
            duration(st["hold_total"], unit)]


def lock_tables(locks: dict, top: int = 8) -> str:
    """Per lock class, then the busiest single locks of the classes that have more than one
    lock (a class of one lock is already its own row).  Waits are exact; p50/p99 are the
    upper ends of power-of-two buckets; hold totals are estimated from sampled holds."""
    unit = locks.get("unit", "ns")
    classes = sorted(locks.get("classes", {}).items(), key=lambda kv: -kv[1]["acquisitions"])
    shared = {c for c, st in classes if st.get("locks", 1) > 1}
    names = {n: st for n, st in locks.get("locks", {}).items() if st["acquisitions"]}
    members = [n for n in names if names[n].get("lock_class", n) in shared]
    busiest = sorted(members, key=lambda n: (-names[n]["wait_total"], -names[n]["acquisitions"]))[:top]
    title = "lock statistics by class" + ("" if unit == "ns" else f" (times in scheduler {unit})")
    out = table(["class (locks)"] + LOCK_HEADERS,
                [lock_row(f"{c} ({st.get('locks', 1)})", st, unit) for c, st in classes], title=title)
    if busiest:
        out += "\n\n" + table(["lock"] + LOCK_HEADERS, [lock_row(n, names[n], unit) for n in busiest],
                               title=f"top {len(busiest)} locks of shared classes, by total wait")
    return out


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
