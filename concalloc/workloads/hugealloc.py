"""hugealloc: steady small requests, and now and then a job over cfg.size bytes,
in one huge allocation or in chunks.

Every step allocates a small object (16..256 B) into a ring of `live`
slots (the steady part of a server).  Every JOB_EVERY steps a job
processes cfg.size bytes (default here: see advice.py; --size):

    hugealloc:huge (or hugealloc)  one allocation of cfg.size bytes, every
                                   page written, then dropped
    hugealloc:chunked              the same bytes streamed through one
                                   CHUNK-byte buffer (allocated for the job,
                                   refilled for each chunk, then dropped)

After writing, each job samples heapLive and the heap mapping's RSS; the
run's peaks are in `peak_heap` and `peak_rss` (bytes).
"""

from __future__ import annotations

from .arms import TwoArms

DESCRIPTION = ("small requests plus, every 200 steps, a job over --size bytes: one huge allocation "
               "(hugealloc:huge) or streamed through one 256 KiB buffer (hugealloc:chunked)")
JOB_EVERY = 200
CHUNK = 256 << 10          #: the chunked variant's buffer
PAGE = 4096


def fill(m, b: int, size: int) -> None:
    """Write one word per OS page: the job's data, made resident."""
    for off in range(0, size - 7, PAGE):
        m.write_word(b, off // 8, off)


class HugeAllocWorkload(TwoArms):
    NAME, MODES, DESCRIPTION = "hugealloc", ("huge", "chunked"), DESCRIPTION

    def __init__(self, mode: str = "huge"):
        super().__init__(mode)
        self.jobs: list[int] = []  # per P, each written by its own P
        self.peak_heap = 0         # P0's (see sample)
        self.peak_rss = 0

    def slots(self, cfg) -> int:
        return cfg.live + 1

    def setup(self, m, cfg) -> None:
        self.jobs = [0] * cfg.procs
        self.peak_heap = self.peak_rss = 0

    def sample(self, m, rss: bool = True) -> None:
        """Peaks, kept by P0 only (the other Ps' jobs overlap it anyway);
        RSS reads /proc, so only where asked."""
        if m.p.id:
            return
        h = m.rt.heap.mheap
        self.peak_heap = max(self.peak_heap, h.gcController.heapLive.load())
        if rss:
            self.peak_rss = max(self.peak_rss, h.sysmem.rss())

    def run(self, m, cfg) -> None:
        rng = m.rng
        live = cfg.live
        job = max(cfg.size, 8)
        i = 0
        while m.running():
            if i % JOB_EVERY == JOB_EVERY - 1:
                self._job(m, live, job)
            else:
                m.set_slot(i % live, m.alloc(rng.randint(16, 256)))
            i += 1

    def _job(self, m, slot: int, size: int) -> None:
        if self.mode == "huge":
            b = m.alloc(size)
            m.set_slot(slot, b)
            fill(m, b, size)
            self.sample(m)
        else:
            b = m.alloc(min(CHUNK, size))
            m.set_slot(slot, b)
            for off in range(0, size, CHUNK):
                fill(m, b, min(CHUNK, size - off))
            self.sample(m)
        m.clear_slot(slot)
        self.jobs[m.p.id] += 1


VARIANTS = {"huge": lambda: HugeAllocWorkload("huge"), "chunked": lambda: HugeAllocWorkload("chunked")}
_default = HugeAllocWorkload("huge")
slots, setup, run = _default.slots, _default.setup, _default.run
