"""Image and text encoders, losses, enrichment targets and training."""

from __future__ import annotations

# Declares torchvision's op schemas on CPU torch before anything in this package imports timm/torchvision.
import pir.encoder._tvshim  # noqa: F401  # isort: skip
