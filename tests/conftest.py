"""Shared fixtures. Tests that read ../shared/data skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PIR_SHARED_DATA", REPO.parent / "shared" / "data"))

# Test tiers by marker (registered in pyproject.toml; the default tier is `-m 'not slow'`):
#   shared       uses the real data in ../shared/data: applied below to every test that uses the `shared_data`
#                fixture (directly or through another fixture), never by hand
#   integration  real services, subprocesses, a live server or a browser: every test of the modules listed here,
#                plus single tests marked `@pytest.mark.integration` where they sit
#   slow         > ~20 s; marked by hand, run by `make test-slow`
INTEGRATION_MODULES = {
    "test_web.py": "a live uvicorn server, httpx and Chromium",
    "test_web_bench.py": "a live server subprocess",
    "test_workers.py": "Celery worker processes on Redis and RabbitMQ",
    "test_qdrant_container.py": "a Qdrant server in a container (testcontainers; skips without Docker)",
    "test_faults.py": "worker processes killed and restarted, private Redis and RabbitMQ servers",
    "test_enrich_openai.py": "a real chat-completions HTTP server",
    "test_enrich_llamacpp.py": "a llama.cpp server",
    "test_startup.py": "the CLI in fresh interpreters",
    "test_imports.py": "fresh interpreters",
    "test_architecture.py": "lint-imports in a subprocess",
    "test_types.py": "mypy in a subprocess",
    "test_markers.py": "pytest's collection in a subprocess",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Apply the `shared` and `integration` markers (see above)."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)
        if item.path.name in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real patent data in ../shared/data (skips the test when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real patent data not found at {SHARED_DATA} (a user's clone has no ../shared); skipping")
    return SHARED_DATA


@pytest.fixture()
def settings(tmp_path: Path):
    """Settings with a throw-away data directory and the embedded store."""
    from pir.core.config import get_settings

    return get_settings(data_dir=tmp_path / "pir", qdrant={"url": None}, worker={"broker_url": None})
