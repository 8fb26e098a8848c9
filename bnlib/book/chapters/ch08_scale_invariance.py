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

import functools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.book.chapters import ch07_learning_rates as lr_range
from bnlib.book.chapters.ch01_does_batchnorm_help import BN, STD
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.plan import Read
from bnlib.experiments import Experiment
from bnlib.probes.weights import norm_growth
from bnlib.records import Record

NOTEBOOK = "08_scale_invariance"
TITLE = "Scale invariance and the effective learning rate"
EXPLANATION = "Scale invariance tunes the effective learning rate"

WEIGHT_RATES = (0.01, 0.1, 1.0, 10.0, 100.0)
ALL_PARAMETERS = (10.0, 100.0)  # BatchNorm with every parameter at these rates: what the others change
BASE_RATE = 0.1  # every parameter but the hidden layers' weights: Part I's rate
NETWORKS = lr_range.NETWORKS
PART_ONE = {"none": STD, "batch": BN}  # the rate 0.1: Part I's runs, cut
TRAINS = lr_range.TRAINS
IDENTITY_TOLERANCE = 0.01  # the identity "holds" at a layer if its median relative error is at most 1%
ROBUST = 3  # "partly": BN trains at at least this many of the five rates


def weight_run(norm: str, weight_lr: float, scale: str) -> Experiment:
    """A run with the hidden layers' weights at `weight_lr`, everything else at BASE_RATE."""
    return lr_range.sweep_run(norm, BASE_RATE, scale).but(weight_lr=weight_lr)


def _weights_only(scale: str) -> dict[tuple[str, float], Experiment]:
    """(normalization, weights' rate) -> the sweep's own run (the rate 0.1 is Part I's)."""
    return {(norm, r): weight_run(norm, r, scale) for norm in NETWORKS for r in WEIGHT_RATES if r != BASE_RATE}


def _everything(scale: str) -> list[Experiment]:
    return [lr_range.sweep_run("batch", r, scale) for r in ALL_PARAMETERS]


def reads(scale: str) -> list[Read]:
    part_one = [Read(run, (0,), ("weight-norms",)) for run in PART_ONE.values()]
    own = [Read(run, (0,), ("weight-norms",)) for run in _weights_only(scale).values()]
    return [*part_one, *own, *(Read(run) for run in _everything(scale))]


def runs(scale: str) -> dict[tuple[str, float], Record]:
    """(normalization, weights' rate) -> the sweep's record (Part I's run at lr 0.1, cut, for 0.1)."""
    own = _weights_only(scale)
    out = dict(zip(own, plan.records(list(own.values()), scale), strict=True))
    for norm, run in PART_ONE.items():
        out[(norm, BASE_RATE)] = plan.get(run, scale).truncated(lr_range.sweep_steps(scale))
    return dict(sorted(out.items()))


def growth(scale: str) -> pd.DataFrame:
    """Per network, layer and probed pair of steps of Part I's runs at lr 0.1: the measured growth
    of ||W||^2 beside eta^2 ||g||^2 and what plain SGD gives (`norm_growth`)."""
    frames = []
    for norm, run in PART_ONE.items():
        record = plan.get(run, scale)
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
    everything = dict(zip(ALL_PARAMETERS, plan.records(_everything(scale), scale), strict=True))
    rows = []
    for rate in ALL_PARAMETERS:
        for which, record in (("hidden weights only", weights[("batch", rate)]), ("every parameter", everything[rate])):
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
    """Training loss over steps at each nominal rate of the weights (or one), per network; right,
    BatchNorm's effective rate of its middle layer over steps."""
    everything = runs(scale)
    rates = WEIGHT_RATES if rate is None else (rate,)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    colors = dict(zip(WEIGHT_RATES, plt.cm.plasma(np.linspace(0, 0.85, len(WEIGHT_RATES))), strict=True))
    for ax, norm in zip(axes[:2], NETWORKS, strict=True):
        for r in rates:
            record = everything[(norm, r)]
            loss = pd.Series(record.metrics["train_loss"]).rolling(25, min_periods=1).mean()
            label = f"{r:g}" + (" (x)" if record.diverged else "")
            ax.plot(record.metrics["step"], loss, color=colors[r], lw=1.3, label=label)
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


# ----------------------------------------------------------------------------- the claims


@functools.cache
def _identity(scale: str) -> pd.DataFrame:
    return identity_table(growth(scale))


@functools.cache
def _sweep(scale: str) -> pd.DataFrame:
    return sweep_table(scale)


