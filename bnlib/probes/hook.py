"""The probe hook: measurements taken during training that must not change the training.

A probe is any callable `probe(ctx) -> {name: array}` with a stable `name` (the key of its outputs
in the run record: it must say what is measured and how) and an `every` (run at steps 0, every, 2 every,
...). The training loop calls it after computing the step's gradient and before the optimizer
applies it, inside `preserved_state`, so a probe may move the weights, run forward passes in
training mode (updating BN's running statistics), overwrite gradients and draw random numbers
(noisy BN): all of it is undone afterwards, bit for bit.
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
class RandomState:
    """torch's CPU and CUDA random streams at one moment (noisy BN draws from them)."""

    cpu: Tensor
    cuda: list[Tensor]

    @classmethod
    def capture(cls) -> RandomState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
        return cls(torch.get_rng_state(), cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda:
            torch.cuda.set_rng_state_all(self.cuda)


@dataclass
class ProbeContext:
    """What a probe sees at training step `step`, after the step's gradient was computed and before
    the optimizer applies it: the model (training mode, `.grad` holding that gradient), the step's
    batch, the run's config, its loss function (mean cross-entropy for VGG, summed squared error
    for the DLN), the optimizer, and the random state the step's forward pass started from."""

    model: nn.Module
    x: Tensor
    y: Tensor
    step: int
    config: RunConfig
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    optimizer: torch.optim.Optimizer | None = None
    rng: RandomState | None = None

    @contextlib.contextmanager
    def same_noise(self) -> Iterator[None]:
        """Forward passes inside see the training step's own noise (noisy BN), draw for draw."""
        if self.rng is not None:
            self.rng.restore()
        yield

    def loss(self) -> Tensor:
        """The training loss of the current weights on the current batch, with the step's noise."""
        with self.same_noise():
            out = self.model(self.x)
        return self.loss_fn(out, self.y)

    def gradient(self) -> dict[str, Tensor]:
        """The step's training gradient g, by parameter name (computed if the loop has not)."""
        params = dict(self.model.named_parameters())
        if any(p.grad is None for p in params.values()):
            grads = torch.autograd.grad(self.loss(), list(params.values()), allow_unused=True)
            return {n: torch.zeros_like(p) if g is None else g for (n, p), g in zip(params.items(), grads, strict=True)}
        return {n: p.grad.detach().clone() for n, p in params.items()}

    def next_params(self, grads: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The parameters after the update the optimizer is about to apply (W^(t+1) of Def. 2.1)."""
        grads = grads if grads is not None else self.gradient()
        if self.optimizer is None:
            return {n: p.detach() - self.config.lr * grads[n] for n, p in self.model.named_parameters()}
        return sgd_preview(self.optimizer, self.model, grads)


def sgd_preview(optimizer: torch.optim.Optimizer, model: nn.Module, grads: dict[str, Tensor]) -> dict[str, Tensor]:
    """What torch.optim.SGD would set each parameter to, without changing it or its state."""
    if not isinstance(optimizer, torch.optim.SGD):
        raise TypeError(f"sgd_preview knows torch.optim.SGD only, not {type(optimizer).__name__}")
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    out = {}
    for name, p in model.named_parameters():
        group = group_of[id(p)]
        step = grads[name] + group["weight_decay"] * p.detach()
        if group["momentum"]:
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            buf = step if buf is None else group["momentum"] * buf + (1 - group["dampening"]) * step
            step = step + group["momentum"] * buf if group["nesterov"] else buf
        out[name] = p.detach() - group["lr"] * step
    return out


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
    rng = RandomState.capture()
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
        rng.restore()


def to_numpy(value: ArrayLike) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value)


def due(probe: Probe, step: int) -> bool:
    """Whether a probe runs at `step`: at steps 0, every, 2 every, ..., and, for a probe with
    `offsets` (e.g. (0, 1) for successive steps t and t + 1), at those steps plus each offset. A
    probe with `early = (until, dense)` also runs every `dense` steps before step `until` (where a
    network may leave its initial plateau within a few of its strides)."""
    early = getattr(probe, "early", None)
    if early is not None and step < early[0] and step % early[1] == 0:
        return True
    return step % probe.every in getattr(probe, "offsets", (0,))


def early_text(early: tuple[int, int] | None) -> str:
    """How a probe's name says its dense start ('' without one): '-early300x3'."""
    return "" if early is None else f"-early{early[0]}x{early[1]}"


def probe_key(probe: Probe) -> str:
    """The file-name-safe identity of a probe's outputs in a run record."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in f"{probe.name}-every{probe.every}")


__all__ = [
    "FunctionProbe",
    "Probe",
    "ProbeContext",
    "RandomState",
    "due",
    "early_text",
    "preserved_state",
    "probe_key",
    "to_numpy",
]
