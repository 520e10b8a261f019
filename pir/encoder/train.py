"""Train an image encoder into a frozen text space (``pir train``), and the baselines it is compared with.

Recipe (Lo et al. 2024, "LLM informed patent image retrieval", on our backbones):

* visual side: a timm backbone (default ``tf_efficientnet_lite0`` with offline ImageNet weights) + a projector to
  the text dimension; optionally the first stages frozen;
* text side: a frozen sentence encoder (default all-MiniLM-L6-v2); every figure's descriptions (enrichment, or its
  own metadata when enrichment fails) and every class's prototype texts are embedded once, through the on-disk
  :class:`~pir.encoder.text.TextEmbeddingCache`;
* losses (:class:`~pir.encoder.losses.PirLoss`): image↔description InfoNCE (one description sampled per image and
  step), image→class-prototype cross-entropy with logit adjustment, class-balanced SupCon, combined by learnable
  uncertainty weights;
* AdamW (backbone / head / loss parameter groups; logit scales, ``s_i`` and ArcFace ``W`` have no weight decay),
  linear warm-up then cosine decay, gradient accumulation, bf16 autocast on CUDA, optional class-balanced sampling,
  line-drawing augmentations; validation mAP / R@10 / MRR@10 on held-out patents after every epoch, the best
  epoch kept.

Baselines (``baseline=``): ``zero-shot`` (no training: the ImageNet backbone saved as an encoder directory),
``arcface`` (ArcFace on class labels, no text), ``instance-only`` (contrastive only), ``no-llm-text`` (class names
as the only text), ``no-uncertainty`` (fixed equal loss weights).

Output directory (an encoder directory :func:`pir.encoder.model.load_encoder` reads)::

    out/config.json, out/model.safetensors   # best epoch by validation mAP (the last one without validation)
    out/last/                                 # last epoch, same layout
    out/checkpoint.pt                         # optimiser, scheduler, loss, step, epoch, RNG: for resume=True
    out/history.json, out/split.json          # per-epoch log; the train/validation patents

Example:
    >>> cfg = TrainConfig(epochs=5, image_size=160)
    >>> result = train(Path("corpus/"), Path("runs/enc"), cfg, get_settings())
    >>> result.best_metrics["overall"]["map"]
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import nn
from tqdm.auto import tqdm

import pir.encoder._tvshim  # noqa: F401  (before timm)
from pir.bench.metrics import evaluate_embeddings, split_head_tail
from pir.config import Settings
from pir.encoder.backbone import default_norm, set_threads
from pir.encoder.data import (
    AugmentConfig,
    LineArtAugment,
    LoadedImages,
    build_descriptions,
    class_prototype_texts,
    embed_prototypes,
    embed_text_targets,
    epoch_indices,
    preload_images,
    to_input,
)
from pir.encoder.device import resolve_device
from pir.encoder.losses import PirLoss
from pir.encoder.model import EncoderConfig, PreprocessConfig, VisualEncoder, builtin_config, save_encoder_dir
from pir.ingest.schema import PatentFigure

log = logging.getLogger(__name__)

Baseline = Literal["zero-shot", "arcface", "instance-only", "no-llm-text", "no-uncertainty"]
BASELINES: tuple[str, ...] = ("zero-shot", "arcface", "instance-only", "no-llm-text", "no-uncertainty")
CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.json"
SPLIT_NAME = "split.json"
#: Embedding size of the ArcFace baseline when ``embed_dim`` is not given (MiniLM's, so dimensions match).
ARCFACE_DEFAULT_DIM = 384
VAL_KS = (1, 5, 10)


class TrainConfig(BaseModel):
    """Everything a training run depends on (saved in ``config.json`` under ``training.config``)."""

    # Model
    backbone: str = "tf_efficientnet_lite0"
    projector: Literal["mlp", "linear"] = "mlp"
    embed_dim: int | None = Field(None, description="None = the text encoder's dimension (ArcFace: 384)")
    text_model: str | None = Field(None, description="None = settings.text.model (default 'minilm')")
    pretrained: bool = True
    freeze_stages: int = 0
    freeze_bn: bool = False
    # Objective
    losses: tuple[str, ...] = ("contrastive", "class", "supcon")
    weighting: Literal["uncertainty", "fixed"] = "uncertainty"
    baseline: Baseline | None = None
    temperature: float = 0.07
    class_temperature: float = 0.05
    tau: float = 1.0
    supcon_temperature: float = 0.1
    supcon_weighting: Literal["inverse_frequency", "inverse_sqrt", "none"] = "inverse_frequency"
    arcface_margin: float = 28.6
    arcface_scale: float = 64.0
    # Optimisation
    epochs: int = 10
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-3
    backbone_lr: float = 1e-4
    loss_lr: float | None = Field(None, description="None = lr")
    weight_decay: float = 0.05
    warmup_steps: int | None = None
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.01
    grad_clip: float | None = 5.0
    amp: bool = True
    # Data
    image_size: int = 224
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    balanced_sampler: bool = False
    sampler_power: float = 0.5
    max_descriptions: int | None = 10
    val_fraction: float = 0.2
    format: str | None = None
    class_column: str | None = None
    columns: dict[str, str] | None = None
    # Run
    seed: int = 0
    device: str | None = Field(None, description="None = settings.encoder.device")
    num_workers: int = 0

    def recipe(self) -> tuple[tuple[str, ...], str, str]:
        """(loss terms, weighting, text mode) after applying ``baseline``."""
        b = self.baseline
        if b == "arcface":
            return ("arcface",), "fixed", "none"
        if b == "instance-only":
            return ("contrastive",), "fixed", "enriched"
        if b == "no-llm-text":
            return tuple(self.losses), self.weighting, "class-name"
        if b == "no-uncertainty":
            return tuple(self.losses), "fixed", "enriched"
        return tuple(self.losses), self.weighting, "enriched"


@dataclass
class TrainResult:
    """What a run produced."""

    out: Path
    best_path: Path
    last_path: Path | None
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_metrics: dict[str, Any] | None
    steps: int
    seconds: float
    n_train: int
    n_val: int
    n_classes: int
    baseline: str | None
    failures: list[str] = field(default_factory=list)
    text_fallbacks: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        for k in ("out", "best_path", "last_path"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


class TrainError(RuntimeError):
    """The data or configuration cannot be trained on (no labelled figures, nothing to resume, ...)."""


# ----------------------------------------------------------------------------------------------------------------
# Data preparation
# ----------------------------------------------------------------------------------------------------------------


def load_figures(data: Path | Sequence[PatentFigure], cfg: TrainConfig) -> tuple[list[PatentFigure], list[str]]:
    """Figures to train on (those with a ``class_label``) and the problems met reading them."""
    problems: list[str] = []
    if isinstance(data, (str, Path)):
        from pir.ingest.readers import read_figures

        issues: list[Any] = []
        figures = list(
            read_figures(Path(data), cfg.format, issues=issues, columns=cfg.columns, class_column=cfg.class_column)
        )
        problems += [str(i) for i in issues]
    else:
        figures = list(data)
    labelled = [f for f in figures if f.class_label]
    if len(labelled) < len(figures):
        n = len(figures) - len(labelled)
        problems.append(f"{n} figure(s) without a class label were left out (set class_column?)")
        log.warning(problems[-1])
    if not labelled:
        raise TrainError(
            f"{data if isinstance(data, (str, Path)) else 'data'}: no figures with a class label to train on "
            f"({len(figures)} figures read; pass class_column / --class-column for a generic folder)"
        )
    return labelled, problems


def split_by_patent(figures: Sequence[PatentFigure], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded train/validation split of the patents, stratified by each patent's (first figure's) class.

    Each class's patents are shuffled and ``round(val_fraction * n)`` of them are held out, at least one patent of
    every class staying in training. Returns (train patents, validation patents), each sorted.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_class: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for f in figures:
        if f.patent_id not in seen:
            seen.add(f.patent_id)
            by_class[str(f.class_label)].append(f.patent_id)
    rng = random.Random(seed)
    train, val = [], []
    for c in sorted(by_class):
        pats = sorted(by_class[c])
        rng.shuffle(pats)
        n_val = min(round(val_fraction * len(pats)), len(pats) - 1)
        val += pats[:n_val]
        train += pats[n_val:]
    return sorted(train), sorted(val)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _generator(seed: int, *salt: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + sum(s * 7919 ** (i + 1) for i, s in enumerate(salt))) % (2**63))
    return g


# ----------------------------------------------------------------------------------------------------------------
# Model, loss, optimiser
# ----------------------------------------------------------------------------------------------------------------


def build_optimizer(model: VisualEncoder, loss_fn: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with named groups: backbone / head (weights decayed, biases and norms not) and the loss's parameters.

    The loss's learnable values (logit scales, uncertainty ``s_i``, ArcFace ``W``) are added explicitly, without
    weight decay, at ``loss_lr`` (default ``lr``).
    """
    groups: list[dict[str, Any]] = []
    for name, module, lr in (("backbone", model.trunk, cfg.backbone_lr), ("head", model.head, cfg.lr)):
        params = [p for p in module.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        if decay:
            groups.append({"name": name, "params": decay, "lr": lr, "weight_decay": cfg.weight_decay})
        if no_decay:
            groups.append({"name": f"{name}_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0})
    loss_params = [p for p in loss_fn.parameters() if p.requires_grad]
    if loss_params:
        groups.append({"name": "loss", "params": loss_params, "lr": cfg.loss_lr or cfg.lr, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6)


def lr_lambda(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        t = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def _build_loss(cfg: TrainConfig, class_counts: list[int], embed_dim: int) -> PirLoss:
    terms, weighting, _ = cfg.recipe()
    opts: dict[str, dict[str, Any]] = {}
    if "contrastive" in terms:
        opts["contrastive"] = {"init_temperature": cfg.temperature}
    if "class" in terms:
        opts["class"] = {"tau": cfg.tau, "init_temperature": cfg.class_temperature}
    if "supcon" in terms:
        opts["supcon"] = {"temperature": cfg.supcon_temperature, "weighting": cfg.supcon_weighting}
    if "arcface" in terms:
        opts["arcface"] = {"margin": cfg.arcface_margin, "scale": cfg.arcface_scale}
    if weighting == "uncertainty" and len(terms) == 1:
        weighting = "fixed"  # one term: nothing to balance
    return PirLoss(terms, class_counts=class_counts, weighting=weighting, embed_dim=embed_dim, **opts)


def _set_train_mode(model: VisualEncoder, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


@torch.inference_mode()
def embed_loaded(
    model: VisualEncoder,
    images: torch.Tensor,
    pre: PreprocessConfig,
    device: torch.device,
    *,
    batch_size: int = 64,
    amp: bool = False,
) -> np.ndarray:
    """Embed pre-loaded ``uint8`` line art exactly as :meth:`ImageEncoder.encode_pil` would."""
    was_training = model.training
    model.eval()
    out = np.zeros((len(images), int(model.out_dim)), dtype=np.float32)
    for s in range(0, len(images), batch_size):
        x = to_input(images[s : s + batch_size].to(device), pre.mean, pre.std)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            emb = model(x)
        out[s : s + len(x)] = emb.float().cpu().numpy()
    model.train(was_training)
    return out


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("map", "recall@10", "mrr@10")
    return {part: {k: report[part].get(k) for k in keys} for part in ("overall", "head", "tail")} | {
        "n_queries": report["n_queries"],
        "n_queries_tail": report["n_queries_tail"],
    }


def validate(
    model: VisualEncoder,
    val: LoadedImages,
    pre: PreprocessConfig,
    device: torch.device,
    head_classes: set[str],
    *,
    amp: bool = False,
) -> dict[str, Any] | None:
    """Class-level retrieval among the held-out figures (same class = relevant; same patent excluded)."""
    if len(val.figures) < 2:
        return None
    emb = embed_loaded(model, val.images, pre, device, amp=amp)
    labels = [str(f.class_label) for f in val.figures]
    keys = [f.key for f in val.figures]
    pats = [f.patent_id for f in val.figures]
    rep = evaluate_embeddings(
        emb,
        emb,
        labels,
        labels,
        query_ids=keys,
        gallery_ids=keys,
        query_patents=pats,
        gallery_patents=pats,
        exclude_same_patent=True,
        ks=VAL_KS,
        head_classes=head_classes,
    )
    return rep.to_dict()


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


def train(
    data: Path | Sequence[PatentFigure],
    out: Path,
    cfg: TrainConfig,
    settings: Settings,
    *,
    resume: bool = False,
    show_progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    text_encoder: Any = None,
) -> TrainResult:
    """Train (or, for ``baseline="zero-shot"``, just package and evaluate) an encoder into ``out``.

    Args:
        data: A folder any reader understands, or the figures themselves (each needs a ``class_label``).
        out: Output encoder directory (created).
        cfg: The run's configuration.
        settings: Settings (text model, enrichment, caches, threads).
        resume: Continue from ``out/checkpoint.pt`` (same split, same batches as an uninterrupted run) up to
            ``cfg.epochs``.
        show_progress: tqdm bar over the steps of each epoch.
        on_epoch: Called with each epoch's history entry (the CLI prints a table row).
        text_encoder: An already loaded :class:`~pir.encoder.text.TextEncoder` to use instead of loading
            ``cfg.text_model`` (it must be that model).

    Raises:
        TrainError: no labelled figures, no loadable training images, or nothing to resume.
        pir.encoder.device.DeviceError: the device is not available.
    """
    t_start = time.perf_counter()
    out = Path(out)
    device = resolve_device(cfg.device or settings.encoder.device)
    set_threads(settings.encoder.num_threads)
    terms, _, text_mode = cfg.recipe()
    ckpt_path = out / CHECKPOINT_NAME
    if resume and not ckpt_path.is_file():
        raise TrainError(f"{ckpt_path}: no checkpoint to resume from")
    _seed_all(cfg.seed)

    figures, problems = load_figures(data, cfg)
    out.mkdir(parents=True, exist_ok=True)
    split_file = out / SPLIT_NAME
    if resume and split_file.is_file():
        split = json.loads(split_file.read_text())
        train_p, val_p = set(split["train_patents"]), set(split["val_patents"])
    else:
        tp, vp = split_by_patent(figures, cfg.val_fraction, cfg.seed)
        train_p, val_p = set(tp), set(vp)
        split_file.write_text(
            json.dumps(
                {"seed": cfg.seed, "val_fraction": cfg.val_fraction, "train_patents": tp, "val_patents": vp}, indent=1
            )
        )
    mean, std = default_norm(cfg.backbone)
    pre = PreprocessConfig(image_size=cfg.image_size, mean=mean, std=std, trim=True)  # type: ignore[arg-type]
    train_set = preload_images(
        [f for f in figures if f.patent_id in train_p], cfg.image_size, num_workers=cfg.num_workers
    )
    val_set = preload_images([f for f in figures if f.patent_id in val_p], cfg.image_size, num_workers=cfg.num_workers)
    failures = [str(x) for x in train_set.failures + val_set.failures]
    if not train_set.figures and cfg.baseline != "zero-shot":
        raise TrainError(f"no loadable training images ({len(failures)} failed): " + "; ".join(failures[:3]))
    head_classes = split_head_tail([str(f.class_label) for f in train_set.figures + val_set.figures])
    classes = sorted({str(f.class_label) for f in train_set.figures})
    class_index = {c: i for i, c in enumerate(classes)}
    counts = Counter(str(f.class_label) for f in train_set.figures)
    class_counts = [counts[c] for c in classes]
    data_desc = str(data) if isinstance(data, (str, Path)) else f"<{len(figures)} figures>"
    log.info(
        "training on %s: %d train / %d val figures, %d classes, device %s",
        data_desc,
        len(train_set.figures),
        len(val_set.figures),
        len(classes),
        device,
    )

    common = dict(
        out=out,
        n_train=len(train_set.figures),
        n_val=len(val_set.figures),
        n_classes=len(classes),
        baseline=cfg.baseline,
        failures=problems + failures,
    )
    if cfg.baseline == "zero-shot":
        return _zero_shot(cfg, pre, val_set, head_classes, device, data_desc, t_start, on_epoch, common)

    # ---- text side -------------------------------------------------------------------------------------------
    text_model_spec: str | None = None
    targets = prototypes = None
    n_fallback = 0
    if "contrastive" in terms or "class" in terms:
        from pir.encoder.text import TextEmbeddingCache, load_text_encoder, text_cache_path

        text_enc = text_encoder or load_text_encoder(cfg.text_model or settings.text.model, device=str(device))
        text_model_spec = text_enc.spec
        embed_dim = text_enc.dim
        if cfg.embed_dim is not None and cfg.embed_dim != embed_dim:
            raise TrainError(f"embed_dim={cfg.embed_dim} but the text model {text_enc.name} gives {embed_dim}-d")
        with TextEmbeddingCache(text_cache_path(settings)) as cache:

            def encode(texts: list[str]) -> np.ndarray:
                return cache.encode(text_enc, texts, batch_size=settings.text.batch_size)

            descriptions, n_fallback = build_descriptions(
                train_set.figures, settings, mode=text_mode, max_descriptions=cfg.max_descriptions
            )
            targets = embed_text_targets(descriptions, encode)
            prototypes = embed_prototypes(class_prototype_texts(classes, train_set.figures), encode).to(device)
        del text_enc
    else:
        embed_dim = cfg.embed_dim or ARCFACE_DEFAULT_DIM

    # ---- model, loss, optimiser ------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = VisualEncoder(cfg.backbone, projector=cfg.projector, embed_dim=embed_dim, pretrained=cfg.pretrained)
    model.lock_stages(cfg.freeze_stages)
    model.to(device)
    loss_fn = _build_loss(cfg, class_counts, embed_dim).to(device)
    optimizer = build_optimizer(model, loss_fn, cfg)
    n_train = len(train_set.figures)
    bs = min(cfg.batch_size, n_train)
    micro_per_epoch = max(cfg.grad_accum, (n_train // bs) // cfg.grad_accum * cfg.grad_accum)
    steps_per_epoch = micro_per_epoch // cfg.grad_accum
    total_steps = steps_per_epoch * cfg.epochs
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(cfg.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, warmup, cfg.min_lr_ratio))
    labels_all = torch.tensor([class_index[str(f.class_label)] for f in train_set.figures], dtype=torch.long)
    augment = LineArtAugment(cfg.augment)
    amp = cfg.amp and device.type == "cuda"

    history: list[dict[str, Any]] = []
    step, start_epoch = 0, 1
    best_map, best_epoch, best_metrics = -1.0, None, None
    if resume:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck["classes"] != classes:
            raise TrainError(f"{ckpt_path}: the checkpoint was trained on other classes than the data now gives")
        model.load_state_dict(ck["model"])
        loss_fn.load_state_dict(ck["loss"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        step, start_epoch = int(ck["step"]), int(ck["epoch"]) + 1
        best_map = float(ck["best_map"])
        best_epoch = ck["best_epoch"]
        history = json.loads(ck["history"])
        best_metrics = next((h["val"] for h in history if h["epoch"] == best_epoch), None)
        torch.set_rng_state(ck["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in ck:
            torch.cuda.set_rng_state(ck["rng_cuda"])
        log.info("resuming %s from epoch %d, step %d", out, start_epoch - 1, step)

    def encoder_config(metrics: dict[str, Any] | None, epoch: int, suffix: str = "") -> EncoderConfig:
        weights = {k: round(float(v), 6) for k, v in _loss_state(loss_fn).items() if k.startswith("weight/")}
        return EncoderConfig(
            name=out.resolve().name + suffix,
            backbone=cfg.backbone,
            pretrained="trained",
            projector=cfg.projector,
            embed_dim=embed_dim,
            preprocess=pre,
            text_model=text_model_spec,
            training={
                "losses": list(loss_fn.loss_names),
                "weighting": loss_fn.weighting_name,
                "loss_weights": {k.split("/", 1)[1]: v for k, v in weights.items()},
                "logit_scale": _loss_state(loss_fn).get("logit_scale"),
                "epoch": epoch,
                "epochs": cfg.epochs,
                "steps": step,
                "metrics": metrics,
                "baseline": cfg.baseline,
                "seed": cfg.seed,
                "data": data_desc,
                "classes": classes,
                "n_train": n_train,
                "n_val": len(val_set.figures),
                "config": cfg.model_dump(mode="json"),
            },
        )

    last_dir = out / "last"
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        g = _generator(cfg.seed, epoch)
        order = epoch_indices(
            labels_all.tolist(), micro_per_epoch * bs, g, balanced=cfg.balanced_sampler, power=cfg.sampler_power
        )
        _set_train_mode(model, cfg.freeze_bn)
        sums: dict[str, float] = defaultdict(float)
        n_micro = 0
        optimizer.zero_grad(set_to_none=True)
        bar = tqdm(
            range(micro_per_epoch),
            desc=f"epoch {epoch}/{cfg.epochs}",
            unit="batch",
            disable=not show_progress,
            leave=False,
        )
        for m in bar:
            idx = torch.tensor(order[m * bs : (m + 1) * bs], dtype=torch.long)
            x = to_input(augment(train_set.images[idx].to(device), g), pre.mean, pre.std)
            labels = labels_all[idx].to(device)
            text_emb = text_ids = None
            if targets is not None:
                text_emb, text_ids = targets.sample(idx, g)
                text_emb, text_ids = text_emb.to(device), text_ids.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                feats = model.forward_features(x)
            img = torch.nn.functional.normalize(feats.float(), dim=-1)
            res = loss_fn(img, text_emb=text_emb, labels=labels, prototypes=prototypes, text_ids=text_ids)
            if not torch.isfinite(res["loss"]):
                raise TrainError(f"epoch {epoch}, step {step}: the loss is not finite ({float(res['loss'])})")
            (res["loss"] / cfg.grad_accum).backward()
            for k, v in res.items():
                if v.ndim == 0:
                    sums[k] += float(v.detach())
            n_micro += 1
            if (m + 1) % cfg.grad_accum == 0:
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(
                        [p for grp in optimizer.param_groups for p in grp["params"]], cfg.grad_clip
                    )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                loss_fn.clamp_()
                step += 1
                bar.set_postfix(loss=f"{float(res['loss'].detach()):.3f}")
        bar.close()
        train_s = time.perf_counter() - t0
        metrics = validate(model, val_set, pre, device, head_classes, amp=amp)
        entry: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "lr": {grp["name"]: grp["lr"] for grp in optimizer.param_groups},
            "train": {k: v / max(1, n_micro) for k, v in sums.items()},
            "loss_state": _loss_state(loss_fn),
            "val": _summary(metrics) if metrics else None,
            "seconds": round(time.perf_counter() - t0, 2),
            "images_per_s": round(n_micro * bs / max(train_s, 1e-9), 2),
        }
        history.append(entry)
        val_map = metrics["overall"]["map"] if metrics else None
        if val_map is not None and val_map > best_map:
            best_map, best_epoch, best_metrics = float(val_map), epoch, entry["val"]
            save_encoder_dir(out, encoder_config(entry["val"], epoch), model)
        save_encoder_dir(last_dir, encoder_config(entry["val"], epoch, suffix="-last"), model)
        _save_checkpoint(
            ckpt_path, model, loss_fn, optimizer, scheduler, step, epoch, best_map, best_epoch, history, classes, device
        )
        (out / HISTORY_NAME).write_text(json.dumps(history, indent=1))
        if on_epoch is not None:
            on_epoch(entry)
    if best_epoch is None:  # no validation set: the last epoch is the result
        save_encoder_dir(out, encoder_config(None, cfg.epochs), model)
    return TrainResult(
        best_path=out,
        last_path=last_dir if last_dir.is_dir() else None,
        history=history,
        best_epoch=best_epoch,
        best_metrics=best_metrics,
        steps=step,
        seconds=round(time.perf_counter() - t_start, 2),
        text_fallbacks=n_fallback,
        **common,
    )  # type: ignore[arg-type]


def _loss_state(loss_fn: PirLoss) -> dict[str, float]:
    """Current logit scales and loss weights (``weight/<term>_loss`` = exp(-s_i) or the fixed weight)."""
    state: dict[str, float] = {}
    for name, module in loss_fn.terms.items():
        if hasattr(module, "scale") and callable(module.scale):
            state["logit_scale" if name == "contrastive" else f"{name}_logit_scale"] = float(module.scale().detach())
    w = loss_fn.weighting
    if hasattr(w, "log_vars"):
        for n, s in zip(w.names, w.log_vars.detach().cpu().tolist(), strict=True):
            state[f"weight/{n}"] = math.exp(-s)
            state[f"log_var/{n}"] = s
    elif hasattr(w, "weights"):
        for n, v in w.weights.items():
            state[f"weight/{n}"] = float(v)
    return state


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    epoch: int,
    best_map: float,
    best_epoch: int | None,
    history: list[dict[str, Any]],
    classes: list[str],
    device: torch.device,
) -> None:
    state: dict[str, Any] = {
        "model": model.state_dict(),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "epoch": epoch,
        "best_map": best_map,
        "best_epoch": best_epoch,
        "history": json.dumps(history),
        "classes": classes,
        "rng_cpu": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _zero_shot(
    cfg: TrainConfig,
    pre: PreprocessConfig,
    val_set: LoadedImages,
    head_classes: set[str],
    device: torch.device,
    data_desc: str,
    t_start: float,
    on_epoch: Callable[[dict[str, Any]], None] | None,
    common: dict[str, Any],
) -> TrainResult:
    """The zero-shot baseline: the ImageNet backbone (no projector), evaluated and saved as an encoder directory."""
    model = VisualEncoder(cfg.backbone, projector="none", pretrained=cfg.pretrained).to(device)
    metrics = validate(model, val_set, pre, device, head_classes, amp=cfg.amp and device.type == "cuda")
    summary = _summary(metrics) if metrics else None
    entry = {"epoch": 0, "step": 0, "val": summary, "seconds": round(time.perf_counter() - t_start, 2)}
    config = builtin_config(cfg.backbone, cfg.image_size)
    config.preprocess = pre
    config.training = {
        "baseline": "zero-shot",
        "metrics": summary,
        "seed": cfg.seed,
        "data": data_desc,
        "epochs": 0,
        "config": cfg.model_dump(mode="json"),
    }
    out: Path = common["out"]
    save_encoder_dir(out, config, model)
    (out / HISTORY_NAME).write_text(json.dumps([entry], indent=1))
    if on_epoch is not None:
        on_epoch(entry)
    return TrainResult(
        best_path=out,
        last_path=None,
        history=[entry],
        best_epoch=0 if summary else None,
        best_metrics=summary,
        steps=0,
        seconds=round(time.perf_counter() - t_start, 2),
        **common,
    )
