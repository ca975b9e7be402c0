"""Runtime: Ps on real threads running mutators against one heap.

    with Runtime(Config(procs=4, workload="ring", steps=5000)) as rt:
        result = rt.run()

builds, from one Config, the scheduler (free, noisy or controlled), the
SyncContext every lock comes from, the event recorder, the heap with one
mcache per P, the Ps and the stop-the-world machinery.  GOMAXPROCS Ps exist;
`mutators` of them run a workload on their own thread, the others stay idle.

The collector (gc/cycle.py) runs on threads of its own: "gc" runs the
cycles, "gcw0".. are the background mark workers, "bgsweep" sweeps.  The
allocation slow path pays assist debt and tests the pacer's trigger.

A workload with setup(m, cfg) has it run on P0 first; the other mutators
start their run(m, cfg) once it has returned (an Event of the sync layer, so
controlled schedulers see the wait).

The first error of any thread ends the run: an invariant violation (exit 1),
a deadlock, a hang seen by the watchdog, a replay divergence or an exception
in a thread (exit 3).  The result carries MemStats, lock statistics, the
stop-the-world pauses by reason, the violations, and under a controlled
scheduler the event log hash and the schedule, which replays the run.
"""

from __future__ import annotations

import threading
import time

from . import workloads
from .check.violation import EVENTS_PER_THREAD, Violation, replay_context, run_context
from .config import Config
from .heap import Heap
from .malloc import mallocgc_nocache
from .mutator import Mutator
from .gc.cycle import GC, PHASE_NAMES
from .proc import P_IDLE, P, World
from .runconfig import (DEFAULT_CONTROLLED_STEPS, DEFAULT_SECONDS, replay_command,  # noqa: F401
                        run_config_dict, schedule_seed, scheduler_options, with_run_bounds, write_schedule)
from .runresult import (EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, EXIT_VIOLATION, Hang,  # noqa: F401
                        RunResult, RunTimeout, exit_code_for)
from .sync import Aborted, AtomicInt, SyncContext, Watchdog, make_scheduler
from .trace import recorder_for, write_chrome_trace

RUN_THREAD = "run"       # the name of the thread that drives Runtime.run


