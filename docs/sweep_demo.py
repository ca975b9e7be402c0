"""Figures for docs/sweep.md: one simulated cycle of proportional sweep,
the reclaimer, and the background scavenger with real RSS."""
import mmap, threading, time
from concalloc import Heap
from concalloc.gc.sweep import gcBackgroundMode, gcPaceSweeper, isSweepDone
from concalloc.gc.scavenge import MAX_MEMORY_LIMIT, bgscavenge, gcPaceScavenger, heapRetained, mappedReady

MiB = 1 << 20

def keep_half(s):
    for k, i in enumerate(s.allocated_indices()):
        if k % 2 == 0:
            s.setMarked(i)

# 1. proportional sweep
h = Heap(reserve_bytes=1 << 30, nprocs=1)
m = h.mheap
for i in range(12000):
    h.malloc((64, 256, 2048)[i % 3])
h.sweep_cycle(keep_half, mode=gcBackgroundMode)       # flip; nothing swept yet
marked = sum(s.countAlloc() * s.elemsize for s in m.allspans if s.sweepgen == m.sweepgen - 2)
m.gcController.heapLive.store(marked)                  # the pacer's resetLive
trigger = marked + 4 * MiB
gcPaceSweeper(m, trigger)
print(f"pagesInUse {m.stats.get('pagesInUse')}, heapLive {marked} B, trigger {trigger} B, "
      f"sweepPagesPerByte {m.sweepPagesPerByte:.6f}")
step = MiB // 2
nxt = marked + step
while m.gcController.heapLive.load() < trigger:
    h.malloc(64)
    live = m.gcController.heapLive.load()
    if live >= nxt:
        print(f"  allocated {(live - marked) / MiB:4.2f} MiB  pages swept {m.stats.get('pagesSwept'):5d}  done {isSweepDone(m)}")
        nxt += step
h.verify(); h.close()

# 2. the reclaimer
h = Heap(reserve_bytes=1 << 30, nprocs=1)
m = h.mheap
_ = [h.malloc(MiB) for _ in range(40)]
h.sweep_cycle(None, mode=gcBackgroundMode)
sys0 = m.curArenaEnd - 0xC000000000
_ = [h.malloc(MiB) for _ in range(40)]
print(f"reclaim: mapped heap before {sys0 >> 20} MiB, after 40 more 1 MiB objects {(m.curArenaEnd - 0xC000000000) >> 20} MiB")
h.close()

# 3. bgscavenge at Go's 1% pacing
for limit in (None, 20 * MiB):
    h = Heap(reserve_bytes=1 << 30, nprocs=1)
    m = h.mheap
    xs = [h.malloc(MiB) for _ in range(48)]
    for x in xs:
        for off in range(0, MiB, mmap.PAGESIZE):
            h.memory.store(x + off, 1)
    keep = set(xs[:8])
    h.sweep_cycle(lambda s: s.setMarked(0) if s.startAddr in keep else None)
    if limit is None:
        gcPaceScavenger(m, MAX_MEMORY_LIMIT, heapGoal=16 * MiB, lastHeapGoal=16 * MiB)
        goal = m.scavenge.gcPercentGoal.load(); met = lambda: heapRetained(m) <= goal
        what = f"gcPercentGoal {goal / MiB:.2f} MiB"
    else:
        gcPaceScavenger(m, limit, heapGoal=64 * MiB, lastHeapGoal=8 * MiB)
        goal = m.scavenge.memoryLimitGoal.load(); met = lambda: mappedReady(m) <= goal
        what = f"memory limit {limit >> 20} MiB, memoryLimitGoal {goal / MiB:.2f} MiB"
    rss0 = h.rss()
    stop = [False]
    t = threading.Thread(target=bgscavenge, args=(m, lambda: stop[0]))
    t0 = time.monotonic(); t.start(); m.scavenger.wake()
    while not met():
        time.sleep(0.01)
    dt = time.monotonic() - t0
    stop[0] = True; m.scavenger.wake(); t.join()
    print(f"bgscavenge ({what}): retained {heapRetained(m) / MiB:.2f} MiB, RSS {rss0 / MiB:.1f} -> "
          f"{h.rss() / MiB:.1f} MiB in {dt:.2f} s, {m.scavenger.nsleep} sleeps")
    h.verify(); h.close()
