"""Start-up is a feature: help, usage errors and ``pir info`` never import torch (or timm, Celery)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from pir.cli import main
try:
    main({args!r}, standalone_mode=True)
except SystemExit as e:
    code = e.code
heavy = [m for m in ("torch", "timm", "celery", "transformers") if m in sys.modules]
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def _probe(*args: str, data_dir: Path | None = None) -> dict:
    argv = (["--data-dir", str(data_dir)] if data_dir else []) + list(args)
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=argv)], capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"stderr": out.stderr}


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("search", "--help"),
        ("ingest", "--help"),
        ("train", "--help"),
        ("bench", "--help"),
        ("search", "--k", "0", "x.png"),  # usage error: --k must be >= 1
        ("ingest",),  # usage error: missing PATH
        ("nosuchcommand",),
    ],
)
def test_help_and_usage_errors_import_no_torch(args: tuple[str, ...]) -> None:
    d = _probe(*args)
    assert d["heavy"] == [], d
    assert d["code"] in (0, 2), d
    if d["code"] == 2:
        assert "Error" in d["stderr"] and "Traceback" not in d["stderr"]


def test_k_below_one_is_refused(tmp_path: Path) -> None:
    for k in ("0", "-1"):
        d = _probe("search", "--text", "lamp", "--k", k, data_dir=tmp_path)
        assert d["code"] == 2 and "--k" in d["stderr"], d


def test_info_imports_no_torch(tmp_path: Path) -> None:
    d = _probe("info", "--json", data_dir=tmp_path)
    assert d["code"] in (0, None) and d["heavy"] == [], d


def test_search_on_an_empty_store_fails_before_loading_the_encoder(tmp_path: Path) -> None:
    d = _probe("search", "--text", "lamp", data_dir=tmp_path)
    assert d["code"] == 1 and "pir ingest" in d["stderr"] and "torch" not in d["heavy"], d


def test_cli_search_options_are_the_request_fields() -> None:
    """`pir search` options are generated from SearchRequest: one default (the request's), one validator."""
    from click.testing import CliRunner

    from pir.cli import main
    from pir.cli.search import build_request, search
    from pir.search.request import DEFAULT_TEXT_WEIGHT, SearchRequest

    names = {p.name for p in search.params}
    assert set(SearchRequest.model_fields) - {"drawings"} <= names
    assert all(p.default is None for p in search.params if p.name in SearchRequest.model_fields)
    assert build_request([], {"words": "lamp", "text_weight": None}).text_weight == DEFAULT_TEXT_WEIGHT
    assert build_request([], {"words": "lamp", "text_weight": 0.0}).text_weight == 0.0  # an explicit 0 stays 0
    help_text = CliRunner().invoke(main, ["search", "--help"]).output
    assert f"(default: {DEFAULT_TEXT_WEIGHT})" in help_text
