"""Options of ``pir train`` (torch-free, so the CLI builds its options from these fields without importing torch).

:class:`TrainConfig` is the single source of training options: the CLI generates ``--field-name`` options from its
fields (help = the field's description) and accepts ``--config FILE`` with the same keys. :data:`BASELINES` is the
registry of comparison recipes (one :func:`register_baseline` line each); :data:`LOSS_NAMES` lists the loss terms
of :data:`pir.encoder.losses.LOSSES` (a test keeps the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

#: Loss terms registered in :data:`pir.encoder.losses.LOSSES` (names only: no torch here).
LOSS_NAMES: tuple[str, ...] = ("contrastive", "class", "supcon", "arcface", "distill")


@dataclass(frozen=True)
class Recipe:
    """What a baseline changes: loss terms and weighting (None = the config's), text targets, whether it trains."""

    losses: tuple[str, ...] | None = None
    weighting: str | None = None
    text_mode: Literal["enriched", "class-name", "none"] = "enriched"
    trains: bool = True


#: Baseline name -> recipe. Adding a baseline is one :func:`register_baseline` line.
BASELINES: dict[str, Recipe] = {}


def register_baseline(name: str, recipe: Recipe) -> None:
    """Register a comparison recipe under ``name`` (``pir train --baseline NAME``)."""
    if name in BASELINES:
        raise ValueError(f"baseline {name!r} is already registered")
    BASELINES[name] = recipe


register_baseline("zero-shot", Recipe(trains=False, text_mode="none"))  # the ImageNet backbone as it is
register_baseline("arcface", Recipe(losses=("arcface",), weighting="fixed", text_mode="none"))
register_baseline("instance-only", Recipe(losses=("contrastive",), weighting="fixed"))
register_baseline("no-llm-text", Recipe(text_mode="class-name"))
register_baseline("no-uncertainty", Recipe(weighting="fixed"))


class AugmentConfig(BaseModel):
    """Line-drawing augmentations (probabilities per image). ``enabled=False`` turns all of them off."""

    enabled: bool = True
    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    vflip: float = 0.0
    rotate_deg: float = 10.0
    erase_p: float = 0.25
    erase_scale: tuple[float, float] = (0.02, 0.15)
    grid_p: float = 0.15
    grid_cells: tuple[int, int] = (4, 8)
    grid_ratio: float = 0.3
    thickness_p: float = 0.2


class TrainConfig(BaseModel):
    """Everything a training run depends on (saved in ``config.json`` under ``training.config``)."""

    # Model
    backbone: str = Field("tf_efficientnet_lite0", description="timm backbone name")
    projector: Literal["mlp", "linear"] = Field("mlp", description="projector into the text space")
    embed_dim: int | None = Field(None, description="projector output size; None = the text encoder's (ArcFace: 384)")
    text_model: str | None = Field(None, description="text encoder; None = settings.text.model (minilm)")
    pretrained: bool = Field(True, description="start from the packaged ImageNet weights")
    freeze_backbone: bool = Field(
        True, description="freeze the whole backbone (BN statistics too): its embedding stays the zero-shot one"
    )
    freeze_stages: int = Field(0, description="freeze the stem and the first N stages (when the backbone trains)")
    freeze_bn: bool = Field(False, description="keep BatchNorm statistics frozen while training")
    image_weight: float | None = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="image search vector = [w * zero-shot, sqrt(1-w^2) * text-space]; None = text-space only",
    )
    # Objective
    losses: tuple[str, ...] = Field(("contrastive", "class", "supcon"), description="loss terms, comma-separated")
    weighting: Literal["uncertainty", "fixed"] = Field("uncertainty", description="how loss terms are combined")
    baseline: str | None = Field(None, description="comparison recipe: " + ", ".join(BASELINES))
    temperature: float = Field(0.07, description="initial image-text InfoNCE temperature")
    class_temperature: float = Field(0.05, description="initial class-prototype temperature")
    tau: float = Field(1.0, description="logit adjustment strength (1 = balanced softmax, 0 = plain)")
    supcon_temperature: float = Field(0.1, description="SupCon temperature")
    supcon_weighting: Literal["inverse_frequency", "inverse_sqrt", "none"] = Field(
        "inverse_frequency", description="SupCon per-anchor class weights"
    )
    arcface_margin: float = Field(28.6, description="ArcFace margin in degrees")
    arcface_scale: float = Field(64.0, description="ArcFace scale")
    distill_temperature: float = Field(0.05, description="temperature of the similarity distillation to the backbone")
    # Optimisation
    epochs: int = Field(10, description="training epochs")
    batch_size: int = Field(32, description="images per micro-batch")
    grad_accum: int = Field(1, description="micro-batches per optimiser step")
    lr: float = Field(1e-3, description="learning rate of the projector")
    backbone_lr: float = Field(1e-4, description="learning rate of the backbone")
    loss_lr: float | None = Field(None, description="learning rate of the loss parameters; None = lr")
    weight_decay: float = Field(0.05, description="AdamW weight decay (weights only)")
    warmup_steps: int | None = Field(None, description="warm-up steps; None = warmup_ratio of all steps")
    warmup_ratio: float = Field(0.1, description="share of steps for the linear warm-up")
    min_lr_ratio: float = Field(0.01, description="final learning rate / peak learning rate (cosine)")
    grad_clip: float | None = Field(5.0, description="gradient norm clip; None = off")
    amp: bool = Field(True, description="bf16 autocast on CUDA")
    # Data
    image_size: int = Field(224, description="input side in pixels")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="line-drawing augmentations")
    balanced_sampler: bool = Field(False, description="class-balanced sampling with replacement")
    sampler_power: float = Field(0.5, description="balanced sampling weight = count(class) ** -power")
    max_descriptions: int | None = Field(10, description="descriptions kept per figure; None = all")
    val_fraction: float = Field(0.2, description="share of each class's patents for validation (picks the epoch)")
    test_fraction: float = Field(0.2, description="share of each class's patents held out for the test report")
    format: str | None = Field(None, description="reader format; None = detect")
    class_column: str | None = Field(None, description="label column of a generic folder's CSV")
    columns: dict[str, str] | None = Field(None, description="CSV column mapping of a generic folder")
    # Run
    seed: int = Field(0, description="seed of the split, initialisation and batches")
    device: str | None = Field(None, description="cpu, cuda, cuda:N; None = settings.encoder.device")
    num_workers: int = Field(0, description="image decoding threads")

    @field_validator("baseline")
    @classmethod
    def _known_baseline(cls, v: str | None) -> str | None:
        if v is not None and v not in BASELINES:
            raise ValueError(f"unknown baseline {v!r}; choose from {', '.join(BASELINES)}")
        return v

    @field_validator("losses", mode="before")
    @classmethod
    def _known_losses(cls, v: Any) -> Any:
        names = [t.strip() for t in v.split(",") if t.strip()] if isinstance(v, str) else list(v)
        bad = [t for t in names if t not in LOSS_NAMES]
        if bad or not names:
            raise ValueError(f"unknown loss term(s) {bad or names}; choose from {', '.join(LOSS_NAMES)}")
        return tuple(names)

    def recipe(self) -> tuple[tuple[str, ...], str, str]:
        """(loss terms, weighting, text mode) after applying ``baseline``."""
        r = BASELINES[self.baseline] if self.baseline else Recipe()
        return (r.losses or tuple(self.losses)), (r.weighting or self.weighting), r.text_mode

    @property
    def trains(self) -> bool:
        """False for a baseline that only packages the pretrained backbone (``zero-shot``)."""
        return BASELINES[self.baseline].trains if self.baseline else True


@dataclass(frozen=True)
class CliField:
    """One scalar option of :class:`TrainConfig` as a command line shows it."""

    name: str
    type: Any
    default: Any
    help: str


def cli_fields(skip: tuple[str, ...] = ("augment", "columns")) -> list[CliField]:
    """(name, annotation, default, help) of every field a command line can set (nested/mapping fields skipped)."""
    return [
        CliField(name, f.annotation, f.default, f.description or "")
        for name, f in TrainConfig.model_fields.items()
        if name not in skip
    ]
