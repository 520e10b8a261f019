"""``pir snapshot`` / ``pir restore`` (issue 18): a consistent copy of the embedded store, restored and compared.

Real Qdrant Edge stores. The Qdrant-server path needs a server (none runs here, no Docker); qdrant-client's local
mode has no snapshots, which must be one line.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

DIM, TEXT_DIM = 16, 8


def _settings(data_dir: Path, **kw: Any) -> Any:
    from pir.core.config import get_settings

    kw.setdefault("qdrant", {"url": None})
    return get_settings(data_dir=data_dir, **kw)


def _fill(data_dir: Path, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    from pir.search import open_store

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t = rng.standard_normal((n, TEXT_DIM)).astype(np.float32)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}")) for i in range(n)]
    with open_store(_settings(data_dir)) as st:
        st.ensure_collection(DIM, encoder="test@1", text_dim=TEXT_DIM, text_encoder="t")
        st.upsert(ids, x, [{"patent_id": f"US{seed}{i:05d}", "year": 1990 + i % 30} for i in range(n)], text=list(t))
    return ids, x


def _contents(data_dir: Path) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    from pir.search import open_store

    with open_store(_settings(data_dir)) as st:
        return {p.id: (p.vector, p.payload) for p in st.scroll(with_vectors=True)}


def _run(*args: str, data_dir: Path) -> Any:
    from pir.cli import main

    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], env={"PIR_QDRANT__URL": ""})


def _one_error(res: Any) -> str:
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


def test_snapshot_then_restore_into_an_empty_data_dir_is_identical(tmp_path: Path) -> None:
    ids, x = _fill(tmp_path / "a", 60, seed=0)
    snap = tmp_path / "backup"
    res = _run("snapshot", str(snap), "--json", data_dir=tmp_path / "a")
    assert res.exit_code == 0, res.output
    assert (snap / "pir_snapshot.json").exists() and (snap / "collection" / "shard").is_dir()
    _fill(tmp_path / "a", 5, seed=9)  # the source changes after the snapshot: the snapshot does not
    res = _run("restore", str(snap), "--json", data_dir=tmp_path / "b")
    assert res.exit_code == 0, res.output
    got, want = _contents(tmp_path / "b"), _contents(tmp_path / "a")
    assert sorted(got) == sorted(ids) and len(got) == 60  # counts and ids
    for pid in ids:
        np.testing.assert_allclose(got[pid][0], want[pid][0], atol=1e-6)  # vectors
        assert got[pid][1] == want[pid][1]  # payloads
    from pir.search import open_store

    with open_store(_settings(tmp_path / "b")) as st:  # searchable, same vector sizes and encoder
        assert (st.dim(), st.text_dim(), st.encoder()) == (DIM, TEXT_DIM, "test@1")
        assert st.search(x[11], k=1)[0].id == ids[11]


def test_restore_over_points_needs_force(tmp_path: Path) -> None:
    ids, _ = _fill(tmp_path / "a", 20, seed=0)
    snap = tmp_path / "backup"
    assert _run("snapshot", str(snap), data_dir=tmp_path / "a").exit_code == 0
    other, _ = _fill(tmp_path / "b", 7, seed=1)
    line = _one_error(_run("restore", str(snap), data_dir=tmp_path / "b"))
    assert "already holds 7 points" in line and "--force" in line
    assert sorted(_contents(tmp_path / "b")) == sorted(other)  # untouched
    res = _run("restore", str(snap), "--force", data_dir=tmp_path / "b")
    assert res.exit_code == 0, res.output
    assert sorted(_contents(tmp_path / "b")) == sorted(ids)
    assert not list((tmp_path / "b" / "qdrant-edge").glob(".*.restoring"))  # no staging left behind


def test_snapshot_and_restore_errors_are_one_line(tmp_path: Path) -> None:
    _fill(tmp_path / "a", 3, seed=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert "not empty" in _one_error(_run("snapshot", str(tmp_path / "full"), data_dir=tmp_path / "a"))
    assert "does not exist" in _one_error(_run("snapshot", str(tmp_path / "s"), data_dir=tmp_path / "empty"))
    assert "is not a pir snapshot" in _one_error(_run("restore", str(tmp_path / "full"), data_dir=tmp_path / "b"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "pir_snapshot.json").write_text("{not json")
    assert "not a readable pir snapshot" in _one_error(_run("restore", str(tmp_path / "bad"), data_dir=tmp_path / "b"))


def test_local_mode_says_it_has_no_snapshots(tmp_path: Path) -> None:
    from pir.search.snapshot import SnapshotError, snapshot

    s = _settings(tmp_path / "m", qdrant={"url": ":memory:"})
    with pytest.raises(SnapshotError, match="does not exist|no snapshots"):
        snapshot(s, tmp_path / "snap")
    from pir.search import snapshot as snap_mod
    from pir.search.server import ServerStore

    with pytest.raises(SnapshotError, match="local mode does not support them"):
        snap_mod._server(ServerStore.__new__(ServerStore), s)
