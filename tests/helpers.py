"""Small builders shared by tests (tiny random encoders, tiny corpora)."""

from __future__ import annotations

from pathlib import Path

from pir.encoder.model import EncoderConfig, PreprocessConfig, VisualEncoder, save_encoder_dir


def make_tiny_encoder(
    path: Path,
    *,
    embed_dim: int = 32,
    image_size: int = 64,
    name: str = "tiny-test",
    backbone: str = "test_efficientnet",
    text_model: str | None = None,
) -> Path:
    """Write a tiny random-init encoder directory (fast; for tests where the weights do not matter)."""
    import torch

    torch.manual_seed(0)
    cfg = EncoderConfig(
        name=name,
        backbone=backbone,
        pretrained="none",
        projector="linear",
        embed_dim=embed_dim,
        preprocess=PreprocessConfig(image_size=image_size),
        text_model=text_model,
    )
    model = VisualEncoder(cfg.backbone, projector=cfg.projector, embed_dim=cfg.embed_dim, pretrained=False)
    return save_encoder_dir(path, cfg, model)
