"""Chapter 08: scale invariance and the effective learning rate (van Laarhoven, 2017; Arora, Li and
Lyu, 2019; Hoffer, Banner, Golan and Soudry, 2018).

Three measurements:

* the identity ||W_{t+1}||^2 = ||W_t||^2 + eta^2 ||g_t||^2, checked per layer on Part I's runs at lr
  0.1 (BatchNorm, where it should hold, and the standard network, where it need not), from the
  weight-norm probe (`bnlib.probes.weights`);
* ||W|| and the effective rate eta / ||W||^2 of each layer over training;
* the consequence: a sweep of the nominal rate of the hidden layers' weights over four orders of
  magnitude (0.01 to 100; every other parameter keeps 0.1), with and without BatchNorm, for the
  same budget of steps as chapter 07's sweep.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.book.beyond import lr_range
from bnlib.config import RunConfig
from bnlib.probes.weights import WeightNormProbe, norm_growth
from bnlib.records import Record
from bnlib.sweeps import Job

WEIGHT_RATES = (0.01, 0.1, 1.0, 10.0, 100.0)
ALL_PARAMETERS = (10.0, 100.0)  # BatchNorm with every parameter at these rates: what the others change
BASE_RATE = 0.1  # every parameter but the hidden layers' weights: Part I's rate
NETWORKS = lr_range.NETWORKS
TRAINS = lr_range.TRAINS


def weight_probe(scale: str) -> WeightNormProbe:
    return plan.make_probe("weight-norms", "vgg", scale)


def sweep_config(norm: str, weight_lr: float, scale: str) -> RunConfig:
    """A run with the hidden layers' weights at `weight_lr`, everything else at BASE_RATE."""
    return lr_range.sweep_config(norm, BASE_RATE, scale).replace(weight_lr=weight_lr)


def jobs(scale: str) -> list[Job]:
    """The sweep's runs, with the weight-norm probe; the rate 0.1 is Part I's run, cut."""
    weights_only = [
        Job(sweep_config(norm, rate, scale), (weight_probe(scale),), f"{short} weights at lr {rate:g}")
        for norm, short in NETWORKS.items()
        for rate in WEIGHT_RATES
        if rate != BASE_RATE
    ]
    everything = [Job(lr_range.sweep_config("batch", r, scale), (), f"bn, all at lr {r:g}") for r in ALL_PARAMETERS]
    return weights_only + everything


def runs(scale: str) -> dict[tuple[str, float], Record]:
    """(normalization, weights' rate) -> the sweep's record (Part I's run at lr 0.1, cut, for 0.1)."""
    todo = [job for job in jobs(scale) if job.config.weight_lr is not None]
    out = {(job.config.norm, job.config.weight_lr): r for job, r in zip(todo, plan.records(todo), strict=True)}
    for norm, short in NETWORKS.items():
        out[(norm, BASE_RATE)] = plan.get(f"vgg-{short}-lr0.1", scale).truncated(lr_range.sweep_steps(scale))
    return dict(sorted(out.items()))


def growth(scale: str) -> pd.DataFrame:
    """Per network, layer and probed pair of steps of Part I's runs at lr 0.1: the measured growth
    of ||W||^2 beside eta^2 ||g||^2 and what plain SGD gives (`norm_growth`)."""
    frames = []
    for norm, short in NETWORKS.items():
        record = plan.get(f"vgg-{short}-lr0.1", scale)
        table = norm_growth(record.probe_frame("weight-norms"), record.config.lr)
        frames.append(table.assign(network=plotting.label(norm), norm=norm))
    frame = pd.concat(frames, ignore_index=True)
    predicted = frame["invariance predicts"]
    return frame.assign(**{"relative error": (frame["growth"] - predicted).abs() / predicted})


