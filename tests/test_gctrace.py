"""gctrace: Go's line format, checked against lines Go 1.19 really printed."""

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from concalloc.gc.gctrace import (GCTRACE_RE, RECORD_KEYS, fmtNSAsMS, format_gctrace, itoaDiv,
                                  parse_gctrace, parse_pacertrace, parse_trace)

DATA = Path(__file__).parent / "data" / "go119_gctrace.txt"
GO_TEXT = DATA.read_text()
GO_LINES = [line for line in GO_TEXT.splitlines() if line.startswith("gc ")]

MiB = 1 << 20


def record(**changes):
    rec = dict(n=3, forced=False, start_ns=142_700_000, end_ns=144_000_000,
               clock_ns=[18_400, 1_234_567, 21_000],
               cpu_ns=[36_800, 300_000, 9_876_543, 0, 42_000],
               heap_start=4 * MiB + 5, heap_end=4 * MiB + 900_000, heap_marked=MiB + 3,
               heap_goal=5 * MiB - 1, trigger=4 * MiB, stacks=8192, globals=2 * MiB,
               procs=2, gc_cpu_fraction_pct=4, assist_work=0, background_work=0,
               barrier_calls=0, num_forced=0)
    rec.update(changes)
    return rec


@pytest.mark.parametrize("ns,text", [
    (0, "0"), (999, "0"), (1_000, "0.001"), (57_999, "0.057"), (99_999, "0.099"),
    (100_000, "0.10"), (999_999, "0.99"), (1_000_000, "1.0"), (1_234_567, "1.2"),
    (9_999_999, "9.9"), (10_000_000, "10"), (14_999_999, "14"), (1_234_000_000, "1234"),
])
def test_fmtNSAsMS_truncates_to_two_digits_as_go_does(ns, text):
    assert fmtNSAsMS(ns) == text


@pytest.mark.parametrize("val,dec,text", [(142, 3, "0.142"), (5, 3, "0.005"), (12345, 3, "12.345"),
                                          (14, 0, "14"), (5, 0, "05"), (12, 1, "1.2")])
def test_itoaDiv(val, dec, text):
    assert itoaDiv(val, dec) == text


def test_format_of_a_hand_made_record():
    assert record().keys() == set(RECORD_KEYS)
    assert format_gctrace(record()) == (
        "gc 3 @0.142s 4%: 0.018+1.2+0.021 ms clock, 0.036+0.30/9.8/0+0.042 ms cpu, "
        "4->4->1 MB, 4 MB goal, 0 MB stacks, 2 MB globals, 2 P")


def test_format_appends_forced_as_go_does():
    line = format_gctrace(record(forced=True, n=12, start_ns=3_004_999_999, procs=8))
    assert line.startswith("gc 12 @3.004s ")
    assert line.endswith(", 8 P (forced)")


def test_format_refuses_negative_durations():
    with pytest.raises(ValueError):
        format_gctrace(record(clock_ns=[1, -5, 1]))


def test_real_go_data_is_there():
    assert len(GO_LINES) >= 20
    assert any(line.endswith("(forced)") for line in GO_LINES)
    assert any(" ms clock" in line and GCTRACE_RE.match(line).group("c2").isdigit() for line in GO_LINES)


@pytest.mark.parametrize("line", GO_LINES)
def test_regex_matches_and_round_trips_every_real_go_line(line):
    assert GCTRACE_RE.match(line), line
    assert format_gctrace(parse_gctrace(line)) == line


@pytest.mark.parametrize("bad", [
    "gc 3 @0.14s 4%: 0.018+1.2+0.021 ms clock, 0.036+0.30/9.8/0+0.042 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 2 MB globals, 2 P",
    "gc 3 @0.142s 4%: 0.018+1.2 ms clock, 0.036+0.30/9.8/0+0.042 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 2 MB globals, 2 P",
    "gc 3 @0.142s 4%: 0.018+1.2+0.021 ms clock, 0.036+0.30/9.8/0+0.042 ms cpu, 4->4->1 MB, 4 MB goal, 2 P",
    "gc 3 @0.142s 4%: 0.018+1.2+0.021 ms clock, 0.036+0.30/9.8/0+0.042 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 2 MB globals, 2 P (forced) x",
])
def test_regex_rejects_malformed_lines(bad):
    assert GCTRACE_RE.match(bad) is None
    with pytest.raises(ValueError):
        parse_gctrace(bad)


