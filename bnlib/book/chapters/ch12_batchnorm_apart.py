"""Chapter 12: BatchNorm, one ingredient at a time. How much of BatchNorm's speed-up does each of its
ingredients carry, and how much do the substitutes that rival explanations propose recover?

The ladder: on the book's VGG-16 at the cpu scale, the two ends (BatchNorm and the standard network,
chapter 07's runs) and variants that each remove one ingredient of BatchNorm, or supply one
ingredient without normalizing activations (`RUNGS`). Every rung trains at the rates of a small grid
(`RATES`) in seed 0, then in seeds 1 and 2 at its best rate (the one at which seed 0 reached the
speed target first). Speed is the steps to the speed target (`bnlib.book.measures`), and every run
stops when it reaches it, or at the ladder's horizon (`decided_after`): the step after which a rung
recovers less than half of BatchNorm's speed-up at that rate whatever its seeds, so that its run can
stop there ("less than half" is a verdict only where the rung's best rate lies inside the grid:
`inside_grid`). The ends train first, and the horizon is read from their seeds.

The headline number of a rung is the fraction of BatchNorm's speed-up it recovers,

    f = (T_standard - T_variant) / (T_standard - T_BatchNorm),

each T the median over seeds at the network's own best rate: 1 is all of BatchNorm's speed-up, 0
none of it, below 0 slower than the standard network. Its interval is the range of f over every
combination of one seed of each of the three networks; a seed that never reached the target counts
at the horizon, which bounds f on one side only (the interval is then open on that side).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.book.chapters import ch07_learning_rates as rates_chapter
from bnlib.book.claims import Claim, Finding, Verdict
from bnlib.book.measures import TARGET, Speed, fast, fastest, speeds
from bnlib.book.plan import Read
from bnlib.experiments import Experiment
from bnlib.records import Record

NOTEBOOK = "12_batchnorm_apart"
TITLE = "BatchNorm, one ingredient at a time"

RATES = (0.1, 0.3)  # the grid every rung trains at in seed 0 (both are rates of chapter 07's grid)
SEEDS = (0, 1, 2)
HALF = 0.5  # "recovers most of BatchNorm's speed-up": f at least this
WARMUP = 0.1  # warm-up: the rate rises linearly over this share of the scale's steps


def _steps(scale: str) -> int:
    """The VGG's steps in this session (the scale's, or the parameters cell's fewer)."""
    return plan.config(Experiment("vgg", "none", RATES[0]), scale).steps


@dataclass(frozen=True)
class Rung:
    """One network of the ladder: its key, how the book names it, which ingredient of BatchNorm it
    keeps or supplies, who predicts what it does (`source`) and whether that prediction is that it
    recovers most of BatchNorm's speed-up (`most`) or less than half. `norm` and `changes` make it
    from the standard VGG (`run`)."""

    key: str
    label: str
    ingredient: str
    source: str
    most: bool
    norm: str
    changes: tuple[tuple[str, Any], ...] = ()

    def run(self, lr: float, scale: str, horizon: int) -> Experiment:
        """The rung's run at a rate, stopped at the speed target or after `horizon` steps."""
        changes = dict(self.changes)
        full = _steps(scale)
        if changes.pop("warmup", False):
            changes["warmup_steps"] = int(WARMUP * full)
        if horizon < full:
            changes["steps"] = horizon
        return fast(Experiment.of("vgg", self.norm, lr, **changes))

    @property
    def claim(self) -> str:
        how = "recovers most" if self.most else "recovers less than half"
        return f"{self.label[0].upper()}{self.label[1:]} {how} of BatchNorm's speed-up"


STANDARD = Rung("standard", "standard (no normalization)", "none of BatchNorm", "", False, "none")
BATCHNORM = Rung("batchnorm", "BatchNorm", "all of BatchNorm", "", True, "batch")
ENDS = (STANDARD, BATCHNORM)

