"""Chapter 10: at initialisation (Daneshmand, Kohler, Bach, Hofmann and Lucchi, 2020; Yang,
Pennington, Rao, Sohl-Dickstein and Schoenholz, 2019; Brock, De and Smith, 2021).

No training first: deep ReLU MLPs of several depths and the VGG family, with and without
BatchNorm, at initialisation, measured layer by layer on one batch of CIFAR-10 images
(`bnlib.probes.signal.signal_propagation`): the stable rank and mean pairwise cosine of the
representations (rank collapse), the squared channel mean against the channel variance (the drift
toward a constant function), and the weight gradient's norm (BatchNorm's gradient explosion).
Then short training runs of the MLPs: does the state at initialisation predict which train?
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.config import RunConfig
from bnlib.experiments import base_config, check_scale
from bnlib.probes.signal import signal_propagation
from bnlib.records import Record
from bnlib.sweeps import Job
from bnlib.train import first_batches, initial_model

MLP_DEPTHS = {"paper": (2, 5, 10, 20, 50, 100), "cpu": (2, 5, 10, 20, 50), "smoke": (2, 5)}
VGG_DEPTHS = (11, 13, 16, 19)
NETWORKS = ("none", "batch")
TRAIN_DEPTHS = {"paper": (5, 10, 20, 50, 100), "cpu": (5, 10, 20, 50), "smoke": (2, 5)}
TRAIN_RATES = (0.01, 0.1)
TRAINS = 0.2  # a run "trains" if its final training accuracy is at least twice chance
COLLAPSED = 0.9  # "collapsed": the last hidden layer's mean pairwise cosine is at least this


def mlp_config(norm: str, depth: int, scale: str, lr: float = 0.01) -> RunConfig:
    """A deep ReLU MLP of the scale (He-initialised; `bnlib.models.mlp`)."""
    return plan.capped(base_config("mlp", scale, norm=norm, mlp_depth=depth, lr=lr, test_every=0))


def vgg_config(norm: str, depth: int, scale: str) -> RunConfig:
    return plan.config("vgg-bn-lr0.1", scale).replace(norm=norm, vgg_depth=depth)


def at_init(config: RunConfig) -> pd.DataFrame:
    """`signal_propagation` of a config's network at initialisation, on the run's first batch."""
    [(x, y)], loss_fn = first_batches(config, 1)
    return signal_propagation(initial_model(config), x, y, loss_fn)


def signal_table(scale: str) -> pd.DataFrame:
    """Per family (MLP, VGG), depth, network and layer: `signal_propagation` at initialisation."""
    mlps = [mlp_at_depth(scale, depth) for depth in MLP_DEPTHS[check_scale(scale)]]
    vggs = [_both("VGG", depth, lambda norm, d=depth: vgg_config(norm, d, scale)) for depth in VGG_DEPTHS]
    return pd.concat(mlps + vggs, ignore_index=True)


def mlp_at_depth(scale: str, depth: int, width: int | None = None) -> pd.DataFrame:
    """`signal_propagation` of one MLP depth (and width), with and without BatchNorm."""

    def config(norm: str) -> RunConfig:
        cfg = mlp_config(norm, depth, scale)
        return cfg.replace(mlp_width=width) if width else cfg

    return _both("MLP", depth, config)


def _both(family: str, depth: int, config) -> pd.DataFrame:
    frames = [
        at_init(config(norm)).assign(family=family, depth=depth, norm=norm, network=plotting.label(norm))
        for norm in NETWORKS
    ]
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(**{"mean^2 / variance": frame["channel mean^2"] / frame["channel variance"]})


def last_hidden(frame: pd.DataFrame) -> pd.DataFrame:
    """Each network's last hidden layer (the one before its classifier)."""
    hidden = frame[frame["layer"] < frame.groupby(["family", "depth", "norm"])["layer"].transform("max")]
    return hidden.loc[hidden.groupby(["family", "depth", "norm"])["layer"].idxmax()]


def gradient_growth(frame: pd.DataFrame, family: str, depth: int, norm: str) -> float:
    """The factor by which the weight gradient's norm grows per layer toward the input, fitted
    (least squares on the logarithm) over the hidden layers of one network."""
    mine = frame[(frame["family"] == family) & (frame["depth"] == depth) & (frame["norm"] == norm)]
    hidden = mine[mine["layer"] < mine["layer"].max()]
    slope = np.polyfit(hidden["layer"], np.log(hidden["gradient norm"]), 1)[0]
    return float(np.exp(-slope))


