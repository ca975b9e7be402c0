"""Fake cycle records (gc.gctrace.RECORD_KEYS) of a steady ring-like run:
the heap grows at a constant rate, a cycle starts at the trigger, marks for
a while (allocation goes on), and the next goal is marked * (1 + GOGC/100)."""

MiB = 1 << 20


def fake_run(cycles=6, live=2 * MiB, rate=40 * MiB, gogc=100, procs=2, forced_at=()):
    """-> (records, samples); rate is bytes allocated per second."""
    records, samples = [], [(0, 0)]
    t, heap, goal = 0, 0, 4 * MiB
    per_ns = rate / 1e9
    for n in range(1, cycles + 1):
        forced = n in forced_at
        trigger = int(goal * 0.9)
        t_start = t + int((trigger - heap) / per_ns) if not forced else t + 1_000_000
        heap_start = heap + int((t_start - t) * per_ns)
        samples += [(t + k * (t_start - t) // 4, heap + int(k * (t_start - t) // 4 * per_ns)) for k in range(1, 5)]
        clock = [30_000, 2_000_000 + 100_000 * n, 40_000]
        mark_end = t_start + clock[0] + clock[1]
        heap_end = heap_start + int(clock[1] * per_ns)
        end = mark_end + clock[2]
        marked = live + int(clock[1] * per_ns)
        samples += [(mark_end, heap_end), (end, marked)]
        records.append(dict(
            n=n, forced=forced, start_ns=t_start, end_ns=end, clock_ns=clock,
            cpu_ns=[c * procs for c in clock[:1]] + [300_000, 1_500_000, 0] + [clock[2] * procs],
            heap_start=heap_start, heap_end=heap_end, heap_marked=marked, heap_goal=goal,
            trigger=trigger, stacks=8 * 20000, globals=4096, procs=procs, gc_cpu_fraction_pct=5,
            assist_work=0, background_work=marked, barrier_calls=100, num_forced=sum(f <= n for f in forced_at)))
        t, heap, goal = end, marked, max(4 * MiB, marked * (100 + gogc) // 100)
    return records, samples
