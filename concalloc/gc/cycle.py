"""The GC cycle: gcStart, mark completion, mark termination, the collector threads (mgc.go).

One cycle, as Go 1.19 runs it (phase / write barrier / allocate-black):

1. Sweep termination, world stopped (GCoff / off / white): finish sweeping
   the previous cycle (finishsweep_m), flush every mcache (the tiny block
   stays, and is greyed below), reset each P's stack colour and assist
   credit, start the pacer's cycle.
2. setGCPhase(GCmark) (mark / on / black): the barrier goes on in every
   mutator before any object is blackened; root jobs are prepared (the
   globals, one per P's stack; with --stack-scan stw-snapshot the stacks are
   scanned right here instead); the tiny blocks are greyed; blackening is
   enabled; the world starts.
3. Concurrent mark: background mark workers claim root jobs and drain grey
   objects; allocating Ps pay assist debt; stores go through the barrier.
4. Mark completion (gcMarkDone): when the workers are idle, the roots done
   and no work is queued, a ragged barrier has every P flush its write
   barrier buffer and publish its gcWork at a safe point.  If that found
   work, mark goes on.  Otherwise the world stops and the re-check (Go issue
   27993) looks at every buffer again; work found restarts the world.
5. Mark termination, world stopped (marktermination, then GCoff / off /
   white): with --stack-scan rescan every stack is scanned again and the
   heap drained; mcaches are flushed (setting the mark bits of the objects
   allocated black); the checks run (no grey object, no buffered barrier
   entry, gccheckmark); heapMarked is reset; sweepgen += 2; the pacer
   commits the next goal; the world starts; sweeping goes on in the
   background.

The collector thread ("gc") runs cycles when kicked: by the allocation
slow path when the pacer's trigger test passes, by runtime.GC (m.gc()) or
by gc_start.  Kicks are counted under gc.lock, so none is lost.

Protection: phase, blackenEnabled, the root-job table and the cycle
records change with the world stopped or under `lock` (rank GC_CTRL);
blackenEnabled and phase are read racily by markers (a single load; the
world-stopped re-check decides).  `lock` guards nwait, the root-job
counters, kick counts and numgc.
"""

from __future__ import annotations

import random
import sys
import time

from ..check.violation import Violation
from ..config import MAX_INT64
from ..sync import AtomicInt, Rank
from ..trace import emit_heap_counter
from . import checkmark as _checkmark
from . import mark as _mark
from . import scavenge as _scavenge
from . import sweep as _sweep
from . import tricolor as _tricolor
from .barrier import make_barrier, wbBufFlush1
from .gctrace import format_gctrace
from .heapsamples import OS_INTERVAL_NS, HeapSamples
from .pacer import gcMarkWorkerFractionalMode, gcMarkWorkerNotWorker, gcTriggerCycle, gcTriggerHeap
from .work import GCWork, WorkLists

GC_OFF, GC_MARK, GC_MARKTERMINATION = 0, 1, 2
PHASE_NAMES = {GC_OFF: "off", GC_MARK: "mark", GC_MARKTERMINATION: "marktermination"}
STACK_SCANS = ("concurrent", "stw-snapshot", "rescan")
PAUSE_RING = 256                    #: MemStats.PauseNs is a circular buffer of this many
#: Go's sysmon preempts a goroutine that has run this long (proc.go forcePreemptNS, 10 ms).
FORCE_PREEMPT_NS = 10_000_000


def default_workers(procs: int) -> int:
    """Go's dedicated mark workers for GOMAXPROCS: 25% of the Ps, rounded, at least 1."""
    return max(1, int(procs * 0.25 + 0.5))


