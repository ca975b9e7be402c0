"""Watchdog: notices an OS-mode run that stopped making progress.

A daemon thread polls ``progress_fn()`` (any int that only grows, e.g. a
count of allocations).  If it has not changed for ``hang_seconds`` it builds
a report (every thread's stack from sys._current_frames, and the owner of
each registered mutex that is held) and calls ``on_hang(report)`` once, then stops.  Its
own state is its thread's alone, except the stop Event.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback


class Watchdog:
    def __init__(self, progress_fn, hang_seconds: float, on_hang, mutexes=None,
                 poll_seconds: float | None = None):
        self.progress_fn = progress_fn
        self.hang_seconds = hang_seconds
        self.on_hang = on_hang
        self.mutexes = mutexes or (lambda: ())    # () -> iterable of Mutex (ctx.all_mutexes)
        self.poll_seconds = poll_seconds or min(0.1, hang_seconds / 5)
        self.fired = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> "Watchdog":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> "Watchdog":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        last = self.progress_fn()
        since = time.monotonic()
        while not self._stop.wait(self.poll_seconds):
            now_value = self.progress_fn()
            now = time.monotonic()
            if now_value != last:
                last, since = now_value, now
            elif now - since >= self.hang_seconds:
                self.fired.set()
                self.on_hang(self.report(now - since, last))
                return

    def report(self, stalled_for: float, progress) -> str:
        lines = [f"watchdog: no progress for {stalled_for:.1f} s (progress counter stuck at {progress})",
                 "", "locks:"]
        free = 0
        for m in self.mutexes():
            owner = m.owner    # kept by ranked and controlled mutexes; by stats ones on contention
            if owner:
                lines.append(f"  {m.name}: held by {owner}")
            elif m.locked():
                lines.append(f"  {m.name}: held (owner not recorded; --godebug lockrank=1 records it)")
            else:
                free += 1
        lines.append(f"  ({free} other locks free or uninstrumented)")
        lines += ["", "threads:"]
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == threading.get_ident():
                continue
            lines.append(f"  thread {names.get(ident, ident)}:")
            lines += ["    " + ln for ln in "".join(traceback.format_stack(frame)).rstrip().splitlines()]
        return "\n".join(lines)
