"""Every module imports on its own in a fresh interpreter (the torchvision shim must not depend on import order)."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ["pir.encoder.backbone", "pir.encoder.text", "pir.pipeline", "pir.bench.speed", "pir.workers.tasks"]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_in_a_fresh_interpreter(module: str) -> None:
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