RUNGS = (
    Rung(
        "detached",
        "BatchNorm without the gradient through its statistics",
        "normalizes, but the backward pass treats the batch mean and variance as constants",
        "Ioffe and Szegedy (2015, section 2): normalization the gradient ignores fails to train; Ghorbani et al. "
        "(2019): the gradient through the statistics is what removes the curvature outliers (chapter 09)",
        False,
        "batch_detached",
    ),
    Rung(
        "center",
        "centering only",
        "subtracts the batch mean, does not divide by the spread",
        "the mean-shift view (chapter 10: without normalization the channel means drift toward a constant "
        "function; Salimans and Kingma, 2016, mean-only BatchNorm)",
        True,
        "batch_center",
    ),
    Rung(
        "scale",
        "scaling only",
        "divides by the batch spread, does not subtract the mean: the loss is scale invariant",
        "the scale-invariance view (Arora et al., 2019, chapter 08): dividing by the spread alone makes the "
        "weights' scale irrelevant and tunes the effective rate",
        True,
        "batch_scale",
    ),
    Rung(
        "layer",
        "LayerNorm",
        "normalizes each example over its own units: no batch coupling, no batch noise",
        "any explanation that needs no batch (smoothness, scale invariance, conditioning): normalizing each "
        "example should do what BatchNorm does (Ba et al., 2016)",
        True,
        "layer",
    ),
    Rung(
        "group",
        "GroupNorm",
        "normalizes each example over groups of units: no batch coupling, no batch noise",
        "as for LayerNorm (Wu and He, 2018: GroupNorm trains like BatchNorm without its batch dependence)",
        True,
        "group",
    ),
    Rung(
        "ghost8",
        "BatchNorm on ghost batches of 8",
        "BatchNorm over sub-batches of 8 examples: noisier statistics",
        "Hoffer et al. (2017): statistics over small ghost batches train as well as over the whole batch",
        True,
        "ghost",
        (("ghost_batch", 8),),
    ),
    Rung(
        "ghost32",
        "BatchNorm on ghost batches of 32",
        "BatchNorm over sub-batches of 32 examples: noisier statistics",
        "Hoffer et al. (2017), as for ghost batches of 8",
        True,
        "ghost",
        (("ghost_batch", 32),),
    ),
    Rung(
        "noise",
        "noise only (the paper's control)",
        "the noise of noisy BatchNorm on the standard network, no normalization",
        "Santurkar et al. (2018, section 2.1): the same noise without BatchNorm prevents training",
        False,
        "noise",
    ),
    Rung(
        "weight_std",
        "centered weight normalization",
        "makes the loss invariant to each unit's weight scale, normalizes no activation",
        "the scale-invariance view (van Laarhoven, 2017; Arora et al., 2019; chapter 08): scale invariance, not "
        "the normalized activations, tunes the effective rate",
        True,
        "weight_std",
    ),
    Rung(
        "warmup",
        "the standard network with warm-up",
        f"a larger usable rate: the rate rises linearly over the first {WARMUP:.0%} of the steps",
        "Bjorck et al. (2018, chapter 07): BatchNorm's benefit is the larger rate it allows",
        True,
        "none",
        (("warmup", True),),
    ),
    Rung(
        "lsuv",
        "the standard network with LSUV initialization",
        "a well-conditioned start: every layer rescaled to unit output variance on a batch",
        "the conditioning-at-initialisation view (Mishkin and Matas, 2016; Daneshmand et al., 2020, chapter 10): "
        "a start whose layers keep the signal's scale does what BatchNorm does at the start",
        True,
        "none",
        (("init", "lsuv"),),
    ),
)
LADDER = (BATCHNORM, *RUNGS, STANDARD)


def rung(key: str) -> Rung:
    return next(r for r in LADDER if r.key == key)


# ----------------------------------------------------------------------------- the runs


def experiment(step: Rung, lr: float, scale: str, seed: int = 0, horizon: int | None = None) -> Experiment:
    """A rung's run at a rate in a seed: the ends are chapter 07's (Part I's at its rates); the
    other rungs stop at the `horizon` (`horizon(scale)`, known once the ends are stored)."""
    if step in ENDS:
        return rates_chapter.rate_run(step.norm, lr, seed)
    if horizon is None:
        raise ValueError(f"the {step.key} rung's runs stop at the ladder's horizon: pass horizon=horizon(scale)")
    return step.run(lr, scale, horizon)