def test_parse_gives_the_lower_bounds_of_what_was_printed():
    rec = parse_gctrace(format_gctrace(record(forced=True)))
    assert rec["n"] == 3 and rec["forced"] and rec["procs"] == 2 and rec["gc_cpu_fraction_pct"] == 4
    assert rec["start_ns"] == 142_000_000
    assert rec["clock_ns"] == [18_000, 1_200_000, 21_000]
    assert rec["cpu_ns"] == [36_000, 300_000, 9_800_000, 0, 42_000]
    assert (rec["heap_start"], rec["heap_end"], rec["heap_marked"], rec["heap_goal"]) == \
        (4 * MiB, 4 * MiB, MiB, 4 * MiB)
    assert (rec["stacks"], rec["globals"]) == (0, 2 * MiB)


_ns = st.integers(0, 10**11)
_bytes = st.integers(0, 1 << 40)


@given(n=st.integers(1, 10**6), forced=st.booleans(), start=_ns, clock=st.lists(_ns, min_size=3, max_size=3),
       cpu=st.lists(_ns, min_size=5, max_size=5), heap=st.lists(_bytes, min_size=6, max_size=6),
       procs=st.integers(1, 256), pct=st.integers(0, 100))
def test_any_record_round_trips_through_its_line(n, forced, start, clock, cpu, heap, procs, pct):
    rec = record(n=n, forced=forced, start_ns=start, clock_ns=clock, cpu_ns=cpu, heap_start=heap[0],
                 heap_end=heap[1], heap_marked=heap[2], heap_goal=heap[3], stacks=heap[4],
                 globals=heap[5], procs=procs, gc_cpu_fraction_pct=pct)
    line = format_gctrace(rec)
    assert GCTRACE_RE.match(line)
    back = parse_gctrace(line)
    assert format_gctrace(back) == line
    for key in ("heap_start", "heap_end", "heap_marked", "heap_goal", "stacks", "globals"):
        assert back[key] == rec[key] >> 20 << 20
    assert all(b <= r for b, r in zip(back["clock_ns"] + back["cpu_ns"], clock + cpu))


def test_pacer_line_gives_exact_trigger_and_goal():
    line = ("pacer: 42% CPU (25 exp.) for 41568+270040+225552 B work (537072 B exp.) in 7853629 B "
            "-> 8264608 B (∆goal 74104, cons/mark +2.090812e-001)")
    assert parse_pacertrace(line) == {"trigger": 7853629, "heap_end": 8264608, "heap_goal": 8190504,
                                      "heap_work": 41568, "stack_work": 270040, "globals_work": 225552}
    assert parse_pacertrace("pacer: assist ratio=+1.6e+000 (scan 0 MB in 7->7 MB) workers=0++2.5e-001") is None


def test_parse_trace_of_real_go_output_agrees_with_gctrace():
    recs = parse_trace(GO_TEXT)
    assert [format_gctrace(r) for r in recs] == GO_LINES
    paced = [r for r in recs if "trigger" in r]
    assert len(paced) >= 10
    assert not any(r["forced"] for r in paced), "a forced cycle prints no end-of-cycle pacer line"
    for r, line in zip(recs, GO_LINES):
        if "trigger" in r:     # the exact bytes round down to what gctrace printed
            m = GCTRACE_RE.match(line)
            assert r["heap_goal"] >> 20 == int(m.group("goal"))
            assert r["heap_end"] >> 20 == int(m.group("h1"))
            assert r["trigger"] <= r["heap_end"]
