"""Chapter 12: BatchNorm, one ingredient at a time. How much of BatchNorm's speed-up does each of its
ingredients carry, and how much do the substitutes that rival explanations propose recover? The
ladder itself (its rungs, runs and the fraction each recovers) is `bnlib.book.ladder`, which the
bottom line weighs too; this chapter shows it and rules on each rung's source.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import lab, ladder, plotting
from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.claims import Claim, Finding, Verdict
from bnlib.book.ladder import BATCHNORM, ENDS, GRID, HALF, LADDER, RUNGS, STANDARD, Recovered, Rung
from bnlib.book.measures import PLATEAU_DROP, TARGET, reached_text
from bnlib.book.plan import Read
from bnlib.book.session import Session


def table(session: Session) -> pd.DataFrame:
    """The ladder: per network, seed 0's steps to the target at each rate of the grid it tried
    ("-": not tried), its best rate, the steps of every seed there and at BatchNorm's best rate, the
    largest rate at which every seed trains, and the fraction of BatchNorm's speed-up it recovers."""
    rows = []
    bn_best = ladder.rate(BATCHNORM, session)
    for step in LADDER:
        records, m = ladder.trained(session).records[step.key], ladder.measured(step, session)
        row = {"network": step.label, "what it keeps or supplies": step.ingredient}
        for lr in GRID:
            first = records.get(lr, {}).get(0)
            row[f"lr {lr:g}, seed 0"] = "-" if first is None else reached_text(first)
        row["best rate"] = m.best_text()
        row[f"steps to {TARGET:.0%} at it"] = m.speed.text()
        row[f"at BN's best rate ({bn_best:g})"] = "" if m.at_batchnorm is None else m.at_batchnorm.text()
        row["largest rate every seed trains at"] = m.largest_text()
        row["fraction of BN's speed-up"] = "" if step in ENDS else ladder.fraction(step, session).text()
        rows.append(row)
    return pd.DataFrame(rows)


def figure(session: Session) -> plt.Figure:
    """The ladder as a picture: the fraction of BatchNorm's speed-up each network recovers (dot: the
    medians; bar: the seeds' range; an arrow where the range is open on that side; blue where the
    whole range is at least one half)."""
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(RUNGS) + 1.4))
    plotting.fraction_bars(ax, lab.rung_rows(session), HALF)
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
        if step.key in keys:
            lr = ladder.rate(step, session)
            records = list(ladder.trained(session).records[step.key][lr].values())
            plotting.accuracy_curves(ax, records, f"{step.label} (lr {lr:g})", color)
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


def _grid() -> str:
    return ", ".join(f"{r:g}" for r in GRID)


def _claim(step: Rung) -> Claim:
    def measure(session: Session) -> Finding:
        f, mine = ladder.fraction(step, session), ladder.measured(step, session)
        ends = {end: ladder.measured(end, session) for end in ENDS}
        text = (
            f"steps to {TARGET:.0%} at each network's best rate on the grid {_grid()}: {step.label} "
            f"{mine.speed.text()} (lr {mine.best_text()}); standard {ends[STANDARD].speed.text()} "
            f"(lr {ends[STANDARD].best_text()}); BN {ends[BATCHNORM].speed.text()} (lr {ends[BATCHNORM].best_text()}); "
            f"fraction recovered {f.text()}"
        )
        summary = (
            f"{step.name}: the fraction is undefined here."
            if f.point is None
            else f"{step.name} recovers {f.text()} of BatchNorm's speed-up (at lr {mine.best_text()})."
        )
        return Finding(text, verdict(step, f, mine.bracketed), summary)

    measure.__name__ = f"recovers_{step.key}"
    most = f"at least {HALF:g}" if step.most else f"below {HALF:g}"
    least = f"below {HALF:g}" if step.most else f"at least {HALF:g}"
    return Claim(
        step.claim,
        step.source,
        f"f = (T_standard - T_variant) / (T_standard - T_BN), steps to {TARGET:.0%} at each network's best rate, "
        f"searched on the grid {_grid()} until a slower rate lies on each side of it: reproduced if f is {most} in "
        f"every combination of seeds, not reproduced if it is {least} in every one, where below {HALF:g} counts only "
        "if a slower rate lies on each side of the rung's best (at the grid's edge, or where no rate reached the "
        "target, a rate beyond the grid might be faster); cannot tell otherwise (or if BN is not faster)",
        measure,
    )


RANGE_VERDICTS = {
    True: {
        ladder.AS_BATCHNORM: Verdict.REPRODUCED,
        ladder.BETWEEN: Verdict.PARTLY,
        ladder.AS_STANDARD: Verdict.NOT_REPRODUCED,
    },
    False: {
        ladder.AS_STANDARD: Verdict.REPRODUCED,
        ladder.BETWEEN: Verdict.PARTLY,
        ladder.AS_BATCHNORM: Verdict.NOT_REPRODUCED,
    },
}


def range_verdict(step: Rung, where: str | None) -> Verdict:
    """A rung's verdict on its source's prediction about the rates it tolerates (`ladder.tolerance`)."""
    return Verdict.CANNOT_TELL if where is None or step.wider is None else RANGE_VERDICTS[step.wider][where]


def _range_claim(step: Rung) -> Claim:
    def measure(session: Session) -> Finding:
        largest = {s: ladder.measured(s, session).largest_text() for s in (step, STANDARD, BATCHNORM)}
        where = ladder.tolerates(step, session)
        text = (
            f"the largest rate of the grid {_grid()} at which every seed leaves the plateau by step "
            f"{ladder.trained(session).horizon:,} without diverging or dying: {step.label} {largest[step]}; "
            f"standard {largest[STANDARD]}; BN {largest[BATCHNORM]}"
        )
        summary = (
            f"{step.name} trains at rates up to {largest[step]}: "
            f"{where or 'not comparable (the ends tolerate the same rates)'} "
            f"(standard {largest[STANDARD]}, BatchNorm {largest[BATCHNORM]})."
        )
        return Finding(text, range_verdict(step, where), summary)

    measure.__name__ = f"rates_{step.key}"
    yes, no = (ladder.AS_BATCHNORM, ladder.AS_STANDARD) if step.wider else (ladder.AS_STANDARD, ladder.AS_BATCHNORM)
    return Claim(
        step.range_claim,
        step.source,
        f"the largest rate of the grid {_grid()} at which every seed trains (leaves the plateau, its loss "
        f"{PLATEAU_DROP:.0%} below chance, by the ladder's horizon, neither diverging nor dying before it), "
        f"against the two ends': reproduced if it is {yes}, partly if it lies between the two, not reproduced if it "
        f"is {no} (a rung that trains at no rate counts as no larger than the standard's); cannot tell if the ends "
        "tolerate the same rates",
        measure,
    )


CLAIMS = {step.key: _claim(step) for step in RUNGS} | {
    f"{step.key}_rates": _range_claim(step) for step in RUNGS if step.wider is not None
}


def reads(session: Session) -> list[Read]:
    """The ladder's runs, and the lab's examples that the static page shows."""
    return ladder.reads(session) + lab.reads(session)


CHAPTER = Chapter("12_batchnorm_apart", "BatchNorm, one ingredient at a time", PART_TWO, reads, CLAIMS)
