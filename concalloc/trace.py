"""The event recorder and its Chrome Trace Event (Perfetto) export.

One Recorder per run.  Each thread appends to its own buffer (a list only
that thread writes; the list of buffers is guarded by a lock taken once per
thread), so emit() takes no shared lock.  An event is
(seq, t_ns, kind, fields), with its thread and its index in the thread's
buffer implied by where it sits.

* seq orders the merged log.  Under a controlled scheduler it is the
  scheduler's step count, so the merged log, sorted by (seq, thread, index),
  is the same bit for bit for the same (program, seed); under the OS
  scheduler it is the wall time.
* t_ns is wall time (perf_counter_ns) since the recorder was made, or the
  thread's virtual clock under vtime; it feeds the trace export and never
  the determinism hash.
* A controlled scheduler's decisions are not emitted one event each: the
  scheduler keeps them in its lean log, and events()/last_events() merge
  them in as "sched_decision" events (label, chosen) of the deciding thread
  ("run" for the start), first among that thread's events of their step.
  The trace export leaves them out (the schedule file holds them).

The determinism hash (event_log_hash) streams each thread's events, in
thread-name order, through sha256 as one memo-less pickle per thread
(step, kind, fields; no wall time), then the decision log: each thread's stream carries
its steps, so the merged order is a function of the streams, and hashing
costs a few ms instead of one json.dumps per event.

Free when off: a disabled Recorder is falsy and its emit is a no-op bound
at construction, so callers write ``rec = ctx.events`` then
``if rec: rec.emit(...)`` on slow paths, and hot paths keep ``rec`` as None.

Read the log (merged, hash, export) once the run is over; last_events() may
be called while it runs, for a violation report, and sees a recent prefix.

Traces (--trace) are Chrome Trace Event JSON, one track per thread:
lock waits ("wait mheap"), lock holds ("hold mheap") and stop-the-world
pauses are slices, and so is the collector's work: each cycle ("GC 3") and
its concurrent mark on the "gc" track, the mark workers' drains ("GC
(dedicated)"), assists ("MARK ASSIST") and stack scans ("scanstack P2") on
the thread that ran them, sweeping ("bgsweep", "finishsweep_m").  The
"heap" counter (heapLive, trigger, heapGoal) is updated at each refill and
at each cycle's start and end.  Allocations are not one event each but a
per-thread counter ("allocs P0": allocations and bytes so far, every
ALLOC_EVERY allocations and at the end); refills are kept.
A run under the OS scheduler streams its trace (StreamingRecorder): each
thread's buffer is handed, every CHUNK events, to a writer thread that
converts it and appends it to the file, so memory stays bounded whatever
the length of the run.  A controlled run keeps every event (the hash needs
them) and writes the same trace when it is over (write_chrome_trace).
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import pickle
import queue
import threading
import time
from typing import NamedTuple

_now = time.perf_counter_ns


class Event(NamedTuple):
    seq: int
    t_ns: int
    thread: str
    index: int
    kind: str
    fields: dict


class _Buffer(threading.local):
    events = None      # this thread's list, created on its first emit


class Recorder:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.logical = False            # seq is a scheduler step (set by bind)
        self._seq = _now                # the seq source
        self._t0 = _now()
        self._local = _Buffer()
        self._lock = threading.Lock()
        self._buffers: list[tuple[str, list]] = []    # (thread name, its events); self._lock
        self._sched = None                  # a controlled scheduler: its decision log joins ours
        if not enabled:
            self.emit = _noop_emit

    def __bool__(self) -> bool:
        return self.enabled

    def bind(self, scheduler) -> None:
        """Order events by `scheduler`'s steps when it is a controlled one."""
        if scheduler.controlled:
            self._seq = scheduler.clock
            self.logical = True
            self._sched = scheduler
        if getattr(scheduler, "clock_name", None) == "virtual":
            self.emit = self._emit_virtual     # vtime: the trace's time is the virtual clock too

    def _emit_virtual(self, kind: str, **fields) -> None:
        buf = self._local.events
        if buf is None:
            buf = self._new_buffer()
        t = self._seq()
        buf.append((t, t, kind, fields))

    def emit(self, kind: str, **fields) -> None:
        buf = self._local.events
        if buf is None:
            buf = self._new_buffer()
        buf.append((self._seq(), _now() - self._t0, kind, fields))

    def _new_buffer(self) -> list:
        buf: list = []
        self._local.events = buf
        with self._lock:
            self._buffers.append((threading.current_thread().name, buf))
        return buf

    def _collect(self, thread: str | None = None, decisions: bool = True) -> list[Event]:
        with self._lock:
            buffers = [(name, list(buf)) for name, buf in self._buffers
                       if thread is None or name == thread]
        out = [Event(seq, t, name, i, kind, fields)
               for name, buf in buffers
               for i, (seq, t, kind, fields) in enumerate(buf)]
        if decisions and self._sched is not None:
            out += [Event(step, 0, who, -1, "sched_decision", {"label": f"{who}:{label}", "chosen": chosen})
                    for step, who, label, chosen in self._sched.decision_events()
                    if thread is None or who == thread]
        return out

    def _streams(self) -> list[tuple[str, list]]:
        """(thread name, a copy of its (seq, t_ns, kind, fields) events) per thread."""
        with self._lock:
            return [(name, list(buf)) for name, buf in self._buffers]

    def events(self, decisions: bool = True) -> list[Event]:
        """The merged log in its deterministic order (with the scheduler's decisions unless told)."""
        out = self._collect(decisions=decisions)
        out.sort(key=_log_order)
        return out

    def last_events(self, thread: str, n: int = 20) -> list[Event]:
        out = self._collect(thread)
        out.sort(key=_log_order)
        return out[-n:]

    def recent(self, n: int) -> dict[str, list[dict]]:
        """The last n events of every thread (scheduler decisions included),
        oldest first, as JSON-ready dicts {"seq", "kind", "fields"} without
        wall times: what a violation records.  May be called while the run goes on."""
        with self._lock:
            buffers = [(name, list(buf)[-n:]) for name, buf in self._buffers]
        per: dict[str, list] = {}
        for name, buf in buffers:
            per.setdefault(name, []).extend((seq, i, kind, fields) for i, (seq, _, kind, fields) in enumerate(buf))
        if self._sched is not None:
            seen: dict[str, list] = {}
            for step, who, label, chosen in reversed(self._sched.decision_events()):
                mine = seen.setdefault(who, [])
                if len(mine) < n:
                    mine.append((step, -1, "sched_decision", {"label": f"{who}:{label}", "chosen": chosen}))
            for who, evs in seen.items():
                per.setdefault(who, []).extend(evs)
        return {name: [{"seq": seq, "kind": kind, "fields": _plain(fields)}
                       for seq, _, kind, fields in sorted(evs, key=_seq_index)[-n:]]
                for name, evs in sorted(per.items())}

    def event_log_hash(self) -> str:
        """sha256 of each thread's events (without wall times, and without seq
        when it is wall time), thread by thread, then of the decision log."""
        logical = self.logical
        h = hashlib.sha256()
        for name, buf in sorted(self._streams(), key=_by_name):
            rows = [(seq, kind, fields) for seq, _, kind, fields in buf] if logical else \
                   [(kind, fields) for _, _, kind, fields in buf]
            h.update(_serialize((name, rows)))
        if self._sched is not None:
            h.update(_serialize(self._sched.decision_events()))
        return h.hexdigest()


