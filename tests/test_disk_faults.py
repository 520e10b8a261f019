"""Store opening, creation and disk faults (issue 18): atomic creation, the reserve against SIGBUS, read-only stores.

Real Qdrant Edge stores in real processes. The disk-full and read-only cases mount a small tmpfs (root only; skipped
with the reason otherwise) and always unmount it. Every process a test starts is stopped by its pid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pir.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=ENV
    )


def _errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("Error:")]


@contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A private tmpfs of ``size`` at ``path`` (root only), unmounted after."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root (disk-full / read-only store cases)")
    path.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _remount(path: Path, mode: str) -> None:
    r = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount {path} {mode}: {r.stderr.strip()}")


def _settings(data_dir: Path, **kw: Any) -> Any:
    from pir.config import get_settings

    return get_settings(data_dir=data_dir, qdrant={"url": None}, **kw)


DIM, TEXT_DIM = 16, 8


def _fill_store(data_dir: Path, n: int, seed: int = 0, **kw: Any) -> tuple[list[str], np.ndarray]:
    """Store ``n`` random points (ids uuid5 of seed/i) through the library; returns ids and image vectors."""
    from pir.search import open_store

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t = rng.standard_normal((n, TEXT_DIM)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}")) for i in range(n)]
    with open_store(_settings(data_dir, **kw)) as st:
        st.ensure_collection(DIM, encoder="test@1", text_dim=TEXT_DIM, text_encoder="t")
        st.upsert(ids, x, [{"patent_id": f"US{seed}{i:05d}", "year": 2000 + i % 20} for i in range(n)], text=list(t))
    return ids, x


# ------------------------------------------------------------------------------- atomic creation (two first ingests)
_CREATE = textwrap.dedent(
    """
    import sys, time, uuid
    import numpy as np
    from pir.config import get_settings
    from pir.search import open_store
    from pir.storewait import wait_for_store
    data, tag, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    s = get_settings(data_dir=data, qdrant={"url": None}, store_wait_s=60)
    time.sleep(max(0.0, start_at - time.time()))  # both processes reach the store at the same moment
    st = wait_for_store(lambda: open_store(s), timeout_s=60)
    try:
        st.ensure_collection(16, encoder="test@1", text_dim=8, text_encoder="t")
        x = np.random.default_rng(tag).standard_normal((10, 16)).astype(np.float32)
        ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/{i}")) for i in range(10)]
        st.upsert(ids, x, [{"patent_id": f"US{tag}{i}"} for i in range(10)], text=[np.ones(8, np.float32)] * 10)
    finally:
        st.close()
    print("ok", flush=True)
    """
)


@pytest.mark.slow  # ~12 s per attempt: two interpreter start-ups on 2 busy cores
def test_two_first_writers_into_a_new_data_dir_wait_for_each_other(tmp_path: Path) -> None:
    """Two processes create the same new store at the same moment, 5 times: both succeed, all 20 points stored."""
    from pir.search import open_store

    for attempt in range(5):
        data = tmp_path / f"new{attempt}"
        start_at = time.time() + 8  # after both have imported qdrant_edge (6 s on 2 busy cores)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CREATE, str(data), str(tag), str(start_at)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
                env=ENV,
            )
            for tag in (1, 2)
        ]
        outs = []
        for p in procs:
            try:
                outs.append(p.communicate(timeout=120))
            finally:
                p.kill()
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0 and out.strip() == "ok", f"attempt {attempt}: exit {p.returncode}\n{err[-1500:]}"
        with open_store(_settings(data)) as st:
            ids = [p.id for p in st.scroll()]
        assert len(ids) == 20 and len(set(ids)) == 20, (attempt, len(ids))


def test_store_lock_is_taken_before_creation_and_names_pir_serve(tmp_path: Path) -> None:
    """A process holding the lock of a not-yet-created store makes an opener wait or say who may hold it."""
    from pir.search import open_store
    from pir.search.store import StoreError
    from pir.storewait import StoreLock

    s = _settings(tmp_path / "pir", store_wait_s=0)
    lock = StoreLock(s.store_dir / s.qdrant.collection)
    assert lock.acquire()
    try:
        with pytest.raises(StoreError, match="in use by another process") as err:
            open_store(s)
        assert "pir serve" in str(err.value) and "\n" not in str(err.value)
        assert not (s.store_dir / s.qdrant.collection / "shard").exists()
    finally:
        lock.release()
    _fill_store(s.data_dir, 3)  # released: created now
    with open_store(s) as st:
        assert st.count() == 3


def test_info_on_a_data_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pir.cli import main

    f = tmp_path / "not-a-dir"
    f.write_text("x")
    res = CliRunner().invoke(main, ["--data-dir", str(f), "info"], env={"PIR_QDRANT__URL": ""})
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [f"Error: data dir {f} is a file, not a folder: point --data-dir at a folder"], res.output
