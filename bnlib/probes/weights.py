"""The weights' norms during training: what scale invariance predicts (van Laarhoven, 2017; Arora,
Li and Lyu, 2019).

A weight tensor W that feeds a BatchNorm layer is scale-invariant, L(cW) = L(W) for c > 0, so the
gradient is orthogonal to it, <W, g> = 0, and plain SGD, W <- W - eta g, grows its norm by exactly
||W_{t+1}||^2 = ||W_t||^2 + eta^2 ||g_t||^2; its effective learning rate is eta / ||W||^2. The probe
records, per numbered layer, ||W||^2, ||g||^2 and <W, g> at a step t and at t + 1 (a pair every
`every` steps), so the identity can be checked on a real run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from bnlib.probes.hook import ProbeContext


@dataclass
class WeightNormProbe:
    """||W_k||^2, ||g_k||^2 and <W_k, g_k> for the given numbered layers (None: all), at step t and
    t + 1 every `every` steps; g is the step's own gradient."""

    every: int
    layers: tuple[int, ...] | None = None

    @property
    def offsets(self) -> tuple[int, ...]:
        return (0, 1)

    @property
    def name(self) -> str:
        layers = "all" if self.layers is None else ",".join(map(str, self.layers))
        return f"weight-norms-layers{layers}-pairs"

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        """The three numbers per layer at this step, in float64 from the float32 weights, and the
        angle the optimizer's update is about to turn the weights by (`angular_update`, radians:
        with momentum and weight decay it is not the gradient's step alone)."""
        layers = self.layers or tuple(range(1, ctx.model.num_layers + 1))
        grads = ctx.gradient()
        following = ctx.next_params(grads)
        rows = []
        for k in layers:
            name = ctx.model.weight_name(k)
            w, g, after = ctx.model.layer(k).weight.detach().double(), grads[name].double(), following[name].double()
            cosine = (w * after).sum() / (w.norm() * after.norm())
            rows.append(torch.stack([w.square().sum(), g.square().sum(), (w * g).sum(), cosine.clamp(-1, 1).arccos()]))
        table = torch.stack(rows).cpu().numpy()
        return {
            "layer": np.asarray(layers),
            "weight_sq": table[:, 0],
            "grad_sq": table[:, 1],
            "weight_dot_grad": table[:, 2],
            "angular_update": table[:, 3],
        }


def norm_growth(frame: pd.DataFrame, lr: float, layers: Sequence[int] | None = None) -> pd.DataFrame:
    """From a WeightNormProbe's tidy frame: per layer and probed pair (t, t + 1), the measured
    ||W_{t+1}||^2 - ||W_t||^2 against eta^2 ||g_t||^2 (what scale invariance predicts) and against
    -2 eta <W_t, g_t> + eta^2 ||g_t||^2 (what plain SGD gives any network), and the cosine of W and g."""
    wide = {
        q: frame[frame["quantity"] == q].pivot(index="step", columns="index", values="value").sort_index()
        for q in ("layer", "weight_sq", "grad_sq", "weight_dot_grad", "angular_update")
    }
    numbers = wide["layer"].iloc[0].astype(int).tolist()
    rows = []
    for step in wide["weight_sq"].index:
        if step + 1 not in wide["weight_sq"].index:
            continue
        for i, layer in enumerate(numbers):
            if layers is not None and layer not in layers:
                continue
            w, w_next = wide["weight_sq"].at[step, i], wide["weight_sq"].at[step + 1, i]
            g, dot = wide["grad_sq"].at[step, i], wide["weight_dot_grad"].at[step, i]
            rows.append(
                {
                    "step": int(step),
                    "layer": layer,
                    "weight norm": float(np.sqrt(w)),
                    "growth": w_next - w,
                    "invariance predicts": lr**2 * g,
                    "SGD gives": -2 * lr * dot + lr**2 * g,
                    "cos(W, g)": dot / np.sqrt(w * g) if w * g > 0 else 0.0,
                    "effective lr": lr / w,
                    "angular update": wide["angular_update"].at[step, i],
                }
            )
    return pd.DataFrame(rows)
