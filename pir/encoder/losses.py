"""Training losses: instance-level image-text contrast, distribution-aware class losses, learnable loss weighting.

Every loss is an ``nn.Module`` whose forward returns a dict of named terms: keys ending in ``_loss`` are loss terms,
other keys are detached metrics for logging. :class:`PirLoss` combines the selected terms with a weighting module and
adds the weighted total under ``"loss"`` (the key a trainer back-propagates). Learnable values (logit scales, the
uncertainty log-variances ``s_i``, ArcFace's class matrix ``W``) are ordinary parameters, so
``list(model.parameters()) + list(loss.parameters())`` gives the optimiser everything; call :meth:`PirLoss.clamp_`
after each optimiser step (CLIP style) so no logit scale exceeds its maximum.

References:
    Radford et al. 2021 (CLIP, symmetric InfoNCE); Menon et al. 2021 (logit adjustment); Ren et al. 2020 (balanced
    softmax); Khosla et al. 2020 (supervised contrastive); Kendall et al. 2018 (uncertainty weighting);
    Deng et al. 2019 (ArcFace).

Example:
    >>> loss_fn = build_loss({"losses": ["contrastive", "class", "supcon"], "class_counts": [50, 5, 1]})
    >>> out = loss_fn(img, text_emb=txt, labels=y, prototypes=protos)
    >>> out["loss"].backward(); optimizer.step(); loss_fn.clamp_()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ArcFaceLoss, SupConLoss
from pytorch_metric_learning.reducers import DoNothingReducer
from torch import Tensor, nn

SUPCON_WEIGHTINGS = ("inverse_frequency", "inverse_sqrt", "none")


@dataclass
class LossInputs:
    """What one training step gives the loss terms (a term takes what it needs and says what is missing)."""

    image_emb: Tensor
    text_emb: Tensor | None = None
    labels: Tensor | None = None
    prototypes: Tensor | None = None
    text_ids: Tensor | Sequence[Hashable] | None = None
    figure_ids: Tensor | Sequence[Hashable] | None = None
    patent_ids: Tensor | Sequence[Hashable] | None = None
    teacher_emb: Tensor | None = None  # the frozen pretrained embedding of the same images (distillation)

    def need(self, term: str, *fields: str) -> list[Any]:
        """The named fields, or a ValueError naming the first missing one."""
        values = [getattr(self, f) for f in fields]
        missing = [f for f, v in zip(fields, values, strict=True) if v is None]
        if missing:
            raise ValueError(f"loss term {term!r} needs {' and '.join(missing)}")
        return values


@dataclass(frozen=True)
class LossContext:
    """What the data gives every term's factory: training-set class counts, number of classes, embedding size."""

    class_counts: list[int] | None = None
    num_classes: int | None = None
    embed_dim: int | None = None

    def counts(self, term: str) -> list[int]:
        if self.class_counts is None:
            raise ValueError(f"loss term {term!r} needs class_counts")
        return self.class_counts


#: Loss term name -> factory ``(context, **options) -> nn.Module``; the module has ``term(LossInputs) -> dict``.
LossFactory = Callable[..., nn.Module]
LOSSES: dict[str, LossFactory] = {}


def register_loss(name: str, factory: LossFactory) -> LossFactory:
    """Register a loss term under ``name`` (its output key is ``<name>_loss``). Returns the factory."""
    if name in LOSSES:
        raise ValueError(f"loss term {name!r} is already registered")
    LOSSES[name] = factory
    return factory


def _log_scale_param(module: nn.Module, init_temperature: float, max_logit_scale: float, learnable: bool) -> None:
    """Register ``logit_scale = ln(1 / init_temperature)`` as a parameter (learnable) or a buffer (fixed)."""
    if not init_temperature > 0:
        raise ValueError(f"init_temperature must be > 0, got {init_temperature}")
    if not max_logit_scale >= 1:
        raise ValueError(f"max_logit_scale must be >= 1, got {max_logit_scale}")
    value = torch.tensor(min(math.log(1.0 / init_temperature), math.log(max_logit_scale)), dtype=torch.float32)
    if learnable:
        module.logit_scale = nn.Parameter(value)
    else:
        module.register_buffer("logit_scale", value)


