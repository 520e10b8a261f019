"""Explicit device selection: asking for CUDA without CUDA is an error, never a silent CPU fallback."""

from __future__ import annotations

import torch


class DeviceError(RuntimeError):
    """The requested device is not available."""


def resolve_device(spec: str | torch.device | None = "cpu") -> torch.device:
    """Turn ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps`` into a ``torch.device``, checking that it exists.

    Raises:
        DeviceError: the device was asked for but is not available here.
    """
    dev = torch.device(spec if spec is not None else "cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(dev)!r} was requested but CUDA is not available (torch {torch.__version__}); "
                "pass --device cpu (PIR_ENCODER__DEVICE=cpu) to run on the CPU"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(dev)!r} was requested but only {torch.cuda.device_count()} GPU(s) exist")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("device 'mps' was requested but MPS is not available")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {str(dev)!r}")
    return dev


def describe_device(dev: torch.device) -> str:
    """Human-readable device description (GPU name, or CPU thread count)."""
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"{dev} ({torch.get_num_threads()} threads)"
