"""The probe hook: measurements taken during training that must not change the training.

A probe is any callable `probe(ctx) -> {name: array}` with a stable `name` (part of the run
record's key: it must say what is measured and how) and an `every` (run at steps 0, every, 2 every,
...). The training loop calls it before the step's update, inside `preserved_state`, so a probe may
move the weights, run forward passes in training mode (updating BN's running statistics) and draw
random numbers (noisy BN): all of it is undone afterwards, bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from bnlib.config import RunConfig

ArrayLike = np.ndarray | Tensor | float | int


@dataclass
class ProbeContext:
    """What a probe sees at training step `step`: the model (in training mode), the step's batch,
    the run's config and its loss function (mean cross-entropy for VGG, summed squared error for
    the DLN)."""

    model: nn.Module
    x: Tensor
    y: Tensor
    step: int
    config: RunConfig
    loss_fn: Callable[[Tensor, Tensor], Tensor]

    def loss(self) -> Tensor:
        """The training loss of the current weights on the current batch."""
        return self.loss_fn(self.model(self.x), self.y)


class Probe(Protocol):
    name: str
    every: int

    def __call__(self, ctx: ProbeContext) -> Mapping[str, ArrayLike]: ...


@dataclass
class FunctionProbe:
    """Wraps a plain function as a probe."""

    name: str
    every: int
    fn: Callable[[ProbeContext], Mapping[str, ArrayLike]]

    def __call__(self, ctx: ProbeContext) -> Mapping[str, ArrayLike]:
        return self.fn(ctx)


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore, on exit, everything a measurement could disturb: parameters and buffers (BN running
    statistics), gradients, training mode, and torch's CPU and CUDA random streams."""
    saved = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    grads = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
    modes = {name: m.training for name, m in model.named_modules()}
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        with torch.no_grad():
            for k, v in model.state_dict(keep_vars=True).items():
                v.copy_(saved[k])
        for name, p in model.named_parameters():
            p.grad = grads[name]
        for name, m in model.named_modules():
            m.training = modes[name]
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def to_numpy(value: ArrayLike) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value)


def probe_key(probe: Probe) -> str:
    """The file-name-safe identity of a probe's outputs in a run record."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in f"{probe.name}-every{probe.every}")


__all__ = ["FunctionProbe", "Probe", "ProbeContext", "preserved_state", "probe_key", "to_numpy"]
