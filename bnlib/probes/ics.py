"""Internal covariate shift as a change of gradient: the paper's Definition 2.1 (Fig. 3).

For layer i at step t, on the step's batch:

    G  = grad_{W_i} L(W_1^t, ..., W_k^t)
    G' = grad_{W_i} L(W_1^{t+1}, ..., W_{i-1}^{t+1}, W_i^t, ..., W_k^t)

where W^{t+1} is what the optimizer is about to apply. ICS is ||G - G'||_2; the paper also shows
cos(G, G'). The choices the paper leaves open, and ours (book/protocol.md, "Internal covariate
shift"):

* "layers 1..i-1" move whole: every parameter of those blocks (weights, biases, BN's gamma and
  beta), as the update would move them;
* G is the gradient with respect to the weight tensor W_i only (not its bias);
* BN uses batch statistics and, for noisy BN, the step's own noise in both G and G';
* the frequency is the probe's `every` (each chapter states it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bnlib.models import NumberedNet
from bnlib.probes.functional import BatchLoss, Params
from bnlib.probes.hook import ProbeContext


def ics(
    loss: BatchLoss, model: NumberedNet, layers: Sequence[int], grad: Params, next_params: Params
) -> dict[str, np.ndarray]:
    """||G - G'||, cos(G, G'), ||G|| and ||G'|| for each layer in `layers`.

    `grad` is the full gradient at the current weights and `next_params` the weights after the
    update. Each layer costs one forward pass and a backward pass down to that layer only.
    """
    layer_of = model.layer_of_parameter()
    rows = []
    for i in layers:
        weight = model.weight_name(i)
        moved = {n: next_params[n] if layer_of[n] < i else w for n, w in loss.params.items()}
        _, moved_grad = loss.grad(moved, wrt=[weight])
        g, g_moved = grad[weight].flatten(), moved_grad[weight].flatten()
        cosine = torch.dot(g, g_moved) / (g.norm() * g_moved.norm())
        rows.append(torch.stack([(g - g_moved).norm(), cosine, g.norm(), g_moved.norm()]))
    table = torch.stack(rows).cpu().numpy()
    return {
        "layer": np.asarray(layers),
        "l2_diff": table[:, 0],
        "cosine": table[:, 1],
        "grad_norm": table[:, 2],
        "grad_norm_moved": table[:, 3],
    }


@dataclass
class ICSProbe:
    """Definition 2.1 in the training loop for the given layers, every `every` steps."""

    layers: tuple[int, ...]
    every: int

    @property
    def name(self) -> str:
        return "ics-layers" + ",".join(str(k) for k in self.layers)

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        grad = ctx.gradient()
        return ics(BatchLoss.from_context(ctx), ctx.model, self.layers, grad, ctx.next_params(grad))