def identity_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per network and layer: the median over probed pairs of |growth - eta^2 ||g||^2| / (eta^2 ||g||^2),
    of |cos(W, g)|, and the layer's weight norm at the first and last probe. Every layer but the
    classifier (the last) feeds a normalization in the BatchNorm network."""
    head = frame["layer"].max()
    rows = []
    for (norm, layer), mine in frame.groupby(["norm", "layer"]):
        rows.append(
            {
                "network": plotting.label(norm),
                "layer": int(layer),
                "feeds a BatchNorm": norm == "batch" and layer != head,
                "median relative error": mine["relative error"].median(),
                "median |cos(W, g)|": mine["cos(W, g)"].abs().median(),
                "||W|| first": mine["weight norm"].iloc[0],
                "||W|| last": mine["weight norm"].iloc[-1],
            }
        )
    return pd.DataFrame(rows)


def norms_figure(frame: pd.DataFrame, quantity: str = "weight norm") -> plt.Figure:
    """||W|| (or the effective rate eta / ||W||^2) of every layer over training, per network."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, norm in zip(axes, NETWORKS, strict=True):
        mine = frame[frame["norm"] == norm]
        layers = sorted(mine["layer"].unique())
        colors = plt.cm.viridis(np.linspace(0, 1, len(layers)))
        for layer, color in zip(layers, colors, strict=True):
            one = mine[mine["layer"] == layer]
            ax.plot(one["step"], one[quantity], color=color, lw=1.2, label=f"#{layer}")
        ax.set(yscale="log", xlabel="step", title=plotting.label(norm))
    axes[0].set_ylabel("||W||" if quantity == "weight norm" else "eta / ||W||^2")
    axes[1].legend(fontsize="x-small", ncol=2, title="layer", title_fontsize="x-small")
    fig.tight_layout()
    return fig


def sweep_table(scale: str) -> pd.DataFrame:
    """Per network and nominal rate of the weights: diverged, final training loss and accuracy,
    and whether it trains."""
    rows = []
    for (norm, rate), record in runs(scale).items():
        rows.append(
            {
                "network": plotting.label(norm),
                "norm": norm,
                "rate of the weights": rate,
                "diverged": record.diverged,
                "training loss": np.nan if record.diverged else record.final["train_loss"],
                "training accuracy": np.nan if record.diverged else record.final["train_acc"],
                "trains": not record.diverged and record.final["train_acc"] >= TRAINS,
            }
        )
    return pd.DataFrame(rows)


def all_parameters_table(scale: str) -> pd.DataFrame:
    """BatchNorm with only the hidden layers' weights at a large rate, and with every parameter
    (gamma, beta, biases and the classifier too) at it."""
    weights = runs(scale)
    todo = [job for job in jobs(scale) if job.config.weight_lr is None]
    everything = dict(zip(ALL_PARAMETERS, plan.records(todo), strict=True))
    rows = []
    for rate in ALL_PARAMETERS:
        for which, record in (
            ("hidden weights only", weights[("batch", rate)]),
            ("every parameter", everything[rate]),
        ):
            rows.append(
                {
                    "rate": rate,
                    "at that rate": which,
                    "diverged": record.diverged,
                    "training loss": np.nan if record.diverged else record.final["train_loss"],
                    "training accuracy": np.nan if record.diverged else record.final["train_acc"],
                }
            )
    return pd.DataFrame(rows)


def sweep_figure(scale: str, rate: float | None = None) -> plt.Figure:
    """Training loss over steps at each nominal rate of the weights (or one), per network; below,
    BatchNorm's effective rate of its middle layer over steps."""
    everything = runs(scale)
    rates = WEIGHT_RATES if rate is None else (rate,)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    colors = dict(zip(WEIGHT_RATES, plt.cm.plasma(np.linspace(0, 0.85, len(WEIGHT_RATES))), strict=True))
    for ax, norm in zip(axes[:2], NETWORKS, strict=True):
        for r in rates:
            record = everything[(norm, r)]
            loss = pd.Series(record.metrics["train_loss"]).rolling(25, min_periods=1).mean()
            ax.plot(
                record.metrics["step"],
                loss,
                color=colors[r],
                lw=1.3,
                label=f"{r:g}" + (" (x)" if record.diverged else ""),
            )
        ax.set(xlabel="step", ylabel="training loss", ylim=(0, 3.5), title=plotting.label(norm))
    axes[1].legend(fontsize="x-small", title="rate of the weights (x: diverged)", title_fontsize="x-small")
    middle = None
    for r in rates:
        record = everything[("batch", r)]
        table = norm_growth(record.probe_frame("weight-norms"), record.config.weight_lr or record.config.lr)
        middle = middle or int(np.median(table["layer"].unique()))
        one = table[table["layer"] == middle]
        axes[2].plot(one["step"], one["effective lr"], color=colors[r], lw=1.3)
    axes[2].set(yscale="log", xlabel="step", ylabel="eta / ||W||^2", title=f"BatchNorm, layer #{middle}")
    fig.tight_layout()
    return fig
