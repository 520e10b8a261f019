"""The image encoder: a timm backbone plus an optional projector into a text-embedding space.

An encoder is either a built-in name (a timm backbone with packaged ImageNet weights, used zero-shot) or a directory
written by :meth:`ImageEncoder.save` / ``pir train``::

    my-encoder/
      config.json         # EncoderConfig: backbone, projector, preprocessing, text model, training summary
      model.safetensors   # weights of the VisualEncoder (trunk + head)

Example:
    >>> enc = load_encoder("tf_efficientnet_lite0")          # zero-shot ImageNet backbone
    >>> vecs = enc.encode_images(["sheet1.tif", "sheet2.png"])  # (2, 1280) float32, L2-normalised
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, Field
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

import pir.encoder._tvshim  # noqa: F401  (before timm)
from pir.core.errors import EncoderLoadError
from pir.encoder.backbone import create_backbone, default_norm, has_offline_weights
from pir.encoder.device import resolve_device
from pir.encoder.text import load_text_encoder
from pir.ingest.images import load_line_art, to_line_art

if TYPE_CHECKING:
    from pir.core.config import Settings

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


class ZeroShotTextError(RuntimeError):
    """Text queries need an encoder trained into a text space; a zero-shot backbone cannot embed text."""


class PreprocessConfig(BaseModel):
    """How an image becomes the network input; saved with the weights so they never drift apart."""

    image_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    trim: bool = True


class EncoderConfig(BaseModel):
    """Everything needed to rebuild an encoder (``config.json``)."""

    format_version: int = FORMAT_VERSION
    name: str
    backbone: str
    pretrained: Literal["imagenet", "none", "trained"] = "imagenet"
    projector: Literal["none", "linear", "mlp"] = "none"
    embed_dim: int | None = None
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    text_model: str | None = None
    #: Fused encoders: the image vector is ``[w * zero-shot, sqrt(1 - w^2) * text-space]`` (None = text-space only).
    image_weight: float | None = None
    training: dict[str, Any] = Field(default_factory=dict)

    @property
    def text_aligned(self) -> bool:
        return self.text_model is not None and self.projector != "none"


class VisualEncoder(nn.Module):
    """timm trunk (global-pooled) + projector; ``forward`` returns L2-normalised embeddings.

    With ``image_weight=w`` (a fused encoder) ``forward`` returns ``[w * n(trunk), sqrt(1 - w^2) * n(head(trunk))]``
    (``n`` = L2 normalisation; unit length as a whole): image-image cosine is ``w^2 * cos(zero-shot) + (1 - w^2) *
    cos(text-space)``, and a text query ``[0, n(text)]`` ranks exactly by the text-space part. With a frozen trunk
    the first part stays the zero-shot embedding, so training cannot lose what the pretrained backbone knew.
    """

    def __init__(
        self,
        backbone: str,
        *,
        projector: str = "none",
        embed_dim: int | None = None,
        pretrained: bool = True,
        image_weight: float | None = None,
    ):
        super().__init__()
        self.trunk, self.pretrained_loaded = create_backbone(backbone, pretrained=pretrained)
        feat = int(self.trunk.num_features)  # type: ignore[arg-type]  # timm models define num_features
        self.feat_dim = feat
        if projector == "none":
            self.head: nn.Module = nn.Identity()
            self.text_dim = feat
        elif projector == "linear":
            assert embed_dim, "a projector needs embed_dim"
            self.head = nn.Linear(feat, embed_dim)
            self.text_dim = embed_dim
        elif projector == "mlp":
            assert embed_dim, "a projector needs embed_dim"
            hidden = max(embed_dim, min(feat, 1024))
            self.head = nn.Sequential(nn.Linear(feat, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))
            self.text_dim = embed_dim
        else:
            raise ValueError(f"unknown projector {projector!r} (none, linear, mlp)")
        if image_weight is not None and (projector == "none" or not 0.0 <= image_weight <= 1.0):
            raise ValueError(f"image_weight needs a projector and a value in [0, 1], got {image_weight}")
        self.image_weight = image_weight
        self.out_dim = self.text_dim if image_weight is None else feat + self.text_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised text-space embeddings (what the losses see)."""
        return self.head(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_weight is None:
            return F.normalize(self.forward_features(x).float(), dim=-1)
        z = self.trunk(x)
        w = self.image_weight
        img = F.normalize(z.float(), dim=-1)
        txt = F.normalize(self.head(z).float(), dim=-1)
        return torch.cat([w * img, math.sqrt(max(0.0, 1.0 - w * w)) * txt], dim=-1)

    def freeze_trunk(self) -> int:
        """Freeze every trunk parameter (BatchNorm statistics are kept by :meth:`train`). Returns #frozen params."""
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self._trunk_frozen = True
        return sum(p.numel() for p in self.trunk.parameters())

    def train(self, mode: bool = True) -> VisualEncoder:
        super().train(mode)
        if getattr(self, "_trunk_frozen", False):
            self.trunk.eval()  # a frozen trunk keeps its BatchNorm statistics: its output is the zero-shot one
        return self

    def lock_stages(self, n: int) -> int:
        """Freeze the stem and the first ``n`` stages of the trunk (0 = freeze nothing). Returns #frozen params."""
        if n <= 0:
            return 0
        frozen = 0
        modules: list[nn.Module] = []
        for attr in ("conv_stem", "bn1"):
            if hasattr(self.trunk, attr):
                modules.append(getattr(self.trunk, attr))
        blocks = getattr(self.trunk, "blocks", None) or getattr(self.trunk, "stages", None)
        if blocks is not None:
            modules.extend(list(blocks)[:n])
        for m in modules:
            for p in m.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
        return frozen


def preprocess_tensor(images: Sequence[Image.Image], cfg: PreprocessConfig) -> torch.Tensor:
    """Line-art ``L`` images (already square, ``image_size``) -> normalised (N, 3, H, W) float tensor."""
    arrs = []
    for img in images:
        if img.size != (cfg.image_size, cfg.image_size):
            img = img.resize((cfg.image_size, cfg.image_size), Image.Resampling.BILINEAR)
        arrs.append(np.asarray(img.convert("L"), dtype=np.float32))
    x = torch.from_numpy(np.stack(arrs)).div_(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


class ImageEncoder:
    """Inference wrapper: preprocessing, batching, device, text side, save/load."""

    def __init__(self, config: EncoderConfig, model: VisualEncoder, device: str | torch.device = "cpu"):
        self.config = config
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self._text_encoder: Any = None
        self._version: str | None = None

    # -- identity -------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def dim(self) -> int:
        return int(self.model.out_dim)

    @property
    def text_aligned(self) -> bool:
        return self.config.text_aligned

    @property
    def id(self) -> str:
        """What a collection records about its encoder: ``name@version`` (a retrained encoder differs)."""
        return f"{self.name}@{self.version}"

    @property
    def version(self) -> str:
        """Content hash of config + weights: stored with every point so re-ingests skip unchanged figures."""
        if self._version is None:
            h = hashlib.sha256(self.config.model_dump_json(exclude={"training"}).encode())
            for k, v in self.model.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            self._version = h.hexdigest()[:16]
        return self._version

    # -- images ---------------------------------------------------------------------------------------------------
    def load_image(self, path: str | Path) -> Image.Image:
        """Load and preprocess one drawing as this encoder expects (raises ImageLoadError)."""
        return load_line_art(path, self.config.preprocess.image_size, trim=self.config.preprocess.trim)

    @torch.inference_mode()
    def encode_pil(
        self, images: Sequence[Image.Image], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Embed already-loaded line-art images. Returns float32 (N, dim), L2-normalised."""
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        starts = range(0, len(images), batch_size)
        for s in tqdm(starts, desc="embed", unit="batch", disable=not show_progress):
            x = preprocess_tensor(images[s : s + batch_size], self.config.preprocess).to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                emb = self.model(x)
            out[s : s + len(x)] = emb.float().cpu().numpy()
        return out

    def encode_images(
        self,
        items: Sequence[str | Path | Image.Image],
        *,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed image files or PIL images (raises ImageLoadError on the first bad file)."""
        imgs = [
            to_line_art(it, self.config.preprocess.image_size, trim=self.config.preprocess.trim)
            if isinstance(it, Image.Image)
            else self.load_image(it)
            for it in items
        ]
        return self.encode_pil(imgs, batch_size=batch_size, show_progress=show_progress)

    # -- text -----------------------------------------------------------------------------------------------------
    def encode_text(
        self, texts: Sequence[str], *, text_encoder_factory: Callable[..., Any] | None = None
    ) -> np.ndarray:
        """Embed text queries into the image space (only for encoders trained against a text encoder)."""
        if not self.text_aligned:
            raise ZeroShotTextError(
                f"encoder {self.name!r} is a zero-shot image backbone: it was not trained into a text space, so it "
                "cannot search by text. Train one with `pir train` and pass --encoder DIR."
            )
        if self._text_encoder is None:
            if text_encoder_factory is None:
                text_encoder_factory = load_text_encoder
            self._text_encoder = text_encoder_factory(self.config.text_model, device=str(self.device))  # type: ignore[arg-type]  # text_aligned: set
        vecs = np.asarray(self._text_encoder.encode(list(texts)), dtype=np.float32)
        if self.config.image_weight is None:
            return vecs
        pad = np.zeros((len(vecs), self.dim - vecs.shape[1]), dtype=np.float32)
        return np.concatenate([pad, vecs], axis=1)  # ranks image vectors by their text-space part alone

    def text_space(self, vectors: np.ndarray) -> np.ndarray:
        """The text-space part of this encoder's image vectors, L2-normalised (cross-modal search of text vectors).

        For a fused encoder that is the last ``text_dim`` columns; otherwise the vectors themselves.
        """
        if not self.text_aligned:
            raise ZeroShotTextError(f"encoder {self.name!r} has no text space (a zero-shot image backbone)")
        v = np.asarray(vectors, dtype=np.float32)
        if self.config.image_weight is not None:
            v = v[:, -int(self.model.text_dim) :]
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    # -- persistence ----------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory``."""
        return save_encoder_dir(directory, self.config, self.model)


def save_encoder_dir(directory: str | Path, config: EncoderConfig, model: nn.Module) -> Path:
    """Write an encoder directory atomically enough (weights first, then config)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(d / WEIGHTS_NAME))
    (d / CONFIG_NAME).write_text(config.model_dump_json(indent=2))
    return d


def builtin_config(backbone: str, image_size: int = 224) -> EncoderConfig:
    """Config of a zero-shot built-in encoder (packaged ImageNet weights when available)."""
    mean, std = default_norm(backbone)
    return EncoderConfig(
        name=f"{backbone}-imagenet" if has_offline_weights(backbone) else f"{backbone}-random",
        backbone=backbone,
        pretrained="imagenet" if has_offline_weights(backbone) else "none",
        preprocess=PreprocessConfig(image_size=image_size, mean=mean, std=std),  # type: ignore[arg-type]
    )


def load_encoder(
    spec: str | Path, *, device: str | torch.device = "cpu", image_size: int | None = None
) -> ImageEncoder:
    """Load an encoder from a directory (``config.json`` + ``model.safetensors``) or a built-in timm name.

    Raises:
        FileNotFoundError: a directory without ``config.json``/``model.safetensors``.
        ValueError: an unknown backbone name.
        pir.encoder.device.DeviceError: CUDA asked for but not available.
        pir.core.errors.EncoderLoadError: weights that are corrupt, empty or of another shape (one line, the file).
    """
    dev = resolve_device(device)
    path = Path(spec)
    if path.is_dir() or str(spec).endswith(("/", CONFIG_NAME)):
        if path.name == CONFIG_NAME:
            path = path.parent
        cfg_file, w_file = path / CONFIG_NAME, path / WEIGHTS_NAME
        if not cfg_file.is_file() or not w_file.is_file():
            raise FileNotFoundError(f"{path}: not an encoder directory (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
        config = EncoderConfig.model_validate_json(cfg_file.read_text())
        model = VisualEncoder(
            config.backbone,
            projector=config.projector,
            embed_dim=config.embed_dim,
            pretrained=False,
            image_weight=config.image_weight,
        )
        try:
            state = load_file(str(w_file))
        except Exception as e:  # noqa: BLE001  (SafetensorError, OSError: corrupt, truncated or empty file)
            raise EncoderLoadError(
                f"{w_file}: not readable safetensors weights ({' '.join(str(e).split())[:200]}); "
                "copy the encoder directory again or retrain it"
            ) from None
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # a tensor of another shape
            shapes = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
            raise EncoderLoadError(
                f"{w_file}: weights do not fit {cfg_file.name} (backbone {config.backbone}, projector "
                f"{config.projector}, embed_dim {config.embed_dim}): {(shapes or [str(e)])[0][:240]}"
            ) from None
        if missing or unexpected:
            raise EncoderLoadError(
                f"{w_file}: weights do not match {config.backbone} (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        return ImageEncoder(config, model, dev)
    if "/" in str(spec) or "\\" in str(spec) or path.exists():
        raise FileNotFoundError(f"{spec}: no such encoder directory (and not a built-in backbone name)")
    config = builtin_config(str(spec), image_size or 224)
    model = VisualEncoder(config.backbone, pretrained=True)
    return ImageEncoder(config, model, dev)


def encoder_for(settings: Settings, name: str | Path | None = None) -> ImageEncoder:
    """The image encoder the settings describe (``settings.encoder``: name or directory, device; image size), or
    ``name`` on the settings' device."""
    return load_encoder(name or settings.encoder.name, device=settings.encoder.device, image_size=settings.image_size)
