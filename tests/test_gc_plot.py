"""gc.plot: a PNG of the heap against trigger and goal, for fake cycle records."""

import pytest

from concalloc.gc.gctrace import parse_trace
from concalloc.gc.plot import plot_gc, samples_from_records

from gc_fake_records import fake_run
from test_gctrace import GO_TEXT

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("forced_at", [(), (3,)])
def test_plot_writes_a_png(tmp_path, forced_at):
    records, samples = fake_run(cycles=6, forced_at=forced_at)
    out = tmp_path / "gc.png"
    plot_gc(records, samples, out, "fake ring run")
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000


def test_plot_of_many_cycles_without_samples(tmp_path):
    records, _ = fake_run(cycles=120)
    out = tmp_path / "many.png"
    plot_gc(records, None, out, "")
    assert out.read_bytes().startswith(PNG)


def test_samples_from_records_follow_each_cycle():
    records, _ = fake_run(cycles=3)
    samples = samples_from_records(records)
    assert len(samples) == 9
    assert [t for t, _ in samples] == sorted(t for t, _ in samples)
    assert samples[2] == (records[0]["end_ns"], records[0]["heap_marked"])


def test_plot_of_a_real_go_trace(tmp_path):
    records = [r for r in parse_trace(GO_TEXT)][:4]     # the chain run's cycles
    out = tmp_path / "go.png"
    plot_gc(records, None, out, "go1.19 ring")
    assert out.read_bytes().startswith(PNG)


def test_plot_cli_draws_a_go_trace_file(tmp_path, capsys):
    from concalloc.gc.plot import main
    trace = tmp_path / "trace.txt"
    trace.write_text(GO_TEXT)
    assert main([str(trace), str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").read_bytes().startswith(PNG)
    assert main([str(tmp_path / "missing.txt"), str(tmp_path / "x.png")]) == 2
    (tmp_path / "empty.txt").write_text("hello\n")
    assert main([str(tmp_path / "empty.txt"), str(tmp_path / "x.png")]) == 2
    assert main([]) == 2
    assert "no gctrace lines" in capsys.readouterr().err