def best_rate(step: Rung, scale: str, horizon: int | None = None) -> float | None:
    """The rate of the grid at which seed 0 reached the speed target first (None: at no rate, or
    not every rate stored yet)."""
    return fastest({lr: plan.stored(experiment(step, lr, scale, horizon=horizon), scale) for lr in RATES})


def _ends(scale: str, best: dict[Rung, float | None]) -> list[tuple[Experiment, int]]:
    """The ends' runs: seed 0 at every rate, and the other seeds at their `best` rate once it is known."""
    first = [(experiment(end, lr, scale), 0) for end in ENDS for lr in RATES]
    more = [(experiment(end, lr, scale, s), s) for end, lr in best.items() if lr for s in plan.limit(SEEDS)[1:]]
    return [*first, *more]


def _best_of_ends(scale: str) -> dict[Rung, float | None]:
    return {end: best_rate(end, scale) for end in ENDS}


def decided_after(standard: Speed, batchnorm: Speed) -> int:
    """The horizon: the last step at which a rung that reaches the target there could still recover
    HALF of BatchNorm's speed-up in some combination of seeds, max over seeds of
    (1 - HALF) T_standard + HALF T_BN. A rung that has not reached the target by then recovers less
    than HALF at that rate in every combination: its run can stop. A seed of either
    end that never reached the target leaves it at the ends' horizon: nothing is decided early."""
    if len(standard.reached) < len(standard.steps) or len(batchnorm.reached) < len(batchnorm.steps):
        return max(standard.horizon, batchnorm.horizon)
    return int(np.floor((1 - HALF) * max(standard.steps) + HALF * max(batchnorm.steps)))


def horizon(scale: str) -> int | None:
    """`decided_after` on the ends' stored seeds at their best rates (the scale's steps if an end
    reached the target at no rate); None until the ends are stored."""
    best = _best_of_ends(scale)
    stored = {(run, seed): plan.stored(run, scale, seed) for run, seed in _ends(scale, best)}
    if any(record is None for record in stored.values()):
        return None
    if None in best.values():
        return _steps(scale)
    found = {end: [stored[experiment(end, lr, scale, s), s] for s in plan.limit(SEEDS)] for end, lr in best.items()}
    return decided_after(speeds(found[STANDARD]), speeds(found[BATCHNORM]))


def reads(scale: str) -> list[Read]:
    ends = [Read(run, (seed,)) for run, seed in _ends(scale, _best_of_ends(scale))]
    h = horizon(scale)
    if h is None:
        return ends  # the rungs' horizon is read from the ends: they train first
    first = [Read(experiment(step, lr, scale, horizon=h)) for step in RUNGS for lr in RATES]
    more = []
    for step in RUNGS:
        lr = best_rate(step, scale, h)
        if lr is not None:
            more += [Read(experiment(step, lr, scale, seed, h), (seed,)) for seed in SEEDS[1:]]
    return [*ends, *first, *more]


@dataclass(frozen=True)
class Ladder:
    """The ladder's runs: the horizon, each rung's best rate (None: it reached the target at no rate)
    and its records by rate (seed 0; every seed at its best rate), by rung key."""

    horizon: int
    best: dict[str, float | None]
    records: dict[str, dict[float, list[Record]]]


@functools.cache
def ladder(scale: str) -> Ladder:
    """The ladder's runs, the missing ones trained first, one sweep per round: the ends in seed 0,
    their other seeds, the rungs in seed 0 (stopped at the horizon the ends set), theirs."""
    plan.records([experiment(end, lr, scale) for end in ENDS for lr in RATES], scale)
    plan.records(_ends(scale, _best_of_ends(scale)), scale)
    h = horizon(scale)
    plan.records([experiment(step, lr, scale, horizon=h) for step in RUNGS for lr in RATES], scale)
    best = {step.key: best_rate(step, scale, h) for step in LADDER}
    more = [
        (experiment(step, lr, scale, seed, h), seed)
        for step in RUNGS
        if (lr := best[step.key]) is not None
        for seed in plan.limit(SEEDS)[1:]
    ]
    plan.records(more, scale)
    records = {
        step.key: {
            lr: [
                plan.get(experiment(step, lr, scale, s, h), scale, s)
                for s in (plan.limit(SEEDS) if lr == best[step.key] else (0,))
            ]
            for lr in RATES
        }
        for step in LADDER
    }
    return Ladder(h, best, records)


