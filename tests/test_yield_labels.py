"""Every yield-point label the code uses is in concalloc.yieldlabels, and
every label there is used: a saved schedule replays only while labels stay
the same, so they are kept in one table (fails on a new, renamed or dropped label)."""

from __future__ import annotations

import re
from pathlib import Path

from concalloc.yieldlabels import FAMILIES, LABELS

SRC = Path(__file__).resolve().parents[1] / "concalloc"
# yp("x"), yield_point("x"), _yield("x"), _choose(w, "x"); YIELD_* = "x"; _lbl_* = "x"
CALL = re.compile(r'\b(?:yp|yield_point|_yield|_decide|_choose|block)\((?:[\w.]+,\s*)?(f?)"([^"]+)"')
# a label passed last to a helper that waits under it: self._offCPUUntil(wake, "x")
OFFCPU = re.compile(r'\b_offCPUUntil\(.*,\s*(f?)"([^"]+)"\)')
CONST = re.compile(r'\b(?:YIELD_[A-Z_]+|_lbl_\w+)\s*=\s*"([^"]+)"')
LABEL_ATTR = re.compile(r'_label(?:, self\._unlock_label)?\s*=\s*(f?)"([^"]+)"(?:,\s*(f?)"([^"]+)")?')


def _family(text: str) -> str:
    return re.sub(r"\{[^}]*\}", "{name}", text)


def used_labels() -> tuple[set[str], set[str]]:
    fixed, families = set(), set()
    for path in SRC.rglob("*.py"):
        if path.name == "yieldlabels.py":
            continue
        text = path.read_text()
        for f, label in CALL.findall(text) + OFFCPU.findall(text):
            (families if f else fixed).add(_family(label) if f else label)
        fixed.update(CONST.findall(text))
        for f1, l1, f2, l2 in LABEL_ATTR.findall(text):
            for f, label in ((f1, l1), (f2, l2)):
                if label:
                    (families if f else fixed).add(_family(label) if f else label)
    return fixed, families


def test_every_label_used_is_in_the_table():
    fixed, families = used_labels()
    assert fixed <= set(LABELS), f"labels missing from concalloc/yieldlabels.py: {sorted(fixed - set(LABELS))}"
    assert families <= set(FAMILIES), f"families missing: {sorted(families - set(FAMILIES))}"


def test_every_label_in_the_table_is_used():
    fixed, families = used_labels()
    assert set(LABELS) <= fixed, f"labels in the table that no code uses: {sorted(set(LABELS) - fixed)}"
    assert set(FAMILIES) <= families, f"families no code uses: {sorted(set(FAMILIES) - families)}"


def test_the_check_sees_a_new_label(tmp_path, monkeypatch):
    """The scan is what keeps the table honest: a label it cannot see would pass unnoticed."""
    fixed, _ = used_labels()
    assert {"wb.read_old", "mark.scan_field", "sweep.span", "alloc", "exit"} <= fixed
    assert not CALL.findall('gc.yp(label)')             # a variable is no label
    assert CALL.findall('gc.yp("mark.new_step")') == [("", "mark.new_step")]
