"""The loss landscape along the gradient (paper section 3.1, Figs. 4, 10, 11, 12, 13).

At training step t, with g the full parameter gradient on the step's batch and w' = w - eta d for
each eta in a grid (d = g, or a random direction of the same norm):

* loss         L(w')                                  ("loss landscape", Fig. 4a)
* grad_diff    ||grad L(w') - g||_2                   ("gradient predictiveness", Fig. 4b)
* beta         ||grad L(w') - g||_2 / ||eta d||_2     (its maximum over eta is the
                                                       "effective beta-smoothness", Fig. 4c)

The gradients are those of the training loss on the step's batch, BN using batch statistics and,
for noisy BN, the step's own noise: the probe looks at the very function the step descends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bnlib.probes.functional import BatchLoss, Params, add, norm
from bnlib.probes.hook import ProbeContext, early_text

VGG_ETAS = (0.5, 1.0, 2.0, 4.0)  # x lr: the paper's [1/2, 4] x lr, the 4 points its Fig. 11a shows
DLN_ETAS = tuple(float(e) for e in np.geomspace(0.01, 30, 8))  # x lr: log-spaced over [1/100, 30]
# Beyond the paper's grids, to test its captions' "BatchNorm continues to provide smoothing for
# even larger distances" (Figs. 4 and 10)
VGG_EXTENDED_ETAS = (*VGG_ETAS, 8.0, 16.0, 32.0)
DLN_EXTENDED_ETAS = (*DLN_ETAS, 100.0, 300.0, 1000.0)


def random_direction(like: Params, seed: int) -> Params:
    """A Gaussian direction with the same norm as `like`, fixed by `seed` (drawn on the CPU so it
    is the same on every device)."""
    g = torch.Generator().manual_seed(seed)
    d = {n: torch.randn(v.shape, generator=g).to(v) for n, v in like.items()}
    scale = norm(like) / norm(d)
    return {n: v * scale for n, v in d.items()}


def landscape(
    loss: BatchLoss, etas: Sequence[float], grad: Params | None = None, direction: Params | None = None
) -> dict[str, np.ndarray]:
    """Loss, gradient change and their ratio at w - eta d for each absolute step size eta.

    `grad` is g at the current weights (computed if not given: one more pass); `direction` is d
    (default g). Costs one forward and backward pass per step size.
    """
    w = loss.params
    if grad is None:
        _, grad = loss.grad(w)
    d = grad if direction is None else direction
    d_norm = norm(d)
    rows = []
    for eta in etas:
        loss_eta, grad_eta = loss.grad(add(w, d, -eta))
        diff = norm({n: grad_eta[n] - grad[n] for n in grad})
        rows.append(torch.stack([loss_eta.to(diff.dtype), diff, diff / (eta * d_norm)]))
    table = torch.stack(rows).cpu().numpy()  # one synchronisation for the whole probe
    loss_eta, grad_diff, beta = table.T
    return {
        "eta": np.asarray(etas, dtype=np.float64),
        "loss": loss_eta,
        "grad_diff": grad_diff,
        "beta": beta,
        "loss_min": loss_eta.min(),
        "loss_max": loss_eta.max(),
        "grad_diff_min": grad_diff.min(),
        "grad_diff_max": grad_diff.max(),
        "beta_max": beta.max(),
        "grad_norm": norm(grad).item(),
    }


@dataclass
class LandscapeProbe:
    """The landscape probe in the training loop, every `every` steps.

    `etas` are multiples of the learning rate (default: the paper's grid for the model);
    `direction` is "gradient" (the paper's probe) or "random" (a fresh random direction of the
    gradient's norm at every probed step); `early = (until, dense)`: also every `dense` steps
    before step `until` (`bnlib.probes.hook.due`).
    """

    every: int
    etas: tuple[float, ...] | None = None
    direction: str = "gradient"
    early: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("gradient", "random"):
            raise ValueError(f"direction must be 'gradient' or 'random', not {self.direction!r}")

    @property
    def name(self) -> str:
        etas = "default" if self.etas is None else ",".join(f"{e:g}" for e in self.etas)
        return f"landscape-{self.direction}-eta{etas}xlr{early_text(self.early)}"

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        multiples = self.etas or (VGG_ETAS if ctx.config.on_cifar else DLN_ETAS)
        grad = ctx.gradient()
        direction = (
            random_direction(grad, seed=ctx.config.seed * 1_000_003 + ctx.step) if self.direction == "random" else None
        )
        out = landscape(BatchLoss.from_context(ctx), [m * ctx.config.lr for m in multiples], grad, direction)
        return out | {"eta_multiple": np.asarray(multiples, dtype=np.float64)}
