"""The gradient of the loss with respect to each layer's activations (paper sections 3.1 and 4.1).

Section 3.1 says that with BatchNorm "the magnitudes of the gradients are smaller too", and Theorem
4.1 bounds the gradient with respect to a layer's outputs y = W x (before any normalization:
BatchNorm's input). So this probe measures, at the step's weights and on the step's batch (BN with
batch statistics, noisy BN with the step's own noise), ||dL/dy_k|| for every numbered layer k: the
gradient that reaches the weight layer's output, through the normalization where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from bnlib.probes.hook import ProbeContext, early_text


def activation_gradient_norms(ctx: ProbeContext) -> np.ndarray:
    """||dL/dy_k|| for every numbered layer k (y_k: the weight layer's output), on the step's batch."""
    outputs: list[Tensor] = []
    hooks = [
        block.layer.register_forward_hook(lambda module, inputs, output: outputs.append(output))
        for block in ctx.model.blocks()
    ]
    try:
        loss = ctx.loss()
    finally:
        for hook in hooks:
            hook.remove()
    grads = torch.autograd.grad(loss, outputs)
    return torch.stack([g.detach().double().norm() for g in grads]).cpu().numpy()


@dataclass
class ActivationGradientProbe:
    """`activation_gradient_norms` every `every` steps (and every `early[1]` before step `early[0]`)."""

    every: int
    early: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return f"activation-gradients-norm_in{early_text(self.early)}"

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        norms = activation_gradient_norms(ctx)
        return {"norms": norms, "total": np.sqrt((norms**2).sum())}
