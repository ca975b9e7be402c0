"""fidelity/trace_gaps.py: silent stretches of a Go execution trace's text dump."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "trace_gaps", Path(__file__).resolve().parents[1] / "fidelity" / "trace_gaps.py")
tg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tg)

DUMP = """2026/11/30 12:44:04 Parsing trace...
0 GoStart p=0 g=1 off=1 g=1 seq=0
1000000 GCStart p=1000004 g=0 off=2 seq=1
1010000 GCSTWStart p=0 g=0 off=3 kindid=1 kind=sweep termination
1020000 GCSTWDone p=0 g=0 off=4
1030000 HeapAlloc p=0 g=1 off=5 mem=1
6030000 HeapAlloc p=0 g=1 off=6 mem=2
6040000 HeapAlloc p=0 g=1 off=7 mem=3
7040000 GCSTWStart p=1 g=0 off=8 kindid=0 kind=mark termination
7050000 GCDone p=1 g=0 off=9
""".splitlines()


def test_marks_and_silence():
    events = tg.read_events(DUMP)
    assert len(events) == 9                                  # the "Parsing trace" line is not an event
    assert tg.marks(events) == [(1_020_000, 7_040_000)]
    times = [t for t, _, _ in events]
    # gaps over 0.3 ms inside the mark: 1.03 -> 6.03 (5 ms) and 6.04 -> 7.04 (1 ms)
    assert tg.silent_ns(times, 1_020_000, 7_040_000, 300_000) == 6_000_000
    assert tg.silent_ns(times, 1_020_000, 7_040_000, 2_000_000) == 5_000_000


def test_cli_prints_each_mark(tmp_path, capsys):
    f = tmp_path / "t.txt"
    f.write_text("\n".join(DUMP) + "\n")
    assert tg.main([str(f)]) == 0
    out = capsys.readouterr().out
    assert "mark 1:   6.02 ms, silent   6.00 ms" in out and "longest gaps: 5.00 ms" in out
    empty = tmp_path / "e.txt"
    empty.write_text("nothing\n")
    assert tg.main([str(empty)]) == 2
