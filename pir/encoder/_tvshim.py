"""Work around the CUDA-only torchvision wheel on a CPU torch build.

PyPI's torchvision 0.28.0 links CUDA libraries; on the CPU torch its C++ ops fail to register and ``import
torchvision`` (pulled in by timm and transformers) dies with "operator torchvision::nms does not exist". Declaring the
two op schemas first lets it import; the ops themselves stay unavailable, which embedding backbones never need.
Import this module before timm, torchvision or transformers. It is a no-op where torchvision's ops load normally.
"""

from __future__ import annotations

import torch

_LIB: torch.library.Library | None = None


def apply() -> None:
    """Declare ``torchvision::nms``/``qnms`` if torchvision's compiled ops are unavailable (idempotent)."""
    global _LIB
    if _LIB is not None:
        return
    try:
        torch.ops.torchvision.nms  # noqa: B018
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB = lib


apply()