class GC:
    """Go's `work` and gcphase, and the collector's threads for one Runtime."""

    def __init__(self, rt):
        cfg = rt.config
        self.rt = rt
        self.cfg = cfg
        self.h = rt.heap.mheap
        self.mem = rt.heap.memory
        self.world = rt.world
        self.sync = rt.sync
        self.allp = rt.allp
        self.ctl = self.h.gcController
        self.ctl.init(cfg.gogc, cfg.memory_limit)
        self.lists = WorkLists(rt.sync)
        self.lock = rt.sync.mutex("gc.ctl", Rank.GC_CTRL)
        # Background work that is no P (the scavenger) holds bg_gate while it
        # works; a stop-the-world check takes it to see the heap at rest.
        self.bg_gate = rt.sync.mutex("gc.bgwork", Rank.BG_GATE)
        self.kick_cond = rt.sync.cond(self.lock, "gc.kick")
        self.work_cond = rt.sync.cond(self.lock, "gc.work")
        self.done_cond = rt.sync.cond(self.lock, "gc.markdone")
        self.cycle_cond = rt.sync.cond(self.lock, "gc.cycle")
        self.phase = GC_OFF                 # world stopped
        self.blackenEnabled = False         # world stopped (or lock, see markdone)
        self.barrier_kind = cfg.barrier
        self.stack_scan = cfg.stack_scan
        self.nworkers = cfg.gc_workers or default_workers(cfg.procs)
        # In virtual time, with the default workers, each worker takes the mode
        # Go 1.19's scheduler would give it (findRunnableGCWorker): dedicated
        # while startCycle's dedicated slots last, else fractional, held to
        # fractionalUtilizationGoal of the mark phase so far (docs/gc-fidelity.md).
        self.worker_modes = rt.sched.kind == "vtime" and not cfg.gc_workers
        self.nwait = self.nworkers          # lock
        self.enlisted = False               # lock: enlist_worker woke a worker for its P's next scheduling point
        self.markrootJobs = 0               # lock
        self.markrootNext = 0               # lock: root jobs claimed (the next one's index, in Go's order)
        self.markrootTaken = 0              # lock: --mark-order weave: a bit per claimed job (any order)
        self.rootsDone = 0                  # lock
        self.kicks = 0                      # lock: heap-trigger kicks not yet taken
        self.forced = 0                     # lock: runtime.GC requests not yet taken
        self.numgc = 0                      # lock: completed cycles
        self.started = 0                    # lock: started cycles
        self.stopping = False               # lock: the mutators are done
        self.exiting = False                # lock: the collector thread is done; helpers exit
        self.assist_work = AtomicInt(0)
        self.assists_parked = AtomicInt(0)  # Ps parked in gcParkAssist
        # Go 1.19's GC CPU limiter, coarsely: when the last cycle's GC CPU
        # (workers, assists, pauses) exceeded half of the CPU available to the
        # run since the cycle before it, assists are off (Go: "if the GC CPU
        # limiter is active, don't assist"), so back-to-back cycles under a
        # memory limit do not stop the mutators.  The collector thread writes it.
        self.limiterEnabled = False
        self._last_cycle_end = None
        self.lists.on_put = self._work_published
        self.bytesMarked = AtomicInt(0)
        self.bg_cpu_ns = AtomicInt(0)
        self.assist_cpu_ns = AtomicInt(0)
        self.cycles: list[dict] = []        # the collector thread appends (world stopped), then completes it
        self.pause_ns: list[int] = []       # world stopped
        self.pause_end: list[int] = []
        # Times come from the scheduler's clock (ns, or logical steps under a
        # controlled scheduler, so a controlled run stays a function of
        # (config, seed)); CPU times from the thread's CPU clock, or the same
        # step clock when controlled.
        self.clock = rt.sched.clock
        self.cpuclock = self.clock if rt.sched.controlled else time.thread_time_ns
        self.t0 = self.clock()
        self.gcw = GCWork(self.lists, "gc")  # the collector thread's own
        self.yp = rt.sync.yield_point
        rt.sched.add_abort_hook(self._rebind_yield)
        # Injected faults (concalloc/faults.py), read once here.
        faults = cfg.faults
        self.racyShade = "nonatomic-shade" in faults
        self.racyStackScan = "stack-scan-races-owner" in faults
        self.flushWbBufs = "wbbuf-unflushed" not in faults
        self.recheck = "markdone-no-recheck" not in faults
        if "markdone-ignores-roots" in faults:
            self._mark_work_done = lambda: self.nwait == self.nworkers and not self.lists.nfull
        self.ctl.addScannableStack(8 * sum(len(m.stack) + len(m.regs) for m in rt.mutators))
        self.ctl.addGlobals(8 * len(rt.globals))
        self.ctl.commit(True)
        for p in self.allp:
            p.gcw = GCWork(self.lists, p.name)
        self.worker_gcws = [GCWork(self.lists, f"gcw{i}") for i in range(self.nworkers)]  # each its worker's
        # --mark-order weave (gc/mark.py _gcDrainRootsWeave): under the os
        # scheduler its choices are draws from one generator per gcWork, each
        # used only by that gcWork's thread; a controlled scheduler decides them itself.
        self.markOrderWeave = cfg.mark_order == "weave"
        self.markOrderRng = {g.owner: random.Random(f"{cfg.seed}:{g.owner}:mark-order")
                             for g in self.all_gcworks()} if self.markOrderWeave else None
        self.rootsAfterHeap = AtomicInt(0)  # weave: root jobs claimed after their drain blackened a grey object
        self.stw_mode = cfg.gcstoptheworld   # GODEBUG gcstoptheworld: 1 mark, 2 mark and sweep, world stopped
        self.walk_due = False                # the collector: this cycle's heapcheck walks the heap
        self.on_cycle_end = _print_gctrace if cfg.gctrace else None   # fn(record) after each cycle
        # sync.Pool's runtime side (syncpool.PoolRegistry), installed by the first
        # pool before the mutators start: its poolCleanup runs in gcStart (world
        # stopped) and its pooled objects are roots scanned with the globals.
        self.pools = None
        # Observation: the run's event recorder (falsy when off; GC events go
        # through `if ev:`) and, for --plot, heapLive sampled at the slow path.
        self.events = rt.events
        self.samples = HeapSamples(self.clock, self.t0, len(self.allp),
                                   1 if rt.sched.controlled else OS_INTERVAL_NS) if cfg.plot else None

    def _rebind_yield(self) -> None:
        self.yp = self.sync.yield_point

    def all_gcworks(self) -> list:
        """Every gcWork: the collector's, each P's, each mark worker's."""
        return [self.gcw] + [p.gcw for p in self.allp] + self.worker_gcws

    def global_words(self) -> list[int]:
        """The data segment's root words; sync.Pool's slots with them (in Go the
        pools are reached from globals)."""
        words = list(self.rt.globals)
        if self.pools is not None:
            words += self.pools.roots()
        return words

    # --- threads ---------------------------------------------------------------

    def start_threads(self, start) -> None:
        start("gc", self._collector_main)
        for i in range(self.nworkers):
            start(f"gcw{i}", lambda i=i: self._worker_main(self.worker_gcws[i]))
        start("bgsweep", self._bgsweep_main)
        start("bgscavenge", self._bgscavenge_main)

    def stop(self) -> None:
        """The last mutator is done: finish the cycle in flight, then exit."""
        with self.lock:
            self.stopping = True
            self.kick_cond.notify_all()

    def _collector_main(self) -> None:
        try:
            while True:
                with self.lock:
                    while not (self.kicks or self.forced or self.stopping):
                        self.kick_cond.wait()
                    if not (self.kicks or self.forced):
                        break
                    forced = self.forced > 0
                    if forced:
                        self.forced -= 1
                    else:
                        self.kicks = 0
                if forced or self.ctl.test_heap_trigger():
                    self.gc_cycle(forced)
        except Violation as v:
            self.rt.sched.fail(v)
        finally:
            self.world.giveBackWorldsema()    # stopped between stopTheWorld and startTheWorld
            with self.lock:
                self.stopping = self.exiting = True
                self.work_cond.notify_all()
                self.cycle_cond.notify_all()
            self.h.sweep.wake()
            self.h.scavenger.wake()

    def _worker_main(self, gcw) -> None:
        """gcBgMarkWorker: a dedicated mark worker."""
        try:
            while True:
                with self.lock:
                    while not self.exiting and not (self.blackenEnabled and self._work_available()):
                        # An assist may have taken the work this worker was
                        # woken for: going back to sleep with every worker idle
                        # is news for mark completion.
                        if self.nwait == self.nworkers:
                            self.done_cond.notify_all()
                        self.work_cond.wait()
                    if self.exiting:
                        return
                    late, self.enlisted = self.enlisted, False
                    mode = gcMarkWorkerNotWorker if late else self._markWorkerMode()
                    if mode != gcMarkWorkerNotWorker:
                        self.nwait -= 1
                if late:
                    self._schedulingPointWait()
                    continue
                if mode == gcMarkWorkerNotWorker:
                    self._fractionalWorkerWait()
                    continue
                t = self.cpuclock()
                ev = self.events
                if ev:
                    ev.emit("gc_worker_start")
                check = None
                if mode == gcMarkWorkerFractionalMode:
                    start = self.clock()
                    ctl = self.ctl
                    check = lambda: ctl.pollFractionalWorkerExit(ctl.fractionalMarkTime.load(), start, self.clock())
                try:
                    _mark.gcDrain(self, gcw, _mark.DRAIN_UNTIL_PREEMPT | _mark.DRAIN_FLUSH_BG_CREDIT, check)
                    gcw.dispose()
                finally:
                    if ev:
                        ev.emit("gc_worker_done")
                    dt = self.cpuclock() - t
                    self.bg_cpu_ns.add(dt)
                    if mode is not None:
                        self.ctl.markWorkerStop(mode, dt)
                    with self.lock:
                        self.nwait += 1
                        if self.nwait == self.nworkers:
                            self.done_cond.notify_all()
        except Violation as v:
            self.rt.sched.fail(v)

    def _markWorkerMode(self):
        """(lock held) The mode this worker runs in: None (not modelled: os
        scheduler, or --gc-workers), or what the pacer's findRunnableGCWorker
        says for it now -- dedicated, fractional, or not a worker (a
        fractional worker ahead of its share of the mark phase)."""
        if not self.worker_modes:
            return None
        ctl = self.ctl
        return ctl.findRunnableGCWorker(ctl.fractionalMarkTime.load(), self.clock())

    def _fractionalWorkerWait(self) -> None:
        """A fractional worker ahead of its share stays off the CPU (Go's P
        would run other goroutines meanwhile) until the mark phase has lasted
        fractionalMarkTime / fractionalUtilizationGoal, and then, as Go's P
        gets back to findRunnableGCWorker only when it schedules, until its
        P's next scheduling point (_nextSchedulingPoint)."""
        ctl = self.ctl
        goal = ctl.fractionalUtilizationGoal
        wake = ctl.markStartTime + ctl.fractionalMarkTime.load() / goal if goal > 0 else 0
        self._offCPUUntil(max(wake, self._nextSchedulingPoint()), "gc.fractional.wait")

    def _schedulingPointWait(self) -> None:
        """Work published by enlist_worker reaches a sleeping worker only at
        its P's next scheduling point."""
        self._offCPUUntil(self._nextSchedulingPoint(), "gc.schedpoint.wait")

    def _nextSchedulingPoint(self) -> int:
        """When a P that left its mark worker next runs the scheduler.  With
        one goroutine per mutator P in a tight loop (the workloads), that is
        sysmon preempting it: forcePreemptNS after it was last scheduled,
        which was at the mark's start (gcStart's start-the-world), and every
        forcePreemptNS after.  A P that is idle is not woken for mark work
        (Go 1.19's enlistWorker does not wakep)."""
        now = self.clock()
        start = self.ctl.markStartTime
        return start + (max(now - start, 0) // FORCE_PREEMPT_NS + 1) * FORCE_PREEMPT_NS

    def _offCPUUntil(self, wake: int, label: str) -> None:
        """In virtual time: this worker is off the CPU until `wake` (ns) or
        until blackening ends, whichever comes first; the threads behind it
        run meanwhile.  The wait is not GC CPU."""
        now = self.clock()
        if wake <= now:
            return
        self.rt.sched.block_until(label, lambda: not self.blackenEnabled,
                                  lambda: "mark worker off its P", (wake - now) / 1e9)

    def assist_completion_point(self) -> None:
        """After an assist's drain: if it left no work and every worker is
        idle, tell the collector the mark may be done -- Go's gcAssistAlloc1
        signals "a completion point" and its caller runs gcMarkDone.  Only
        with Go's worker modes (vtime) is a worker away while work is left
        (ahead of its fractional share, or waiting for its P's scheduling
        point); otherwise the last worker to go idle signals it itself.  The
        unlocked reads are a hint; _mark_work_done decides under the lock."""
        if self.worker_modes and not self.lists.nfull and self.nwait == self.nworkers:
            with self.lock:
                if self._mark_work_done():
                    self.done_cond.notify_all()

    def _work_available(self) -> bool:
        """(lock held) Root jobs left or full buffers queued."""
        return self.markrootNext < self.markrootJobs or self.lists.nfull > 0

    def _bgsweep_main(self) -> None:
        try:
            _sweep.bgsweep(self.h, lambda: self.exiting, lambda label: self.yp(label))
        except Violation as v:
            self.rt.sched.fail(v)

    def _bgscavenge_main(self) -> None:
        try:
            _scavenge.bgscavenge(self.h, lambda: self.exiting, yield_point=lambda label: self.yp(label),
                                 gate=self.bg_gate)
        except Violation as v:
            self.rt.sched.fail(v)

    # --- kicks, from the mutators ---------------------------------------------------

    def on_alloc_slow_path(self, c) -> None:
        """The end of every allocation slow path: pay assist debt during mark,
        then Go's trigger test (gcTrigger{kind: gcTriggerHeap}.test)."""
        if self.samples is not None:
            self.samples.sample(c.pid, self.ctl.heapLive.load())
        if self.blackenEnabled and c.gcAssistBytes < 0 and not self.limiterEnabled:
            t = self.cpuclock()
            _mark.gcAssistAlloc(self, self.allp[c.pid])
            self.assist_cpu_ns.add(self.cpuclock() - t)
        if self.phase == GC_OFF and self.ctl.test_heap_trigger():
            with self.lock:
                self.kicks += 1
                self.kick_cond.notify()

    def sweep_all(self) -> None:
        """Sweep every span still unswept (runtime.GC's last step)."""
        while _sweep.sweepone(self.h) != -1:
            self.yp("sweep.span")

    def _work_published(self) -> None:
        """A full buffer reached work.full: parked assists may take it."""
        if self.assists_parked.load():
            self.world.wake_parked()

    def enlist_worker(self) -> None:
        """New work was published: wake an idle worker.  nwait is read without
        the lock as a hint: a worker that is busy finds the work itself, and one
        going to sleep re-checks for work under the lock.

        With Go's worker modes (vtime), as Go 1.19's enlistWorker: waking an
        idle P is disabled there (golang.org/issue/19112), and a running P is
        preempted for a worker only while dedicated workers are still needed.
        Otherwise the worker is woken but takes the work only at its P's next
        scheduling point (_schedulingPointWait)."""
        if self.nwait:
            with self.lock:
                if self.worker_modes and self.ctl.dedicatedMarkWorkersNeeded.load() <= 0:
                    self.enlisted = True
                self.work_cond.notify()

    def request_cycle(self) -> int:
        """runtime.GC's first half: ask for a forced cycle; returns the cycle
        count to wait for."""
        with self.lock:
            in_flight = self.started > self.numgc
            self.forced += 1
            self.kick_cond.notify()
            return self.numgc + 1 + int(in_flight)

    def start_cycle_async(self) -> bool:
        """m.gc_start(): ask for a cycle unless one is already asked for or
        running (so requests never pile up); True if this call asked."""
        with self.lock:
            if self.forced or self.started > self.numgc:
                return False
            self.forced += 1
            self.kick_cond.notify()
            return True

    def wait_cycle(self, n: int) -> None:
        with self.lock:
            while self.numgc < n and not self.stopping:
                self.cycle_cond.wait()

    # --- root jobs -------------------------------------------------------------------

    def claim_root_job(self) -> int:
        if self.markrootNext >= self.markrootJobs:
            return -1
        with self.lock:
            j = self.markrootNext
            if j >= self.markrootJobs:
                return -1
            self.markrootNext = j + 1
            return j

    def claim_root_job_any(self, k: int) -> int:
        """--mark-order weave: claim the k-th of the root jobs still unclaimed
        (the last one if fewer are left now), or -1 if none is.  k is chosen
        before the lock is taken (the choice may yield); markrootNext then
        counts the claims, so Go's claim_root_job and _work_available read it as before."""
        if self.markrootNext >= self.markrootJobs:
            return -1
        with self.lock:
            left = [j for j in range(self.markrootJobs) if not self.markrootTaken >> j & 1]
            if not left:
                return -1
            j = left[min(k, len(left) - 1)]
            self.markrootTaken |= 1 << j
            self.markrootNext += 1
            return j

    def root_job_done(self) -> None:
        with self.lock:
            self.rootsDone += 1
            if self.rootsDone == self.markrootJobs:
                self.done_cond.notify_all()

    def flush_scan_work(self, gcw, bg_credit) -> None:
        if gcw.heapScanWork:
            self.ctl.heapScanWork.add(gcw.heapScanWork)
            if bg_credit:
                self.ctl.bgScanCredit.add(gcw.heapScanWork)
                if self.assists_parked.load():     # gcFlushBgCredit: pay parked assists
                    self.world.wake_parked()
            gcw.heapScanWork = 0
        if gcw.bytesMarked:
            self.bytesMarked.add(gcw.bytesMarked)
            gcw.bytesMarked = 0

    # --- the cycle ----------------------------------------------------------------------

    def setGCPhase(self, phase: int) -> None:
        """The one place the phase, the write barrier and allocate-black change (world stopped)."""
        self.phase = phase
        self.h.gcphase = phase
        wb = make_barrier(self, self.barrier_kind) if phase != GC_OFF else None
        self.rt.install_write_barrier(wb)
        if self.events:
            self.events.emit("gc_phase", phase=PHASE_NAMES[phase])

    def gc_cycle(self, forced: bool) -> None:
        rec = {"n": self.numgc + 1, "forced": forced, "procs": len(self.allp)}
        with self.lock:
            self.started += 1
        self.walk_due = self.verify_due(rec["n"])
        if self.walk_due:
            self.verify_heap_stw()
        cpu0 = self.cpuclock()
        self.gcStart(rec)
        rec["cpu_stw1"] = self.cpuclock() - cpu0
        t_mark = self.clock()
        if self.stw_mode:
            self.gcMarkSTW(rec)
        else:
            self.gcMarkDone(rec)
        rec["t_mark_end"] = self.clock()
        cpu2 = self.cpuclock()
        self.gcMarkTermination(rec, t_mark)
        rec["cpu_stw2"] = self.cpuclock() - cpu2
        self._finish_record(rec)

    def gcStart(self, rec: dict) -> None:
        w = self.world
        ctl = self.ctl
        rec["start_ns"] = self.clock() - self.t0
        ev = self.events
        if ev:
            ev.emit("gc_start", n=rec["n"], forced=rec["forced"])
        w.stopTheWorld("GC sweep termination")
        t_stopped = self.clock()
        rec["heap_start"] = ctl.heapLive.load()
        rec["trigger"], _ = ctl.trigger()
        self.finishsweep_m()
        self.clearpools()
        self.flush_mcaches(keep_tiny=True)
        self.gcResetMarkState()
        ctl.syncHeapStats(self.h.stats.snapshot())
        ctl.startCycle(self.clock(), len(self.allp), gcTriggerCycle if rec["forced"] else gcTriggerHeap)
        rec["heap_goal"] = ctl.heapGoal()
        self.setGCPhase(GC_MARK)
        self.gcPrepareMarkRoots()
        self.gcMarkTinyAllocs()
        self.blackenEnabled = True
        ctl.gcBlackenEnabled = 1
        rec["stw1_ns"] = self.clock() - t_stopped
        if self.stw_mode:          # gcForceMode: the world stays stopped through mark termination
            return
        w.startTheWorld()
        if ev:
            emit_heap_counter(ev, ctl)
            ev.emit("gc_mark_start", n=rec["n"])
        with self.lock:
            self.work_cond.notify_all()

    def verify_due(self, n: int) -> bool:
        """heapcheck=1: verify_heap before cycles 1, 2, 4, 8, ... (the run's
        end verifies too), so checking stays a small part of a long run;
        heapcheck=2: before every cycle."""
        hc = self.cfg.heapcheck
        return hc >= 2 or (hc == 1 and n & (n - 1) == 0)

    def verify_heap_stw(self) -> None:
        """heapcheck >= 1: verify_heap in a stop of its own just before the
        cycle's first, on the heap sweep termination will see (every span
        swept, every mcache flushed), so the GC's pause figures stay Go's."""
        t = self.clock()
        self.world.stopTheWorld("verify_heap")
        try:
            self.finishsweep_m()
            self.flush_mcaches(keep_tiny=True)
            with self.bg_gate:
                self.rt.heap.verify()
                if self.rt.wbshadow is not None:
                    self.rt.wbshadow.check_heap()
        finally:
            self.world.startTheWorld()
            if self.samples is not None:      # --plot shows these stops
                self.samples.verify_stops.append((t - self.t0, self.clock() - self.t0))

    def finishsweep_m(self) -> None:
        """Sweep whatever the previous cycle left unswept, then wait for the
        background sweep in flight (world stopped)."""
        ev = self.events
        if ev:
            ev.emit("gc_sweep_start", fn="finishsweep_m")
        _sweep.finishsweep_m(self.h)
        if ev:
            ev.emit("gc_sweep_done")

    def clearpools(self) -> None:
        """sync.Pool's poolCleanup, before marking (world stopped): the victims
        are dropped, so this cycle frees what nobody took back."""
        if self.pools is not None:
            self.pools.poolCleanup()

    def flush_mcaches(self, keep_tiny: bool = False) -> None:
        """Every P's cached spans go back to their mcentrals (world stopped);
        the objects allocated black from them get their mark bits."""
        for p in self.allp:
            c = p.mcache
            tiny, off = c.tiny, c.tinyoffset
            c.releaseAll()
            if keep_tiny:
                c.tiny, c.tinyoffset = tiny, off

    def gcResetMarkState(self) -> None:
        for p in self.allp:
            p.gcscandone = False
            p.mcache.gcAssistBytes = 0
            p.mcache.markedBlack = 0
            p.mcache.assistCharged = 0
        self.bytesMarked.store(0)
        self.assist_work.store(0)
        if self.worker_modes:           # (only then is it ever set; the lock is a decision point)
            with self.lock:
                self.enlisted = False   # a wake-up left from the last mark is not this one's
        for p in self.allp:
            p.wbCalls = 0
            p.wbShaded.clear()

    def gcPrepareMarkRoots(self) -> None:
        """Root jobs: 0 the globals, then one per P's stack (world stopped).
        With stw-snapshot every stack is scanned here instead."""
        njobs = 1 + len(self.allp)
        if self.stack_scan == "stw-snapshot" or self.stw_mode:
            for p in self.allp:
                _mark.scanstack(self, p, self.gcw)
            self.gcw.dispose()
            njobs = 1
        with self.lock:
            self.markrootJobs = njobs
            self.markrootNext = 0
            self.markrootTaken = 0
            self.rootsDone = 0

    def gcMarkTinyAllocs(self) -> None:
        """Grey each P's current tiny block: later tiny allocations go into it
        without passing through the allocator's black marking."""
        for p in self.allp:
            if p.mcache.tiny:
                _mark.shade(self, p.mcache.tiny, self.gcw)
        self.gcw.dispose()

    def _mark_work_done(self) -> bool:
        """(lock held) Workers idle, roots done, nothing queued."""
        return (self.nwait == self.nworkers and self.rootsDone == self.markrootJobs
                and not self.lists.nfull)

    def gcMarkDone(self, rec: dict) -> None:
        """Mark completion: wait for the workers, ragged barrier, stop the world, re-check."""
        w = self.world
        ev = self.events
        while True:
            with self.lock:
                while not self._mark_work_done():
                    self.done_cond.wait()
            self.yp("markdone.ragged")
            flushed = [False]

            def flush(p):
                if self.flushWbBufs and wbBufFlush1(self, p):
                    flushed[0] = True
                if not p.gcw.empty():
                    p.gcw.dispose()
                    flushed[0] = True
                self.flush_scan_work(p.gcw, False)
            w.forEachP(flush)
            if flushed[0]:
                with self.lock:
                    self.work_cond.notify_all()
                continue
            if ev:
                ev.emit("gc_mark_done", n=rec["n"])
            w.stopTheWorld("GC mark termination")
            self._t_stw2 = self.clock()
            self.blackenEnabled = False
            self.ctl.gcBlackenEnabled = 0
            with self.lock:
                while self.nwait != self.nworkers:
                    self.done_cond.wait()
            self.yp("markdone.recheck")
            if self.cfg.heapcheck:
                _tricolor.check_stw(self, self.walk_due)
            restart = False
            for p in self.allp if self.recheck else ():
                if (self.flushWbBufs and wbBufFlush1(self, p)) or not p.gcw.empty():
                    restart = True
            if restart or (self.recheck and not self.lists.empty()):
                self.blackenEnabled = True
                self.ctl.gcBlackenEnabled = 1
                w.startTheWorld()
                if ev:
                    ev.emit("gc_mark_start", n=rec["n"], restart=True)
                with self.lock:
                    self.work_cond.notify_all()
                continue
            return

    def gcMarkSTW(self, rec: dict) -> None:
        """GODEBUG gcstoptheworld >= 1 (Go's gcForceMode): the whole mark with
        the world still stopped from sweep termination.  The stacks were
        scanned there; the collector thread takes the globals' root job and
        drains the heap (a worker that wakes may help), then waits for the
        workers to be idle, as gcMarkDone would."""
        ctl = self.ctl
        ev = self.events
        if ev:
            ev.emit("gc_mark_start", n=rec["n"], stw=True)
        self._t_stw2 = self.clock()
        while True:
            _mark.gcDrain(self, self.gcw)
            self.blackenEnabled = False
            ctl.gcBlackenEnabled = 0
            with self.lock:
                while self.nwait != self.nworkers:
                    self.done_cond.wait()
                roots_left = self.rootsDone != self.markrootJobs
            flushed = False
            for p in self.allp:
                flushed = wbBufFlush1(self, p) or flushed
            if not (roots_left or flushed or not self.lists.empty() or not self.gcw.empty()):
                break
            self.blackenEnabled = True
            ctl.gcBlackenEnabled = 1
        if ev:
            ev.emit("gc_mark_done", n=rec["n"])
        if self.cfg.heapcheck:
            _tricolor.check_stw(self, self.walk_due)

    def gcMarkTermination(self, rec: dict, t_mark: int) -> None:
        """Mark termination, world stopped (gcMarkDone stopped it)."""
        ctl = self.ctl
        h = self.h
        self.setGCPhase(GC_MARKTERMINATION)
        if self.stack_scan == "rescan":
            for p in self.allp:
                _mark.scanstack(self, p, self.gcw)
            self.blackenEnabled = True
            _mark.gcDrain(self, self.gcw)
            self.blackenEnabled = False
        rec["heap_end"] = ctl.heapLive.load()
        self.flush_mcaches()
        _mark.check_no_grey(self)
        # Every gcWork's counters, as Go's gcMark disposes each P's gcw: the
        # re-check's barrier flush and late barrier-buffer flushes mark into
        # a P's gcw after the ragged barrier took its counts.
        for gcw in [self.gcw] + [p.gcw for p in self.allp]:
            self.flush_scan_work(gcw, False)
        marked = self.bytesMarked.load() + sum(p.mcache.markedBlack for p in self.allp)
        if self.cfg.heapcheck >= 1:
            _checkmark.check_marked_allocated(self)
            _checkmark.check_assist_charged(self)
            _checkmark.gcMarkRootCheck(self)
        if self.cfg.gccheckmark:
            _checkmark.runCheckmark(self)
        if self.cfg.heapcheck >= 1 and self.walk_due:
            _tricolor.check_walk(self)
        if self.rt.wbshadow is not None:
            self.rt.wbshadow.check_heap()
        self.setGCPhase(GC_OFF)
        now = self.clock()
        ctl.endCycle(now, len(self.allp), rec["forced"])
        ctl.resetLive(marked)
        rec["heap_marked"] = marked
        rec["stacks"] = ctl.stackScanWork.load()
        rec["globals"] = ctl.globalsScanWork.load()
        rec["background_work"] = ctl.heapScanWork.load() - self.assist_work.load()
        rec["assist_work"] = self.assist_work.load()
        rec["barrier_calls"] = sum(p.wbCalls for p in self.allp)
        lastHeapGoal = ctl.heapGoal()
        _sweep.gcSweep(h, [p.mcache for p in self.allp], self.stw_mode)   # 2 (gcForceBlockMode): sweep it all now
        for p in self.allp:
            p.mcache.prepareForSweep()
        ctl.syncHeapStats(h.stats.snapshot())
        ctl.lastHeapInUse = ctl.heapInUse.load()
        commit = ctl.gcControllerCommit(False)
        _sweep.gcPaceSweeper(h, commit.trigger)
        _scavenge.gcPaceScavenger(h, ctl.memoryLimit.load(), commit.heapGoal, lastHeapGoal)
        rec["next_goal"] = ctl.heapGoal()
        rec["next_trigger"] = ctl.trigger()[0]
        end = self.clock()
        rec["clock_ns"] = [rec["stw1_ns"], self._t_stw2 - t_mark, end - self._t_stw2]
        rec["end_ns"] = end - self.t0
        # Published with the count, so a runtime.GC that sees numgc finds its
        # cycle's record (its last fields are filled in by _finish_record).
        self.cycles.append(rec)
        with self.lock:
            self.numgc += 1
            self.cycle_cond.notify_all()
        self.pause_ns.append(rec["clock_ns"][0] + rec["clock_ns"][2])
        self.pause_end.append(end)
        self.world.startTheWorld()
        ev = self.events
        if ev:
            emit_heap_counter(ev, ctl)
            ev.emit("gc_done", n=rec["n"], heap_marked=marked)

    def _finish_record(self, rec: dict) -> None:
        elapsed = max(1, self.clock() - self.t0)
        rec["cpu_ns"] = [rec.pop("cpu_stw1"), self.assist_cpu_ns.swap(0), self.bg_cpu_ns.swap(0), 0,
                         rec.pop("cpu_stw2")]
        self._gc_cpu_total = getattr(self, "_gc_cpu_total", 0) + sum(rec["cpu_ns"])
        rec["gc_cpu_fraction_pct"] = int(100 * self._gc_cpu_total / (elapsed * len(self.allp)))
        rec["num_forced"] = sum(1 for r in self.cycles if r["forced"])     # rec is among them
        since = rec["end_ns"] - (self._last_cycle_end if self._last_cycle_end is not None else 0)
        rec["limiter"] = self.limiterEnabled = sum(rec["cpu_ns"]) > 0.5 * max(1, since) * len(self.allp)
        self._last_cycle_end = rec["end_ns"]
        rec.pop("t_mark_end", None)
        if self.on_cycle_end is not None:
            self.on_cycle_end(rec)

    # --- reports ------------------------------------------------------------------------

    def memstats(self) -> dict:
        """MemStats' GC fields, with Go's meanings."""
        ring = [0] * PAUSE_RING
        ends = [0] * PAUSE_RING
        for i, (ns, end) in enumerate(zip(self.pause_ns, self.pause_end)):
            ring[i % PAUSE_RING] = ns
            ends[i % PAUSE_RING] = end
        elapsed = max(1, self.clock() - self.t0)
        return {"NumGC": self.numgc, "NumForcedGC": sum(1 for r in self.cycles if r["forced"]),
                "NextGC": self.ctl.heapGoal() if self._goal_finite() else 0,
                "LastGC": self.pause_end[-1] if self.pause_end else 0,
                "PauseTotalNs": sum(self.pause_ns), "PauseNs": ring, "PauseEnd": ends,
                "GCCPUFraction": getattr(self, "_gc_cpu_total", 0) / (elapsed * len(self.allp))}

    def _goal_finite(self) -> bool:
        """A heap goal exists: GOGC is on, or a memory limit sets it (Go
        reports the memory-limit goal as NextGC when GOGC=off; only with
        neither is the goal near 2^63, shown as 0)."""
        return self.cfg.gogc >= 0 or self.ctl.memoryLimit.load() < MAX_INT64

    def to_json(self) -> dict:
        return {"num_gc": self.numgc, "barrier": self.barrier_kind, "stack_scan": self.stack_scan,
                "workers": self.nworkers, "cycles": self.cycles}


def _print_gctrace(rec: dict) -> None:
    """GODEBUG=gctrace=1: Go's line on stderr (through the tool's log when the
    CLI set it up, else straight to stderr, as the runtime writes it)."""
    from ..log import logger, shows
    line = format_gctrace(rec)
    if shows("info"):
        logger.info(line)
    else:
        print(line, file=sys.stderr, flush=True)
