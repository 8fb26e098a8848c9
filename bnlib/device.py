"""Device choice and the per-device speed settings of the training loop."""

from __future__ import annotations

import contextlib

import torch

from bnlib.errors import ConfigError


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA when present, else CPU; or the device asked for."""
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError:
            raise ConfigError(f"unknown device {requested!r}; use cpu, or cuda on a machine with a GPU") from None
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"bnlib runs on cpu or cuda, not {requested!r}; use cpu, or cuda on a machine with a GPU")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {requested!r} was asked for but no GPU is visible here; use cpu")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ConfigError(
                f"device {requested!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)"
            )
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure(device: torch.device) -> None:
    """Process-wide settings that make training fast on this device."""
    if device.type == "cpu":
        # Without BN, activations underflow to denormals late in training and CPU math slows ~10x.
        torch.set_flush_denormal(True)
    else:
        torch.backends.cudnn.benchmark = True
        # float32 means float32: TF32 would round the probes' gradient differences and Hessian-vector
        # products (and float32 training) to 10 bits of mantissa
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The training step's precision: bf16 autocast on CUDA for precision "bf16", else float32."""
    if precision == "bf16":
        if device.type != "cuda":
            raise ConfigError("precision 'bf16' needs a CUDA device; use precision 'float32' on the CPU")
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """Autocast's bf16 (or fp16) tensors up to float32; float32 and float64 as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