def _noop_emit(kind: str, **fields) -> None:
    pass


def _seq_index(e: tuple) -> tuple:
    return e[0], e[1]


def _plain(fields: dict) -> dict:
    """Event fields as JSON keeps them: plain values as they are, others as text."""
    return {k: v if v is None or isinstance(v, (int, float, str, bool)) else str(v) for k, v in fields.items()}


class RingRecorder(Recorder):
    """The last RING events of each thread and nothing more: the context a
    violation reports in a free (OS-scheduled) run with an oracle on, where
    keeping every event would cost memory without bound.  A controlled run
    keeps every event anyway (its hash needs them); a run with neither has
    no recorder at all, so the ring costs nothing when off."""

    RING = 32

    def emit(self, kind: str, **fields) -> None:
        buf = self._local.events
        if buf is None:
            buf = self._new_buffer()
        buf.append((self._seq(), 0, kind, fields))

    def _new_buffer(self):
        buf = collections.deque(maxlen=self.RING)
        self._local.events = buf
        with self._lock:
            self._buffers.append((threading.current_thread().name, buf))
        return buf


def _serialize(obj) -> bytes:
    """obj's bytes for the hash: a pickle without its memo (so that only values
    count, never which objects happen to be shared), or its repr when a field
    holds something pickle refuses."""
    f = io.BytesIO()
    p = pickle.Pickler(f, 4)
    p.fast = True
    try:
        p.dump(obj)
    except Exception:       # an unpicklable field value: fall back to repr, still deterministic
        return b"r" + repr(obj).encode()
    return b"p" + f.getvalue()


