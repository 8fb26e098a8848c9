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

import functools
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.book.chapters.ch01_does_batchnorm_help import BN, STD
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.plan import Read
from bnlib.experiments import Experiment, check_scale
from bnlib.probes import HessianProbe
from bnlib.records import Record

NOTEBOOK = "09_curvature"
TITLE = "Frozen or active BatchNorm, and the edge of stability"
EXPLANATION = "The gradient through the batch statistics removes curvature; the step size sets the curvature"
EDGE = 0.9  # a run "reaches the edge" if its top eigenvalue reaches 90% of 2 / eta after the start

# ----------------------------------------------------------------------------- frozen or active


def frozen_table(scale: str) -> pd.DataFrame:
    """Per probed step: the top eigenvalue with BatchNorm active and frozen at the same weights and
    batch, their ratio, and the standard network's at its own weights (both at lr 0.1)."""
    bn, std = plan.get(BN, scale), plan.get(STD, scale)
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


def eos_run(norm: str, lr: float, scale: str) -> Experiment:
    """A full-batch gradient-descent run of the MLP with the squared loss."""
    s = EOS[check_scale(scale)]
    return Experiment.of(
        "mlp",
        norm,
        lr,
        loss="mse",
        mlp_depth=s["mlp_depth"],
        mlp_width=s["mlp_width"],
        train_per_class=s["examples_per_class"],
        batch_size=10 * s["examples_per_class"],
        steps=s["steps"],
        test_every=0,
    )


def eos_description(scale: str) -> str:
    """The full-batch runs' set-up at a scale, in words."""
    s, cfg = EOS[check_scale(scale)], plan.config(eos_run("none", STEP_SIZES[0], scale), scale)
    return (
        f"a ReLU MLP with {cfg.mlp_depth} hidden layers of {cfg.mlp_width} units, on {cfg.batch_size:,} CIFAR-10 "
        f"images ({s['examples_per_class']} per class), {cfg.steps:,} steps of full-batch gradient descent, the top "
        f"eigenvalue every {s['every']} steps"
    )


def eos_probe(scale: str) -> HessianProbe:
    return HessianProbe(EOS[check_scale(scale)]["every"], k=1)


def _eos(scale: str) -> dict[tuple[str, float], Experiment]:
    return {(norm, lr): eos_run(norm, lr, scale) for norm in NETWORKS for lr in STEP_SIZES}


def reads(scale: str) -> list[Read]:
    frozen = [Read(STD, (0,), ("hessian",)), Read(BN, (0,), ("hessian", "hessian-frozen"))]
    return [*frozen, *(Read(run, (0,), (eos_probe(scale),)) for run in _eos(scale).values())]


def eos_runs(scale: str) -> dict[tuple[str, float], Record]:
    own = _eos(scale)
    return dict(zip(own, plan.records(list(own.values()), scale), strict=True))


def sharpness(record: Record) -> pd.Series:
    """The top Hessian eigenvalue at each probed step of a run (its only Hessian probe)."""
    (probe,) = [key for key in record.probes if key.startswith("hessian")]
    return record.probe_table(probe, "eigenvalues")[0]


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


# ----------------------------------------------------------------------------- the claims


@functools.cache
def _frozen_table(scale: str) -> pd.DataFrame:
    return frozen_table(scale)


@functools.cache
def _eos_table(scale: str) -> pd.DataFrame:
    return eos_table(scale)


def active_below_frozen(scale: str) -> Finding:
    frame = _frozen_table(scale)
    below = frame["BatchNorm active"] < frame["BatchNorm frozen"]
    text = (
        f"top Hessian eigenvalue at {len(frame)} probed steps of BN's run at lr 0.1: active below frozen at "
        f"{int(below.sum())}; frozen / active from {frame['frozen / active'].min():.3g} to "
        f"{frame['frozen / active'].max():.3g}; the standard network at its own weights "
        f"{frame['standard'].min():.3g} to {frame['standard'].max():.3g}"
    )
    summary = (
        f"At the same weights and batch, BatchNorm's top Hessian eigenvalue is lower with its statistics active than "
        f"frozen at {int(below.sum())} of {len(below)} probed steps."
    )
    return Finding(text, graded(below), summary)


