"""Train an image encoder into a frozen text space (``pir train``), and the baselines it is compared with.

Recipe (Lo et al. 2024, "LLM informed patent image retrieval", made safe for small data):

* visual side: a timm backbone (default ``tf_efficientnet_lite0`` with offline ImageNet weights), FROZEN by default,
  + a projector to the text dimension. The image search vector fuses the zero-shot embedding with the trained
  text-space one (``image_weight``, see :class:`~pir.encoder.model.VisualEncoder`), so training adds class semantics
  without losing what the pretrained backbone knows about instances and unseen classes;
* text side: a frozen sentence encoder (default all-MiniLM-L6-v2); every figure's descriptions and every class's
  prototype texts are embedded once, through the on-disk :class:`~pir.encoder.text.TextEmbeddingCache`;
* losses: terms of the :data:`~pir.encoder.losses.LOSSES` registry combined by :class:`~pir.encoder.losses.PirLoss`
  (default image↔description InfoNCE with same-figure/patent pairs masked, logit-adjusted class-prototype
  cross-entropy, class-balanced SupCon, learnable uncertainty weights that skip absent terms);
* AdamW (backbone / head / loss groups; loss parameters without weight decay), warm-up + cosine, gradient
  accumulation, bf16 autocast on CUDA, optional class-balanced sampling, line-drawing augmentations.

Patents are split train / validation / test (stratified by class, ``split.json``). Validation mAP picks the epoch;
the test patents are evaluated once, with the chosen epoch, and reported (``history.json``: the best epoch's entry
has ``test`` and ``test_zero_shot``; :attr:`TrainResult.test_metrics`).

The trainer is a sequence of small steps: :func:`prepare_data`, :func:`prepare_text`, :func:`build_run`,
:func:`train_epoch`, :func:`evaluate_split`, :func:`finish_epoch` (checkpoint), :func:`report_test`.
Baselines come from :data:`pir.encoder.train_config.BASELINES`.

Output directory (an encoder directory :func:`pir.encoder.model.load_encoder` reads)::

    out/config.json, out/model.safetensors   # best epoch by validation mAP (the last one without validation)
    out/last/                                 # last epoch, same layout
    out/checkpoint.pt                         # optimiser, scheduler, loss, step, epoch, RNG: for resume=True
    out/history.json, out/split.json          # per-epoch log (+ test of the best epoch); the patent split

Example:
    >>> cfg = TrainConfig(epochs=5, image_size=160)
    >>> result = train(Path("corpus/"), Path("runs/enc"), cfg, get_settings())
    >>> result.test_metrics["overall"]["map"]
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
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import pir.encoder._tvshim  # noqa: F401  (before timm)
from pir.core.config import Settings
from pir.core.metrics import evaluate_embeddings, split_head_tail
from pir.encoder.backbone import default_norm, set_threads
from pir.encoder.data import (
    LineArtAugment,
    LoadedImages,
    TextTargets,
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
from pir.encoder.model import (
    EncoderConfig,
    PreprocessConfig,
    VisualEncoder,
    builtin_config,
    load_encoder,
    save_encoder_dir,
)
from pir.encoder.split import SPLIT_NAME, PatentSplit, read_split, split_by_patent, write_split
from pir.encoder.text import TextEmbeddingCache, load_text_encoder, text_cache_path
from pir.encoder.train_config import TrainConfig
from pir.ingest.readers import read_figures
from pir.ingest.schema import PatentFigure

__all__ = ["TrainError", "TrainResult", "build_optimizer", "train"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.json"
#: Embedding size of the ArcFace baseline when ``embed_dim`` is not given (MiniLM's, so dimensions match).
ARCFACE_DEFAULT_DIM = 384
VAL_KS = (1, 5, 10)


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
    n_test: int = 0
    test_metrics: dict[str, Any] | None = None
    test_zero_shot: dict[str, Any] | None = None
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
# Step 1: data
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TrainData:
    """Decoded images of each part of the split and what the losses need from the labels."""

    train: LoadedImages
    val: LoadedImages
    test: LoadedImages
    classes: list[str]
    class_counts: list[int]
    head_classes: set[str]
    pre: PreprocessConfig
    description: str
    problems: list[str]

    @cached_property
    def labels(self) -> torch.Tensor:
        index = {c: i for i, c in enumerate(self.classes)}
        return torch.tensor([index[str(f.class_label)] for f in self.train.figures], dtype=torch.long)

    @cached_property
    def patent_ids(self) -> torch.Tensor:
        index: dict[str, int] = {}
        return torch.tensor([index.setdefault(f.patent_id, len(index)) for f in self.train.figures], dtype=torch.long)


def load_figures(data: Path | Sequence[PatentFigure], cfg: TrainConfig) -> tuple[list[PatentFigure], list[str]]:
    """Figures to train on (those with a ``class_label``) and the problems met reading them."""
    problems: list[str] = []
    if isinstance(data, (str, Path)):
        issues: list[Any] = []
        figures = list(
            read_figures(Path(data), cfg.format, issues=issues, columns=cfg.columns, class_column=cfg.class_column)
        )
        problems += [str(i) for i in issues]
    else:
        figures = list(data)
    labelled = [f for f in figures if f.class_label]
    if len(labelled) < len(figures):
        problems.append(
            f"{len(figures) - len(labelled)} figure(s) without a class label were left out (set class_column?)"
        )
        log.warning(problems[-1])
    if not labelled:
        raise TrainError(
            f"{data if isinstance(data, (str, Path)) else 'data'}: no figures with a class label to train on "
            f"({len(figures)} figures read; pass class_column / --class-column for a generic folder)"
        )
    return labelled, problems


def load_split(figures: Sequence[PatentFigure], data: Any, out: Path, cfg: TrainConfig, resume: bool) -> PatentSplit:
    """The run's patent split: read back on resume, else made (seeded, stratified) and written to ``split.json``."""
    path = out / SPLIT_NAME
    if resume and path.is_file():
        return read_split(path)
    split = split_by_patent(figures, cfg.val_fraction, cfg.seed, cfg.test_fraction)
    paths = [str(Path(data).resolve())] if isinstance(data, (str, Path)) else []
    write_split(
        path,
        split,
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        data=paths,
        figure_keys=[f.key for f in figures],
    )
    return split