def _log_order(e: Event) -> tuple:
    return e.seq, e.thread, e.index


def _by_name(buffer: tuple) -> str:
    return buffer[0]


# -- Chrome Trace Event export ----------------------------------------------------

# begin kind -> (end kind, slice name from the begin event's fields); a begin is
# ended by the next end kind event naming the same lock (if it names one)
_SLICES = {
    "lock_wait": ("lock_acquire", lambda f: f"wait {f.get('lock', '?')}"),
    "lock_acquire": ("lock_release", lambda f: f"hold {f.get('lock', '?')}"),
    "stw_start": ("stw_stop", lambda f: "STW" + (f" {f['reason']}" if "reason" in f else "")),
    # the collector (gc/cycle.py, gc/mark.py, gc/sweep.py); Go's trace viewer's names where it has one
    "gc_start": ("gc_done", lambda f: f"GC {f.get('n', '?')}" + (" (forced)" if f.get("forced") else "")),
    "gc_mark_start": ("gc_mark_done", lambda f: "concurrent mark" + (" (restarted)" if f.get("restart") else "")),
    "gc_worker_start": ("gc_worker_done", lambda f: "GC (dedicated)"),
    "gc_assist_start": ("gc_assist_done", lambda f: "MARK ASSIST"),
    "gc_scanstack_start": ("gc_scanstack_done", lambda f: f"scanstack {f.get('p', '?')}"),
    "gc_sweep_start": ("gc_sweep_done", lambda f: f.get("fn", "sweep")),
}
_GLOBAL_INSTANTS = ("gc_phase", "phase")
ALLOC_EVERY = 1024          # one allocs counter event per this many allocations of a thread
CHUNK = 4096                # events a thread buffers before the writer converts them
NO_GOAL = 1 << 62           # a heap goal this large is no goal (GOGC off, no memory limit)


