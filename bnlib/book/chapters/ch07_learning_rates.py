"""Chapter 07: does BatchNorm work because it allows larger learning rates? (Bjorck, Gomes, Selman
and Weinberger, 2018).

The experiment, in Part I's regime: the book's VGG-16, with and without BatchNorm, at learning
rates from 0.01 until BatchNorm fails too, each run's speed measured as its steps to the speed
target (`bnlib.book.measures`), every run stopped once that is decided (it reached the target, it
diverged, or its network died). A rate *trains* a network if every seed reaches the target within
the scale's steps; so every rate runs in seed 0, and seeds 1 and 2 only where seed 0 reached it
(one seed that does not settles that the rate does not train). Part I's runs serve at its rates.

Two diagnostics: the matched-rate control (how much of BatchNorm's speed-up is left at the standard
network's best rate?) and one large step (Bjorck et al.'s Fig. 4): from the initial weights, one
plain SGD step at each rate where the standard network fails, and the spread of every layer's
pre-activations after it, relative to before, beside the share of units it leaves dead.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plotting
from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import (
    TARGET,
    Speed,
    fast,
    speeds,
)
from bnlib.book.plan import Read
from bnlib.book.runs import rate_run
from bnlib.book.session import Session
from bnlib.config import RunConfig
from bnlib.experiments import Experiment
from bnlib.probes.signal import one_step_spread
from bnlib.records import Record, load_or_run
from bnlib.train import first_batches, initial_model

EXPLANATION = "BatchNorm allows larger learning rates"

RATES = (0.01, 0.03, 0.1, 0.3, 0.5, 1.0, 3.0, 10.0)
NETWORKS = ("none", "batch")
SEEDS = (0, 1, 2)

# The thresholds are the book's own: Bjorck et al. state none.
LARGER = 3.0  # "larger rates": BN's largest training rate at least this multiple of the standard's
GONE = 0.5  # "most of the advantage disappears": at most this share of it is left at the matched rate
BLOWUP = 10.0  # "blows the activations up": one step multiplies a layer's pre-activation spread by this
# Bjorck et al.'s own matched-rate claim, on accuracy after the whole schedule
MATCHED = 0.1  # the standard network's best rate (chapter 07's grid at the cpu scale), trained the whole scale
SIMILAR = 0.02  # "similar accuracy": final test accuracies within this (2 points)
STILL_RISING = 0.02  # a run still rising: its training accuracy rose more than this over the last RISING_SHARE
RISING_SHARE = 0.1


def reaches(norm: str, lr: float, session: Session, seed: int = 0) -> bool | None:
    """Whether a stored run reached the speed target (None: not stored yet)."""
    record = session.stored(rate_run(norm, lr, seed), seed)
    return None if record is None else record.steps_to(TARGET) is not None


def reads(session: Session) -> list[Read]:
    first = [Read(rate_run(norm, lr)) for norm in NETWORKS for lr in RATES]
    more = [
        Read(rate_run(norm, lr, seed), (seed,))
        for norm in NETWORKS
        for lr in RATES
        if reaches(norm, lr, session)
        for seed in SEEDS[1:]
    ]
    matched = [Read(rate_run(norm, MATCHED, seed), (seed,)) for norm in NETWORKS for seed in SEEDS]  # every seed
    return [*first, *more, *matched]


@functools.cache
def runs(session: Session) -> dict[tuple[str, float], list[Record]]:
    """(normalization, rate) -> its records, seed 0 first (every seed where seed 0 reached the
    target); the missing ones trained first, as one sweep per round."""
    session.records([rate_run(norm, lr) for norm in NETWORKS for lr in RATES])
    wanted = [(norm, lr) for norm in NETWORKS for lr in RATES if reaches(norm, lr, session)]
    session.records([(rate_run(n, lr, s), s) for n, lr in wanted for s in session.limit(SEEDS)[1:]])
    out = {}
    for norm in NETWORKS:
        for lr in RATES:
            seeds = session.limit(SEEDS) if reaches(norm, lr, session) else (0,)
            out[(norm, lr)] = [session.get(rate_run(norm, lr, s), s) for s in seeds]
    return out


@dataclass(frozen=True)
class Rate:
    """One network at one rate of the grid: how each seed ended (reached the target, died, diverged,
    or ran all its steps), its speed, and whether the rate trains (every seed reached the target)."""

    norm: str
    lr: float
    ended: tuple[str, ...]
    speed: Speed
    trains: bool


@functools.cache
def sweep(session: Session) -> tuple[Rate, ...]:
    """Every network at every rate of the grid (`runs`)."""
    return tuple(
        Rate(norm, lr, tuple(r.status for r in records), (speed := speeds(records)), trains(speed, session))
        for (norm, lr), records in runs(session).items()
    )


def trains(speed: Speed, session: Session) -> bool:
    return len(speed.reached) == len(speed.steps) == len(session.limit(SEEDS))


def table(session: Session) -> pd.DataFrame:
    """The rate sweep (`sweep`) as the page shows it."""
    return pd.DataFrame(
        [
            {
                "network": plotting.label(rate.norm),
                "lr": rate.lr,
                "seeds": len(rate.ended),
                "ended": ", ".join(rate.ended),
                f"steps to {TARGET:.0%}": rate.speed.text(),
                "trains": rate.trains,
            }
            for rate in sweep(session)
        ]
    )


def _horizon(session: Session) -> int:
    return session.config(Experiment("vgg", "batch", 0.1)).steps


def training_rates(session: Session, norm: str) -> list[float]:
    """The rates of the grid at which a network trains (every seed reaches the target)."""
    return sorted(rate.lr for rate in sweep(session) if rate.norm == norm and rate.trains)


def figure(session: Session) -> plt.Figure:
    """Steps to the target against the rate, seed by seed (x at the top: the seed never got there,
    diverged or died)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    data = runs(session)
    top = _horizon(session)
    for norm in NETWORKS:
        color = plotting.NORM_COLORS[norm]
        medians = []
        for lr in RATES:
            speed = speeds(data[(norm, lr)])
            ax.plot([lr] * len(speed.reached), speed.reached, "o", color=color, alpha=0.6, ms=4)
            missed = len(speed.steps) - len(speed.reached)
            ax.plot([lr] * missed, [top * 1.15] * missed, "x", color=color, ms=8, mew=2)
            medians.append(speed.median() if len(speed.reached) == len(speed.steps) else np.nan)
        ax.plot(RATES, medians, "-", color=color, label=plotting.label(norm))
    ax.axhline(top, color="0.6", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel=f"steps to {TARGET:.0%} training accuracy")
    ax.legend(fontsize="small")
    ax.set_title("dotted: the scale's steps; x: never reached it (stopped, died or diverged)", fontsize="small")
    return fig