def rate(step: Rung, scale: str) -> float:
    """The rate a rung's speed is read at: its best, or the grid's first if it reached the target at none."""
    return ladder(scale).best[step.key] or RATES[0]


def speed(step: Rung, scale: str) -> Speed:
    """A rung's speed at its rate (`rate`), over the seeds trained there."""
    return speeds(ladder(scale).records[step.key][rate(step, scale)])


# ----------------------------------------------------------------------------- the fraction recovered


@dataclass(frozen=True)
class Recovered:
    """The fraction of BatchNorm's speed-up a rung recovers: the medians' `point` and the range
    `low`..`high` over the seeds' combinations (-inf / +inf where a censored seed leaves that side
    open). `point` is None where the medians do not give one (BatchNorm no faster than standard)."""

    point: float | None
    low: float
    high: float

    def text(self) -> str:
        """The fraction and the seeds' range, an open side as a bound; bounds round outwards, so that
        a printed bound is a bound (a range up to 0.4998 reads "below 0.50", never "to 0.50")."""
        if self.point is None:
            return "undefined (BatchNorm is not faster)"
        if self.low == -np.inf and self.high == np.inf:
            return f"{self.point:.2f} (seeds: unbounded)"
        if self.low == -np.inf:
            return f"at most {_up(self.point)} (seeds: below {_up(self.high)})"
        if self.high == np.inf:
            return f"at least {_down(self.point)} (seeds: above {_down(self.low)})"
        return f"{self.point:.2f} (seeds: {_down(self.low)} to {_up(self.high)})"


def _up(x: float) -> str:
    return f"{math.ceil(x * 100) / 100 + 0.0:.2f}"  # + 0.0: never "-0.00"


def _down(x: float) -> str:
    return f"{math.floor(x * 100) / 100 + 0.0:.2f}"


def recovered(standard: Speed, variant: Speed, batchnorm: Speed) -> Recovered:
    """f = (T_s - T_v) / (T_s - T_b), from the medians and over every combination of seeds. A
    censored seed of the variant counts at its bound, so f there is an upper bound (the interval is
    open below); a censored standard seed makes f a lower bound where the variant is slower than
    BatchNorm (open above). Undefined if BatchNorm is no faster than the standard network, or has a
    seed that never reached the target."""
    if len(batchnorm.reached) < len(batchnorm.steps) or standard.median() <= batchnorm.median():
        return Recovered(None, -np.inf, np.inf)
    point = (standard.median() - variant.median()) / (standard.median() - batchnorm.median())
    values, low_open, high_open = [], False, False
    censored_s = [s is None for s in standard.steps]
    censored_v = [v is None for v in variant.steps]
    for (s, cs), (v, cv), b in itertools.product(
        zip(standard.lower(), censored_s, strict=True), zip(variant.lower(), censored_v, strict=True), batchnorm.lower()
    ):
        if s <= b:
            high_open = low_open = True  # this standard seed is no slower than BatchNorm: f unbounded
            continue
        values.append((s - v) / (s - b))
        low_open |= cv
        high_open |= cs and v >= b
    low = -np.inf if low_open or not values else min(values)
    high = np.inf if high_open or not values else max(values)
    return Recovered(float(point), float(low), float(high))


def recovers(fraction: Recovered, inside: bool = True) -> Verdict:
    """Reproduced ("recovers most") if the whole interval is at least HALF; not reproduced ("less
    than half") if all of it is below HALF and the rung's best rate lies inside the grid (`inside`:
    at the grid's edge, a rate beyond it might be faster); cannot tell otherwise, or if undefined."""
    if fraction.point is None:
        return Verdict.CANNOT_TELL
    if fraction.low >= HALF:
        return Verdict.REPRODUCED
    if fraction.high < HALF and inside:
        return Verdict.NOT_REPRODUCED
    return Verdict.CANNOT_TELL


