"""Embedding cache of the benchmarks: one row per (encoder key, sha256 of the image bytes).

The encoder key (:func:`cache_key`) is the encoder's content version (config + weights) plus the device type and
the compute precision (bf16 autocast on CUDA, fp32 elsewhere), so a CUDA run never serves vectors to a CPU run.
Every encoder embeds each query and gallery image once across bench runs: a second run over the same images with the
same encoder weights reads every vector back (0 new embeddings). The cache is one SQLite file under
``settings.cache_dir / "bench_emb"``; vectors are stored as raw float32 bytes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pir.core.sqlite_cache import open_sqlite
from pir.ingest.schema import file_sha256

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder

log = logging.getLogger(__name__)

CACHE_FILE = "embeddings.sqlite"
_IN_CHUNK = 500


@dataclass
class EmbedResult:
    """Embeddings of a list of images.

    Attributes:
        vectors: float32 (N, dim); rows of failed images are zero.
        ok: True where the image was embedded (or found in the cache).
        n_new: Images embedded by the encoder in this call.
        n_cached: Images read from the cache.
        failures: ``(path, reason)`` of each image that could not be read.
    """

    vectors: np.ndarray
    ok: np.ndarray
    n_new: int = 0
    n_cached: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


class EmbeddingCache:
    """SQLite store of image embeddings keyed by ``(encoder key, image_sha256)`` (see :func:`cache_key`).

    Args:
        path: The SQLite file (parent folders are created).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = open_sqlite(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (version TEXT NOT NULL, sha TEXT NOT NULL, dim INTEGER NOT NULL, "
            "vec BLOB NOT NULL, PRIMARY KEY (version, sha))"
        )
        self._db.commit()

    @classmethod
    def for_settings(cls, cache_dir: str | Path) -> EmbeddingCache:
        """The cache file under ``cache_dir / "bench_emb"`` (``settings.cache_dir``)."""
        return cls(Path(cache_dir) / "bench_emb" / CACHE_FILE)

    def get_many(self, version: str, shas: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors of these image hashes (missing hashes are left out)."""
        out: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(shas))
        for s in range(0, len(uniq), _IN_CHUNK):
            part = uniq[s : s + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT sha, dim, vec FROM emb WHERE version = ? AND sha IN ({marks})", [version, *part]
            )
            for sha, dim, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.size == dim:
                    out[sha] = vec
        return out

    def put_many(self, version: str, shas: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors (one row per hash; an existing row is overwritten)."""
        arr = np.asarray(vectors, dtype=np.float32)
        self._db.executemany(
            "INSERT OR REPLACE INTO emb (version, sha, dim, vec) VALUES (?, ?, ?, ?)",
            [(version, sha, int(arr.shape[1]), arr[i].tobytes()) for i, sha in enumerate(shas)],
        )
        self._db.commit()

    def count(self, version: str | None = None) -> int:
        """Number of cached vectors (of one encoder version, or all)."""
        if version is None:
            return int(self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])
        return int(self._db.execute("SELECT COUNT(*) FROM emb WHERE version = ?", [version]).fetchone()[0])

    def close(self) -> None:
        """Close the database (idempotent)."""
        try:
            self._db.close()
        except sqlite3.Error:  # pragma: no cover - already closed
            pass

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compute_dtype(encoder: ImageEncoder) -> str:
    """The precision the encoder's forward pass runs in (``encode_pil`` autocasts to bf16 on CUDA only)."""
    given = getattr(encoder, "compute_dtype", None)  # an encoder that states its own precision wins
    if given:
        return str(given)
    return "bf16" if encoder.device.type == "cuda" else "fp32"


def cache_key(encoder: ImageEncoder) -> str:
    """``<version>|<device type>|<dtype>``: what keys the cached vectors of this encoder."""
    return f"{encoder.version}|{encoder.device.type}|{compute_dtype(encoder)}"


def _file_hashes(paths: Sequence[str | Path], shas: Sequence[str | None] | None, res: EmbedResult) -> list[str | None]:
    """sha256 of each file (given ones reused); an unreadable file is a failure and gets None."""
    hashes: list[str | None] = [None] * len(paths)
    for i, p in enumerate(paths):
        given = shas[i] if shas is not None else None
        if given:
            hashes[i] = given
            continue
        try:
            hashes[i] = file_sha256(Path(p))
        except OSError as e:
            res.failures.append((str(p), f"cannot read file: {e.strerror or e}"))
    return hashes


def _use_cached(hashes: list[str | None], cached: dict[str, np.ndarray], dim: int, res: EmbedResult) -> list[int]:
    """Fill the rows found in the cache; the indices still to embed."""
    todo: list[int] = []
    for i, h in enumerate(hashes):
        if h is None:
            continue
        vec = cached.get(h)
        if vec is not None and vec.size == dim:
            res.vectors[i] = vec
            res.ok[i] = True
            res.n_cached += 1
        else:
            todo.append(i)
    return todo


def _load_chunk(
    encoder: ImageEncoder,
    paths: Sequence[str | Path],
    chunk: list[int],
    hashes: list[str | None],
    first_of: dict[str, int],
    res: EmbedResult,
) -> tuple[list[Any], list[int]]:
    """Images of one chunk (one per unique hash not seen yet); unreadable files are failures."""
    from pir.ingest.images import ImageLoadError  # lazy: start-up

    images, rows = [], []
    for i in chunk:
        h = hashes[i]
        assert h is not None
        if h in first_of:
            continue
        try:
            images.append(encoder.load_image(paths[i]))
        except ImageLoadError as e:
            res.failures.append((str(paths[i]), e.reason))
            continue
        except Exception as e:  # noqa: BLE001  (one bad file never stops the bench)
            res.failures.append((str(paths[i]), f"{type(e).__name__}: {e}"))
            continue
        first_of[h] = i
        rows.append(i)
    return images, rows


def embed_paths(
    encoder: ImageEncoder,
    paths: Sequence[str | Path],
    cache: EmbeddingCache,
    *,
    batch_size: int = 32,
    shas: Sequence[str | None] | None = None,
) -> EmbedResult:
    """Embed image files through the cache: hash each file, read cached vectors, embed only the rest.

    One unreadable file is recorded in :attr:`EmbedResult.failures` and the others go on.

    Args:
        encoder: The image encoder (:func:`cache_key` keys the cache).
        paths: Image files.
        cache: The embedding cache.
        batch_size: Images per forward pass.
        shas: Precomputed sha256 of each file (None entries are computed).

    Returns:
        The :class:`EmbedResult` (rows in the order of ``paths``).
    """
    n = len(paths)
    res = EmbedResult(vectors=np.zeros((n, encoder.dim), dtype=np.float32), ok=np.zeros(n, dtype=bool))
    hashes = _file_hashes(paths, shas, res)
    version = cache_key(encoder)
    todo = _use_cached(hashes, cache.get_many(version, [h for h in hashes if h]), encoder.dim, res)
    first_of: dict[str, int] = {}  # the misses, batch by batch (one image per unique hash), cached as we go
    for s in range(0, len(todo), batch_size * 4):
        images, rows = _load_chunk(encoder, paths, todo[s : s + batch_size * 4], hashes, first_of, res)
        if not rows:
            continue
        emb = encoder.encode_pil(images, batch_size=batch_size)
        res.vectors[rows] = emb
        res.ok[rows] = True
        cache.put_many(version, [hashes[i] for i in rows], emb)  # type: ignore[misc]
        res.n_new += len(rows)
    for i in todo:  # duplicates of an image embedded above
        h = hashes[i]
        if not res.ok[i] and h in first_of and res.ok[first_of[h]]:
            res.vectors[i] = res.vectors[first_of[h]]
            res.ok[i] = True
    for path, reason in res.failures:
        log.warning("bench: skipped %s: %s", path, reason)
    return res
