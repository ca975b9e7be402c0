"""Every test under stress/ carries the `stress` marker, so that

    pytest stress -m stress -n auto

runs the whole campaign (smoke and long), while the default selection
(addopts: -m 'not long') keeps only the smoke subset CI runs."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/stress/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.stress)
