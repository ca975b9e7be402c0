"""Grey objects waiting to be scanned: gcWork and the global work lists (mgcwork.go).

The tri-colour abstraction, as Go represents it:

    white  not marked (its mark bit in the span's gcmarkBits is clear)
    grey   marked and on a work queue: a gcWork's buffer or the global list
    black  marked and scanned (or noscan: marked and never queued)

Every marking thread (a background mark worker, a P running an assist or
flushing its write-barrier buffer) owns one gcWork: two workbufs, wbuf1 the
one it pushes to and pops from, wbuf2 a second one for hysteresis, so a
producer/consumer hovering at a buffer boundary does not bounce buffers to
the global list on every object.  A full buffer is published to work.full;
an empty one is refilled from it.  A workbuf holds WORKBUF_NOBJ pointers:
Go's _WorkbufSize of 2048 bytes less its 24-byte header, in 8-byte words.

Protection: a gcWork is owned by its thread (world stopped: anyone).
work.full and the counters beside it are guarded by `lock` (rank GC_WORK,
below sched and mcentral so a marker may take it while flushing at a safe
point).  `nfull` is read without the lock as a hint (a single load); every
decision that matters re-checks under the lock.
"""

from __future__ import annotations

from ..sync import Rank

WORKBUF_SIZE = 2048                          #: bytes, Go's _WorkbufSize
WORKBUF_NOBJ = (WORKBUF_SIZE - 24) // 8      #: 253 pointers per buffer on 64-bit
GC_CREDIT_SLACK = 2000                       #: scan work a gcWork batches before flushing counters


class WorkLists:
    """Go's work.full (lfstack of full workbufs), here a list under a ranked lock."""

    def __init__(self, sync):
        self.lock = sync.mutex("work.full", Rank.GC_WORK)
        self.full: list[list[int]] = []      # lock
        self.nfull = 0                       # lock to write; racy reads are hints
        self.on_put = None                   # fn() after a buffer is published (set once, before threads)

    def put(self, buf: list[int]) -> None:
        with self.lock:
            self.full.append(buf)
            self.nfull = len(self.full)
        if self.on_put is not None:
            self.on_put()

    def get(self) -> list[int] | None:
        if not self.nfull:
            return None
        with self.lock:
            if not self.full:
                return None
            buf = self.full.pop()
            self.nfull = len(self.full)
            return buf

    def empty(self) -> bool:
        with self.lock:
            return not self.full

    def drop_all(self) -> int:
        """Discard every queued buffer (world stopped); returns how many objects were dropped."""
        with self.lock:
            n = sum(len(b) for b in self.full)
            self.full.clear()
            self.nfull = 0
            return n


class GCWork:
    """A thread's local grey-object buffers (gcWork)."""

    __slots__ = ("lists", "wbuf1", "wbuf2", "bytesMarked", "heapScanWork", "flushedWork", "owner")

    def __init__(self, lists: WorkLists, owner: str):
        self.lists = lists
        self.owner = owner
        self.wbuf1: list[int] = []
        self.wbuf2: list[int] = []
        self.bytesMarked = 0          # bytes blackened here, not yet flushed to work.bytesMarked
        self.heapScanWork = 0         # scan work done here, not yet flushed
        self.flushedWork = False      # published work to the global list since the last check

    def put(self, obj: int) -> None:
        w = self.wbuf1
        if len(w) >= WORKBUF_NOBJ:
            self.wbuf1, self.wbuf2 = self.wbuf2, w
            w = self.wbuf1
            if len(w) >= WORKBUF_NOBJ:
                self.lists.put(w)
                self.flushedWork = True
                w = self.wbuf1 = []
        w.append(obj)

    def tryGet(self) -> int:
        """A grey object, or 0 when neither local buffer nor the global list has one."""
        w = self.wbuf1
        if w:
            return w.pop()
        if self.wbuf2:
            self.wbuf1, self.wbuf2 = self.wbuf2, w
            return self.wbuf1.pop()
        buf = self.lists.get()
        if buf:
            self.wbuf1 = buf
            return buf.pop()
        return 0

    def empty(self) -> bool:
        return not self.wbuf1 and not self.wbuf2

    def balance(self) -> None:
        """Give the global list something to steal when it is empty (gcWork.balance)."""
        if self.lists.nfull:
            return
        if self.wbuf2:
            self.lists.put(self.wbuf2)
            self.wbuf2 = []
            self.flushedWork = True
        elif len(self.wbuf1) > 4:
            half = len(self.wbuf1) // 2
            self.lists.put(self.wbuf1[:half])
            del self.wbuf1[:half]
            self.flushedWork = True

    def dispose(self) -> None:
        """Publish every local buffer to the global list (gcWork.dispose)."""
        for attr in ("wbuf1", "wbuf2"):
            w = getattr(self, attr)
            if w:
                self.lists.put(w)
                setattr(self, attr, [])
                self.flushedWork = True

    def __len__(self) -> int:
        return len(self.wbuf1) + len(self.wbuf2)
