"""Shared fixtures. Tests that read ../shared/data skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PIR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real patent data in ../shared/data (skips the test when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real patent data not found at {SHARED_DATA} (a user's clone has no ../shared); skipping")
    return SHARED_DATA


@pytest.fixture()
def settings(tmp_path: Path):
    """Settings with a throw-away data directory and the embedded store."""
    from pir.config import get_settings

    return get_settings(data_dir=tmp_path / "pir", qdrant={"url": None}, worker={"broker_url": None})
