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


def spectrum(
    loss: BatchLoss,
    iters: int = 20,
    seed: int = 0,
    view: str = "raw",
    model: nn.Module | None = None,
    top: int = 1,
    gradient: Tensor | None = None,
) -> dict[str, np.ndarray]:
    """The Hessian of `loss` at its parameters, seen by Lanczos (`iters` Hessian-vector products,
    full reorthogonalisation): its Ritz values, largest first (the top ones converge first; the rest
    sketch the bulk), and, given the loss's `gradient` as one flat vector, the share of its squared
    norm in the span of the `top` leading Ritz vectors (Ghorbani et al.'s concentration of the
    gradient in the outlier directions).

    `view` chooses the operator (the numbered layers of `model`, a `NumberedNet`, say where):
    "raw", H itself; "scaled", D H D with D multiplying each hidden layer's weights by their norm
    (the curvature per relative change of the weights: for weights that feed a normalization it does
    not change when they are rescaled, whereas H scales as 1/||W||^2); "tangent", P H P with P
    removing, for each layer that feeds a normalization, the component along its weights (the one
    direction a scale-invariant loss is flat along, and a frozen one need not be)."""
    leaves = [p.detach().requires_grad_(True) for p in loss.params.values()]
    value = loss(dict(zip(loss.params, leaves, strict=True)))
    grads = torch.autograd.grad(value, leaves, create_graph=True)
    sizes = [p.numel() for p in leaves]
    n = sum(sizes)
    transform = _view(view, model, loss, sizes) if view != "raw" else (lambda v: v)

    def operator(v: Tensor) -> Tensor:
        v = transform(v)
        parts = [c.view_as(p) for c, p in zip(torch.split(v, sizes), leaves, strict=True)]
        hv = torch.autograd.grad(grads, leaves, grad_outputs=parts, retain_graph=True, allow_unused=True)
        flat = torch.cat(
            [torch.zeros_like(p).flatten() if h is None else h.flatten() for h, p in zip(hv, leaves, strict=True)]
        )
        return transform(flat)

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, generator=g).to(leaves[0])
    basis = [q / q.norm()]
    alphas, betas = [], []
    for _ in range(min(iters, n)):
        w = operator(basis[-1])
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
    values, vectors = torch.linalg.eigh(tri.double().cpu())
    order = torch.argsort(values, descending=True)
    out = {"ritz": values[order].numpy().copy()}
    if gradient is not None:
        seen = transform(gradient.to(leaves[0]))
        coefficients = torch.stack(basis[: len(alphas)]) @ seen  # the gradient in the Lanczos basis
        leading = vectors[:, order[:top]].to(coefficients)
        out["grad_mass"] = np.float64(((leading.T @ coefficients).square().sum() / seen.square().sum()).item())
    return out


def _view(view: str, model: nn.Module | None, loss: BatchLoss, sizes: list[int]):
    """The symmetric map (on flat parameter vectors) that `spectrum`'s "scaled" or "tangent" view
    applies on both sides of H."""
    if model is None:
        raise ValueError(f"the {view!r} view needs the model, to know its numbered layers")
    names = list(loss.params)
    starts = dict(zip(names, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
    hidden = range(1, model.num_layers)  # every numbered layer but the classifier
    if view == "scaled":
        scale = torch.ones(sum(sizes)).to(next(iter(loss.params.values())))
        for k in hidden:
            name = model.weight_name(k)
            scale[starts[name] : starts[name] + loss.params[name].numel()] = loss.params[name].norm()
        return lambda v: v * scale
    if view == "tangent":
        fed = [model.weight_name(k) for k in hidden if not isinstance(model.norm(k), nn.Identity)]
        directions = [(starts[n], loss.params[n].flatten() / loss.params[n].norm()) for n in fed]

        def project(v: Tensor) -> Tensor:
            v = v.clone()
            for start, u in directions:
                part = v[start : start + len(u)]
                part -= torch.dot(part, u) * u
            return v

        return project
    raise ValueError(f"view must be raw, scaled or tangent, not {view!r}")


def top_eigenvalues(loss: BatchLoss, k: int = 1, iters: int = 20, seed: int = 0) -> np.ndarray:
    """The k largest eigenvalues of the Hessian of `loss` at its parameters (Lanczos, `iters`
    Hessian-vector products, full reorthogonalisation), largest first."""
    return spectrum(loss, iters, seed)["ritz"][:k].copy()


@dataclass
class HessianProbe:
    """The Hessian's top eigenvalues in the training loop, every `every` steps: with BatchNorm's
    statistics active (as in training) or frozen (`frozen_bn`), in one of `spectrum`'s views; with
    `bulk`, every Ritz value and the step's gradient's share in the top `k` Ritz directions."""

    every: int
    k: int = 1
    iters: int = 20
    frozen_bn: bool = False
    view: str = "raw"
    bulk: bool = False

    def __post_init__(self) -> None:
        if self.view not in ("raw", "scaled", "tangent"):
            raise ValueError(f"view must be raw, scaled or tangent, not {self.view!r}")

    @property
    def name(self) -> str:
        extras = ("-frozenbn" if self.frozen_bn else "") + ("" if self.view == "raw" else f"-{self.view}")
        return f"hessian-top{self.k}-lanczos{self.iters}{extras}{'-bulk' if self.bulk else ''}"

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        loss = BatchLoss.from_context(ctx)
        if self.frozen_bn:
            freeze_batch_statistics(loss)
        gradient = None
        if self.bulk:  # the gradient of the function whose Hessian this is (frozen or active)
            _, grads = loss.grad(loss.params)
            gradient = torch.cat([grads[name].flatten() for name in loss.params])
        out = spectrum(loss, self.iters, seed=ctx.step, view=self.view, model=ctx.model, top=self.k, gradient=gradient)
        found = {"eigenvalues": out["ritz"][: self.k].copy(), "two_over_lr": np.float64(2 / ctx.config.lr)}
        if self.bulk:  # padded: Lanczos stops early on a small network, and the record stacks the steps
            ritz = np.full(self.iters, np.nan)
            ritz[: len(out["ritz"])] = out["ritz"][: self.iters]
            found |= {"ritz": ritz, "grad_mass": out["grad_mass"]}
        return found
