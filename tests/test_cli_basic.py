import json

from concalloc.cli import main


def test_sizeclasses_json_has_go_columns(capsys):
    assert main(["sizeclasses", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "concalloc-sizeclasses" and doc["format_version"] == 1
    rows = doc["classes"]
    assert len(rows) == 67
    assert set(rows[0]) == {"class", "bytes_per_obj", "bytes_per_span", "objects", "tail_waste", "max_waste_pct"}


def test_version(capsys):
    assert main(["version"]) == 0
    assert "concalloc" in capsys.readouterr().out