def edge_of_stability(scale: str) -> Finding:
    frame = _eos_table(scale)
    trained = frame[~frame["diverged"]]
    parts = [
        f"{network} eta {lr:g}: " + ("diverged" if gone else f"largest {largest:.2f}, end {end:.2f}")
        for network, lr, gone, largest, end in zip(
            frame["network"], frame["step size"], frame["diverged"], frame["largest"], frame["end"], strict=True
        )
    ]
    text = "top eigenvalue as a fraction of 2 / eta after the start of full-batch GD: " + "; ".join(parts)
    reached = trained["largest"] >= EDGE
    summary = (
        f"Under full-batch gradient descent, {int(reached.sum())} of the {len(trained)} runs that do not diverge "
        f"reach {EDGE:.0%} of 2 / eta ({int(frame['diverged'].sum())} of {len(frame)} diverge)."
    )
    return Finding(text, Verdict.CANNOT_TELL if trained.empty else graded(reached), summary)


def follows_step_size(scale: str) -> Finding:
    frame = _eos_table(scale)
    checks, parts = [], []
    for _, mine in frame.groupby("norm", sort=False):
        mine = mine.sort_values("step size")
        trained = mine[~mine["diverged"]]
        ends = (trained["end"] * trained["2 / eta"]).tolist()
        if len(ends) >= 2:
            checks.append(all(b < a for a, b in itertools.pairwise(ends)))
        described = [
            f"eta {lr:g} -> {'diverged' if gone else format(end * edge, '.3g')}"
            for lr, gone, end, edge in zip(
                mine["step size"], mine["diverged"], mine["end"], mine["2 / eta"], strict=True
            )
        ]
        parts.append(f"{mine['network'].iloc[0]}: " + ", ".join(described))
    text = "top eigenvalue at the end of full-batch GD: " + "; ".join(parts)
    summary = (
        f"A larger step ends flatter in {sum(checks)} of the {len(checks)} networks that train at two or more step "
        "sizes."
    )
    return Finding(text, graded(checks) if checks else Verdict.CANNOT_TELL, summary)


CLAIMS = {
    "active_below_frozen": Claim(
        "Differentiating through the batch statistics lowers the top of the Hessian: BatchNorm active is smoother "
        "than the same network with its statistics frozen",
        "Ghorbani et al. (2019): with BatchNorm the large outlier eigenvalues of the Hessian disappear; they return "
        "when the network is evaluated with fixed (population) statistics",
        "at every probed step of BN's run at lr 0.1, on the step's batch: reproduced if the top eigenvalue with "
        "BN active is below that with BN frozen at every step; partly at some; not reproduced at none",
        active_below_frozen,
    ),
    "edge_of_stability": Claim(
        "Under full-batch gradient descent the top eigenvalue rises to about 2 / eta, with or without BatchNorm",
        "Cohen et al. (2021): the sharpness rises ('progressive sharpening') until it reaches 2 / eta and then "
        "hovers there ('edge of stability'); their BatchNorm networks do it too",
        f"over the runs that do not diverge: reproduced if in every one the top eigenvalue reaches at least "
        f"{EDGE:.0%} of 2 / eta after the start; partly if in some; not reproduced in none",
        edge_of_stability,
    ),
    "follows_step_size": Claim(
        "So the curvature along the trajectory follows the step size: a larger step ends flatter",
        "Cohen et al. (2021): the sharpness gradient descent ends at is set by 2 / eta, not by the architecture",
        "over the step sizes at which a network trains without diverging: reproduced if in every network that "
        "trains at two or more the top eigenvalue at the end is lower at each larger step size; partly if in some; "
        "not reproduced in none; cannot tell if no network trains at two",
        follows_step_size,
    ),
}
