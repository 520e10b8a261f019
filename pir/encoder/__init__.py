"""Image and text encoders, losses, enrichment targets and training."""

from __future__ import annotations

import importlib.abc
import sys


class _TorchvisionShimHook(importlib.abc.MetaPathFinder):
    """Applies :mod:`pir.encoder._tvshim` right before the first ``import torchvision`` (by timm, transformers, ...).

    Installed on import of this package without importing torch itself, so torch-free modules here (the training
    options the CLI reads) stay cheap to import, while any later torchvision import, in any order, is shimmed.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "torchvision":
            sys.meta_path.remove(self)
            from pir.encoder._tvshim import apply  # lazy: the shim imports torch; only on a torchvision import

            apply()
        return None


if "torchvision" in sys.modules:
    from pir.encoder._tvshim import apply as _apply

    _apply()
elif not any(isinstance(f, _TorchvisionShimHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionShimHook())
