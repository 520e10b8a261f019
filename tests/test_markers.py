"""Test tiers by marker: `shared` reaches every test that uses ../shared/data, `integration` the listed modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import INTEGRATION_MODULES, REPO


def _collect(marker: str, *files: str) -> set[str]:
    """The test ids that a real `pytest -m MARKER` selects from ``files`` (collection only, no test runs)."""
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, *files]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 5), out.stdout[-2000:] + out.stderr[-2000:]  # 5: nothing selected
    return {line.strip() for line in out.stdout.splitlines() if "::" in line}


def test_collected_tests_using_shared_data_are_marked_shared(request: pytest.FixtureRequest) -> None:
    """Whatever this session collected: a test that uses `shared_data` carries `shared` (the conftest hook)."""
    unmarked = [
        item.nodeid
        for item in request.session.items
        if "shared_data" in getattr(item, "fixturenames", ()) and item.get_closest_marker("shared") is None
    ]
    assert not unmarked, unmarked


def test_marker_selection_splits_the_shared_tests() -> None:
    """`-m shared` and `-m 'not shared'` split test_readers.py: its shared_data tests on one side, the rest on the
    other (the hook applies the marker before selection, through fixtures too)."""
    shared = _collect("shared", "tests/test_readers.py")
    rest = _collect("not shared", "tests/test_readers.py")
    assert shared and rest and not shared & rest
    src = (REPO / "tests" / "test_readers.py").read_text()
    for nodeid in shared:
        name = nodeid.split("::")[-1].split("[")[0]
        assert f"def {name}(" in src and "shared_data" in src.split(f"def {name}(")[1].split("\ndef ")[0], nodeid


def test_integration_marker_follows_the_module_list() -> None:
    assert "test_workers.py" in INTEGRATION_MODULES and "test_readers.py" not in INTEGRATION_MODULES
    got = _collect("integration", "tests/test_imports.py", "tests/test_metrics.py")
    assert got and all(n.startswith("tests/test_imports.py::") for n in got), got
