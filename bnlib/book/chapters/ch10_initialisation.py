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

import functools
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.book.chapters.ch01_does_batchnorm_help import BN
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.plan import Read
from bnlib.config import RunConfig
from bnlib.experiments import Experiment, check_scale
from bnlib.probes.signal import signal_propagation
from bnlib.records import Record
from bnlib.train import first_batches, initial_model

NOTEBOOK = "10_initialisation"
TITLE = "At initialisation"
EXPLANATION = "BatchNorm avoids rank collapse at initialisation (and makes gradients explode)"

MLP_DEPTHS = {"paper": (2, 5, 10, 20, 50, 100), "cpu": (2, 5, 10, 20, 50), "smoke": (2, 5)}
VGG_DEPTHS = (11, 13, 16, 19)
NETWORKS = ("none", "batch")
TRAIN_DEPTHS = {"paper": (5, 10, 20, 50, 100), "cpu": (5, 10, 20, 50), "smoke": (2, 5)}
TRAIN_RATES = (0.01, 0.1)
TRAINS = 0.2  # a run "trains" if its final training accuracy is at least twice chance
COLLAPSED = 0.9  # "collapsed": the last hidden layer's mean pairwise cosine is at least this


def mlp_run(norm: str, depth: int, lr: float = 0.01) -> Experiment:
    """A deep ReLU MLP of the scale (He-initialised; `bnlib.models.mlp`)."""
    return Experiment.of("mlp", norm, lr, mlp_depth=depth, test_every=0)


def mlp_config(norm: str, depth: int, scale: str, lr: float = 0.01) -> RunConfig:
    return plan.config(mlp_run(norm, depth, lr), scale)


def vgg_config(norm: str, depth: int, scale: str) -> RunConfig:
    return plan.config(BN.but(norm=norm, vgg_depth=depth), scale)


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


def _trained(scale: str) -> dict[tuple[int, str, float], Experiment]:
    return {
        (depth, norm, lr): mlp_run(norm, depth, lr)
        for depth in TRAIN_DEPTHS[check_scale(scale)]
        for norm in NETWORKS
        for lr in TRAIN_RATES
    }


def reads(scale: str) -> list[Read]:
    return [Read(run) for run in _trained(scale).values()]


def runs(scale: str) -> dict[tuple[int, str, float], Record]:
    own = _trained(scale)
    return dict(zip(own, plan.records(list(own.values()), scale), strict=True))