class Track:
    """One thread's events -> Chrome trace events, in order, possibly chunk by chunk:
    keeps the open slices and the allocation counters between chunks."""

    def __init__(self, thread: str, tid: int):
        self.thread, self.tid = thread, tid
        self.open: list[tuple] = []          # (end kind, lock, name, start ts, begin kind, fields)
        self.nalloc = self.nbytes = 0
        self.last_ts = 0.0

    def convert(self, events, out: list) -> None:
        """events: (t_ns, kind, fields) in this thread's order."""
        tid = self.tid
        for t_ns, kind, fields in events:
            ts = t_ns / 1000.0
            self.last_ts = ts
            if kind == "alloc":
                self.nalloc += 1
                self.nbytes += fields.get("size", 0)
                if not self.nalloc % ALLOC_EVERY:
                    out.append(self._alloc_counter(ts))
                continue
            if kind == "allocs":          # a streaming recorder's count so far
                self.nalloc, self.nbytes = fields["n"], fields["bytes"]
                out.append(self._alloc_counter(ts))
                continue
            if any(o[0] == kind for o in self.open) and self._close(kind, fields.get("lock"), ts, out, fields) \
                    and kind not in _SLICES:
                continue
            if kind in _SLICES:
                end_kind, slice_name = _SLICES[kind]
                self.open.append((end_kind, fields.get("lock"), slice_name(fields), ts, kind, fields))
            elif kind == "counter":
                out.append({"ph": "C", "pid": 1, "tid": tid, "ts": ts, "name": str(fields.get("name", "counter")),
                            "args": dict(fields.get("values", {}))})
            else:
                scope = "g" if kind in _GLOBAL_INSTANTS else "t"
                out.append({"ph": "i", "pid": 1, "tid": tid, "ts": ts, "s": scope,
                            "name": _instant_name(kind, fields), "cat": kind, "args": fields})

    def _alloc_counter(self, ts: float) -> dict:
        return {"ph": "C", "pid": 1, "tid": self.tid, "ts": ts, "name": f"allocs {self.thread}",
                "args": {"allocations": self.nalloc, "bytes": self.nbytes}}

    def _close(self, end_kind: str, lock, ts: float, out: list, end_fields: dict | None = None) -> bool:
        """Close the innermost open slice that `end_kind` (for `lock`) ends, and any opened
        inside it (keeps nesting strict); its args are the begin's fields and the end's.
        False if none matches."""
        for i in range(len(self.open) - 1, -1, -1):
            o = self.open[i]
            if o[0] == end_kind and (lock is None or o[1] is None or o[1] == lock):
                while len(self.open) > i:
                    _, _, name, start, begin, fields = self.open.pop()
                    if end_fields and len(self.open) == i:
                        fields = {**fields, **end_fields}
                    out.append({"ph": "X", "pid": 1, "tid": self.tid, "ts": start, "dur": ts - start,
                                "name": name, "cat": begin, "args": fields})
                return True
        return False

    def finish(self, out: list) -> None:
        """The run is over: close what is open at the last timestamp, and the final counter."""
        while self.open:
            self._close(self.open[-1][0], self.open[-1][1], self.last_ts, out)
        if self.nalloc % ALLOC_EVERY:
            out.append(self._alloc_counter(self.last_ts))

    def metadata(self) -> list[dict]:
        return [{"ph": "M", "pid": 1, "tid": self.tid, "name": "thread_name", "args": {"name": self.thread}},
                {"ph": "M", "pid": 1, "tid": self.tid, "name": "thread_sort_index",
                 "args": {"sort_index": self.tid}}]


_PROCESS = {"ph": "M", "pid": 1, "tid": 0, "name": "process_name", "args": {"name": "concalloc"}}


def chrome_trace(recorder: Recorder) -> dict:
    """The run as {"displayTimeUnit": "ns", "traceEvents": [...]}, one track per thread."""
    by_thread: dict[str, list] = {}
    for e in sorted(recorder.events(decisions=False), key=lambda e: (e.t_ns, e.thread, e.index)):
        by_thread.setdefault(e.thread, []).append((e.t_ns, e.kind, e.fields))
    out = [_PROCESS]
    for tid, (thread, events) in enumerate(by_thread.items(), 1):
        track = Track(thread, tid)
        out += track.metadata()
        track.convert(events, out)
        track.finish(out)
    return {"displayTimeUnit": "ns", "traceEvents": out}


def _instant_name(kind: str, f: dict) -> str:
    if kind in _GLOBAL_INSTANTS and "phase" in f:
        return f"GC phase {f['phase']}"
    if "lock" in f:
        return f"{kind} {f['lock']}"
    return kind


def write_chrome_trace(recorder: Recorder, path: str) -> None:
    """Write the trace of a finished run (a StreamingRecorder finishes its own file)."""
    if isinstance(recorder, StreamingRecorder):
        recorder.close()
        return
    with open(path, "w") as f:
        f.write('{"displayTimeUnit": "ns", "traceEvents": [\n')
        f.write(",\n".join(json.dumps(e, default=str) for e in chrome_trace(recorder)["traceEvents"]))
        f.write("\n]}\n")


# -- streaming ---------------------------------------------------------------------

class _Stream(threading.local):
    state = None       # this thread's (events, Track), created on its first emit


