"""Image and text encoders, losses, enrichment targets and training."""

from __future__ import annotations
