"""The architecture holds: import-linter's contracts (pyproject.toml) and thin CLI commands."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout or "broken" not in out.stdout


def _command_bodies() -> list[tuple[str, int]]:
    found = []
    for p in sorted((ROOT / "pir" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                ".command" in ast.unparse(d) or ".group" in ast.unparse(d) for d in node.decorator_list
            ):
                body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body
                n = body[-1].end_lineno - body[0].lineno + 1 if body else 0
                found.append((f"{p.name}:{node.name}", n))
    return found


def test_every_cli_command_is_thin() -> None:
    bodies = _command_bodies()
    assert len(bodies) >= 10, bodies  # the scan finds the commands
    assert [b for b in bodies if b[1] > 15] == []