class Runtime:
    def __init__(self, config: Config, *, cache: bool = True, workload=None, progress=None):
        cfg = with_run_bounds(config)
        self.config = cfg
        self.workload = workload or workloads.get(cfg.workload)
        if hasattr(self.workload, "validate"):
            self.workload.validate(cfg)
        self.cache = cache
        self.progress = progress
        self.sched = make_scheduler(cfg.scheduler, schedule_seed(cfg), **scheduler_options(cfg))
        self.events = recorder_for(cfg)
        self.sync = SyncContext(self.sched, check_ranks=cfg.lockrank, lock_stats=cfg.lock_stats,
                                events=self.events)
        nglobals = getattr(self.workload, "globals", None)   # the program's data segment, if it says
        self.heap = Heap(cfg, sync=self.sync, nglobals=nglobals(cfg) if nglobals is not None else None)
        self.allp = [P(i, c) for i, c in enumerate(self.heap.mcaches)]
        self.world = World(self.sync, self.allp)
        self.world.events = self.events
        self.moduledata = self.heap.moduledata  # the globals: words of the data segment
        self.write_barrier = None        # world stopped: see set_write_barrier
        self.wbshadow = None             # GODEBUG wbshadow=1: every barriered store keeps a shadow
        if cfg.wbshadow:
            from .gc.wbshadow import WBShadow
            self.wbshadow = WBShadow(self)
            self.write_barrier = self.wbshadow.wrap(None)
        self.malloc_nocache = mallocgc_nocache
        self.method = None               # a survey allocation method (concalloc/methods), or Go's
        if cfg.allocator != "go":
            from .methods import make_method
            self.method = make_method(self)
        nslots = self.workload.slots(cfg)
        self.mutators = [Mutator(self, p, nslots) for p in self.allp[:cfg.nmutators()]]
        self._active = AtomicInt(len(self.mutators))
        # The workload's setup(m, cfg) runs on P0 before any run(m, cfg); the other
        # mutators wait for setup_done (set once by P0), made only when there is a setup.
        self.workload_setup = getattr(self.workload, "setup", None)
        self.setup_done = self.sync.event("workload.setup") if self.workload_setup and len(self.mutators) > 1 else None
        self.gc = GC(self) if self.method is None else self.method.gc
        if not self.mutators:            # --mutators 0: nothing will ever finish and stop the GC
            self.gc.stop()
        self.heap.mheap.on_refill = self.gc.on_alloc_slow_path
        self.heap.mheap.on_large_alloc = lambda c, s: self.gc.on_alloc_slow_path(c)
        self.sched.attach_runtime(self)  # vtime: bind the cost hooks

    @property
    def globals(self) -> tuple[int, ...]:
        """The globals' current values (read-only; they live in moduledata)."""
        return self.moduledata.values()

    # --- threads ---
    def _mutator_main(self, m: Mutator) -> None:
        world = self.world
        try:
            first = m is self.mutators[0]
            if self.setup_done is not None and not first:
                # Before acquirep: a P waiting here holds up no stop-the-world that setup causes.
                self.setup_done.wait()
            world.acquirep(m.p)
            if self.workload_setup is not None and first:
                self.workload_setup(m, self.config)
                if self.setup_done is not None:
                    self.setup_done.set()
            self.workload.run(m, self.config)
        except Violation as v:
            self.sched.fail(v)
        finally:
            world.giveBackWorldsema()     # a P that stopped the world (a method's collection)
            world.releasep(m.p)
            if self._active.add(-1) == 0:
                self.gc.stop()

    @property
    def nchecks(self) -> int:
        """GC cycles so far (each verifies the heap at sweep termination when heapcheck >= 1)."""
        return self.gc.numgc

    def install_write_barrier(self, wb) -> None:
        """The collector's setGCPhase: every mutator's barrier (world stopped)."""
        if self.wbshadow is not None:        # the barrier runs in every phase, keeping the shadow
            wb = self.wbshadow.wrap(wb)
        self.write_barrier = wb
        for m in self.mutators:
            m._wb = wb
            m.install_quiet_store(wb)

    def set_write_barrier(self, wb) -> None:
        """Turn the write barrier on (wb(mutator, slot, new)) or off (None).
        Like Go's writeBarrier.enabled it changes only with the world stopped,
        so every mutator sees the change at its next store."""
        with self.world.lock:
            running = any(p.status != P_IDLE for p in self.allp)
        if running and not self.world.stopped:
            raise RuntimeError("set_write_barrier needs the world stopped")
        self.install_write_barrier(wb)

    def progress_counter(self) -> int:
        """Allocations so far, summed over mutators (racy reads; display and watchdog only)."""
        return sum(m.nalloc for m in self.mutators)

    # --- running ---
    def run(self) -> RunResult:
        # The calling thread takes part in the run: it makes the start
        # decision and, once the run is over, flushes the mcaches (lock
        # events).  Its events are recorded under its thread name, which must
        # not depend on who calls run(): a controlled run's event log is a
        # function of (config, seed) only.  So it is "run" meanwhile, the name
        # the scheduler gives that thread's decisions ("run:start").
        me = threading.current_thread()
        saved, me.name = me.name, RUN_THREAD
        try:
            return self._run()
        finally:
            me.name = saved

    def run_bounded(self, seconds: float) -> RunResult:
        """run() on a driver thread, waited for at most `seconds`.  A run that
        does not end by then is aborted and RunTimeout raised, naming the
        replay command; whatever run() raises is raised here."""
        box: dict = {}

        def target():
            try:
                box["res"] = self.run()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["exc"] = e

        t = threading.Thread(target=target, name="run-driver", daemon=True)
        t.start()
        t.join(seconds)
        if t.is_alive():
            self.sched.abort(RunTimeout(f"bound of {seconds} s"))
            t.join(10)
            raise RunTimeout(f"seed {self.config.seed}: run did not end within {seconds} s\n"
                             f"replay: {replay_command(self.config, self.cache)}")
        if "exc" in box:
            raise box["exc"]
        return box["res"]

    def _run(self) -> RunResult:
        cfg = self.config
        res = RunResult(config=run_config_dict(cfg, self.cache))
        t0 = time.monotonic()
        # The watchdog: no allocation for hang_seconds under free threads; no
        # scheduling decision under a controlled scheduler (a thread that
        # never reaches a yield point holds the baton forever).  It only
        # looks; a run it does not end is untouched by it.
        progress = (lambda: self.sched.steps) if cfg.controlled() else self.progress_counter
        dog = Watchdog(progress, cfg.hang_seconds, lambda report: self.sched.abort(Hang(report)),
                       mutexes=self.sync.all_mutexes).start()
        with replay_context(replay_command(cfg, self.cache)), run_context(self.violation_context):
            # The collector first: under free threads a mutator runs as soon as
            # it is started, and a kick the collector is not yet there to take
            # is only seen after the mutators are done (so no check at all).
            self.gc.start_threads(self.sched.start_thread)
            for m in self.mutators:
                self.sched.start_thread(m.name, lambda m=m: self._mutator_main(m))
            stop_progress = self._start_progress(t0)
            try:
                self.sched.join_all()
            except (Aborted, Exception) as e:  # noqa: BLE001 - every run-ending error is reported
                res.error = e
            finally:
                stop_progress()
                if dog:
                    dog.stop()
            if res.error is None and cfg.heapcheck >= 1:
                try:
                    self.heap.verify()     # every thread is done: the world is stopped
                    if self.method is not None:
                        self.method.check()
                except Violation as v:
                    res.error = v
        res.elapsed = time.monotonic() - t0
        self._collect(res)
        return res

    def violation_context(self) -> dict:
        """What a violation found during this run records about it, read on the
        thread that found it: the cycle in progress (or the last one started),
        the phase, each thread's last events (when a recorder runs: a
        controlled scheduler, a trace, or an oracle's ring), and the config."""
        cfg = self.config
        rec = self.events
        return {"cycle": self.gc.started, "phase": PHASE_NAMES.get(self.gc.phase),
                "events": rec.recent(EVENTS_PER_THREAD) if rec else {},
                "config": run_config_dict(cfg, self.cache), "seed": cfg.seed, "scheduler": cfg.scheduler}

    def _start_progress(self, t0: float):
        """Call progress(rt, elapsed) every 0.25 s from a thread of its own (not a
        managed one: it only reads racy counters) until the returned stop() is
        called.  The caller goes on to join_all, which is what starts a
        controlled run and what bounds an aborted one."""
        if self.progress is None:
            return lambda: None
        stop = threading.Event()

        def report() -> None:
            while not stop.wait(0.25):
                self.progress(self, time.monotonic() - t0)

        t = threading.Thread(target=report, name="progress", daemon=True)
        t.start()

        def stop_progress() -> None:
            stop.set()
            t.join()
        return stop_progress

    def _collect(self, res: RunResult) -> None:
        cfg = self.config
        res.exit_code = exit_code_for(res.error)
        if isinstance(res.error, Violation):
            res.violations.append(res.error.to_dict())
        # MemStats flushes every mcache and the pause table is read under
        # sched.lock: both need the world stopped.  A thread still running (one
        # that did not unwind within the abort grace: sched.stuck) denies it,
        # and may hold those locks: reading them then would race with it, or
        # wait on its lock (and raise Aborted here, which is not a managed thread).
        stopped = not self.sched.alive()
        if stopped:
            res.memstats = self.heap.read_memstats()
        res.locks = self.sync.lock_stats() if cfg.lock_stats else {}
        res.stw = self.world.pause_table() if stopped else {}
        res.mutators = {m.name: {"allocs": m.nalloc, "ptr_ops": m.nptr} for m in self.mutators}
        res.sched = {"kind": self.sched.kind, "seed": schedule_seed(cfg), "steps": self.sched.steps,
                     "checks": self.nchecks}
        if res.memstats:
            res.memstats.update(self.gc.memstats())
        res.gc = self.gc.to_json()
        if hasattr(self.sched, "summary"):   # vtime: where virtual time went
            res.vtime = self.sched.summary(res.mutators, cfg.procs)
            for d in [res.locks, *res.stw.values()]:
                d["clock"] = "virtual"
        if self.events is not None and cfg.controlled():
            res.event_log_hash = self.events.event_log_hash()
        if cfg.trace and self.events is not None:
            write_chrome_trace(self.events, cfg.trace)
        if cfg.plot:
            from .gc.plot import plot_run       # matplotlib: only when asked for
            plot_run(self, cfg.plot, res.elapsed)

    def save_schedule(self, path: str) -> None:
        """The schedule file: this run's whole config (and cache setting) and its decisions."""
        write_schedule(path, self.sched, self.config, self.cache)

    def close(self) -> None:
        """Unmap the heap, unless a thread that did not unwind may still touch
        it: then the mapping is left to the process's exit (a leak, not a crash)."""
        if self.sched.alive():
            return
        self.heap.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
