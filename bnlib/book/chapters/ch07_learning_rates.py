"""Chapter 07: does BatchNorm work because it allows larger learning rates? (Bjorck, Gomes, Selman
and Weinberger, 2018).

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

import functools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.book.chapters.ch01_does_batchnorm_help import BN
from bnlib.book.claims import Claim, Finding, Verdict
from bnlib.book.plan import Read
from bnlib.experiments import Experiment
from bnlib.probes.signal import one_step_spread
from bnlib.records import Record, load_or_run
from bnlib.train import first_batches, initial_model

NOTEBOOK = "07_learning_rates"
TITLE = "A wider range of learning rates"
EXPLANATION = "BatchNorm allows larger learning rates"

RATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5, 1.0)
NETWORKS = ("none", "batch")
SHARED = (0.01, 0.1, 0.5)  # rates Part I trains in full: their first steps are the sweep's runs
ONE_STEP_RATES = (0.1, 1.0)
TRAINS = 0.2  # a run "trains" if its final training accuracy is at least twice chance
LARGER = 3.0  # "larger rates": BN's largest rate that trains at least this multiple of the standard's
GONE = 0.5  # "most of the advantage disappears": at most this share of BN's lead remains at the matched rate
NO_LEAD = 0.01  # a lead of at most this much (test accuracy) leaves nothing to explain


def sweep_steps(scale: str) -> int:
    """The sweep's budget: a third of the scale's VGG run, where Part I's runs were tested."""
    full = plan.capped(BN.config(scale))
    every = full.test_every or full.steps
    return max(every, full.steps // 3 // every * every)


def sweep_run(norm: str, lr: float, scale: str) -> Experiment:
    """The sweep's run of one network at one rate Part I does not train."""
    return Experiment("vgg", norm, lr).but(steps=sweep_steps(scale))


def _own(scale: str) -> list[Experiment]:
    return [sweep_run(norm, lr, scale) for norm in NETWORKS for lr in RATES if lr not in SHARED]


def reads(scale: str) -> list[Read]:
    shared = [Read(Experiment("vgg", norm, lr)) for norm in NETWORKS for lr in SHARED]
    return [*shared, *(Read(run) for run in _own(scale))]


def runs(scale: str) -> dict[tuple[str, float], Record]:
    """(normalization, rate) -> the sweep's record: trained as one sweep, or cut from Part I's."""
    plan.records(_own(scale), scale)  # the missing ones, as one sweep
    return {(norm, lr): run_at(norm, lr, scale) for norm in NETWORKS for lr in RATES}


def run_at(norm: str, lr: float, scale: str) -> Record:
    """One network's sweep run at any rate: cut from Part I's run where Part I trains that rate,
    else the sweep's record (trained now if it is not stored)."""
    if lr in SHARED:
        return plan.get(Experiment("vgg", norm, lr), scale).truncated(sweep_steps(scale))
    run = sweep_run(norm, lr, scale)
    if lr in RATES:
        return plan.get(run, scale)
    return load_or_run(plan.config(run, scale), label=run.name)  # a rate of the reader's own


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
    for norm in NETWORKS:
        record = plan.get(Experiment("vgg", norm, 0.1), scale)
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


# ----------------------------------------------------------------------------- the claims


@functools.cache
def _table(scale: str) -> pd.DataFrame:
    return table(scale)


@functools.cache
def _one_step(scale: str) -> pd.DataFrame:
    return one_step(scale)


def _rate(rate: float | None) -> str:
    return "none" if rate is None else f"{rate:g}"


def larger_rates(scale: str) -> Finding:
    frame = _table(scale)
    bn, std = (largest_training_rate(frame, norm) for norm in ("batch", "none"))
    text = (
        f"largest rate that trains (final training accuracy at least {TRAINS:.0%}) after "
        f"{sweep_steps(scale):,} steps: BN {_rate(bn)}, standard {_rate(std)}"
    )
    if bn is None:
        verdict = Verdict.NOT_REPRODUCED
    elif std is None or bn >= LARGER * std:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if bn > std else Verdict.NOT_REPRODUCED
    summary = (
        f"After {sweep_steps(scale):,} steps, the largest rate at which BatchNorm trains is {_rate(bn)}, the standard "
        f"network's {_rate(std)}."
    )
    return Finding(text, verdict, summary)


def matched_rate(scale: str) -> Finding:
    m = matched(_table(scale))
    overall, kept = m["bn_best"] - m["standard"], m["bn_matched"] - m["standard"]
    text = (
        f"test accuracy at the standard network's best rate ({m['rate']:g}): standard {m['standard']:.0%}, "
        f"BN {m['bn_matched']:.0%}; BN at its own best rate ({m['bn_rate']:g}) {m['bn_best']:.0%}: "
        f"{kept * 100:+.0f} of BN's {overall * 100:+.0f} points remain at the matched rate"
    )
    if overall <= NO_LEAD:
        verdict = Verdict.CANNOT_TELL
    elif kept <= GONE * overall:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if kept < overall else Verdict.NOT_REPRODUCED
    summary = (
        f"At the standard network's best rate ({m['rate']:g}) BatchNorm keeps {kept * 100:+.0f} of the "
        f"{overall * 100:+.0f} points of test accuracy it leads by at its own best rate."
    )
    return Finding(text, verdict, summary)


def _ratio(frame: pd.DataFrame, norm: str, layer: str) -> float:
    mine = frame[(frame["norm"] == norm) & (frame["weights"] == "trained") & (frame["lr"] == 1.0)]
    hidden = mine[mine["layer"] < mine["layer"].max()]
    value = hidden["ratio"].iloc[-1 if layer == "last" else 0]
    return float(value) if np.isfinite(value) else float("inf")


def large_step(scale: str) -> Finding:
    frame = _one_step(scale)
    std_first, std_last = _ratio(frame, "none", "first"), _ratio(frame, "none", "last")
    bn_last = _ratio(frame, "batch", "last")
    text = (
        "activation spread after / before one SGD step at lr 1 from the trained weights: standard network "
        f"{std_first:.3g} at its first layer, {std_last:.3g} at its last hidden layer; BN {bn_last:.3g} at its last "
        "hidden layer"
    )
    blows_up, with_depth = std_last > bn_last, std_last > std_first
    if blows_up and with_depth:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if blows_up else Verdict.NOT_REPRODUCED
    summary = (
        f"One step at lr 1 multiplies the spread of the standard network's last hidden layer by {std_last:.3g} "
        f"(its first by {std_first:.3g}), BatchNorm's by {bn_last:.3g}."
    )
    return Finding(text, verdict, summary)


CLAIMS = {
    "larger_rates": Claim(
        "BatchNorm trains at larger learning rates than the standard network",
        "Bjorck et al. (2018): BatchNorm's main benefit is that it lets training use larger learning rates; without "
        "it, training at large rates diverges (ResNet-110 on CIFAR-10)",
        f"reproduced if BN's largest rate that trains is at least {LARGER:g} times the standard network's (or the "
        "standard network trains at none); partly if it is larger; not reproduced otherwise",
        larger_rates,
    ),
    "matched_rate": Claim(
        "At the standard network's best rate most of BatchNorm's advantage disappears",
        "Bjorck et al. (2018): at the same small rate, networks with and without BatchNorm train similarly; the gain "
        "comes with the larger rate",
        f"test accuracy: reproduced if BN's lead at the standard network's best rate is at most {GONE:g} of its lead "
        "when each network uses its own best rate; partly if smaller than that lead; not reproduced otherwise; "
        f"cannot tell if BN leads by {NO_LEAD * 100:.0f} point or less at best",
        matched_rate,
    ),
    "large_step": Claim(
        "Without BatchNorm one large step blows the activations up, more so in deeper layers",
        "Bjorck et al. (2018): after a step at a large rate, the activations of an unnormalized network grow, "
        "increasingly with depth; BatchNorm keeps them in check",
        "from the trained weights of Part I's runs at lr 0.1, one step at lr 1: reproduced if the standard network's "
        "activation spread grows more at its last hidden layer than BN's does and more than at its own first layer; "
        "partly if only the first holds; not reproduced otherwise",
        large_step,
    ),
}