def inside_grid(step: Rung, scale: str) -> bool:
    """Whether the rung's best rate lies strictly inside the grid, so that a rate on each side of it
    was tried and was slower. A rung that reached the target at no rate, or at the grid's edge, might
    be faster at a rate beyond it: "less than half" is then not decided."""
    best = ladder(scale).best[step.key]
    return best is not None and min(RATES) < best < max(RATES)


def fraction(step: Rung, scale: str) -> Recovered:
    return recovered(speed(STANDARD, scale), speed(step, scale), speed(BATCHNORM, scale))


def table(scale: str) -> pd.DataFrame:
    """The ladder: per network, its steps to the target at each rate of the grid (seed 0), its best
    rate and the steps of every seed there, and the fraction of BatchNorm's speed-up it recovers."""
    rows = []
    for step in LADDER:
        records, best = ladder(scale).records[step.key], ladder(scale).best[step.key]
        row = {"network": step.label, "what it keeps or supplies": step.ingredient}
        for lr in RATES:
            first = records[lr][0]
            reached = first.steps_to(TARGET)
            row[f"lr {lr:g}, seed 0"] = f"{reached:,}" if reached is not None else _never(first)
        row["best rate"] = "none" if best is None else f"{best:g}"
        row[f"steps to {TARGET:.0%} at it"] = speed(step, scale).text()
        row["fraction of BN's speed-up"] = "" if step in ENDS else fraction(step, scale).text()
        rows.append(row)
    return pd.DataFrame(rows)


def _never(record: Record) -> str:
    """How a run that never reached the target ended: dead or diverged, or not by its last step."""
    return f"not by {record.config.steps:,}" if record.status == "finished" else f"never ({record.status})"


def figure(scale: str) -> plt.Figure:
    """The ladder as a picture: the fraction of BatchNorm's speed-up each network recovers (dot: the
    medians; bar: the seeds' range; an arrow where the range is open on that side)."""
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(RUNGS) + 1.4))
    for i, step in enumerate(RUNGS):
        y = len(RUNGS) - 1 - i
        f = fraction(step, scale)
        if f.point is None:
            continue
        low, high = max(f.low, -1.0), min(f.high, 1.5)
        color = "#1f77b4" if recovers(f) == Verdict.REPRODUCED else "#555555"
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


def curves(keys: tuple[str, ...], scale: str) -> plt.Figure:
    """Training accuracy over the steps of the chosen networks, each at its best rate (every seed
    trained there; a run stops when it reaches the target)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, len(LADDER)))
    for step, color in zip(LADDER, colors, strict=True):
        if step.key not in keys:
            continue
        lr = rate(step, scale)
        for i, record in enumerate(ladder(scale).records[step.key][lr]):
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
    found = recovers(fraction, inside)
    if step.most or found == Verdict.CANNOT_TELL:
        return found
    return Verdict.NOT_REPRODUCED if found == Verdict.REPRODUCED else Verdict.REPRODUCED


def _claim(step: Rung) -> Claim:
    def measure(scale: str) -> Finding:
        f, mine = fraction(step, scale), speed(step, scale)
        text = (
            f"steps to {TARGET:.0%} at each network's best rate of {', '.join(f'{r:g}' for r in RATES)}: "
            f"{step.label} {mine.text()} (lr {rate(step, scale):g}); standard "
            f"{speed(STANDARD, scale).text()}; BN {speed(BATCHNORM, scale).text()}; fraction recovered {f.text()}"
        )
        name = f"{step.label[0].upper()}{step.label[1:]}"
        summary = (
            f"{name}: the fraction is undefined here."
            if f.point is None
            else f"{name} recovers {f.text()} of BatchNorm's speed-up."
        )
        return Finding(text, verdict(step, f, inside_grid(step, scale)), summary)

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