class StreamingRecorder(Recorder):
    """A Recorder that writes the trace to `path` as the run goes (OS scheduler).
    Each thread appends to its own list; at CHUNK events it hands the list to the
    writer thread (a queue) and starts a new one.  The writer owns the file and
    every Track.  events() and the hash see only what is still buffered: use a
    plain Recorder when the whole log is needed."""

    def __init__(self, path: str):
        super().__init__(True)
        self.path = path
        self._f = open(path, "w")                # the writer thread's (and close()'s, after it)
        self._f.write('{"displayTimeUnit": "ns", "traceEvents": [\n' + json.dumps(_PROCESS))
        self._stream = _Stream()
        self._tracks: list[Track] = []          # self._lock
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="trace-writer", daemon=True)
        self._writer.start()
        self._closed = False

    def emit(self, kind: str, **fields) -> None:
        st = self._stream.state
        if st is None:
            st = self._new_stream()
        if kind == "alloc":            # counted here: one "allocs" event per ALLOC_EVERY
            n = st[2] = st[2] + 1
            st[3] += fields["size"]
            if n % ALLOC_EVERY:
                return
            kind, fields = "allocs", {"n": n, "bytes": st[3]}
        buf = st[0]
        buf.append((_now() - self._t0, kind, fields))
        if len(buf) >= CHUNK:
            st[0] = []
            self._q.put((st[1], buf))

    def _new_stream(self) -> list:
        name = threading.current_thread().name
        with self._lock:
            track = Track(name, len(self._tracks) + 1)
            self._tracks.append(track)
        st = [[], track, 0, 0]      # events, its Track, allocations, bytes (this thread's)
        self._stream.state = st
        with self._lock:
            self._buffers.append((name, st))
        return st

    def _write_loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            track, events = item
            out: list = []
            track.convert(events, out)
            if out:
                self._f.write(",\n" + ",\n".join(json.dumps(e, default=str) for e in out))

    def _streams(self) -> list[tuple[str, list]]:
        with self._lock:
            return [(name, [(t, t, kind, fields) for t, kind, fields in st[0]]) for name, st in self._buffers]

    def _collect(self, thread: str | None = None, decisions: bool = True) -> list[Event]:
        with self._lock:
            buffers = [(name, list(st[0])) for name, st in self._buffers if thread is None or name == thread]
        return [Event(t, t, name, i, kind, fields) for name, buf in buffers
                for i, (t, kind, fields) in enumerate(buf)]

    def close(self) -> None:
        """The run is over: write what is buffered, close the slices, and end the file."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            pending = [(st[1], st[0] + ([(st[0][-1][0] if st[0] else 0, "allocs", {"n": st[2], "bytes": st[3]})]
                                       if st[2] % ALLOC_EVERY else [])) for _, st in self._buffers]
        for track, events in pending:
            self._q.put((track, events))
        self._q.put(None)
        self._writer.join()
        out: list = []
        for track in self._tracks:
            track.finish(out)
            out += track.metadata()
        self._f.write("".join(",\n" + json.dumps(e, default=str) for e in out) + "\n]}\n")
        self._f.close()


def recorder_for(config) -> Recorder | None:
    """The recorder a run with this Config needs: none, in memory, or streaming its trace."""
    if config.trace and not config.controlled():
        return StreamingRecorder(config.trace)
    if config.controlled() or config.events or config.trace:
        return Recorder(True)
    if oracle_on(config):
        return RingRecorder(True)
    return None


def oracle_on(config) -> bool:
    """An oracle beyond the default heapcheck=1 is on: its violations report
    each thread's last events, which a free run keeps in a RingRecorder."""
    return bool(config.heapcheck >= 2 or config.gccheckmark or getattr(config, "wbshadow", False)
                or getattr(config, "gcstoptheworld", 0))


def emit_heap_counter(rec: Recorder, ctl, **more) -> None:
    """The "heap" counter: heapLive and the pacer's trigger and heap goal now
    (gcController ctl), plus `more`.  With no goal (GOGC off and no memory
    limit) trigger and heapGoal are left out, as MemStats.NextGC reads 0."""
    values = {"heapLive": ctl.heapLive.load()}
    trigger, goal = ctl.trigger()
    if goal < NO_GOAL:
        values.update(trigger=trigger, heapGoal=goal)
    values.update(more)
    rec.emit("counter", name="heap", values=values)