def _class_counts(class_counts: Sequence[int] | Tensor) -> Tensor:
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}")
    if (counts < 0).any() or not torch.isfinite(counts).all():
        raise ValueError("class_counts must be finite and non-negative")
    return counts


def _check_labels(labels: Tensor, n: int, num_classes: int, what: str) -> Tensor:
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{what}: labels must have shape ({n},), got {tuple(labels.shape)}")
    if labels.dtype in (torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.bool):
        raise ValueError(f"{what}: labels must be an integer tensor, got {labels.dtype}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"{what}: labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )
    return labels.long()


def _ids_to_tensor(ids: Tensor | Sequence[Hashable], device: torch.device) -> Tensor:
    if isinstance(ids, Tensor):
        return ids.to(device)
    index: dict[Hashable, int] = {}
    return torch.tensor([index.setdefault(x, len(index)) for x in ids], dtype=torch.long, device=device)


def _same_group_mask(n: int, device: torch.device, **ids: Tensor | Sequence[Hashable] | None) -> Tensor | None:
    """``(n, n)`` True where two rows share any of the given ids (None when no ids are given)."""
    mask: Tensor | None = None
    for name, values in ids.items():
        if values is None:
            continue
        t = _ids_to_tensor(values, device)
        if t.shape != (n,):
            raise ValueError(f"contrastive loss: {name} must have shape ({n},), got {tuple(t.shape)}")
        same = t[:, None] == t[None, :]
        mask = same if mask is None else mask | same
    return mask


class ImageTextContrastiveLoss(nn.Module):
    """Symmetric InfoNCE between a batch of images and their texts (row i matches row i), CLIP style.

    The temperature is learnt in log space (``logit_scale = ln(1/T)``) and clamped to ``[0, ln(max_logit_scale)]``
    both in forward and by :meth:`clamp_`, so the scale never exceeds ``max_logit_scale``.

    With ``text_ids`` (one id per row, equal ids = identical description), rows sharing an id are not negatives of
    each other: they are removed from each other's softmax denominators (both directions). With all ids distinct
    this is exactly the plain loss. (Uniform multi-positive soft targets would be a no-op here: when the duplicated
    texts have identical embeddings, that loss equals plain InfoNCE term for term, floor of ``ln |P|`` included.)
    ``figure_ids`` and ``patent_ids`` do the same for two draws of one figure and for figures of one patent.
    """

    logit_scale: Tensor  # a parameter or a buffer (registered by _log_scale_param)

    def __init__(self, init_temperature: float = 0.07, max_logit_scale: float = 100.0, learnable: bool = True) -> None:
        super().__init__()
        self.init_temperature = float(init_temperature)
        self.max_logit_scale = float(max_logit_scale)
        self.learnable = bool(learnable)
        _log_scale_param(self, self.init_temperature, self.max_logit_scale, self.learnable)

    def scale(self) -> Tensor:
        """The clamped multiplicative logit scale ``exp(logit_scale)`` (differentiable inside the clamp range)."""
        return self.logit_scale.clamp(0.0, math.log(self.max_logit_scale)).exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp ``logit_scale`` in place to ``[0, ln(max_logit_scale)]`` (call after each optimiser step)."""
        self.logit_scale.clamp_(0.0, math.log(self.max_logit_scale))

    def forward(
        self,
        image_emb: Tensor,
        text_emb: Tensor,
        text_ids: Tensor | Sequence[Hashable] | None = None,
        figure_ids: Tensor | Sequence[Hashable] | None = None,
        patent_ids: Tensor | Sequence[Hashable] | None = None,
    ) -> dict[str, Tensor]:
        """Compute the loss.

        Args:
            image_emb: ``(B, D)`` image embeddings (normalised here).
            text_emb: ``(B, D)`` text embeddings of the sampled descriptions (normalised here).
            text_ids: Optional ``(B,)`` ids of the descriptions (ints or hashables); equal ids are never negatives.
            figure_ids: Optional ``(B,)`` figure ids: two draws of one figure (class-balanced sampling draws with
                replacement) are never negatives of each other.
            patent_ids: Optional ``(B,)`` patent ids: figures of one patent are never negatives of each other.

        Returns:
            ``{"contrastive_loss", "logit_scale"}`` (the scale detached).
        """
        if image_emb.ndim != 2 or image_emb.shape != text_emb.shape:
            raise ValueError(
                f"contrastive loss: image_emb and text_emb must both be (B, D), got {tuple(image_emb.shape)} "
                f"and {tuple(text_emb.shape)}"
            )
        img = F.normalize(image_emb, dim=-1)
        txt = F.normalize(text_emb.to(img.dtype), dim=-1)
        scale = self.scale().to(img.dtype)
        logits = scale * img @ txt.T
        n = logits.shape[0]
        target = torch.arange(n, device=logits.device)
        same = _same_group_mask(n, logits.device, text_ids=text_ids, figure_ids=figure_ids, patent_ids=patent_ids)
        if same is not None:
            eye = torch.eye(n, dtype=torch.bool, device=logits.device)
            logits = logits.masked_fill(same & ~eye, float("-inf"))
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        return {"contrastive_loss": loss, "logit_scale": scale.detach()}

    def term(self, x: LossInputs) -> dict[str, Tensor]:
        """The registry's uniform call (see :class:`LossInputs`)."""
        (text_emb,) = x.need("contrastive", "text_emb")
        return self(x.image_emb, text_emb, text_ids=x.text_ids, figure_ids=x.figure_ids, patent_ids=x.patent_ids)

    def get_config_dict(self) -> dict[str, Any]:
        """Constructor arguments, for run logs and ``config.json``."""
        return {
            "init_temperature": self.init_temperature,
            "max_logit_scale": self.max_logit_scale,
            "learnable": self.learnable,
        }


