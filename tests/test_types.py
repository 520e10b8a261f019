"""Type checking is part of the test run: mypy on pir/ (basic mode, config in pyproject.toml) finds no error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # `make test` runs `mypy pir` as its own first step (about a minute cold); this re-run is warm
@pytest.mark.timeout(300)
def test_mypy_finds_no_type_error() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[dev]')")
    # the incremental cache (.mypy_cache, git-ignored) makes a re-run take seconds; a cold run takes about a minute
    out = subprocess.run([sys.executable, "-m", "mypy", "pir"], cwd=REPO, capture_output=True, text=True, timeout=290)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