def growth_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per family, depth and network: the fitted per-layer growth of the weight gradient's norm."""
    keys = frame[["family", "depth", "norm"]].drop_duplicates()
    return pd.DataFrame(
        [
            {
                "family": family,
                "depth": depth,
                "network": plotting.label(norm),
                "gradient growth per layer": gradient_growth(frame, family, depth, norm),
            }
            for family, depth, norm in keys.itertuples(index=False)
        ]
    )


def signal_figure(frame: pd.DataFrame, family: str = "MLP") -> plt.Figure:
    """Per layer, for each depth: mean cosine, stable rank, squared mean over variance, gradient norm."""
    mine = frame[frame["family"] == family]
    quantities = ("mean cosine", "stable rank", "mean^2 / variance", "gradient norm")
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    depths = sorted(mine["depth"].unique())
    shades = dict(zip(depths, np.linspace(0.35, 1.0, len(depths)), strict=True))
    for ax, quantity in zip(axes, quantities, strict=True):
        for (depth, norm), one in mine.groupby(["depth", "norm"]):
            color = plotting.NORM_COLORS[norm]
            ax.plot(one["layer"], one[quantity], color=color, alpha=shades[depth], lw=1.3)
        ax.set(xlabel="layer", title=quantity)
        if quantity != "mean cosine":
            ax.set_yscale("log")
    handles = [plt.Line2D([], [], color=plotting.NORM_COLORS[n]) for n in NETWORKS]
    axes[0].legend(handles, [plotting.label(n) for n in NETWORKS], fontsize="x-small")
    fig.suptitle(
        f"{family}s at initialisation, depths {', '.join(map(str, depths))} (darker: deeper)", fontsize="small"
    )
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- trainability against depth


def jobs(scale: str) -> list[Job]:
    return [
        Job(mlp_config(norm, depth, scale, lr), (), f"MLP depth {depth}, {plotting.label(norm)}, lr {lr:g}")
        for depth in TRAIN_DEPTHS[check_scale(scale)]
        for norm in NETWORKS
        for lr in TRAIN_RATES
    ]


def runs(scale: str) -> dict[tuple[int, str, float], Record]:
    todo = jobs(scale)
    return {(j.config.mlp_depth, j.config.norm, j.config.lr): r for j, r in zip(todo, plan.records(todo), strict=True)}


def trainability(scale: str, signal: pd.DataFrame) -> pd.DataFrame:
    """Per MLP depth and network: its best final training accuracy over TRAIN_RATES, whether it
    trains, and its last hidden layer's mean cosine and stable rank at initialisation."""
    last = last_hidden(signal[signal["family"] == "MLP"]).set_index(["depth", "norm"])
    rows = []
    for depth in TRAIN_DEPTHS[check_scale(scale)]:
        for norm in NETWORKS:
            finals = {
                lr: (np.nan if r.diverged else r.final["train_acc"])
                for (d, n, lr), r in runs(scale).items()
                if d == depth and n == norm
            }
            best_lr = max(finals, key=lambda lr: -1 if np.isnan(finals[lr]) else finals[lr])
            rows.append(
                {
                    "depth": depth,
                    "network": plotting.label(norm),
                    "norm": norm,
                    "best lr": best_lr,
                    "training accuracy": finals[best_lr],
                    "trains": bool(finals[best_lr] >= TRAINS),
                    "mean cosine at init": last.loc[(depth, norm), "mean cosine"],
                    "stable rank at init": last.loc[(depth, norm), "stable rank"],
                    "collapsed at init": bool(last.loc[(depth, norm), "mean cosine"] >= COLLAPSED),
                }
            )
    return pd.DataFrame(rows)


def trainability_figure(table: pd.DataFrame) -> plt.Figure:
    """Best final training accuracy against depth, per network; hollow markers: collapsed at init."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for norm in NETWORKS:
        mine = table[table["norm"] == norm]
        color = plotting.NORM_COLORS[norm]
        ax.plot(mine["depth"], mine["training accuracy"], "-", color=color, label=plotting.label(norm))
        for collapsed, marker_face in ((False, color), (True, "white")):
            part = mine[mine["collapsed at init"] == collapsed]
            ax.plot(part["depth"], part["training accuracy"], "o", color=color, mfc=marker_face, ms=8)
    ax.axhline(TRAINS, color="0.6", ls=":", lw=1)
    ax.set(xscale="log", xlabel="hidden layers", ylabel="final training accuracy", ylim=(0, 1))
    ax.set_title("hollow: collapsed at initialisation", fontsize="small")
    ax.legend(fontsize="small")
    return fig