class PrototypeLogitAdjustedLoss(nn.Module):
    """Image → class-prototype cross-entropy with logit adjustment by the log class prior.

    ``logits_c = scale * cos(image, prototype_c) + tau * ln(prior_c)``, then cross-entropy with the labels (Menon et
    al. 2021; ``tau = 1`` is the balanced softmax of Ren et al. 2020). Adding the prior during training makes head
    classes cheap and tail classes expensive, so the learnt (unadjusted) cosine logits are shifted toward the tail;
    predictions use :meth:`logits` with ``adjusted=False``. ``tau = 0`` is the plain softmax. Classes with a zero
    count are treated as having one example so their prior stays finite.
    """

    logit_scale: Tensor
    log_prior: Tensor

    def __init__(
        self,
        class_counts: Sequence[int],
        tau: float = 1.0,
        init_temperature: float = 0.05,
        learnable_temperature: bool = True,
        max_logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        counts = _class_counts(class_counts)
        self.class_counts = [int(c) for c in counts.tolist()]
        self.tau = float(tau)
        self.init_temperature = float(init_temperature)
        self.learnable_temperature = bool(learnable_temperature)
        self.max_logit_scale = float(max_logit_scale)
        prior = counts.clamp(min=1.0)
        self.register_buffer("log_prior", (prior / prior.sum()).log().float())
        _log_scale_param(self, self.init_temperature, self.max_logit_scale, self.learnable_temperature)

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    def scale(self) -> Tensor:
        """The clamped multiplicative logit scale."""
        return self.logit_scale.clamp(0.0, math.log(self.max_logit_scale)).exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp ``logit_scale`` in place to ``[0, ln(max_logit_scale)]``."""
        self.logit_scale.clamp_(0.0, math.log(self.max_logit_scale))

    def logits(self, image_emb: Tensor, prototypes: Tensor, *, adjusted: bool = False) -> Tensor:
        """``(B, C)`` class logits; ``adjusted=True`` adds ``tau * ln(prior)`` (the training-time logits)."""
        if prototypes.ndim != 2 or prototypes.shape[0] != self.num_classes:
            raise ValueError(
                f"class loss: prototypes must be ({self.num_classes}, D) for {self.num_classes} classes, "
                f"got {tuple(prototypes.shape)}"
            )
        if image_emb.ndim != 2 or image_emb.shape[1] != prototypes.shape[1]:
            raise ValueError(f"class loss: image_emb must be (B, {prototypes.shape[1]}), got {tuple(image_emb.shape)}")
        img = F.normalize(image_emb, dim=-1)
        protos = F.normalize(prototypes.to(img.dtype), dim=-1)
        logits = self.scale().to(img.dtype) * img @ protos.T
        if adjusted and self.tau != 0.0:
            logits = logits + self.tau * self.log_prior.to(logits.dtype)
        return logits

    def forward(self, image_emb: Tensor, labels: Tensor, prototypes: Tensor) -> dict[str, Tensor]:
        """Compute the logit-adjusted loss.

        Args:
            image_emb: ``(B, D)`` image embeddings.
            labels: ``(B,)`` class indices into ``prototypes``.
            prototypes: ``(C, D)`` class-prototype text embeddings.

        Returns:
            ``{"class_loss", "class_logit_scale", "class_acc"}`` (accuracy of the unadjusted logits).
        """
        labels = _check_labels(labels, image_emb.shape[0], self.num_classes, "class loss")
        raw = self.logits(image_emb, prototypes, adjusted=False)
        adj = raw + self.tau * self.log_prior.to(raw.dtype) if self.tau != 0.0 else raw
        loss = F.cross_entropy(adj, labels)
        acc = (raw.argmax(dim=1) == labels).to(raw.dtype).mean() if labels.numel() else raw.new_zeros(())
        return {"class_loss": loss, "class_logit_scale": self.scale().detach(), "class_acc": acc.detach()}

    def term(self, x: LossInputs) -> dict[str, Tensor]:
        """The registry's uniform call."""
        labels, prototypes = x.need("class", "labels", "prototypes")
        return self(x.image_emb, labels, prototypes)

    def get_config_dict(self) -> dict[str, Any]:
        """Constructor arguments (``class_counts`` included)."""
        return {
            "class_counts": list(self.class_counts),
            "tau": self.tau,
            "init_temperature": self.init_temperature,
            "learnable_temperature": self.learnable_temperature,
            "max_logit_scale": self.max_logit_scale,
        }


class BalancedSupConLoss(nn.Module):
    """Supervised contrastive loss among the batch's images (Khosla et al. 2020, L_out), class-balanced per anchor.

    Per-anchor terms come from ``pytorch_metric_learning.losses.SupConLoss`` with a ``DoNothingReducer`` (it returns
    one loss per anchor, so per-anchor weights apply exactly); this module then drops anchors with no positive in
    the batch and takes a weighted mean with ``w_i ∝ 1 / n_{y_i}`` (``inverse_frequency``), ``1 / sqrt(n_{y_i})``
    (``inverse_sqrt``) or uniform (``none``), normalised to average 1 over the kept anchors. A batch with no positive
    pair or no negative pair has no contrast to learn from: the term is absent (``None``), so a learnable weighting
    leaves its weight untouched (returning 0 would drive a Kendall ``s_i`` down every such step).
    """

    class_weight: Tensor

    def __init__(
        self, class_counts: Sequence[int], temperature: float = 0.1, weighting: str = "inverse_frequency"
    ) -> None:
        super().__init__()
        if weighting not in SUPCON_WEIGHTINGS:
            raise ValueError(f"supcon weighting must be one of {SUPCON_WEIGHTINGS}, got {weighting!r}")
        if not temperature > 0:
            raise ValueError(f"supcon temperature must be > 0, got {temperature}")
        counts = _class_counts(class_counts)
        self.class_counts = [int(c) for c in counts.tolist()]
        self.temperature = float(temperature)
        self.weighting = weighting
        n = counts.clamp(min=1.0)
        weights = {"inverse_frequency": 1.0 / n, "inverse_sqrt": n.rsqrt(), "none": torch.ones_like(n)}[weighting]
        self.register_buffer("class_weight", weights.float())
        self.supcon = SupConLoss(temperature=self.temperature, reducer=DoNothingReducer())

    def forward(self, embeddings: Tensor, labels: Tensor) -> dict[str, Tensor | None]:
        """Compute the loss.

        Args:
            embeddings: ``(B, D)`` image embeddings (cosine similarity is used).
            labels: ``(B,)`` class indices.

        Returns:
            ``{"supcon_loss", "supcon_anchors"}`` (number of anchors with a positive, detached); the loss is None
            when the batch has no positive or no negative pair.
        """
        if embeddings.ndim != 2:
            raise ValueError(f"supcon loss: embeddings must be (B, D), got {tuple(embeddings.shape)}")
        labels = _check_labels(labels, embeddings.shape[0], len(self.class_counts), "supcon loss")
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
        has_pos = (same & ~eye).any(dim=1)
        has_neg = (~same).any()
        anchors = has_pos.sum().detach().to(embeddings.dtype)
        if not has_pos.any() or not has_neg:
            return {"supcon_loss": None, "supcon_anchors": anchors}
        out = self.supcon(embeddings, labels)["loss"]
        per_anchor = out["losses"]
        if out["reduction_type"] != "element" or not isinstance(per_anchor, Tensor):
            return {"supcon_loss": None, "supcon_anchors": anchors}
        w = self.class_weight.to(per_anchor.dtype)[labels][has_pos]
        w = w / w.mean()
        loss = (w * per_anchor[has_pos]).mean()
        return {"supcon_loss": loss, "supcon_anchors": has_pos.sum().detach().to(embeddings.dtype)}

    def term(self, x: LossInputs) -> dict[str, Tensor | None]:
        """The registry's uniform call."""
        (labels,) = x.need("supcon", "labels")
        return self(x.image_emb, labels)

    def get_config_dict(self) -> dict[str, Any]:
        """Constructor arguments (``class_counts`` included)."""
        return {"class_counts": list(self.class_counts), "temperature": self.temperature, "weighting": self.weighting}


class ArcFaceClassLoss(nn.Module):
    """ArcFace on class labels (the published baseline recipe), wrapping ``pytorch_metric_learning``'s ArcFaceLoss.

    Its class-centre matrix ``W`` (``embedding_size x num_classes``) is a parameter of this module and must be given
    to the optimiser (it is, via ``loss.parameters()``). ``margin`` is in degrees (PML convention: 28.6° ≈ 0.5 rad).
    """

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 28.6, scale: float = 64) -> None:
        super().__init__()
        if num_classes < 1 or embedding_size < 1:
            raise ValueError(
                f"arcface: num_classes and embedding_size must be >= 1, got {num_classes}, {embedding_size}"
            )
        self.num_classes = int(num_classes)
        self.embedding_size = int(embedding_size)
        self.margin = float(margin)
        self.scale = float(scale)
        self.arcface = ArcFaceLoss(
            num_classes=self.num_classes, embedding_size=self.embedding_size, margin=self.margin, scale=self.scale
        )

    @property
    def W(self) -> nn.Parameter:  # noqa: N802  (PML's name)
        return self.arcface.W

    def forward(self, embeddings: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """``{"arcface_loss"}``: mean additive-angular-margin cross-entropy over the batch."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"arcface: embeddings must be (B, {self.embedding_size}), got {tuple(embeddings.shape)}")
        labels = _check_labels(labels, embeddings.shape[0], self.num_classes, "arcface")
        return {"arcface_loss": self.arcface(embeddings, labels)}

    def term(self, x: LossInputs) -> dict[str, Tensor]:
        """The registry's uniform call."""
        (labels,) = x.need("arcface", "labels")
        return self(x.image_emb, labels)

    def get_config_dict(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            "num_classes": self.num_classes,
            "embedding_size": self.embedding_size,
            "margin": self.margin,
            "scale": self.scale,
        }


class SimilarityDistillationLoss(nn.Module):
    """Keep the batch's neighbourhood structure of the pretrained (teacher) embedding in the trained space.

    Row-wise KL(softmax(teacher cos / T) || softmax(student cos / T)) over the other images of the batch (relational
    distillation, Park et al. 2019 / SEED, Fang et al. 2021): the text-space embedding learns class semantics without
    forgetting which drawings the ImageNet backbone finds alike (instances, unseen classes).
    """

    def __init__(self, temperature: float = 0.05) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"distill temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, student: Tensor, teacher: Tensor) -> dict[str, Tensor | None]:
        """``{"distill_loss"}`` (None for a batch of one image: no neighbours)."""
        n = student.shape[0]
        if n < 2:
            return {"distill_loss": None}
        eye = torch.eye(n, dtype=torch.bool, device=student.device)
        s = F.normalize(student, dim=-1)
        t = F.normalize(teacher.to(s.dtype).detach(), dim=-1)
        s_logits = (s @ s.T / self.temperature).masked_fill(eye, float("-inf"))
        t_logits = (t @ t.T / self.temperature).masked_fill(eye, float("-inf"))
        log_p_s = F.log_softmax(s_logits, dim=1).masked_fill(eye, 0.0)
        p_t = F.softmax(t_logits, dim=1)
        log_p_t = F.log_softmax(t_logits, dim=1).masked_fill(eye, 0.0)
        return {"distill_loss": (p_t * (log_p_t - log_p_s)).sum(dim=1).mean()}

    def term(self, x: LossInputs) -> dict[str, Tensor | None]:
        """The registry's uniform call."""
        (teacher,) = x.need("distill", "teacher_emb")
        return self(x.image_emb, teacher)

    def get_config_dict(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"temperature": self.temperature}


def _arcface(ctx: LossContext, **opts: Any) -> ArcFaceClassLoss:
    if ctx.num_classes is None or ctx.embed_dim is None:
        raise ValueError("loss term 'arcface' needs num_classes (or class_counts) and embed_dim")
    return ArcFaceClassLoss(ctx.num_classes, ctx.embed_dim, **opts)


# The registry: adding a loss is one module (with ``term(LossInputs)``) and one line here.
register_loss("contrastive", lambda ctx, **opts: ImageTextContrastiveLoss(**opts))
register_loss("class", lambda ctx, **opts: PrototypeLogitAdjustedLoss(ctx.counts("class"), **opts))
register_loss("supcon", lambda ctx, **opts: BalancedSupConLoss(ctx.counts("supcon"), **opts))
register_loss("arcface", _arcface)
register_loss("distill", lambda ctx, **opts: SimilarityDistillationLoss(**opts))


def _select_terms(losses: Mapping[str, Tensor | None], names: Sequence[str], who: str) -> list[Tensor | None]:
    unknown = sorted(k for k in losses if k.endswith("_loss") and k not in names)
    missing = [n for n in names if n not in losses]
    if unknown or missing:
        raise ValueError(f"{who}: configured for {list(names)}; missing {missing}, unexpected {unknown}")
    return [losses[n] for n in names]


def _total(parts: list[Tensor]) -> Tensor:
    """Sum of the present weighted terms; with none present a constant 0 without gradient (skip backward)."""
    return torch.stack(parts).sum() if parts else torch.zeros(())


class UncertaintyWeighting(nn.Module):
    """Learnable homoscedastic-uncertainty weighting (Kendall et al. 2018).

    ``total = sum_i exp(-s_i) * L_i + s_i`` over the PRESENT terms, with one learnable log-variance ``s_i`` per
    term (one parameter each, ``log_vars_by_name``). At the optimum ``s_i = ln L_i``. An absent term (``None``:
    e.g. SupCon on a batch without a positive pair) adds nothing, so its ``s_i`` gets no gradient at all and the
    optimiser (momentum, weight decay) skips it that step.
    """

    def __init__(self, names: Sequence[str], init: float = 0.0) -> None:
        super().__init__()
        self.names = tuple(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"uncertainty weighting needs distinct term names, got {list(names)}")
        self.init = float(init)
        self.log_vars_by_name = nn.ParameterDict(
            {n: nn.Parameter(torch.tensor(self.init, dtype=torch.float32)) for n in self.names}
        )

    @property
    def log_vars(self) -> Tensor:
        """All ``s_i`` in ``names`` order (a detached copy)."""
        return torch.stack([self.log_vars_by_name[n].detach() for n in self.names])

    def forward(self, losses: Mapping[str, Tensor | None]) -> dict[str, Tensor]:
        """Combine the named terms.

        Args:
            losses: term name → scalar loss or None (absent); must hold every configured name.

        Returns:
            ``{"loss": total, "weight/<name>": exp(-s_i), "log_var/<name>": s_i}`` (all but ``loss`` detached).
        """
        terms = _select_terms(losses, self.names, "uncertainty weighting")
        parts: list[Tensor] = []
        out: dict[str, Tensor] = {}
        for name, term in zip(self.names, terms, strict=True):
            s = self.log_vars_by_name[name]
            if term is not None:
                parts.append(torch.exp(-s) * term + s)
            out[f"weight/{name}"] = torch.exp(-s).detach()
            out[f"log_var/{name}"] = s.detach()
        return {"loss": _total(parts), **out}

    def get_config_dict(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"type": "uncertainty", "names": list(self.names), "init": self.init}


class FixedWeighting(nn.Module):
    """Fixed weights, ``total = sum_i w_i * L_i`` over the present terms (the "no uncertainty weighting" baseline)."""

    def __init__(self, weights: Mapping[str, float] | Sequence[str]) -> None:
        super().__init__()
        if isinstance(weights, Mapping):
            self.weights = {str(k): float(v) for k, v in weights.items()}
        else:
            self.weights = {str(k): 1.0 for k in weights}
        if not self.weights:
            raise ValueError("fixed weighting needs at least one term")
        self.names = tuple(self.weights)

    def forward(self, losses: Mapping[str, Tensor | None]) -> dict[str, Tensor]:
        """``{"loss": total, "weight/<name>": w_i}``."""
        terms = _select_terms(losses, self.names, "fixed weighting")
        parts: list[Tensor] = []
        out: dict[str, Tensor] = {}
        for name, term in zip(self.names, terms, strict=True):
            w = self.weights[name]
            if term is not None:
                parts.append(w * term)
            out[f"weight/{name}"] = torch.tensor(w)
        return {"loss": _total(parts), **out}

    def get_config_dict(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {"type": "fixed", "weights": dict(self.weights)}


class PirLoss(nn.Module):
    """The training objective: registered terms combined by uncertainty (default) or fixed weighting.

    Terms (see :data:`LOSSES`): ``contrastive`` (image ↔ sampled description, needs ``text_emb``), ``class``
    (image → class prototypes with logit adjustment, needs ``labels`` and ``prototypes``), ``supcon``
    (class-balanced supervised contrast, needs ``labels``), ``arcface`` (baseline, needs ``labels``,
    ``num_classes`` and ``embed_dim``).

    Args:
        losses: Terms to use, e.g. ``("contrastive",)`` for the instance-only baseline or ``("arcface",)``.
        class_counts: Training-set images per class (needed by ``class`` and ``supcon``; gives ``num_classes``).
        weighting: ``uncertainty`` (learnable ``s_i``) or ``fixed``.
        embed_dim: Image embedding dimension (needed by ``arcface``).
        num_classes: Number of classes (defaults to ``len(class_counts)``).
        weights: Fixed weights by term key (``{"class_loss": 0.5}``); missing terms weigh 1. Only for ``fixed``.
        uncertainty_init: Initial ``s_i`` for ``uncertainty``.
        **options: Per-term constructor options keyed by term name, e.g. ``contrastive={"init_temperature": 0.07}``.
    """

    def __init__(
        self,
        losses: Sequence[str] = ("contrastive", "class", "supcon"),
        *,
        class_counts: Sequence[int] | None = None,
        weighting: str = "uncertainty",
        embed_dim: int | None = None,
        num_classes: int | None = None,
        weights: Mapping[str, float] | None = None,
        uncertainty_init: float = 0.0,
        **options: Mapping[str, Any],
    ) -> None:
        super().__init__()
        if isinstance(losses, str):
            losses = [t.strip() for t in losses.split(",") if t.strip()]
        self.loss_names = tuple(losses)
        if not self.loss_names or len(set(self.loss_names)) != len(self.loss_names):
            raise ValueError(f"losses must be a non-empty list of distinct terms from {tuple(LOSSES)}, got {losses!r}")
        bad = [t for t in self.loss_names if t not in LOSSES]
        if bad:
            raise ValueError(f"unknown loss term(s) {bad}; choose from {tuple(LOSSES)}")
        bad_opts = [k for k in options if k not in LOSSES]
        if bad_opts:
            raise TypeError(f"PirLoss got unexpected keyword argument(s) {bad_opts}")
        if weighting not in ("uncertainty", "fixed"):
            raise ValueError(f"weighting must be 'uncertainty' or 'fixed', got {weighting!r}")
        self.class_counts = None if class_counts is None else [int(c) for c in _class_counts(class_counts).tolist()]
        if num_classes is None and self.class_counts is not None:
            num_classes = len(self.class_counts)
        if num_classes is not None and self.class_counts is not None and num_classes != len(self.class_counts):
            raise ValueError(f"num_classes={num_classes} but class_counts has {len(self.class_counts)} entries")
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.weighting_name = weighting
        self.options = {k: dict(v) for k, v in options.items()}
        self.fixed_weights = dict(weights) if weights else {}
        self.uncertainty_init = float(uncertainty_init)
        ctx = LossContext(self.class_counts, num_classes, embed_dim)
        self.terms = nn.ModuleDict({n: LOSSES[n](ctx, **self.options.get(n, {})) for n in self.loss_names})
        self.weighting = self._weighting([f"{n}_loss" for n in self.loss_names])

    def _weighting(self, keys: list[str]) -> nn.Module:
        if self.weighting_name == "uncertainty":
            if self.fixed_weights:
                raise ValueError("weights are only used with weighting='fixed'")
            return UncertaintyWeighting(keys, init=self.uncertainty_init)
        unknown = sorted(set(self.fixed_weights) - set(keys))
        if unknown:
            raise ValueError(f"weights given for unused terms {unknown}; terms are {keys}")
        return FixedWeighting({k: float(self.fixed_weights.get(k, 1.0)) for k in keys})

    def forward(
        self,
        image_emb: Tensor,
        text_emb: Tensor | None = None,
        labels: Tensor | None = None,
        prototypes: Tensor | None = None,
        text_ids: Tensor | Sequence[Hashable] | None = None,
        figure_ids: Tensor | Sequence[Hashable] | None = None,
        patent_ids: Tensor | Sequence[Hashable] | None = None,
        teacher_emb: Tensor | None = None,
    ) -> dict[str, Tensor | None]:
        """Every term (None when absent this batch) and metric, the weighting's outputs, and ``"loss"``."""
        x = LossInputs(image_emb, text_emb, labels, prototypes, text_ids, figure_ids, patent_ids, teacher_emb)
        out: dict[str, Tensor | None] = {}
        for module in self.terms.values():
            out.update(module.term(x))  # type: ignore[operator]  # every term module has term()
        out.update(self.weighting(out))
        return out

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp every learnable logit scale to its maximum (call after each optimiser step)."""
        for module in self.terms.values():
            clamp = getattr(module, "clamp_", None)
            if clamp is not None:
                clamp()

    def get_config_dict(self) -> dict[str, Any]:
        """A JSON-able config that :func:`build_loss` turns back into an equivalent (freshly initialised) loss."""
        cfg: dict[str, Any] = {
            "losses": list(self.loss_names),
            "class_counts": self.class_counts,
            "weighting": self.weighting_name,
            "embed_dim": self.embed_dim,
            "num_classes": self.num_classes,
        }
        if self.weighting_name == "fixed":
            cfg["weights"] = dict(self.weighting.weights)  # type: ignore[arg-type]  # FixedWeighting here
        else:
            cfg["uncertainty_init"] = self.uncertainty_init
        for name, module in self.terms.items():
            sub = module.get_config_dict()  # type: ignore[operator]  # every term module has one
            for k in ("class_counts", "num_classes", "embedding_size"):
                sub.pop(k, None)
            cfg[name] = sub
        return cfg


def build_loss(cfg: Mapping[str, Any]) -> PirLoss:
    """Build a :class:`PirLoss` from a config dict (the keyword arguments of :class:`PirLoss`).

    Example:
        >>> build_loss({"losses": ["arcface"], "num_classes": 12, "embed_dim": 384, "weighting": "fixed"})
    """
    return PirLoss(**dict(cfg))
