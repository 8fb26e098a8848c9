"""Chapter 09: the gradient through the batch statistics, and the edge of stability (Ghorbani,
Krishnan and Xiao, 2019; Cohen, Kaur, Li, Kolter and Talwalkar, 2021).

Two measurements:

* frozen or active BatchNorm at identical weights: along Part I's BatchNorm run at lr 0.1, the
  Hessian's top eigenvalues on the step's batch with the normalization's statistics differentiated
  through (active, as in training) and held as constants (frozen, `HessianProbe(frozen_bn=True)`),
  at the same steps, beside the standard network's at its own weights;
* full-batch gradient descent on a fixed subset of CIFAR-10 (a deep ReLU MLP with and without
  BatchNorm, Cohen et al.'s squared loss), at several step sizes: the top eigenvalue over training
  against 2 / eta.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.config import RunConfig
from bnlib.experiments import base_config, check_scale
from bnlib.probes import HessianProbe
from bnlib.records import Record
from bnlib.sweeps import Job

# ----------------------------------------------------------------------------- frozen or active


def frozen_table(scale: str) -> pd.DataFrame:
    """Per probed step: the top eigenvalue with BatchNorm active and frozen at the same weights and
    batch, their ratio, and the standard network's at its own weights (both at lr 0.1)."""
    bn, std = plan.get("vgg-bn-lr0.1", scale), plan.get("vgg-std-lr0.1", scale)
    active = bn.probe_table("hessian", "eigenvalues")[0]
    frozen = bn.probe_table("hessian-frozen", "eigenvalues")[0]
    standard = std.probe_table("hessian", "eigenvalues")[0]
    frame = pd.DataFrame({"BatchNorm active": active, "BatchNorm frozen": frozen, "standard": standard})
    frame["frozen / active"] = frame["BatchNorm frozen"] / frame["BatchNorm active"]
    return frame.reset_index()


def frozen_figure(frame: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.plot(
        frame["step"], frame["BatchNorm active"], "o-", color=plotting.NORM_COLORS["batch"], label="BatchNorm, active"
    )
    ax.plot(
        frame["step"], frame["BatchNorm frozen"], "s--", color=plotting.NORM_COLORS["batch"], label="BatchNorm, frozen"
    )
    ax.plot(frame["step"], frame["standard"], "o-", color=plotting.NORM_COLORS["none"], label="Standard")
    ax.set(yscale="log", xlabel="step", ylabel="top Hessian eigenvalue", title="VGG-16, lr 0.1")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- full-batch gradient descent

# The edge-of-stability runs, per scale: a ReLU MLP trained by full-batch gradient descent with
# the squared loss on a balanced subset of CIFAR-10, its Hessian every `every` steps.
EOS = {
    "paper": dict(examples_per_class=500, mlp_depth=3, mlp_width=512, steps=4000, every=50),
    "cpu": dict(examples_per_class=100, mlp_depth=3, mlp_width=256, steps=1000, every=50),
    "smoke": dict(examples_per_class=4, mlp_depth=2, mlp_width=16, steps=12, every=4),
}
STEP_SIZES = (0.01, 0.02, 0.05)
NETWORKS = ("none", "batch")


def eos_config(norm: str, lr: float, scale: str) -> RunConfig:
    s = EOS[check_scale(scale)]
    n = 10 * s["examples_per_class"]
    return plan.capped(
        base_config(
            "mlp",
            scale,
            norm=norm,
            lr=lr,
            loss="mse",
            mlp_depth=s["mlp_depth"],
            mlp_width=s["mlp_width"],
            train_per_class=s["examples_per_class"],
            batch_size=n,
            steps=s["steps"],
            test_every=0,
        )
    )


def eos_description(scale: str) -> str:
    """The full-batch runs' set-up at a scale, in words."""
    s, cfg = EOS[check_scale(scale)], eos_config("none", STEP_SIZES[0], scale)
    return (
        f"a ReLU MLP with {cfg.mlp_depth} hidden layers of {cfg.mlp_width} units, on {cfg.batch_size:,} CIFAR-10 "
        f"images ({s['examples_per_class']} per class), {cfg.steps:,} steps of full-batch gradient descent, the top "
        f"eigenvalue every {s['every']} steps"
    )


def eos_probe(scale: str) -> HessianProbe:
    return HessianProbe(EOS[check_scale(scale)]["every"], k=1)


def jobs(scale: str) -> list[Job]:
    return [
        Job(eos_config(norm, lr, scale), (eos_probe(scale),), f"full-batch GD, {plotting.label(norm)}, step {lr:g}")
        for norm in NETWORKS
        for lr in STEP_SIZES
    ]


def eos_runs(scale: str) -> dict[tuple[str, float], Record]:
    todo = jobs(scale)
    return {(j.config.norm, j.config.lr): r for j, r in zip(todo, plan.records(todo), strict=True)}


def sharpness(record: Record) -> pd.Series:
    """The top Hessian eigenvalue at each probed step of a run."""
    return record.probe_table("hessian", "eigenvalues")[0]


def eos_table(scale: str) -> pd.DataFrame:
    """Per run: 2 / eta, the top eigenvalue at the start, its largest value after the start and
    at the end, each as a fraction of 2 / eta, and the final training loss."""
    rows = []
    for (norm, lr), record in eos_runs(scale).items():
        top = sharpness(record)
        edge = 2 / lr
        rows.append(
            {
                "network": plotting.label(norm),
                "norm": norm,
                "step size": lr,
                "2 / eta": edge,
                "start": top.iloc[0] / edge,
                "largest": top.iloc[1:].max() / edge if len(top) > 1 else np.nan,
                "end": top.iloc[-1] / edge,
                "diverged": record.diverged,
                "training loss": record.final["train_loss"],
            }
        )
    return pd.DataFrame(rows)


def eos_figure(scale: str, step_sizes: tuple[float, ...] = STEP_SIZES) -> plt.Figure:
    """The top eigenvalue over training against 2 / eta (dashed), per network; and the loss."""
    runs = eos_runs(scale)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    styles = dict(zip(STEP_SIZES, ("-", "--", ":", "-."), strict=False))
    for ax, norm in zip(axes[:2], NETWORKS, strict=True):
        for lr in step_sizes:
            top = sharpness(runs[(norm, lr)])
            ax.plot(top.index, top.values, styles[lr], color=plotting.NORM_COLORS[norm], label=f"eta {lr:g}")
            ax.axhline(2 / lr, ls=styles[lr], color="0.5", lw=1)
        ax.set(yscale="log", xlabel="step", ylabel="top Hessian eigenvalue", title=plotting.label(norm))
        ax.legend(fontsize="x-small", title="grey: 2 / eta", title_fontsize="x-small")
    for norm in NETWORKS:
        for lr in step_sizes:
            record = runs[(norm, lr)]
            axes[2].plot(
                record.metrics["step"], record.metrics["train_loss"], styles[lr], color=plotting.NORM_COLORS[norm]
            )
    axes[2].set(yscale="log", xlabel="step", ylabel="training loss (full batch)")
    fig.tight_layout()
    return fig
