"""The image encoder: offline ImageNet backbones, directory round trip, device handling, text refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pir.encoder.device import DeviceError, resolve_device
from pir.encoder.model import (
    EncoderConfig,
    PreprocessConfig,
    VisualEncoder,
    ZeroShotTextError,
    load_encoder,
    save_encoder_dir,
)


def _drawing(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0, x1, y1 = rng.integers(5, size - 5, 4)
        d.rectangle([min(x0, x1), min(y0, y1), max(x0, x1) + 3, max(y0, y1) + 3], outline=0, width=2)
    return img


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = EncoderConfig(
        name="tiny-test",
        backbone="test_efficientnet",
        pretrained="none",
        projector="linear",
        embed_dim=16,
        preprocess=PreprocessConfig(image_size=64),
        text_model=None,
    )
    model = VisualEncoder(cfg.backbone, projector=cfg.projector, embed_dim=cfg.embed_dim, pretrained=False)
    return save_encoder_dir(tmp_path_factory.mktemp("enc") / "tiny", cfg, model)


def test_lite0_loads_offline_and_embeds_normalised() -> None:
    enc = load_encoder("tf_efficientnet_lite0")
    assert enc.config.pretrained == "imagenet" and enc.dim == 1280
    v = enc.encode_pil([_drawing(0, 224), _drawing(1, 224)])
    assert v.dtype == np.float32 and v.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # the same drawing twice embeds identically; different drawings do not
    v2 = enc.encode_pil([_drawing(0, 224)])
    np.testing.assert_allclose(v[0], v2[0], atol=1e-5)
    assert float(v[0] @ v[1]) < 0.9999


def test_mobilenet_loads_offline() -> None:
    enc = load_encoder("mobilenetv2_100")
    assert enc.config.pretrained == "imagenet" and enc.config.preprocess.mean[0] == pytest.approx(0.485)


def test_directory_round_trip_gives_identical_embeddings(tiny_dir: Path) -> None:
    a = load_encoder(tiny_dir)
    b = load_encoder(str(tiny_dir))
    imgs = [_drawing(i, 64) for i in range(3)]
    np.testing.assert_allclose(a.encode_pil(imgs), b.encode_pil(imgs), atol=1e-6)
    assert a.version == b.version and a.dim == 16
    # batching does not change the result
    np.testing.assert_allclose(a.encode_pil(imgs, batch_size=1), a.encode_pil(imgs, batch_size=3), atol=1e-5)


def test_zero_shot_encoder_refuses_text(tiny_dir: Path) -> None:
    with pytest.raises(ZeroShotTextError, match="zero-shot"):
        load_encoder(tiny_dir).encode_text(["a lamp with a curved arm"])


def test_bad_encoder_specs_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not an encoder directory"):
        load_encoder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such encoder directory"):
        load_encoder(tmp_path / "missing" / "enc")
    with pytest.raises(ValueError, match="unknown timm backbone"):
        load_encoder("no_such_backbone_xyz")


def test_cuda_without_cuda_is_an_error_not_a_fallback(tiny_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(DeviceError):
        load_encoder(tiny_dir, device="cuda")


class _FakeText:
    """A stand-in TEXT encoder (not the thing under test): fixed 16-d vectors per text."""

    dim = 16

    def encode(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(abs(hash(tuple(texts))) % 2**32)
        v = rng.standard_normal((len(texts), 16)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_fused_encoder_keeps_the_zero_shot_embedding_and_ranks_text_by_its_text_part(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = VisualEncoder("test_efficientnet", projector="mlp", embed_dim=16, pretrained=False, image_weight=0.6)
    model.freeze_trunk()
    torch.manual_seed(0)
    zero = VisualEncoder("test_efficientnet", projector="none", pretrained=False)
    x = torch.randn(5, 3, 64, 64)
    model.train()  # a frozen trunk stays in eval mode: BatchNorm statistics do not move
    with torch.no_grad():
        model.head[0].weight.add_(1.0)  # "training" the projector
        out = model(x)
        model(x)
    assert not model.trunk.training and all(not p.requires_grad for p in model.trunk.parameters())
    zero.eval()
    with torch.no_grad():
        zs = zero(x)
    assert out.shape == (5, model.feat_dim + 16) and torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(out[:, : model.feat_dim] / 0.6, zs, atol=1e-5)  # the zero-shot part, exactly

    cfg = EncoderConfig(
        name="fused",
        backbone="test_efficientnet",
        pretrained="trained",
        projector="mlp",
        embed_dim=16,
        preprocess=PreprocessConfig(image_size=64),
        text_model="minilm",
        image_weight=0.6,
    )
    enc = load_encoder(save_encoder_dir(tmp_path / "fused", cfg, model))
    imgs = [_drawing(i, 64) for i in range(6)]
    vecs = enc.encode_images(imgs)
    text_part = enc.text_space(vecs)
    assert vecs.shape == (6, enc.dim) and text_part.shape == (6, 16)
    q = enc.encode_text(["a lamp"], text_encoder_factory=lambda *a, **k: _FakeText())
    assert q.shape == (1, enc.dim)
    # a text query ranks the fused image vectors exactly as the text-space part alone
    assert list(np.argsort(-(vecs @ q[0]))) == list(np.argsort(-(text_part @ q[0, -16:])))
