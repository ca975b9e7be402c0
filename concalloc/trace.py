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

Free when off: a disabled Recorder is falsy and its emit is a no-op bound
at construction, so callers write ``rec = ctx.events`` then
``if rec: rec.emit(...)`` on slow paths, and hot paths keep ``rec`` as None.

Read the log (merged, hash, export) once the run is over; last_events() may
be called while it runs, for a violation report, and sees a recent prefix.
"""

from __future__ import annotations

import hashlib
import json
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
        if not enabled:
            self.emit = _noop_emit

    def __bool__(self) -> bool:
        return self.enabled

    def bind(self, scheduler) -> None:
        """Order events by `scheduler`'s steps when it is a controlled one."""
        if scheduler.controlled:
            self._seq = scheduler.clock
            self.logical = True
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

    def _collect(self, thread: str | None = None) -> list[Event]:
        with self._lock:
            buffers = [(name, list(buf)) for name, buf in self._buffers
                       if thread is None or name == thread]
        return [Event(seq, t, name, i, kind, fields)
                for name, buf in buffers
                for i, (seq, t, kind, fields) in enumerate(buf)]

    def events(self) -> list[Event]:
        """The merged log in its deterministic order."""
        out = self._collect()
        out.sort(key=lambda e: (e.seq, e.thread, e.index))
        return out

    def last_events(self, thread: str, n: int = 20) -> list[Event]:
        return self._collect(thread)[-n:]

    def event_log_hash(self) -> str:
        """sha256 of the merged log without wall times (and without seq when it is wall time)."""
        h = hashlib.sha256()
        for e in self.events():
            row = [e.seq if self.logical else None, e.thread, e.kind, e.fields]
            h.update(json.dumps(row, sort_keys=True, default=str).encode())
            h.update(b"\n")
        return h.hexdigest()


def _noop_emit(kind: str, **fields) -> None:
    pass


# -- Chrome Trace Event export ----------------------------------------------------

# begin kind -> (end kind, slice name from the begin event's fields)
_SLICES = {
    "lock_wait": ("lock_acquire", lambda f: f"wait {f.get('lock', '?')}"),
    "stw_start": ("stw_stop", lambda f: "STW" + (f" {f['reason']}" if "reason" in f else "")),
}
_GLOBAL_INSTANTS = ("gc_phase", "phase")


def chrome_trace(recorder: Recorder) -> dict:
    """The run as {"displayTimeUnit": "ns", "traceEvents": [...]}, one track per thread."""
    events = sorted(recorder.events(), key=lambda e: (e.t_ns, e.thread, e.index))
    tids: dict[str, int] = {}
    for e in events:
        tids.setdefault(e.thread, len(tids) + 1)
    out = [{"ph": "M", "pid": 1, "tid": 0, "name": "process_name", "args": {"name": "concalloc"}}]
    for name, tid in tids.items():
        out.append({"ph": "M", "pid": 1, "tid": tid, "name": "thread_name", "args": {"name": name}})
        out.append({"ph": "M", "pid": 1, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
    open_slices: dict[str, list] = {name: [] for name in tids}
    last_ts: dict[str, float] = {}
    for e in events:
        tid, ts = tids[e.thread], e.t_ns / 1000.0
        last_ts[e.thread] = ts
        stack = open_slices[e.thread]
        if e.kind in _SLICES:
            end_kind, slice_name = _SLICES[e.kind]
            stack.append((end_kind, slice_name(e.fields), ts, e))
        elif any(s[0] == e.kind for s in stack):
            _close_until(stack, e.kind, ts, tid, out)
        elif e.kind == "counter":
            out.append({"ph": "C", "pid": 1, "tid": tid, "ts": ts, "name": str(e.fields.get("name", "counter")),
                        "args": dict(e.fields.get("values", {}))})
        else:
            scope = "g" if e.kind in _GLOBAL_INSTANTS else "t"
            out.append({"ph": "i", "pid": 1, "tid": tid, "ts": ts, "s": scope,
                        "name": _instant_name(e), "cat": e.kind, "args": _jsonable(e.fields)})
    for thread, stack in open_slices.items():
        while stack:
            _close_until(stack, stack[-1][0], last_ts[thread], tids[thread], out)
    return {"displayTimeUnit": "ns", "traceEvents": out}


def _close_until(stack: list, end_kind: str, ts: float, tid: int, out: list) -> None:
    """Close open slices down to the innermost one ended by `end_kind` (keeps nesting strict)."""
    while stack:
        kind, name, start, begin = stack.pop()
        out.append({"ph": "X", "pid": 1, "tid": tid, "ts": start, "dur": ts - start, "name": name,
                    "cat": begin.kind, "args": _jsonable(begin.fields)})
        if kind == end_kind:
            return


def _instant_name(e: Event) -> str:
    f = e.fields
    if e.kind in _GLOBAL_INSTANTS and "phase" in f:
        return f"GC phase {f['phase']}"
    if "lock" in f:
        return f"{e.kind} {f['lock']}"
    return e.kind


def _jsonable(fields: dict) -> dict:
    return json.loads(json.dumps(fields, default=str))


def write_chrome_trace(recorder: Recorder, path: str) -> None:
    with open(path, "w") as f:
        json.dump(chrome_trace(recorder), f)