def prepare_data(data: Path | Sequence[PatentFigure], out: Path, cfg: TrainConfig, resume: bool) -> TrainData:
    """Read, split and decode the figures; class counts and head classes come from what loaded."""
    figures, problems = load_figures(data, cfg)
    out.mkdir(parents=True, exist_ok=True)
    split = load_split(figures, data, out, cfg, resume)
    parts = {
        name: preload_images(
            [f for f in figures if f.patent_id in set(getattr(split, name))],
            cfg.image_size,
            num_workers=cfg.num_workers,
        )
        for name in ("train", "val", "test")
    }
    problems += [str(x) for p in parts.values() for x in p.failures]
    if not parts["train"].figures and cfg.trains:
        raise TrainError(f"no loadable training images ({len(problems)} problems): " + "; ".join(problems[:3]))
    everything = [str(f.class_label) for p in parts.values() for f in p.figures]
    classes = sorted({str(f.class_label) for f in parts["train"].figures})
    counts = Counter(str(f.class_label) for f in parts["train"].figures)
    mean, std = default_norm(cfg.backbone)
    return TrainData(
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        classes=classes,
        class_counts=[counts[c] for c in classes],
        head_classes=split_head_tail(everything),
        pre=PreprocessConfig(image_size=cfg.image_size, mean=mean, std=std, trim=True),  # type: ignore[arg-type]
        description=str(data) if isinstance(data, (str, Path)) else f"<{len(figures)} figures>",
        problems=problems,
    )


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _generator(seed: int, *salt: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + sum(s * 7919 ** (i + 1) for i, s in enumerate(salt))) % (2**63))
    return g


# ----------------------------------------------------------------------------------------------------------------
# Step 2: text targets
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TextSide:
    """Embedded text targets (None when the recipe uses no text) and the text space's identity."""

    embed_dim: int
    spec: str | None = None
    targets: TextTargets | None = None
    prototypes: torch.Tensor | None = None
    n_fallback: int = 0


