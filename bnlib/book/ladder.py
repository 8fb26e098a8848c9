"""The ablation ladder, which chapter 12 shows and the bottom line weighs: how much of BatchNorm's
speed-up does each of its ingredients carry, and how much do the substitutes that rival explanations
propose recover?

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

import numpy as np

from bnlib.book.claims import Verdict
from bnlib.book.measures import Speed, fast, fastest, speeds
from bnlib.book.plan import Read
from bnlib.book.runs import rate_run
from bnlib.book.session import Session
from bnlib.experiments import Experiment
from bnlib.records import Record

RATES = (0.1, 0.3)  # the grid every rung trains at in seed 0 (both are rates of chapter 07's grid)
SEEDS = (0, 1, 2)
HALF = 0.5  # "recovers most of BatchNorm's speed-up": f at least this
WARMUP = 0.1  # warm-up: the rate rises linearly over this share of the scale's steps


def _steps(session: Session) -> int:
    """The VGG's steps in this session (the scale's, or the parameters cell's fewer)."""
    return session.config(Experiment("vgg", "none", RATES[0])).steps


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

    def run(self, lr: float, session: Session, horizon: int) -> Experiment:
        """The rung's run at a rate, stopped at the speed target or after `horizon` steps."""
        changes = dict(self.changes)
        full = _steps(session)
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


def experiment(step: Rung, lr: float, session: Session, seed: int = 0, horizon: int | None = None) -> Experiment:
    """A rung's run at a rate in a seed: the ends are chapter 07's (Part I's at its rates); the
    other rungs stop at the `horizon` (`horizon(scale)`, known once the ends are stored)."""
    if step in ENDS:
        return rate_run(step.norm, lr, seed)
    if horizon is None:
        raise ValueError(f"the {step.key} rung's runs stop at the ladder's horizon: pass horizon=horizon(scale)")
    return step.run(lr, session, horizon)


def best_rate(step: Rung, session: Session, horizon: int | None = None) -> float | None:
    """The rate of the grid at which seed 0 reached the speed target first (None: at no rate, or
    not every rate stored yet)."""
    return fastest({lr: session.stored(experiment(step, lr, session, horizon=horizon)) for lr in RATES})


def decided_after(standard: Speed, batchnorm: Speed) -> int:
    """The horizon: the last step at which a rung that reaches the target there could still recover
    HALF of BatchNorm's speed-up in some combination of seeds, max over seeds of
    (1 - HALF) T_standard + HALF T_BN. A rung that has not reached the target by then recovers less
    than HALF at that rate in every combination: its run can stop. A seed of either
    end that never reached the target leaves it at the ends' horizon: nothing is decided early."""
    if len(standard.reached) < len(standard.steps) or len(batchnorm.reached) < len(batchnorm.steps):
        return max(standard.horizon, batchnorm.horizon)
    return int(np.floor((1 - HALF) * max(standard.steps) + HALF * max(batchnorm.steps)))


def horizon(session: Session) -> int | None:
    """`decided_after` on the ends' stored seeds at their best rates (the scale's steps if an end
    reached the target at no rate); None until the ends are stored."""
    best = {end: best_rate(end, session) for end in ENDS}
    ends = [(experiment(end, lr, session), 0) for end in ENDS for lr in RATES]
    ends += [(experiment(end, lr, session, s), s) for end, lr in best.items() if lr for s in session.limit(SEEDS)[1:]]
    stored = {(run, seed): session.stored(run, seed) for run, seed in ends}
    if any(record is None for record in stored.values()):
        return None
    if None in best.values():
        return _steps(session)
    found = {
        end: [stored[experiment(end, lr, session, s), s] for s in session.limit(SEEDS)] for end, lr in best.items()
    }
    return decided_after(speeds(found[STANDARD]), speeds(found[BATCHNORM]))


@dataclass(frozen=True)
class Ladder:
    """The ladder's runs: the horizon, each rung's best rate (None: it reached the target at no rate)
    and its records by rate (seed 0; every seed at its best rate), by rung key."""

    horizon: int
    best: dict[str, float | None]
    records: dict[str, dict[float, list[Record]]]


def runs(session: Session) -> list[tuple[Rung, float, int, Experiment]]:
    """Every run the ladder reads, as far as what is stored decides it, as (rung, rate, seed, run):
    the ends in seed 0 at every rate, then in the other seeds at their best rate once seed 0 is
    stored; the rungs (once the ends set the horizon) in seed 0 at every rate, then in the other
    seeds at their best rate. The one list of the ladder's runs: the chapter reads these, and
    `trained` loads exactly these."""
    best = {end: best_rate(end, session) for end in ENDS}
    found = [(end, lr, 0) for end in ENDS for lr in RATES]
    found += [(end, lr, s) for end, lr in best.items() if lr for s in session.limit(SEEDS)[1:]]
    h = horizon(session)
    if h is not None:
        found += [(step, lr, 0) for step in RUNGS for lr in RATES]
        for step in RUNGS:
            lr = best_rate(step, session, h)
            found += [(step, lr, s) for s in session.limit(SEEDS)[1:]] if lr is not None else []
    return [(step, lr, s, experiment(step, lr, session, s, h)) for step, lr, s in found]


def reads(session: Session) -> list[Read]:
    return [Read(run, (seed,)) for _, _, seed, run in runs(session)]


@functools.cache
def trained(session: Session) -> Ladder:
    """The ladder's runs (`runs`), the missing ones trained first, one sweep per round (the ends in
    seed 0, their other seeds, the rungs in seed 0 stopped at the horizon the ends set, theirs),
    until what is stored decides no further run."""
    while True:
        wanted = runs(session)
        session.records([(run, seed) for _, _, seed, run in wanted])
        if runs(session) == wanted:
            break
    h = horizon(session)
    best = {step.key: best_rate(step, session, h) for step in LADDER}
    records: dict[str, dict[float, list[Record]]] = {step.key: {lr: [] for lr in RATES} for step in LADDER}
    for step, lr, seed, run in sorted(wanted, key=lambda w: w[2]):
        records[step.key][lr].append(session.get(run, seed))
    return Ladder(h, best, records)


def rate(step: Rung, session: Session) -> float:
    """The rate a rung's speed is read at: its best, or the grid's first if it reached the target at none."""
    return trained(session).best[step.key] or RATES[0]


def speed(step: Rung, session: Session) -> Speed:
    """A rung's speed at its rate (`rate`), over the seeds trained there."""
    return speeds(trained(session).records[step.key][rate(step, session)])


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


def inside_grid(step: Rung, session: Session) -> bool:
    """Whether the rung's best rate lies strictly inside the grid, so that a rate on each side of it
    was tried and was slower. A rung that reached the target at no rate, or at the grid's edge, might
    be faster at a rate beyond it: "less than half" is then not decided."""
    best = trained(session).best[step.key]
    return best is not None and min(RATES) < best < max(RATES)


def fraction(step: Rung, session: Session) -> Recovered:
    return recovered(speed(STANDARD, session), speed(step, session), speed(BATCHNORM, session))
