"""Top eigenvalues of the training loss's Hessian on one batch, by Lanczos on Hessian-vector products.

The Hessian is that of the loss on a fixed batch with respect to all parameters. BN uses the
batch's statistics by default, differentiated through like in training; `frozen_bn=True` instead
holds each normalization's statistics at their values on this batch, as constants (BN's mean and
biased variance, the l_p layers' mean and scale), and switches the noise of noisy BN off. Later
chapters compare lambda_max with 2 / lr.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from bnlib.device import full_precision
from bnlib.norms import LpNorm
from bnlib.probes.functional import BatchLoss
from bnlib.probes.hook import ProbeContext


def freeze_batch_statistics(loss: BatchLoss) -> BatchLoss:
    """Put this batch's normalization statistics into `loss`'s buffers and evaluate in eval mode:
    the same function of the weights at this point, without the gradient through the statistics."""
    inputs: dict[str, Tensor] = {}
    norms = {n: m for n, m in loss.model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm | LpNorm)}

    def capture(name: str):
        return lambda module, args: inputs.__setitem__(name, full_precision(args[0].detach()))

    handles = [m.register_forward_pre_hook(capture(n)) for n, m in norms.items()]
    try:
        with torch.no_grad():
            loss.outputs(loss.params)
    finally:
        for h in handles:
            h.remove()
    for name, module in norms.items():
        x = inputs[name]
        dims = (0, *range(2, x.dim()))
        loss.buffers[f"{name}.running_mean"] = x.mean(dims)
        if isinstance(module, LpNorm):
            loss.buffers[f"{name}.running_scale"] = module.scale(x)
        else:
            loss.buffers[f"{name}.running_var"] = x.var(dims, unbiased=False)
    loss.train_mode = False
    return loss


def top_eigenvalues(loss: BatchLoss, k: int = 1, iters: int = 20, seed: int = 0) -> np.ndarray:
    """The k largest eigenvalues of the Hessian of `loss` at its parameters (Lanczos, `iters`
    Hessian-vector products, full reorthogonalisation), largest first."""
    leaves = [p.detach().requires_grad_(True) for p in loss.params.values()]
    value = loss(dict(zip(loss.params, leaves, strict=True)))
    grads = torch.autograd.grad(value, leaves, create_graph=True)
    sizes = [p.numel() for p in leaves]
    n = sum(sizes)

    def hvp(v: Tensor) -> Tensor:
        parts = [c.view_as(p) for c, p in zip(torch.split(v, sizes), leaves, strict=True)]
        hv = torch.autograd.grad(grads, leaves, grad_outputs=parts, retain_graph=True, allow_unused=True)
        return torch.cat(
            [torch.zeros_like(p).flatten() if h is None else h.flatten() for h, p in zip(hv, leaves, strict=True)]
        )

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, generator=g).to(leaves[0])
    basis = [q / q.norm()]
    alphas, betas = [], []
    for _ in range(min(iters, n)):
        w = hvp(basis[-1])
        alphas.append(torch.dot(w, basis[-1]))
        for _ in range(2):  # full reorthogonalisation, twice for stability
            for b in basis:
                w = w - torch.dot(w, b) * b
        beta = w.norm()
        if beta <= 1e-6 * abs(alphas[-1]) or len(alphas) == min(iters, n):
            break
        betas.append(beta)
        basis.append(w / beta)
    tri = torch.diag(torch.stack(alphas))
    if betas:
        off = torch.stack(betas[: len(alphas) - 1])
        tri = tri + torch.diag(off, 1) + torch.diag(off, -1)
    eig = torch.linalg.eigvalsh(tri.double().cpu()).numpy()[::-1]
    return eig[:k].copy()


@dataclass
class HessianProbe:
    """The Hessian's top eigenvalues in the training loop, every `every` steps."""

    every: int
    k: int = 1
    iters: int = 20
    frozen_bn: bool = False

    @property
    def name(self) -> str:
        return f"hessian-top{self.k}-lanczos{self.iters}{'-frozenbn' if self.frozen_bn else ''}"

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        loss = BatchLoss.from_context(ctx)
        if self.frozen_bn:
            freeze_batch_statistics(loss)
        eigenvalues = top_eigenvalues(loss, self.k, self.iters, seed=ctx.step)
        return {"eigenvalues": eigenvalues, "two_over_lr": np.float64(2 / ctx.config.lr)}
