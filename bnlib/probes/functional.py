"""The loss of a model at any parameter values on one batch, without touching the model.

Every probe evaluates the network at weights other than its own (w - eta g, or with some layers
already updated). `BatchLoss` does so through `torch.func.functional_call`: the model's parameters
are never written and never copied; only BN's running statistics are cloned once, because a
training-mode forward pass updates them in place (their values do not affect a training-mode
output). With the training step's random state it replays the step's noise (noisy BN), so every
evaluation of a probe sees the same noise as the step it measures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from bnlib.probes.hook import ProbeContext, RandomState

Params = dict[str, Tensor]


class BatchLoss:
    """L(w; x, y) for parameter dicts w, with BN in training mode (batch statistics) by default."""

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        rng: RandomState | None = None,
        train_mode: bool = True,
    ):
        self.model, self.x, self.y, self.loss_fn = model, x, y, loss_fn
        self.rng, self.train_mode = rng, train_mode
        self.params: Params = {n: p.detach() for n, p in model.named_parameters()}
        self.buffers: Params = {n: b.detach().clone() for n, b in model.named_buffers()}

    @classmethod
    def from_context(cls, ctx: ProbeContext, **kwargs) -> BatchLoss:
        return cls(ctx.model, ctx.x, ctx.y, ctx.loss_fn, rng=ctx.rng, **kwargs)

    @contextlib.contextmanager
    def _mode(self):
        was = self.model.training
        self.model.train(self.train_mode)
        try:
            yield
        finally:
            self.model.train(was)

    def outputs(self, params: Params) -> Tensor:
        if self.rng is not None:
            self.rng.restore()
        with self._mode():
            return functional_call(self.model, (params, self.buffers), (self.x,))

    def __call__(self, params: Params) -> Tensor:
        return self.loss_fn(self.outputs(params), self.y)

    def grad(self, params: Params, wrt: Iterable[str] | None = None) -> tuple[Tensor, Params]:
        """(loss, gradient) at `params`; the gradient only for the names in `wrt` (default: all),
        so autograd skips the layers below the lowest of them."""
        names = list(params) if wrt is None else list(wrt)
        leaves = {n: params[n].detach().requires_grad_(True) for n in names}
        loss = self({**params, **leaves})
        # backward(inputs=...) rather than autograd.grad: measured up to ~10% faster on the CPU.
        loss.backward(inputs=list(leaves.values()))
        return loss.detach(), {n: torch.zeros_like(v) if v.grad is None else v.grad for n, v in leaves.items()}


def norm(d: Params) -> Tensor:
    """The l2 norm of a parameter dict seen as one flat vector."""
    return torch.sqrt(sum(v.square().sum() for v in d.values()))


def dot(a: Params, b: Params) -> Tensor:
    return sum((a[n] * b[n]).sum() for n in a)


def add(a: Params, b: Params, alpha: float = 1.0) -> Params:
    """a + alpha b."""
    return {n: a[n] + alpha * b[n] for n in a}
