"""Running the concalloc command inside a test: main(argv) on a helper
thread, bounded, with its output captured (shared by the CLI tests)."""

from __future__ import annotations

import threading

from concalloc.cli import main


def cli(capsys, *argv: str, timeout: float = 120.0):
    """main(argv) on a helper thread, bounded; returns (code, stdout, stderr)."""
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("code", main(list(argv))), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"concalloc {' '.join(argv)} did not return within {timeout} s"
    out, err = capsys.readouterr()
    assert "code" in box, err
    return box["code"], out, err
