"""Activation distributions per numbered layer (Figs. 1c, 2, 6, 8, 9).

For a seeded random set of units of each chosen layer, the distribution of each unit's value over
the batch (and over H and W for conv layers, which count as batch dimensions as in BN), summarised
by quantiles for ridge and histogram plots, plus its mean and variance (Fig. 8's moments). Measured
at up to three sites of layer #k, the key names saying which ("L3.input.quantiles"):

* "norm_out": the normalization's output, after its affine map and, for noisy BN, after the step's
  own noise; before the activation. In a network without normalization it is the weight layer's
  output. This is where the paper's histograms of Figs. 1c, 2, 6 and 8 are taken: "a random input"
  of layer #k is its pre-activation (the figures have negative values, which no ReLU output has).
* "norm_in": the weight layer's output, entering the normalization (sigma_j of Section 4 is its
  spread).
* "input": the values that enter layer #k, i.e. the previous block's output after its activation
  (and any pooling); its units are the layer's input channels.

With `pairs=True` a probe also runs one step after each probed step, so that the change of the
moments "between two successive steps" (Fig. 8) is measured at t and t + 1.
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

SITES = ("input", "norm_in", "norm_out")
QUANTILE_LEVELS = tuple(float(q) for q in np.linspace(0, 1, 41))


def chosen_units(model: NumberedNet, layer: int, n_units: int, seed: int = 0, site: str = "norm_out") -> Tensor:
    """The units of a layer whose distributions are tracked: the same at every step of a run. At the
    "input" site they are input channels of the layer, elsewhere its output channels."""
    width = model.layer(layer).weight.shape[1 if site == "input" else 0]
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
    sites: Sequence[str] = SITES,
    quantiles: Sequence[float] = QUANTILE_LEVELS,
    rng: RandomState | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One forward pass in the model's current mode; the statistics of the chosen units."""
    captured: dict[tuple[int, str], Tensor] = {}

    def save_input(layer: int):
        def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            captured[(layer, "input")] = args[0]

        return hook

    def save_norm(layer: int):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            captured[(layer, "norm_in")], captured[(layer, "norm_out")] = inputs[0], output

        return hook

    handles = [model.block(k).register_forward_pre_hook(save_input(k)) for k in layers]
    handles += [model.norm(k).register_forward_hook(save_norm(k)) for k in layers]
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
        for site in sites:
            units = chosen_units(model, k, n_units, seed, site)
            values = _per_unit(captured[(k, site)], units)
            out[f"L{k}.{site}.units"] = units.numpy()
            out[f"L{k}.{site}.quantiles"] = torch.quantile(values, levels.to(values), dim=1).T.cpu().numpy()
            out[f"L{k}.{site}.mean"] = values.mean(1).cpu().numpy()
            out[f"L{k}.{site}.var"] = values.var(1, unbiased=False).cpu().numpy()
    return out


@dataclass
class ActivationProbe:
    """Activation statistics in the training loop, every `every` steps (and the step after each,
    with `pairs`)."""

    layers: tuple[int, ...]
    every: int
    n_units: int = 8
    sites: tuple[str, ...] = SITES
    pairs: bool = False

    def __post_init__(self) -> None:
        if not self.sites or not set(self.sites) <= set(SITES):
            raise ValueError(f"sites must be some of {', '.join(SITES)}, not {self.sites}")
        if self.pairs and self.every < 2:
            raise ValueError("pairs of successive steps need every >= 2")

    @property
    def offsets(self) -> tuple[int, ...]:
        return (0, 1) if self.pairs else (0,)

    @property
    def name(self) -> str:
        layers, sites = ",".join(map(str, self.layers)), "+".join(self.sites)
        return f"activations-layers{layers}-units{self.n_units}-{sites}{'-pairs' if self.pairs else ''}"

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        return activation_stats(
            ctx.model, ctx.x, self.layers, self.n_units, self.sites, rng=ctx.rng, seed=ctx.config.seed
        )


def _moments(probe_frame: pd.DataFrame, layer: int, site: str, moment: str) -> pd.DataFrame:
    rows = probe_frame[probe_frame["quantity"] == f"L{layer}.{site}.{moment}"]
    return rows.pivot(index="step", columns="index", values="value").sort_index()


def successive_changes(probe_frame: pd.DataFrame, layer: int, site: str) -> pd.DataFrame:
    """Fig. 8a per unit: |mu_{t+1} - mu_t| and |var_{t+1} - var_t| for every probed pair of
    successive steps (t, t + 1) of an activation probe run with pairs."""
    parts = []
    for moment in ("mean", "var"):
        wide = _moments(probe_frame, layer, site, moment)
        following = wide.reindex(wide.index + 1)
        change = np.abs(following.to_numpy() - wide.to_numpy())
        frame = pd.DataFrame(change, index=wide.index, columns=wide.columns).dropna(how="all")
        parts.append(frame.stack().rename(f"abs_change_{moment}"))
    return pd.concat(parts, axis=1).rename_axis(["step", "unit"]).reset_index()


def drifts(probe_frame: pd.DataFrame, layer: int, site: str, start: int = 0, end: float = np.inf) -> pd.DataFrame:
    """Fig. 8b per unit, from the first probed step at or after `start` (t0) to the last at or
    before `end`: mu_t - mu_t0 and var_t - var_t0 at every probed step from t0, and the drifts
    relative to the unit's typical spread over those steps, |mu_t - mu_t0| / s and |sd_t - sd_t0| / s
    with s the median of sd_t: how far the distribution moved, in units of its own width (a spread
    that starts near zero and grows is not measured against its vanishing start)."""
    mean, var = _moments(probe_frame, layer, site, "mean"), _moments(probe_frame, layer, site, "var")
    inside = (mean.index >= start) & (mean.index <= end)
    mean, var = mean[inside], var[inside]
    sd = var.clip(lower=0) ** 0.5
    typical = sd.median().replace(0, np.nan)
    columns = {
        "drift_mean": mean - mean.iloc[0],
        "drift_var": var - var.iloc[0],
        "relative_drift_mean": (mean - mean.iloc[0]).abs() / typical,
        "relative_drift_sd": (sd - sd.iloc[0]).abs() / typical,
    }
    return (
        pd.concat([v.stack().rename(k) for k, v in columns.items()], axis=1).rename_axis(["step", "unit"]).reset_index()
    )