def curves_at(session: Session, lr: float) -> plt.Figure:
    """Both networks' training accuracy over the steps at one rate, seed 0 (trained if not in the grid)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for norm in NETWORKS:
        record = session.get(rate_run(norm, lr)) if lr in RATES else _reader_run(norm, lr, session)
        accuracy = record.smoothed()
        color = plotting.NORM_COLORS[norm]
        ax.plot(
            record.metrics["step"], accuracy, color=color, lw=1.5, label=f"{plotting.label(norm)} ({record.status})"
        )
    ax.axhline(TARGET, color="0.6", ls=":", lw=1)
    ax.set(xlabel="step", ylabel="training accuracy", title=f"learning rate {lr:g}", ylim=(0, 1))
    ax.legend(fontsize="small")
    return fig


def _reader_run(norm: str, lr: float, session: Session) -> Record:
    """A rate of the reader's own (the widget), stopped like the grid's."""
    return load_or_run(session.config(fast(Experiment("vgg", norm, lr))), label=f"{norm} lr {lr:g}")


def one_step(session: Session, rates: tuple[float, ...]) -> pd.DataFrame:
    """Bjorck et al.'s diagnostic: per layer, the spread of each network's pre-activations (the weight
    layer's output, before any normalization) on a fresh batch after one SGD step at each rate,
    relative to before, from the initial weights of each seed, and the share of the layer's units
    whose activation the step left at zero for every example of that batch (dead)."""
    frames = []
    for norm in NETWORKS:
        for seed in session.limit(SEEDS):
            config = Experiment("vgg", norm, 0.1).config(session.scale, seed)
            table = session.measured("one-step-spread", config, lambda c=config: _one_step(c, rates), rates=rates)
            frames.append(table.assign(network=plotting.label(norm), norm=norm, seed=seed))
    return pd.concat(frames, ignore_index=True)


def _one_step(config: RunConfig, rates: tuple[float, ...]) -> pd.DataFrame:
    """`one_step_spread` from a config's initial weights at each rate, on its run's first two batches."""
    batches, loss_fn = first_batches(config, 2)
    model = initial_model(config)
    rows = [one_step_spread(model, batches[0], batches[1][0], loss_fn, lr, site="norm_in") for lr in rates]
    return pd.concat([row.assign(lr=lr) for row, lr in zip(rows, rates, strict=True)], ignore_index=True)


def one_step_figure(frame: pd.DataFrame) -> plt.Figure:
    """The spread ratio against the layer (medians over seeds), per network and rate; right, the
    share of units left dead."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    rates = sorted(frame["lr"].unique())
    styles = dict(zip(rates, ("-", "--", ":", "-."), strict=False))
    for (norm, lr), mine in frame.groupby(["norm", "lr"]):
        by_layer = mine.groupby("layer")[["ratio", "dead share"]].median()
        color = plotting.NORM_COLORS[norm]
        label = f"{plotting.label(norm)}, lr {lr:g}"
        axes[0].plot(by_layer.index, by_layer["ratio"], styles.get(lr, "-"), color=color, marker="o", ms=3, label=label)
        axes[1].plot(by_layer.index, by_layer["dead share"], styles.get(lr, "-"), color=color, marker="o", ms=3)
    axes[0].axhline(1, color="0.6", lw=1)
    axes[0].set(
        yscale="log",
        xlabel="layer",
        ylabel="pre-activation spread after / before",
        title="one step from the initial weights",
    )
    axes[1].set(xlabel="layer", ylabel="share of units dead after the step", ylim=(0, 1))
    axes[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the claims


def _speed(session: Session, norm: str, lr: float) -> Speed:
    return speeds(runs(session)[(norm, lr)])


def larger_rates(session: Session) -> Finding:
    bn, std = (training_rates(session, norm) for norm in ("batch", "none"))
    top = {norm: max(rates) if rates else None for norm, rates in (("batch", bn), ("none", std))}
    text = (
        f"rates at which every seed reaches {TARGET:.0%} training accuracy within {_horizon(session):,} steps"
        f", of {', '.join(f'{r:g}' for r in RATES)}: BN {', '.join(f'{r:g}' for r in bn) or 'none'}; standard "
        f"{', '.join(f'{r:g}' for r in std) or 'none'}"
    )
    if top["batch"] is None or top["none"] is None or top["batch"] == max(RATES):
        verdict = Verdict.CANNOT_TELL  # a network that trains at no rate, or BN censored at the grid's top
    else:
        verdict = graded([top["batch"] >= LARGER * top["none"], top["batch"] > top["none"]])
    shown = {norm: "no rate" if rate is None else f"{rate:g}" for norm, rate in top.items()}
    summary = (
        f"The largest rate at which every seed reaches {TARGET:.0%} is {shown['batch']} with BatchNorm and "
        f"{shown['none']} without (the grid runs from {min(RATES):g} to {max(RATES):g})."
    )
    return Finding(text, verdict, summary)


def best_rates(session: Session, norm: str) -> list[float]:
    """A network's best rate, and every rate tied with it: the training rates whose seeds' range of
    steps to the target overlaps the best's (the interval the seeds give)."""
    rates = training_rates(session, norm)
    if not rates:
        return []
    ranges = {lr: (min(_speed(session, norm, lr).reached), max(_speed(session, norm, lr).reached)) for lr in rates}
    best = min(rates, key=lambda lr: _speed(session, norm, lr).median())
    return [lr for lr in rates if ranges[lr][0] <= ranges[best][1]]


def matched_rate(session: Session) -> Finding:
    std_best, bn_best = best_rates(session, "none"), best_rates(session, "batch")
    if not std_best or not bn_best:
        text = "a network trains at no rate of the grid, so there is no best rate to match"
        return Finding(
            text, Verdict.CANNOT_TELL, "With a network that trains at no rate, the matched rate cannot be tested."
        )
    own = np.log(_speed(session, "none", std_best[0]).median() / _speed(session, "batch", bn_best[0]).median())
    shares = {}
    for lr in std_best:
        bn_there = _speed(session, "batch", lr)
        if len(bn_there.reached) == len(bn_there.steps):
            shares[lr] = (
                float(np.log(_speed(session, "none", lr).median() / bn_there.median()) / own) if own > 0 else np.nan
            )
    text = (
        f"median steps to {TARGET:.0%}: standard at its best rate(s) {', '.join(f'{r:g}' for r in std_best)} "
        f"{_speed(session, 'none', std_best[0]).median():,.0f}, BN at its best rate(s) "
        f"{', '.join(f'{r:g}' for r in bn_best)} "
        f"{_speed(session, 'batch', bn_best[0]).median():,.0f} (BN {np.exp(own):.3g}x faster); "
        "at the standard network's "
        "best rate(s), the share of that speed-up (on a log scale) left: "
        + ", ".join(f"lr {lr:g} {share:.2f}" for lr, share in shares.items())
    )
    if own <= 0 or not shares or any(np.isnan(list(shares.values()))):
        verdict = Verdict.CANNOT_TELL
    elif all(share <= GONE for share in shares.values()):
        verdict = Verdict.REPRODUCED
    elif all(share > GONE for share in shares.values()):
        verdict = Verdict.NOT_REPRODUCED
    else:
        verdict = Verdict.CANNOT_TELL  # the tied best rates disagree
    summary = (
        f"At the standard network's best rate BatchNorm keeps {', '.join(f'{s:.0%}' for s in shares.values())} of "
        f"its {np.exp(own):.3g}-fold speed-up (on a log scale)."
    )
    return Finding(text, verdict, summary)


@functools.cache
def one_step_table(session: Session) -> pd.DataFrame:
    """`one_step` at the rates where the standard network fails, computed once per process (the page's
    figure and the claim read the same)."""
    return one_step(session, failing_rates(session))


def still_rising(record: Record) -> bool:
    """Whether a run's training accuracy (`Record.smoothed`) rose by more than STILL_RISING over the
    last RISING_SHARE of its steps: its final accuracy is not yet its accuracy after a full schedule."""
    smoothed = record.smoothed()
    start = int(len(smoothed) * (1 - RISING_SHARE))
    return bool(smoothed[-1] - smoothed[start] > STILL_RISING)


def matched_final(session: Session) -> Finding:
    seeds = session.limit(SEEDS)
    got = {norm: [session.get(rate_run(norm, MATCHED, s), s) for s in seeds] for norm in NETWORKS}
    final = {norm: [r.final["test_acc"] for r in records] for norm, records in got.items()}
    gaps = [b - s for b in final["batch"] for s in final["none"]]
    rising = [norm for norm, records in got.items() if any(still_rising(r) for r in records)]
    steps = got["none"][0].config.steps
    text = (
        f"final test accuracy after {steps:,} steps at lr {MATCHED:g}, per seed: BN "
        + ", ".join(f"{a:.3f}" for a in final["batch"])
        + "; standard "
        + ", ".join(f"{a:.3f}" for a in final["none"])
        + f"; BN - standard over the seeds' pairings {min(gaps):+.3f} to {max(gaps):+.3f}; still rising over the "
        f"last {RISING_SHARE:.0%} of the steps: {', '.join(plotting.label(n) for n in rising) or 'neither'}"
    )
    gap = float(np.median(final["batch"]) - np.median(final["none"]))
    if rising:
        verdict = Verdict.CANNOT_TELL  # the schedule is not over: the final accuracies are not yet final
    elif abs(gap) <= SIMILAR:
        verdict = Verdict.REPRODUCED
    elif min(gaps) > SIMILAR:
        verdict = Verdict.NOT_REPRODUCED
    else:
        verdict = Verdict.CANNOT_TELL
    summary = (
        f"At lr {MATCHED:g} after {steps:,} steps, BatchNorm's final test accuracy is {gap:+.3f} from the standard "
        f"network's (medians){'; a network is still rising, so the schedule cannot decide' if rising else ''}."
    )
    return Finding(text, verdict, summary)


def failing_rates(session: Session) -> tuple[float, ...]:
    """The rates above the standard network's largest training rate (where its runs fail)."""
    std = training_rates(session, "none")
    return tuple(lr for lr in RATES if std and lr > max(std))


def large_step(session: Session) -> Finding:
    rates = failing_rates(session)
    if not rates:
        return Finding("the standard network trains at every rate of the grid", Verdict.CANNOT_TELL, "")
    frame = one_step_table(session)
    checks, parts = [], []
    for lr in rates:
        std = frame[(frame["norm"] == "none") & (frame["lr"] == lr)].groupby("layer")[["ratio", "dead share"]].median()
        bn = frame[(frame["norm"] == "batch") & (frame["lr"] == lr)].groupby("layer")["ratio"].median()
        hidden = std.index[:-1]
        last, first = std.loc[hidden[-1], "ratio"], std.loc[hidden[0], "ratio"]
        checks.append(last >= BLOWUP and last > first)
        ended = [r.status for r in runs(session)[("none", lr)]]
        parts.append(
            f"lr {lr:g}: standard x{first:.3g} at layer #1, x{last:.3g} at #{hidden[-1]} (dead units after the "
            f"step: up to {std['dead share'].max():.0%}), BN x{bn.loc[hidden[-1]]:.3g} at #{hidden[-1]}; the standard "
            "runs ended: "
            f"{', '.join(ended)}"
        )
    died = all(r.status == "dead" for lr in rates for r in runs(session)[("none", lr)])
    text = "pre-activation spread after / before one step from the initial weights (medians over seeds): " + "; ".join(
        parts
    )
    verdict = graded([all(checks) and died, all(checks)])
    summary = (
        f"At the rates where the standard network fails ({', '.join(f'{r:g}' for r in rates)}), one step from its "
        f"initial weights multiplies the spread of its deepest pre-activations by at least {BLOWUP:g} at "
        f"{sum(checks)} of them, and {'every one' if died else 'not every one'} of those runs ended dead (its output "
        "the same for every example), not diverged."
    )
    return Finding(text, verdict, summary)


CLAIMS = {
    "larger_rates": Claim(
        "BatchNorm trains at larger learning rates than the standard network",
        "Bjorck et al. (2018): BatchNorm's main benefit is that it lets training use larger learning rates; without "
        "it, training at large rates diverges (ResNet-110 on CIFAR-10)",
        f"a rate trains a network if every seed reaches {TARGET:.0%} training accuracy within the scale's steps: "
        f"reproduced if BN's largest training rate is at least {LARGER:g} times the standard network's; partly if it "
        "is larger; not reproduced otherwise; cannot tell if a network trains at no rate, or BN at the grid's top "
        "(censored). The factor is the book's own",
        larger_rates,
    ),
    "matched_final": Claim(
        "At a matched rate the networks with and without BatchNorm reach similar accuracy",
        "Bjorck et al. (2018): at the same small rate, networks with and without BatchNorm reach similar accuracy "
        "after a full schedule; the gain comes with the larger rate",
        f"Part I's runs at lr {MATCHED:g} (the standard network's best rate), the whole scale, every seed: "
        f"reproduced if the medians' final test accuracies are within {SIMILAR:g}; not reproduced if BN is ahead by "
        f"more than {SIMILAR:g} in every pairing of seeds; cannot tell otherwise, or while a network is still rising "
        f"(its training accuracy up more than {STILL_RISING:g} over the last {RISING_SHARE:.0%} of the steps). The "
        "thresholds are the book's own",
        matched_final,
    ),
    "matched_rate": Claim(
        "At the standard network's best rate most of BatchNorm's speed-up disappears",
        "The book's own question, after Bjorck et al. (2018), whose claim is about final accuracy (`matched_final`): "
        "is the speed-up, too, a matter of the larger rate?",
        f"speed (median steps to {TARGET:.0%}), at each network's best rate and every rate tied with it (the seeds' "
        f"ranges overlap): reproduced if at most {GONE:g} of BN's speed-up (on a log scale) is left at every best rate "
        "of the standard network, not reproduced if more is left at every one, cannot tell if they disagree or BN "
        "has no speed-up. The share is the book's own",
        matched_rate,
    ),
    "large_step": Claim(
        "Without BatchNorm one large step blows the activations up, more so in deeper layers",
        "Bjorck et al. (2018): after a step at a large rate, the activations of an unnormalized network grow, "
        "increasingly with depth, and the loss diverges; BatchNorm keeps them in check",
        f"one step from the initial weights (every seed) at each rate where the standard network does not train, "
        f"pre-activations (before any normalization): reproduced if at every such rate the standard network's spread "
        f"grows at least {BLOWUP:g}-fold at its deepest hidden layer, more than at its first, and its runs at those "
        "rates ended dead as the blow-up explains (ReLUs pushed off for every example); partly if the blow-up holds "
        "but they did not all die; not reproduced otherwise. The factor is the book's own",
        large_step,
    ),
}

CHAPTER = Chapter("07_learning_rates", "A wider range of learning rates", PART_TWO, reads, CLAIMS)
