"""Chapter 12: BatchNorm, one ingredient at a time. How much of BatchNorm's speed-up does each of its
ingredients carry, and how much do the substitutes that rival explanations propose recover? The
ladder itself (its rungs, runs and the fraction each recovers) is `bnlib.book.ladder`, which the
bottom line weighs too; this chapter shows it and rules on each rung's source.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import ladder, plotting
from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.claims import Claim, Finding, Verdict
from bnlib.book.ladder import BATCHNORM, ENDS, HALF, LADDER, RATES, RUNGS, STANDARD, Recovered, Rung
from bnlib.book.measures import TARGET
from bnlib.book.session import Session
from bnlib.records import Record


def table(session: Session) -> pd.DataFrame:
    """The ladder: per network, its steps to the target at each rate of the grid (seed 0), its best
    rate and the steps of every seed there, and the fraction of BatchNorm's speed-up it recovers."""
    rows = []
    for step in LADDER:
        records, best = ladder.trained(session).records[step.key], ladder.trained(session).best[step.key]
        row = {"network": step.label, "what it keeps or supplies": step.ingredient}
        for lr in RATES:
            first = records[lr][0]
            reached = first.steps_to(TARGET)
            row[f"lr {lr:g}, seed 0"] = f"{reached:,}" if reached is not None else _never(first)
        row["best rate"] = "none" if best is None else f"{best:g}"
        row[f"steps to {TARGET:.0%} at it"] = ladder.speed(step, session).text()
        row["fraction of BN's speed-up"] = "" if step in ENDS else ladder.fraction(step, session).text()
        rows.append(row)
    return pd.DataFrame(rows)


def _never(record: Record) -> str:
    """How a run that never reached the target ended: dead or diverged, or not by its last step."""
    return f"not by {record.config.steps:,}" if record.status == "finished" else f"never ({record.status})"


def figure(session: Session) -> plt.Figure:
    """The ladder as a picture: the fraction of BatchNorm's speed-up each network recovers (dot: the
    medians; bar: the seeds' range; an arrow where the range is open on that side)."""
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(RUNGS) + 1.4))
    for i, step in enumerate(RUNGS):
        y = len(RUNGS) - 1 - i
        f = ladder.fraction(step, session)
        if f.point is None:
            continue
        low, high = max(f.low, -1.0), min(f.high, 1.5)
        color = "#1f77b4" if ladder.recovers(f) == Verdict.REPRODUCED else "#555555"
        ax.plot([low, high], [y, y], color=color, lw=3, alpha=0.45, solid_capstyle="butt")
        ax.plot([min(max(f.point, -1.0), 1.5)], [y], "o", color=color, ms=7)
        if f.low == -np.inf:
            ax.annotate("", (-1.05, y), (-0.9, y), arrowprops=dict(arrowstyle="->", color=color))
        if f.high == np.inf:
            ax.annotate("", (1.55, y), (1.4, y), arrowprops=dict(arrowstyle="->", color=color))
    ax.axvline(0, color="0.4", lw=1)
    ax.axvline(1, color=plotting.NORM_COLORS["batch"], lw=1)
    ax.axvline(HALF, color="0.6", lw=1, ls=":")
    ax.set_yticks(range(len(RUNGS)), [step.label for step in reversed(RUNGS)])
    ax.set(xlim=(-1.1, 1.6), xlabel="fraction of BatchNorm's speed-up recovered")
    ax.set_title(
        f"0: the standard network; 1: BatchNorm; dotted: {HALF:g} (steps to {TARGET:.0%} training accuracy)",
        fontsize="small",
    )
    fig.tight_layout()
    return fig


def curves(keys: tuple[str, ...], session: Session) -> plt.Figure:
    """Training accuracy over the steps of the chosen networks, each at its best rate (every seed
    trained there; a run stops when it reaches the target)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, len(LADDER)))
    for step, color in zip(LADDER, colors, strict=True):
        if step.key not in keys:
            continue
        lr = ladder.rate(step, session)
        for i, record in enumerate(ladder.trained(session).records[step.key][lr]):
            ax.plot(
                record.metrics["step"],
                record.smoothed(),
                color=color,
                lw=1.2,
                label=f"{step.label} (lr {lr:g})" if i == 0 else None,
            )
    ax.axhline(TARGET, color="0.6", ls=":", lw=1)
    ax.set(xlabel="step", ylabel="training accuracy", ylim=(0, 1))
    ax.legend(fontsize="x-small", loc="upper left")
    return fig


# ----------------------------------------------------------------------------- the claims


def verdict(step: Rung, fraction: Recovered, inside: bool = True) -> Verdict:
    """A rung's verdict on its source's prediction: `recovers` (most), or its opposite where the
    source predicts less than half."""
    found = ladder.recovers(fraction, inside)
    if step.most or found == Verdict.CANNOT_TELL:
        return found
    return Verdict.NOT_REPRODUCED if found == Verdict.REPRODUCED else Verdict.REPRODUCED


def _claim(step: Rung) -> Claim:
    def measure(session: Session) -> Finding:
        f, mine = ladder.fraction(step, session), ladder.speed(step, session)
        text = (
            f"steps to {TARGET:.0%} at each network's best rate of {', '.join(f'{r:g}' for r in RATES)}: "
            f"{step.label} {mine.text()} (lr {ladder.rate(step, session):g}); standard "
            f"{ladder.speed(STANDARD, session).text()}; BN {ladder.speed(BATCHNORM, session).text()}; "
            f"fraction recovered {f.text()}"
        )
        name = f"{step.label[0].upper()}{step.label[1:]}"
        summary = (
            f"{name}: the fraction is undefined here."
            if f.point is None
            else f"{name} recovers {f.text()} of BatchNorm's speed-up."
        )
        return Finding(text, verdict(step, f, ladder.inside_grid(step, session)), summary)

    measure.__name__ = f"recovers_{step.key}"
    most = f"at least {HALF:g}" if step.most else f"below {HALF:g}"
    least = f"below {HALF:g}" if step.most else f"at least {HALF:g}"
    return Claim(
        step.claim,
        step.source,
        f"f = (T_standard - T_variant) / (T_standard - T_BN), steps to {TARGET:.0%} at each network's best rate: "
        f"reproduced if f is {most} in every combination of seeds, not reproduced if it is {least} in every one, "
        f"where below {HALF:g} counts only if the rung's best rate lies inside the grid "
        f"({', '.join(f'{r:g}' for r in RATES)}), a slower rate of it on each side (at an edge, or where no rate "
        "reached the target, a rate beyond the grid might be faster); cannot tell otherwise (or if BN is not faster)",
        measure,
    )


CLAIMS = {step.key: _claim(step) for step in RUNGS}

CHAPTER = Chapter("12_batchnorm_apart", "BatchNorm, one ingredient at a time", PART_TWO, ladder.reads, CLAIMS)
