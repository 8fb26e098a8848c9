"""Activation distributions per numbered layer (Figs. 1c, 2, 6, 8, 9).

For a seeded random set of units of each chosen layer (channels of a conv layer, features of a
linear one), the distribution of each unit's value over the batch (and over H and W for conv
layers, which count as batch dimensions as in BN), summarised by quantiles for ridge and histogram
plots, plus its mean and variance (Fig. 8's moments). Measured at the normalization's input
("in": the weight layer's output) and/or its output ("out": after the affine and, for noisy BN,
after the noise, which is the step's own), the key names saying which: "L3.out.quantiles".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from bnlib.device import full_precision
from bnlib.models import NumberedNet
from bnlib.probes.hook import ProbeContext, RandomState

QUANTILE_LEVELS = tuple(float(q) for q in np.linspace(0, 1, 41))


def chosen_units(model: NumberedNet, layer: int, n_units: int, seed: int = 0) -> Tensor:
    """The units of a layer whose distributions are tracked: the same at every step of a run."""
    width = model.layer(layer).weight.shape[0]
    g = torch.Generator().manual_seed(seed * 1000 + layer)
    return torch.randperm(width, generator=g)[: min(n_units, width)].sort().values


def _per_unit(t: Tensor, units: Tensor) -> Tensor:
    """(units, values): a unit's values over the batch (and H, W)."""
    t = full_precision(t.detach())[:, units.to(t.device)]
    return t.transpose(0, 1).reshape(len(units), -1)


@torch.no_grad()
def activation_stats(
    model: NumberedNet,
    x: Tensor,
    layers: Sequence[int],
    n_units: int = 8,
    where: Sequence[str] = ("in", "out"),
    quantiles: Sequence[float] = QUANTILE_LEVELS,
    rng: RandomState | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One forward pass in the model's current mode; the statistics of the chosen units."""
    captured: dict[tuple[int, str], Tensor] = {}

    def hook(layer: int):
        def save(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            captured[(layer, "in")], captured[(layer, "out")] = inputs[0], output

        return save

    handles = [model.norm(k).register_forward_hook(hook(k)) for k in layers]
    try:
        if rng is not None:
            rng.restore()
        model(x)
    finally:
        for h in handles:
            h.remove()
    levels = torch.tensor(quantiles)
    out: dict[str, np.ndarray] = {"quantile_levels": levels.numpy()}
    for k in layers:
        units = chosen_units(model, k, n_units, seed)
        out[f"L{k}.units"] = units.numpy()
        for side in where:
            values = _per_unit(captured[(k, side)], units)
            out[f"L{k}.{side}.quantiles"] = torch.quantile(values, levels.to(values), dim=1).T.cpu().numpy()
            out[f"L{k}.{side}.mean"] = values.mean(1).cpu().numpy()
            out[f"L{k}.{side}.var"] = values.var(1, unbiased=False).cpu().numpy()
    return out


@dataclass
class ActivationProbe:
    """Activation statistics in the training loop, every `every` steps."""

    layers: tuple[int, ...]
    every: int
    n_units: int = 8
    where: tuple[str, ...] = ("in", "out")

    def __post_init__(self) -> None:
        if not set(self.where) <= {"in", "out"}:
            raise ValueError(f"where must hold 'in' and/or 'out', not {self.where}")

    @property
    def name(self) -> str:
        return f"activations-layers{','.join(map(str, self.layers))}-units{self.n_units}-{'+'.join(self.where)}"

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        return activation_stats(
            ctx.model, ctx.x, self.layers, self.n_units, self.where, rng=ctx.rng, seed=ctx.config.seed
        )


def moment_shifts(probe_frame: pd.DataFrame, layer: int, where: str = "out") -> pd.DataFrame:
    """Fig. 8's quantities per unit from an activation probe's tidy frame: between consecutive
    probed steps |mu_{t+1} - mu_t| and |var_{t+1} - var_t|, and the drifts mu_t - mu_0, var_t - var_0."""
    parts = []
    for moment in ("mean", "var"):
        rows = probe_frame[probe_frame["quantity"] == f"L{layer}.{where}.{moment}"]
        wide = rows.pivot(index="step", columns="index", values="value").sort_index()
        parts += [
            wide.diff().abs().stack().rename(f"abs_change_{moment}"),
            (wide - wide.iloc[0]).stack().rename(f"drift_{moment}"),
        ]
    return pd.concat(parts, axis=1).rename_axis(["step", "unit"]).reset_index()