def trainability(scale: str, signal: pd.DataFrame) -> pd.DataFrame:
    """Per MLP depth and network: its best final training accuracy over TRAIN_RATES, whether it
    trains, and its last hidden layer's mean cosine and stable rank at initialisation."""
    last = last_hidden(signal[signal["family"] == "MLP"]).set_index(["depth", "norm"])
    trained = runs(scale)
    rows = []
    for depth in TRAIN_DEPTHS[check_scale(scale)]:
        for norm in NETWORKS:
            finals = {
                lr: (np.nan if r.diverged else r.final["train_acc"])
                for (d, n, lr), r in trained.items()
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


# ----------------------------------------------------------------------------- the claims

YANG_FACTOR = math.sqrt(math.pi / (math.pi - 1))  # ~1.21: BN-ReLU MLP's gradient growth per layer (mean field)
GROWS = 1.1  # a fitted per-layer growth factor this large is "explosion"
MEAN_SHIFT = 10.0  # the standard network's mean^2 / variance must rise this much from first to last layer


@functools.cache
def _signal(scale: str):
    return signal_table(scale)


def _deepest(scale: str) -> int:
    return max(MLP_DEPTHS[check_scale(scale)])


def rank_collapse(scale: str) -> Finding:
    last = last_hidden(_signal(scale))
    mlp = last[last["family"] == "MLP"].set_index(["depth", "norm"])
    deep = [d for d in MLP_DEPTHS[scale] if d >= 10] or list(MLP_DEPTHS[scale])
    higher = all(mlp.loc[(d, "none"), "mean cosine"] > mlp.loc[(d, "batch"), "mean cosine"] for d in deep)
    d = _deepest(scale)
    std, bn = mlp.loc[(d, "none")], mlp.loc[(d, "batch")]
    text = (
        f"last hidden layer of the {d}-layer MLP at initialisation: mean pairwise cosine standard "
        f"{std['mean cosine']:.3f}, BN {bn['mean cosine']:.3f}; stable rank standard {std['stable rank']:.2f}, "
        f"BN {bn['stable rank']:.2f}; the standard network more collinear than BN at every depth from "
        f"{deep[0]}: {'yes' if higher else 'no'}"
    )
    collapsed = std["mean cosine"] >= COLLAPSED and bn["mean cosine"] < COLLAPSED
    summary = (
        f"At initialisation, the last hidden layer of the {d}-layer MLP has a mean pairwise cosine of "
        f"{std['mean cosine']:.3f} without BatchNorm and {bn['mean cosine']:.3f} with it."
    )
    return Finding(text, graded([higher, collapsed]), summary)


def gradient_explosion(scale: str) -> Finding:
    d = _deepest(scale)
    bn, std = (gradient_growth(_signal(scale), "MLP", d, norm) for norm in ("batch", "none"))
    text = (
        f"growth of the weight gradient's norm per layer toward the input, fitted over the {d}-layer MLP: "
        f"BN {bn:.3f}, standard {std:.3f} (mean-field theory for BN: {YANG_FACTOR:.3f})"
    )
    if bn >= GROWS and std < GROWS:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if bn >= GROWS else Verdict.NOT_REPRODUCED
    summary = (
        f"With BatchNorm the weight gradient grows by {bn:.3f} per layer toward the input (mean-field theory: "
        f"{YANG_FACTOR:.3f}), without it by {std:.3f}."
    )
    return Finding(text, verdict, summary)


def mean_shift(scale: str) -> Finding:
    frame = _signal(scale)
    checks, parts = [], []
    for family, depths in (("MLP", MLP_DEPTHS[scale]), ("VGG", VGG_DEPTHS)):
        d = max(depths)
        rises = {}
        for norm in NETWORKS:
            mine = frame[(frame["family"] == family) & (frame["depth"] == d) & (frame["norm"] == norm)]
            hidden = mine[mine["layer"] < mine["layer"].max()]["mean^2 / variance"]
            rises[norm] = hidden.iloc[-1] / hidden.iloc[0]
        checks.append(rises["none"] >= MEAN_SHIFT and rises["batch"] < MEAN_SHIFT)
        parts.append(f"{family}-{d}: standard x{rises['none']:.3g}, BN x{rises['batch']:.3g}")
    text = "squared channel mean over channel variance, last hidden layer against the first: " + "; ".join(parts)
    summary = (
        f"Without BatchNorm the channel means drift with depth in {sum(checks)} of the 2 families ("
        + "; ".join(parts)
        + ")."
    )
    return Finding(text, graded(checks), summary)


def predicts_training(scale: str) -> Finding:
    table = trainability(scale, _signal(scale))
    collapsed, healthy = table[table["collapsed at init"]], table[~table["collapsed at init"]]
    text = (
        f"{len(collapsed)} of {len(table)} MLPs collapsed at initialisation (mean cosine >= {COLLAPSED}); "
        f"of them {int((~collapsed['trains']).sum())} fail to train; of the others {int(healthy['trains'].sum())} "
        f"of {len(healthy)} train (best of lr {', '.join(f'{r:g}' for r in TRAIN_RATES)})"
    )
    summary = (
        f"Of the {len(collapsed)} MLPs collapsed at initialisation {int((~collapsed['trains']).sum())} fail to "
        f"train; of the other {len(healthy)}, {int(healthy['trains'].sum())} train."
    )
    if collapsed.empty:
        return Finding(text, Verdict.CANNOT_TELL, summary)
    checks = [not collapsed["trains"].any(), bool(healthy["trains"].all())]
    return Finding(text, graded(checks), summary)


CLAIMS = {
    "rank_collapse": Claim(
        "Without BatchNorm, deep ReLU networks map a batch to nearly collinear representations at initialisation; "
        "with it they do not",
        "Daneshmand et al. (2020): BatchNorm provably keeps the rank of the representations high at any depth "
        "(linear networks; seen for ReLU), where unnormalized networks' rank collapses",
        f"reproduced if at every MLP depth from 10 the standard network's last hidden layer has a higher mean "
        f"cosine than BN's, and at the deepest it is at least {COLLAPSED} while BN's is below; partly if one "
        "of the two holds; not reproduced otherwise",
        rank_collapse,
    ),
    "gradient_explosion": Claim(
        "But BatchNorm makes the gradient explode with depth at initialisation",
        f"Yang et al. (2019): in BatchNorm ReLU MLPs the gradient grows by a constant factor per layer toward the "
        f"input (about {YANG_FACTOR:.2f} in norm), which no initialisation removes",
        f"on the deepest MLP: reproduced if BN's fitted per-layer growth is at least {GROWS} and the standard "
        "network's is not; partly if both are; not reproduced if BN's is not",
        gradient_explosion,
    ),
    "mean_shift": Claim(
        "Without normalization the channel means drift with depth, toward a constant function",
        "Brock et al. (2021): in unnormalized networks the squared channel means grow with depth relative to the "
        "variance; BatchNorm removes this mean shift",
        f"on the deepest MLP and VGG: reproduced if in both the standard network's mean^2 / variance rises at least "
        f"{MEAN_SHIFT:g}-fold from its first to its last hidden layer while BN's does not; partly if in one",
        mean_shift,
    ),
    "predicts_training": Claim(
        "Rank collapse at initialisation predicts which networks fail to train",
        "Daneshmand et al. (2020): networks whose representations collapse at initialisation train slowly or not "
        "at all; restoring the rank makes them trainable",
        f"short runs of the MLPs (best of two rates): reproduced if every collapsed network fails to train (final "
        f"training accuracy below {TRAINS:.0%}) and every other one trains; partly if one of the two holds; "
        "cannot tell if none collapsed",
        predicts_training,
    ),
}