def identity(scale: str) -> Finding:
    table = _identity(scale)
    bn = table[table["feeds a BatchNorm"]]
    std_hidden = table[(table["network"] != bn["network"].iloc[0]) & (table["layer"] < table["layer"].max())]
    holds = bn["median relative error"] <= IDENTITY_TOLERANCE
    text = (
        f"median relative error of ||W_t+1||^2 - ||W_t||^2 = eta^2 ||g||^2 over the probed steps: BN's "
        f"{len(bn)} BN-fed layers {bn['median relative error'].min():.1e} to {bn['median relative error'].max():.1e}; "
        f"the standard network's layers {std_hidden['median relative error'].min():.1e} to "
        f"{std_hidden['median relative error'].max():.1e}"
    )
    summary = (
        f"The weights that feed a BatchNorm grow by eta^2 ||g||^2 per step, within {IDENTITY_TOLERANCE:.0%}, at "
        f"{int(holds.sum())} of {len(holds)} layers."
    )
    return Finding(text, graded(holds), summary)


def norms_grow(scale: str) -> Finding:
    bn = _identity(scale)
    bn = bn[bn["feeds a BatchNorm"]]
    grew = bn["||W|| last"] > bn["||W|| first"]
    factors = bn["||W|| last"] / bn["||W|| first"]
    text = (
        f"BN's BN-fed layers: ||W|| grew at {int(grew.sum())} of {len(bn)}, by factors {factors.min():.3g} to "
        f"{factors.max():.3g}, so eta / ||W||^2 fell by {factors.min() ** 2:.3g} to {factors.max() ** 2:.3g}"
    )
    if grew.all():
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if grew.mean() >= 0.5 else Verdict.NOT_REPRODUCED
    summary = (
        f"Their norms grew at {int(grew.sum())} of {len(bn)} layers, by factors {factors.min():.3g} to "
        f"{factors.max():.3g}."
    )
    return Finding(text, verdict, summary)


def robust(scale: str) -> Finding:
    frame = _sweep(scale)
    bn, std = frame[frame["norm"] == "batch"], frame[frame["norm"] == "none"]
    top = max(WEIGHT_RATES)
    std_top = std[std["rate of the weights"] == top].iloc[0]
    losses = ", ".join(
        f"{rate:g}: {'diverged' if gone else format(loss, '.2f')}"
        for rate, gone, loss in zip(bn["rate of the weights"], bn["diverged"], bn["training loss"], strict=True)
    )
    std_end = "diverges" if std_top["diverged"] else f"ends at training accuracy {std_top['training accuracy']:.0%}"
    text = (
        f"BN trains at {int(bn['trains'].sum())} of {len(bn)} rates of the weights (final training loss {losses}); "
        f"the standard network at {top:g} {std_end}"
    )
    if bn["trains"].all() and not std_top["trains"]:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if bn["trains"].sum() >= ROBUST else Verdict.NOT_REPRODUCED
    summary = (
        f"With the hidden layers' weights at rates from {min(WEIGHT_RATES):g} to {top:g}, BatchNorm trains at "
        f"{int(bn['trains'].sum())} of {len(bn)}; the standard network at {top:g} {std_end}."
    )
    return Finding(text, verdict, summary)


CLAIMS = {
    "identity": Claim(
        "Plain SGD grows the weights that feed a BatchNorm by exactly eta^2 ||g||^2 in squared norm per step",
        "van Laarhoven (2017), Arora et al. (2019): such weights are scale-invariant, so the gradient is orthogonal "
        "to them and ||W_t+1||^2 = ||W_t||^2 + eta^2 ||g_t||^2",
        f"on Part I's BatchNorm run at lr 0.1: reproduced if the identity holds within {IDENTITY_TOLERANCE:.0%} "
        "(median over the probed steps) at every layer that feeds a BatchNorm; partly if at some; not reproduced "
        "if at none",
        identity,
    ),
    "norms_grow": Claim(
        "So the norms grow and the effective rate eta / ||W||^2 falls during training",
        "Arora et al. (2019): the growth of ||W|| tunes the effective rate down automatically ('auto rate-tuning')",
        "reproduced if ||W|| grew from the first to the last probe at every layer that feeds a BatchNorm; partly "
        "if at least at half of them; not reproduced otherwise",
        norms_grow,
    ),
    "robust": Claim(
        "With BatchNorm, the rate of those weights hardly matters; without it, large rates diverge",
        "Arora et al. (2019): gradient descent converges for any fixed rate of the scale-invariant weights; only "
        "the other parameters' rate needs tuning",
        f"the hidden layers' weights at rates {min(WEIGHT_RATES):g} to {max(WEIGHT_RATES):g} (everything else at "
        f"{BASE_RATE:g}), same steps as chapter 07: reproduced if BN trains at all {len(WEIGHT_RATES)} rates and the "
        f"standard network does not train at {max(WEIGHT_RATES):g}; partly if BN trains at {ROBUST} or more; not "
        "reproduced otherwise",
        robust,
    ),
}
