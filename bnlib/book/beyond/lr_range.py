"""Chapter 07: does BatchNorm work because it allows larger learning rates? (Bjorck, Gomes,
Selman and Weinberger, 2018).

The experiment: the book's VGG-16, with and without BatchNorm, trained for a fixed budget of steps
(a third of the scale's run) at learning rates from 0.001 to 1, and two diagnostics:

* the matched-rate control: BatchNorm at the standard network's best rate (how much of the gap
  is left when both use the same rate?);
* one large step (Bjorck et al.'s Fig. 4): per layer, the spread of the activations after one plain
  SGD step at a large rate, relative to before, from the initial and from the trained weights.

Part I's runs at 0.01, 0.1 and 0.5 serve here cut at the sweep's length (`Record.truncated`: the
first N steps of a run are an N-step run), so they are not trained twice.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.config import RunConfig
from bnlib.probes.signal import one_step_spread
from bnlib.records import Record
from bnlib.sweeps import Job
from bnlib.train import first_batches, initial_model

RATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5, 1.0)
NETWORKS = {"none": "std", "batch": "bn"}  # normalization -> its short name in Part I's experiments
SHARED = (0.01, 0.1, 0.5)  # rates Part I trains in full: their first steps are the sweep's runs
ONE_STEP_RATES = (0.1, 1.0)
TRAINS = 0.2  # a run "trains" if its final training accuracy is at least twice chance


def sweep_steps(scale: str) -> int:
    """The sweep's budget: a third of the scale's VGG run, where Part I's runs were tested."""
    full = plan.config("vgg-bn-lr0.1", scale)
    every = full.test_every or full.steps
    return max(every, full.steps // 3 // every * every)


def sweep_config(norm: str, lr: float, scale: str) -> RunConfig:
    """The sweep's run of one network at one rate."""
    return plan.config("vgg-bn-lr0.1", scale).replace(norm=norm, lr=lr, steps=sweep_steps(scale))


def jobs(scale: str) -> list[Job]:
    """The runs this chapter trains itself: every rate Part I does not train."""
    return [
        Job(sweep_config(norm, lr, scale), (), f"{short} lr {lr:g} ({sweep_steps(scale):,} steps)")
        for norm, short in NETWORKS.items()
        for lr in RATES
        if lr not in SHARED
    ]


def runs(scale: str) -> dict[tuple[str, float], Record]:
    """(normalization, rate) -> the sweep's record: trained as one sweep, or cut from Part I's."""
    todo = jobs(scale)
    own = {(job.config.norm, job.config.lr): record for job, record in zip(todo, plan.records(todo), strict=True)}
    for norm in NETWORKS:
        for lr in SHARED:
            own[(norm, lr)] = run_at(norm, lr, scale)
    return dict(sorted(own.items()))


def run_at(norm: str, lr: float, scale: str) -> Record:
    """One network's sweep run at any rate: cut from Part I's run where Part I trains that rate,
    else the sweep's record (trained now if it is not stored)."""
    if lr in SHARED:
        return plan.get(f"vgg-{NETWORKS[norm]}-lr{lr:g}", scale).truncated(sweep_steps(scale))
    return plan.records([Job(sweep_config(norm, lr, scale), (), f"{NETWORKS[norm]} lr {lr:g}")])[0]


def table(scale: str) -> pd.DataFrame:
    """Per network and rate: whether it diverged, its final training loss and accuracy and its test
    accuracy (NaN where it diverged), and whether it trains (final training accuracy >= TRAINS)."""
    rows = []
    for (norm, lr), record in runs(scale).items():
        final = record.final
        rows.append(
            {
                "network": plotting.label(norm),
                "norm": norm,
                "lr": lr,
                "diverged": record.diverged,
                "training loss": np.nan if record.diverged else final["train_loss"],
                "training accuracy": np.nan if record.diverged else final["train_acc"],
                "test accuracy": np.nan if record.diverged else final["test_acc"],
                "trains": not record.diverged and final["train_acc"] >= TRAINS,
            }
        )
    return pd.DataFrame(rows)


def largest_training_rate(frame: pd.DataFrame, norm: str) -> float | None:
    """The largest rate at which a network trains (None if at none)."""
    rates = frame[(frame["norm"] == norm) & frame["trains"]]["lr"]
    return float(rates.max()) if len(rates) else None


def best(frame: pd.DataFrame, norm: str) -> pd.Series:
    """A network's row with the best test accuracy over the rates."""
    mine = frame[(frame["norm"] == norm) & ~frame["diverged"]]
    return mine.loc[mine["test accuracy"].idxmax()]


def matched(frame: pd.DataFrame) -> dict[str, float]:
    """The matched-rate control, in test accuracy: the standard network at its best rate ("rate",
    "standard"), BatchNorm at that rate ("bn_matched"), and BatchNorm at its own best ("bn_rate",
    "bn_best")."""
    std = best(frame, "none")
    bn_there = frame[(frame["norm"] == "batch") & (frame["lr"] == std["lr"])].iloc[0]
    bn = best(frame, "batch")
    return {
        "rate": float(std["lr"]),
        "standard": float(std["test accuracy"]),
        "bn_matched": float(bn_there["test accuracy"]),
        "bn_rate": float(bn["lr"]),
        "bn_best": float(bn["test accuracy"]),
    }


def figure(frame: pd.DataFrame, highlight: float | None = None) -> plt.Figure:
    """Final training loss and test accuracy against the rate, diverged runs marked at the top."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for norm in NETWORKS:
        mine = frame[frame["norm"] == norm]
        color = plotting.NORM_COLORS[norm]
        for ax, column in zip(axes, ("training loss", "test accuracy"), strict=True):
            ax.plot(mine["lr"], mine[column], "o-", color=color, label=plotting.label(norm))
            gone = mine[mine["diverged"]]
            top = 1.0 if column == "test accuracy" else np.nanmax(frame["training loss"]) * 1.1
            ax.plot(gone["lr"], [top] * len(gone), "x", color=color, ms=9, mew=2)
    for ax, column in zip(axes, ("training loss", "test accuracy"), strict=True):
        ax.set(xscale="log", xlabel="learning rate", ylabel=column)
        if highlight is not None:
            ax.axvline(highlight, color="0.6", ls=":", lw=1)
    axes[1].legend(fontsize="small")
    fig.suptitle("after the same number of steps (x: diverged)", fontsize="small")
    fig.tight_layout()
    return fig


def curves_at(scale: str, lr: float) -> plt.Figure:
    """Both networks' training loss over the sweep's steps at one rate (trained if not in the grid)."""
    records = [run_at(norm, lr, scale) for norm in NETWORKS]
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for record in records:
        loss = pd.Series(record.metrics["train_loss"]).rolling(25, min_periods=1).mean()
        ax.plot(record.metrics["step"], loss, color=plotting.NORM_COLORS[record.config.norm], lw=1.5)
        if record.diverged:
            ax.plot(record.metrics["step"][-1], loss.iloc[-1], "x", color=plotting.NORM_COLORS[record.config.norm])
    ax.set(xlabel="step", ylabel="training loss", title=f"learning rate {lr:g}", ylim=(0, 3.5))
    ax.legend([plotting.label(r.config.norm) + (" (diverged)" if r.diverged else "") for r in records])
    return fig


def one_step(scale: str) -> pd.DataFrame:
    """Bjorck et al.'s diagnostic: per layer, the spread of each network's activations on a fresh
    batch after one SGD step at each of ONE_STEP_RATES, relative to before, from the initial
    weights and from the end of Part I's run at lr 0.1."""
    rows = []
    for norm, short in NETWORKS.items():
        record = plan.get(f"vgg-{short}-lr0.1", scale)
        batches, loss_fn = first_batches(record.config, 2)
        for when, model in (("initial", initial_model(record.config)), ("trained", record.model())):
            for lr in ONE_STEP_RATES:
                spread = one_step_spread(model, batches[0], batches[1][0], loss_fn, lr)
                rows.append(spread.assign(network=plotting.label(norm), norm=norm, weights=when, lr=lr))
    return pd.concat(rows, ignore_index=True)


def one_step_figure(frame: pd.DataFrame, lr: float) -> plt.Figure:
    """The spread ratio against the layer, per network, from initial and trained weights."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, when in zip(axes, ("initial", "trained"), strict=True):
        for norm in NETWORKS:
            mine = frame[(frame["norm"] == norm) & (frame["weights"] == when) & (frame["lr"] == lr)]
            ax.plot(mine["layer"], mine["ratio"], "o-", color=plotting.NORM_COLORS[norm], label=plotting.label(norm))
        ax.axhline(1, color="0.6", lw=1)
        ax.set(yscale="log", xlabel="layer", title=f"one step at lr {lr:g} from the {when} weights")
    axes[0].set_ylabel("spread after / before")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig
