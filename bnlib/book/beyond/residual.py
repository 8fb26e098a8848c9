"""Chapter 11: residual networks and the identity (De and Smith, 2020; Zhang, Dauphin and Ma, 2019).

The CIFAR ResNet of `bnlib.models.resnet` in four variants: with BatchNorm, without
normalization, with SkipInit and with Fixup. Two measurements:

* at initialisation, per residual block, the variance of what the branch adds against the variance
  of the skip path it adds it to (`bnlib.probes.signal.residual_variances`), in a deep ResNet;
* training at two batch sizes, each with a small grid of learning rates (scaled with the batch
  size), for the same number of examples: which of BatchNorm's benefits does the bias toward the
  identity alone recover, and which need the normalization?
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan
from bnlib.config import RunConfig
from bnlib.experiments import base_config, check_scale
from bnlib.probes.signal import residual_variances
from bnlib.records import Record
from bnlib.sweeps import Job
from bnlib.train import first_batches, initial_model

VARIANTS: dict[str, dict] = {
    "BatchNorm": dict(norm="batch"),
    "no normalization": dict(norm="none"),
    "SkipInit": dict(norm="none", residual="skipinit"),
    "Fixup": dict(norm="none", residual="fixup"),
}
COLORS = {"BatchNorm": "#1f77b4", "no normalization": "#555555", "SkipInit": "#2ca02c", "Fixup": "#d62728"}
INIT_DEPTH = {"paper": 110, "cpu": 56, "smoke": 20}  # the ResNet measured at initialisation
TRAIN_DEPTH = 20
BATCHES = {"paper": (128, 1024), "cpu": (128, 512), "smoke": (16, 64)}
BASE_RATES = (0.025, 0.1, 0.4)  # at the smaller batch; scaled by batch / smaller batch at the larger
EXAMPLES = {"paper": 128 * 15_000, "cpu": 128 * 400, "smoke": 16 * 8}  # every run sees as many examples
TRAINS = 0.2


def rates(batch: int, scale: str) -> tuple[float, ...]:
    small = BATCHES[check_scale(scale)][0]
    return tuple(r * batch / small for r in BASE_RATES)


def config(variant: str, batch: int, lr: float, scale: str, depth: int = TRAIN_DEPTH) -> RunConfig:
    steps = max(1, EXAMPLES[check_scale(scale)] // batch)
    cfg = base_config("resnet", scale, resnet_depth=depth, batch_size=batch, lr=lr, **VARIANTS[variant])
    every = cfg.test_every and max(1, steps // 5)
    return plan.capped(cfg.replace(steps=steps, test_every=every))


def init_table(scale: str) -> pd.DataFrame:
    """Per variant and residual block of the deep ResNet at initialisation: branch and skip variances."""
    frames = []
    for variant in VARIANTS:
        cfg = config(variant, BATCHES[check_scale(scale)][0], 0.1, scale, depth=INIT_DEPTH[scale])
        [(x, _)], _ = first_batches(cfg, 1)
        frames.append(residual_variances(initial_model(cfg), x).assign(variant=variant))
    return pd.concat(frames, ignore_index=True)


def init_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Var(branch) / Var(skip) per variant at the first, middle and last residual block."""
    last = int(frame["block"].max())
    blocks = sorted({1, (last + 1) // 2, last})
    table = frame[frame["block"].isin(blocks)].pivot(index="variant", columns="block", values="ratio")
    table = table.reindex(list(VARIANTS)).rename(columns=lambda b: f"block {b}")
    table.columns.name = None
    return table.reset_index()


def init_figure(frame: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for variant, mine in frame.groupby("variant", sort=False):
        ratio = mine["ratio"].where(mine["ratio"] > 0)  # SkipInit and Fixup: exactly 0, off the log axis
        ax.plot(mine["block"], ratio, "o-", ms=3, color=COLORS[variant], label=variant)
    blocks = frame["block"].unique()
    ax.plot(blocks, 1 / blocks, ":", color="0.5", label="1 / block")
    ax.set(yscale="log", xlabel="residual block", ylabel="Var(branch) / Var(skip)")
    ax.legend(fontsize="small")
    return fig


def jobs(scale: str) -> list[Job]:
    return [
        Job(config(variant, batch, lr, scale), (), f"ResNet-{TRAIN_DEPTH} {variant}, batch {batch}, lr {lr:g}")
        for variant in VARIANTS
        for batch in BATCHES[check_scale(scale)]
        for lr in rates(batch, scale)
    ]


def runs(scale: str) -> dict[tuple[str, int, float], Record]:
    todo = jobs(scale)
    keys = [(variant, batch, lr) for variant in VARIANTS for batch in BATCHES[scale] for lr in rates(batch, scale)]
    return dict(zip(keys, plan.records(todo), strict=True))


def train_table(scale: str) -> pd.DataFrame:
    """Per variant, batch size and rate: diverged, final training loss and accuracy, test accuracy."""
    rows = []
    for (variant, batch, lr), record in runs(scale).items():
        rows.append(
            {
                "variant": variant,
                "batch": batch,
                "lr": lr,
                "steps": record.config.steps,
                "diverged": record.diverged,
                "training loss": np.nan if record.diverged else record.final["train_loss"],
                "training accuracy": np.nan if record.diverged else record.final["train_acc"],
                "test accuracy": np.nan if record.diverged else record.final["test_acc"],
            }
        )
    return pd.DataFrame(rows)


def best_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant and batch size: the best test accuracy over the rates, at which rate, and the
    largest rate that trains (final training accuracy >= TRAINS)."""
    rows = []
    for (variant, batch), mine in frame.groupby(["variant", "batch"], sort=False):
        ok = mine[~mine["diverged"]]
        top = ok.loc[ok["test accuracy"].idxmax()] if len(ok) else None
        training = mine[mine["training accuracy"] >= TRAINS]["lr"]
        rows.append(
            {
                "variant": variant,
                "batch": batch,
                "best test accuracy": np.nan if top is None else top["test accuracy"],
                "at lr": np.nan if top is None else top["lr"],
                "largest lr that trains": training.max() if len(training) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def train_figure(frame: pd.DataFrame) -> plt.Figure:
    """Final test accuracy against the rate, per variant, one panel per batch size."""
    batches = sorted(frame["batch"].unique())
    fig, axes = plt.subplots(1, len(batches), figsize=(10, 3.5), sharey=True)
    for ax, batch in zip(np.atleast_1d(axes), batches, strict=True):
        for variant, mine in frame[frame["batch"] == batch].groupby("variant", sort=False):
            ax.plot(mine["lr"], mine["test accuracy"], "o-", color=COLORS[variant], label=variant)
            gone = mine[mine["diverged"]]
            ax.plot(gone["lr"], [0.05] * len(gone), "x", color=COLORS[variant], ms=9, mew=2)
        ax.set(xscale="log", xlabel="learning rate", title=f"batch {batch}", ylim=(0, None))
    np.atleast_1d(axes)[0].set_ylabel("test accuracy (x: diverged)")
    np.atleast_1d(axes)[-1].legend(fontsize="small")
    fig.tight_layout()
    return fig


def curves_figure(scale: str, variant: str, batch: int) -> plt.Figure:
    """Training loss over the examples seen, at each rate of the grid, for one variant and batch."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    styles = dict(zip(rates(batch, scale), ("-", "--", ":"), strict=True))
    for (v, b, lr), record in runs(scale).items():
        if v == variant and b == batch:
            loss = pd.Series(record.metrics["train_loss"]).rolling(10, min_periods=1).mean()
            ax.plot(record.metrics["step"] * batch, loss, styles[lr], color=COLORS[variant], label=f"lr {lr:g}")
    ax.set(xlabel="examples seen", ylabel="training loss", ylim=(0, 3.5), title=f"{variant}, batch {batch}")
    ax.legend(fontsize="small")
    return fig