def prepare_text(
    data: TrainData, cfg: TrainConfig, settings: Settings, device: torch.device, text_encoder: Any = None
) -> TextSide:
    """Embed every training figure's descriptions and every class's prototype texts once (cached on disk)."""
    terms, _, text_mode = cfg.recipe()
    if "contrastive" not in terms and "class" not in terms:
        return TextSide(embed_dim=cfg.embed_dim or ARCFACE_DEFAULT_DIM)

    enc = text_encoder or load_text_encoder(cfg.text_model or settings.text.model, device=str(device))
    if cfg.embed_dim is not None and cfg.embed_dim != enc.dim:
        raise TrainError(f"embed_dim={cfg.embed_dim} but the text model {enc.name} gives {enc.dim}-d")
    with TextEmbeddingCache(text_cache_path(settings)) as cache:

        def encode(texts: list[str]) -> np.ndarray:
            return cache.encode(enc, texts, batch_size=settings.text.batch_size)

        descriptions, n_fallback = build_descriptions(
            data.train.figures, settings, mode=text_mode, max_descriptions=cfg.max_descriptions
        )
        targets = embed_text_targets(descriptions, encode)
        prototypes = embed_prototypes(class_prototype_texts(data.classes, data.train.figures), encode).to(device)
    return TextSide(enc.dim, enc.spec, targets, prototypes, n_fallback)


# ----------------------------------------------------------------------------------------------------------------
# Step 3: model, loss, optimiser
# ----------------------------------------------------------------------------------------------------------------


def build_model(cfg: TrainConfig, embed_dim: int, device: torch.device) -> VisualEncoder:
    """Backbone + projector (seeded); frozen trunk and fused output as configured."""
    torch.manual_seed(cfg.seed)
    model = VisualEncoder(
        cfg.backbone,
        projector=cfg.projector,
        embed_dim=embed_dim,
        pretrained=cfg.pretrained,
        image_weight=cfg.image_weight,
    )
    if cfg.freeze_backbone:
        model.freeze_trunk()
    else:
        model.lock_stages(cfg.freeze_stages)
    return model.to(device)


def _build_loss(cfg: TrainConfig, class_counts: list[int], embed_dim: int) -> PirLoss:
    terms, weighting, _ = cfg.recipe()
    options: dict[str, dict[str, Any]] = {
        "contrastive": {"init_temperature": cfg.temperature},
        "class": {"tau": cfg.tau, "init_temperature": cfg.class_temperature},
        "supcon": {"temperature": cfg.supcon_temperature, "weighting": cfg.supcon_weighting},
        "arcface": {"margin": cfg.arcface_margin, "scale": cfg.arcface_scale},
        "distill": {"temperature": cfg.distill_temperature},
    }
    if weighting == "uncertainty" and len(terms) == 1:
        weighting = "fixed"  # one term: nothing to balance
    opts: dict[str, Any] = {t: options.get(t, {}) for t in terms}
    return PirLoss(terms, class_counts=class_counts, weighting=weighting, embed_dim=embed_dim, **opts)


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


@dataclass
class RunState:
    """Everything that changes during a run (and is checkpointed)."""

    model: VisualEncoder
    loss_fn: PirLoss
    optimizer: torch.optim.Optimizer
    scheduler: Any
    batch_size: int
    micro_per_epoch: int
    step: int = 0
    epoch: int = 0
    best_map: float = -1.0
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best_metrics(self) -> dict[str, Any] | None:
        return next((h["val"] for h in self.history if h["epoch"] == self.best_epoch), None)


def build_run(cfg: TrainConfig, data: TrainData, text: TextSide, device: torch.device) -> RunState:
    """Model, loss, optimiser and learning-rate schedule for ``cfg.epochs`` epochs over the training images."""
    model = build_model(cfg, text.embed_dim, device)
    loss_fn = _build_loss(cfg, data.class_counts, text.embed_dim).to(device)
    optimizer = build_optimizer(model, loss_fn, cfg)
    n_train = len(data.train.figures)
    bs = min(cfg.batch_size, n_train)
    micro = max(cfg.grad_accum, (n_train // bs) // cfg.grad_accum * cfg.grad_accum)
    total = micro // cfg.grad_accum * cfg.epochs
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, warmup, cfg.min_lr_ratio))
    return RunState(model, loss_fn, optimizer, scheduler, bs, micro)


