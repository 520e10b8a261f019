"""One module per object family; importing this package registers them all (one line each)."""

from __future__ import annotations

from pir.synth.objects import containers, footwear, furniture, hardware, lighting, plumbing, tools  # noqa: F401