def save_checkpoint(path: Path, run: RunState, classes: list[str], device: torch.device) -> None:
    """Write everything :func:`load_checkpoint` needs to continue exactly (atomically: temp file, then rename)."""
    state: dict[str, Any] = {
        "model": run.model.state_dict(),
        "loss": run.loss_fn.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "step": run.step,
        "epoch": run.epoch,
        "best_map": run.best_map,
        "best_epoch": run.best_epoch,
        "history": json.dumps(run.history),
        "classes": classes,
        "rng_cpu": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, run: RunState, classes: list[str], device: torch.device) -> None:
    """Restore a :class:`RunState` saved by :func:`save_checkpoint` (same classes required)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if ck["classes"] != classes:
        raise TrainError(f"{path}: the checkpoint was trained on other classes than the data now gives")
    run.model.load_state_dict(ck["model"])
    run.loss_fn.load_state_dict(ck["loss"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    run.step, run.epoch = int(ck["step"]), int(ck["epoch"])
    run.best_map, run.best_epoch = float(ck["best_map"]), ck["best_epoch"]
    run.history = json.loads(ck["history"])
    torch.set_rng_state(ck["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in ck:
        torch.cuda.set_rng_state(ck["rng_cuda"])


# ----------------------------------------------------------------------------------------------------------------
# Step 4: one epoch
# ----------------------------------------------------------------------------------------------------------------


def _optimizer_step(run: RunState, cfg: TrainConfig) -> None:
    if cfg.grad_clip:
        params = [p for grp in run.optimizer.param_groups for p in grp["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    run.loss_fn.clamp_()
    run.step += 1


def train_step(
    run: RunState, cfg: TrainConfig, data: TrainData, text: TextSide, idx: torch.Tensor, g: torch.Generator
) -> dict[str, Any]:
    """Forward and backward of one micro-batch (indices into the training images); returns the loss outputs."""
    device = next(run.model.parameters()).device
    x = to_input(LineArtAugment(cfg.augment)(data.train.images[idx].to(device), g), data.pre.mean, data.pre.std)
    text_emb = text_ids = None
    if text.targets is not None:
        text_emb, text_ids = (t.to(device) for t in text.targets.sample(idx, g))
    amp = cfg.amp and device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        pooled = run.model.trunk(x)
        feats = run.model.head(pooled)
    res = run.loss_fn(
        torch.nn.functional.normalize(feats.float(), dim=-1),
        text_emb=text_emb,
        labels=data.labels[idx].to(device),
        prototypes=text.prototypes,
        text_ids=text_ids,
        figure_ids=idx.to(device),  # two draws of one figure are not negatives
        patent_ids=data.patent_ids[idx].to(device),  # nor are two figures of one patent
        teacher_emb=pooled.detach().float() if "distill" in run.loss_fn.terms else None,
    )
    if not torch.isfinite(res["loss"]):
        raise TrainError(f"epoch {run.epoch + 1}, step {run.step}: the loss is not finite ({float(res['loss'])})")
    if res["loss"].requires_grad:  # every term absent: nothing to learn from this batch
        (res["loss"] / cfg.grad_accum).backward()
    return res


def train_epoch(
    run: RunState, cfg: TrainConfig, data: TrainData, text: TextSide, *, show_progress: bool = True
) -> dict[str, float]:
    """One epoch of micro-batches (seeded per epoch, so a resumed run sees the same batches); mean loss outputs."""
    epoch = run.epoch + 1
    g = _generator(cfg.seed, epoch)
    order = epoch_indices(
        data.labels.tolist(),
        run.micro_per_epoch * run.batch_size,
        g,
        balanced=cfg.balanced_sampler,
        power=cfg.sampler_power,
    )
    run.model.train()
    if cfg.freeze_bn:
        for m in run.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    run.optimizer.zero_grad(set_to_none=True)
    bar = tqdm(
        range(run.micro_per_epoch),
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        disable=not show_progress,
        leave=False,
    )
    for m in bar:
        idx = torch.tensor(order[m * run.batch_size : (m + 1) * run.batch_size], dtype=torch.long)
        res = train_step(run, cfg, data, text, idx, g)
        for k, v in res.items():
            if v is not None and v.ndim == 0:  # absent terms are not averaged in as zeros
                sums[k] += float(v.detach())
                counts[k] += 1
        if (m + 1) % cfg.grad_accum == 0:
            _optimizer_step(run, cfg)
            bar.set_postfix(loss=f"{float(res['loss'].detach()):.3f}")
    bar.close()
    run.epoch = epoch
    return {k: v / counts[k] for k, v in sums.items()}


# ----------------------------------------------------------------------------------------------------------------
# Step 5: evaluation
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
    """The headline numbers of a retrieval report (overall, head and tail)."""
    keys = ("map", "recall@10", "mrr@10")
    return {part: {k: report[part].get(k) for k in keys} for part in ("overall", "head", "tail")} | {
        "n_queries": report["n_queries"],
        "n_queries_tail": report["n_queries_tail"],
    }


def class_retrieval(emb: np.ndarray, figures: Sequence[PatentFigure], head_classes: set[str]) -> dict[str, Any] | None:
    """Class-level retrieval among ``figures`` (same class = relevant; the query's own patent excluded)."""
    if len(figures) < 2:
        return None
    labels = [str(f.class_label) for f in figures]
    keys = [f.key for f in figures]
    pats = [f.patent_id for f in figures]
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


def evaluate_split(
    model: VisualEncoder,
    part: LoadedImages,
    pre: PreprocessConfig,
    device: torch.device,
    head_classes: set[str],
    *,
    amp: bool = False,
) -> dict[str, Any] | None:
    """Class-level retrieval among one part's figures with the model's search vectors (None: under 2 figures)."""
    if len(part.figures) < 2:
        return None
    return class_retrieval(embed_loaded(model, part.images, pre, device, amp=amp), part.figures, head_classes)


validate = evaluate_split  # the name earlier versions used


def zero_shot_part(model: VisualEncoder, emb: np.ndarray) -> np.ndarray | None:
    """The zero-shot columns of a fused encoder's vectors, renormalised (None for a text-space-only encoder)."""
    if model.image_weight is None or not model.image_weight > 0:
        return None
    z = emb[:, : model.feat_dim]
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def report_test(
    model: VisualEncoder, data: TrainData, device: torch.device, amp: bool
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Test-patent metrics of ``model`` and of the zero-shot backbone it keeps (when fused), each summarised."""
    if len(data.test.figures) < 2:
        return None, None
    emb = embed_loaded(model, data.test.images, data.pre, device, amp=amp)
    trained = class_retrieval(emb, data.test.figures, data.head_classes)
    zs = zero_shot_part(model, emb)
    zero = class_retrieval(zs, data.test.figures, data.head_classes) if zs is not None else None
    return (_summary(trained) if trained else None), (_summary(zero) if zero else None)


# ----------------------------------------------------------------------------------------------------------------
# Step 6: checkpoint and encoder directories
# ----------------------------------------------------------------------------------------------------------------


def _loss_state(loss_fn: PirLoss) -> dict[str, float]:
    """Current logit scales and loss weights (``weight/<term>_loss`` = exp(-s_i) or the fixed weight)."""
    state: dict[str, float] = {}
    for name, module in loss_fn.terms.items():
        if hasattr(module, "scale") and callable(module.scale):
            state["logit_scale" if name == "contrastive" else f"{name}_logit_scale"] = float(module.scale().detach())
    w: Any = loss_fn.weighting  # UncertaintyWeighting (log_vars) or FixedWeighting (weights)
    if hasattr(w, "log_vars_by_name"):
        for n, s in zip(w.names, w.log_vars.cpu().tolist(), strict=True):
            state[f"weight/{n}"] = math.exp(-s)
            state[f"log_var/{n}"] = s
    elif hasattr(w, "weights"):
        for n, v in w.weights.items():
            state[f"weight/{n}"] = float(v)
    return state


def encoder_config(
    run: RunState, cfg: TrainConfig, data: TrainData, text: TextSide, name: str, metrics: dict[str, Any] | None
) -> EncoderConfig:
    """The ``config.json`` of an encoder directory written at the current epoch."""
    state = _loss_state(run.loss_fn)
    return EncoderConfig(
        name=name,
        backbone=cfg.backbone,
        pretrained="trained",
        projector=cfg.projector,
        embed_dim=text.embed_dim,
        preprocess=data.pre,
        text_model=text.spec,
        image_weight=cfg.image_weight,
        training={
            "losses": list(run.loss_fn.loss_names),
            "weighting": run.loss_fn.weighting_name,
            "loss_weights": {k.split("/", 1)[1]: round(v, 6) for k, v in state.items() if k.startswith("weight/")},
            "logit_scale": state.get("logit_scale"),
            "epoch": run.epoch,
            "epochs": cfg.epochs,
            "steps": run.step,
            "metrics": metrics,
            "baseline": cfg.baseline,
            "seed": cfg.seed,
            "data": data.description,
            "classes": data.classes,
            "n_train": len(data.train.figures),
            "n_val": len(data.val.figures),
            "n_test": len(data.test.figures),
            "config": cfg.model_dump(mode="json"),
        },
    )


def finish_epoch(
    run: RunState, cfg: TrainConfig, data: TrainData, text: TextSide, out: Path, entry: dict[str, Any]
) -> None:
    """Record the epoch, keep the best encoder by validation mAP, write ``last/``, the checkpoint and history."""
    run.history.append(entry)
    val_map = (entry["val"] or {}).get("overall", {}).get("map")
    name = out.resolve().name
    if val_map is not None and val_map > run.best_map:
        run.best_map, run.best_epoch = float(val_map), run.epoch
        save_encoder_dir(out, encoder_config(run, cfg, data, text, name, entry["val"]), run.model)
    save_encoder_dir(out / "last", encoder_config(run, cfg, data, text, name + "-last", entry["val"]), run.model)
    save_checkpoint(out / CHECKPOINT_NAME, run, data.classes, next(run.model.parameters()).device)
    (out / HISTORY_NAME).write_text(json.dumps(run.history, indent=1))


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


def run_epochs(
    run: RunState,
    cfg: TrainConfig,
    data: TrainData,
    text: TextSide,
    out: Path,
    *,
    show_progress: bool,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Train, validate and checkpoint each remaining epoch up to ``cfg.epochs``."""
    device = next(run.model.parameters()).device
    amp = cfg.amp and device.type == "cuda"
    while run.epoch < cfg.epochs:
        t0 = time.perf_counter()
        losses = train_epoch(run, cfg, data, text, show_progress=show_progress)
        train_s = time.perf_counter() - t0
        metrics = evaluate_split(run.model, data.val, data.pre, device, data.head_classes, amp=amp)
        entry: dict[str, Any] = {
            "epoch": run.epoch,
            "step": run.step,
            "lr": {grp["name"]: grp["lr"] for grp in run.optimizer.param_groups},
            "train": losses,
            "loss_state": _loss_state(run.loss_fn),
            "val": _summary(metrics) if metrics else None,
            "seconds": round(time.perf_counter() - t0, 2),
            "images_per_s": round(run.micro_per_epoch * run.batch_size / max(train_s, 1e-9), 2),
        }
        finish_epoch(run, cfg, data, text, out, entry)
        if on_epoch is not None:
            on_epoch(entry)


def finish_run(run: RunState, cfg: TrainConfig, data: TrainData, text: TextSide, out: Path) -> tuple[Any, Any]:
    """Reload the chosen epoch, evaluate it on the test patents once, and record that in history and config."""
    device = next(run.model.parameters()).device
    if run.best_epoch is None:  # no validation set: the last epoch is the result
        save_encoder_dir(out, encoder_config(run, cfg, data, text, out.resolve().name, None), run.model)
    best = load_encoder(out, device=device).model
    test, zero = report_test(best, data, device, cfg.amp and device.type == "cuda")
    target = next((h for h in run.history if h["epoch"] == (run.best_epoch or run.epoch)), None)
    if target is not None:
        target.update(test=test, test_zero_shot=zero)
    (out / HISTORY_NAME).write_text(json.dumps(run.history, indent=1))
    config = json.loads((out / "config.json").read_text())
    config["training"].update(test_metrics=test, test_zero_shot=zero)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return test, zero


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
        resume: Continue from ``out/checkpoint.pt`` (same split, same batches as an uninterrupted run).
        show_progress: tqdm bar over the steps of each epoch.
        on_epoch: Called with each epoch's history entry (the CLI prints a table row).
        text_encoder: An already loaded :class:`~pir.encoder.text.TextEncoder` to use instead of loading
            ``cfg.text_model`` (it must be that model).

    Raises:
        TrainError: no labelled figures, no loadable training images, or nothing to resume.
        pir.encoder.device.DeviceError: the device is not available.
    """
    t_start, out = time.perf_counter(), Path(out)
    device = resolve_device(cfg.device or settings.encoder.device)
    set_threads(settings.encoder.num_threads)
    if resume and not (out / CHECKPOINT_NAME).is_file():
        raise TrainError(f"{out / CHECKPOINT_NAME}: no checkpoint to resume from")
    _seed_all(cfg.seed)
    prepared = prepare_data(data, out, cfg, resume)
    log.info(
        "training on %s: %d train / %d val / %d test figures, %d classes, device %s",
        prepared.description,
        len(prepared.train.figures),
        len(prepared.val.figures),
        len(prepared.test.figures),
        len(prepared.classes),
        device,
    )
    if not cfg.trains:
        return _zero_shot(cfg, prepared, device, out, t_start, on_epoch)
    text = prepare_text(prepared, cfg, settings, device, text_encoder)
    run = build_run(cfg, prepared, text, device)
    if resume:
        load_checkpoint(out / CHECKPOINT_NAME, run, prepared.classes, device)
        log.info("resuming %s from epoch %d, step %d", out, run.epoch, run.step)
    run_epochs(run, cfg, prepared, text, out, show_progress=show_progress, on_epoch=on_epoch)
    test, zero = finish_run(run, cfg, prepared, text, out)
    return TrainResult(
        **_common(prepared, cfg, out, t_start),
        last_path=out / "last" if (out / "last").is_dir() else None,
        history=run.history,
        best_epoch=run.best_epoch,
        best_metrics=run.best_metrics,
        steps=run.step,
        test_metrics=test,
        test_zero_shot=zero,
        text_fallbacks=text.n_fallback,
    )


def _common(data: TrainData, cfg: TrainConfig, out: Path, t_start: float) -> dict[str, Any]:
    return {
        "out": out,
        "best_path": out,
        "seconds": round(time.perf_counter() - t_start, 2),
        "n_train": len(data.train.figures),
        "n_val": len(data.val.figures),
        "n_test": len(data.test.figures),
        "n_classes": len(data.classes),
        "baseline": cfg.baseline,
        "failures": data.problems,
    }


def _zero_shot(
    cfg: TrainConfig,
    data: TrainData,
    device: torch.device,
    out: Path,
    t_start: float,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> TrainResult:
    """The zero-shot baseline: the ImageNet backbone (no projector), evaluated and saved as an encoder directory."""
    model = VisualEncoder(cfg.backbone, projector="none", pretrained=cfg.pretrained).to(device)
    amp = cfg.amp and device.type == "cuda"
    val = evaluate_split(model, data.val, data.pre, device, data.head_classes, amp=amp)
    test = evaluate_split(model, data.test, data.pre, device, data.head_classes, amp=amp)
    summary, test_summary = (_summary(val) if val else None), (_summary(test) if test else None)
    entry = {
        "epoch": 0,
        "step": 0,
        "val": summary,
        "test": test_summary,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    config = builtin_config(cfg.backbone, cfg.image_size)
    config.preprocess = data.pre
    config.training = {
        "baseline": "zero-shot",
        "metrics": summary,
        "test_metrics": test_summary,
        "seed": cfg.seed,
        "data": data.description,
        "epochs": 0,
        "config": cfg.model_dump(mode="json"),
    }
    save_encoder_dir(out, config, model)
    (out / HISTORY_NAME).write_text(json.dumps([entry], indent=1))
    if on_epoch is not None:
        on_epoch(entry)
    return TrainResult(
        **_common(data, cfg, out, t_start),
        last_path=None,
        history=[entry],
        best_epoch=0 if summary else None,
        best_metrics=summary,
        steps=0,
        test_metrics=test_summary,
    )
