"""The ablation ladder, which chapter 12 shows and the bottom line weighs: how much of BatchNorm's
speed-up, and of the range of rates it trains at, does each of its ingredients carry, and how much do
the substitutes that rival explanations propose recover?

The ladder: on the book's VGG-16 at the cpu scale, the two ends (BatchNorm and the standard network,
chapter 07's runs) and variants that each remove one ingredient of BatchNorm, or supply one
ingredient without normalizing activations (`RUNGS`). Every network's rate is searched on the grid
`GRID` in seed 0, from `START` (`next_rates`): outwards from its fastest rate until a slower rate
lies on each side of it (or the grid ends), and upwards until a rate fails to train (or the grid
ends). Seeds 1 and 2 then train at three rates: the network's best, BatchNorm's best, and the
largest at which seed 0 trains (lower, one rate at a time, until every seed trains there).

Speed is the steps to the speed target (`bnlib.book.measures`); every run stops when it reaches it,
or at the ladder's horizon (`decided_after`): the step after which a rung recovers less than half of
BatchNorm's speed-up at that rate whatever its seeds. A network "trains" at a rate when the run
leaves the initial plateau (`measures.left_plateau`) by the horizon and neither diverges nor dies
before it (`trains`). The ends train first, and the horizon is read from their seeds.

A rung's headline number is the fraction of BatchNorm's speed-up it recovers,

    f = (T_standard - T_variant) / (T_standard - T_BatchNorm),

each T the median over seeds at the network's own best rate: 1 is all of BatchNorm's speed-up, 0
none of it, below 0 slower than the standard network. Its interval is the range of f over every
combination of one seed of each of the three networks; a seed that never reached the target counts
at the horizon, which bounds f on one side only (the interval is then open on that side). Beside it,
the largest rate at which every seed trains, against the two ends' (`Tolerance`).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnlib.book.claims import Verdict
from bnlib.book.measures import TARGET, Speed, fast, left_plateau, speeds
from bnlib.book.plan import Read
from bnlib.book.runs import rate_run
from bnlib.book.session import Session
from bnlib.experiments import Experiment
from bnlib.records import Record

GRID = (0.01, 0.03, 0.1, 0.3, 1.0)  # the rates searched, about x3 apart (chapter 07's, up to 1)
START = (0.03, 0.1)  # seed 0 starts at BatchNorm's and the standard network's best rates (chapter 07)
SEEDS = (0, 1, 2)
HALF = 0.5  # "recovers most of BatchNorm's speed-up": f at least this
WARMUP = 0.1  # warm-up: the rate rises linearly over this share of the scale's steps
FAILED = ("diverged", "dead")  # how a run that stopped training ended


def _steps(session: Session) -> int:
    """The VGG's steps in this session (the scale's, or the parameters cell's fewer)."""
    return session.config(Experiment("vgg", "none", GRID[0])).steps


def vgg_run(norm: str, changes: dict[str, Any], lr: float, session: Session, horizon: int) -> Experiment:
    """A network of the ladder at a rate: the standard VGG with normalization `norm` and `changes`
    (RunConfig fields, and "warmup": True for warm-up over `WARMUP` of the scale's steps), stopped
    at the speed target or after `horizon` steps."""
    changes = dict(changes)
    full = _steps(session)
    if changes.pop("warmup", False):
        changes["warmup_steps"] = int(WARMUP * full)
    if horizon < full:
        changes["steps"] = horizon
    return fast(Experiment.of("vgg", norm, lr, **changes))


@dataclass(frozen=True)
class Rung:
    """One network of the ladder: its key, how the book names it, which ingredient of BatchNorm it
    keeps or supplies, who predicts what it does (`source`), whether that prediction is that it
    recovers most of BatchNorm's speed-up (`most`) or less than half, and, where the source speaks
    of the rates a network tolerates, whether it tolerates BatchNorm's (`wider` True) or only the
    standard network's (False). `norm` and `changes` make it from the standard VGG (`run`)."""

    key: str
    label: str
    ingredient: str
    source: str
    most: bool
    norm: str
    changes: tuple[tuple[str, Any], ...] = ()
    wider: bool | None = None

    def run(self, lr: float, session: Session, horizon: int) -> Experiment:
        """The rung's run at a rate, stopped at the speed target or after `horizon` steps."""
        return vgg_run(self.norm, dict(self.changes), lr, session, horizon)

    @property
    def name(self) -> str:
        return f"{self.label[0].upper()}{self.label[1:]}"

    @property
    def claim(self) -> str:
        how = "recovers most" if self.most else "recovers less than half"
        return f"{self.name} {how} of BatchNorm's speed-up"

    @property
    def range_claim(self) -> str:
        how = "trains at rates as large as BatchNorm's" if self.wider else "loses BatchNorm's larger rates"
        return f"{self.name} {how}"


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
        wider=False,
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
        "scaled_ws",
        "scaled weight standardization",
        "as centered weight normalization, but every layer starts at He's scale (Brock et al.'s gain)",
        "Brock et al. (2021, NF-ResNets): scaled weight standardization removes the mean shift and keeps the "
        "signal's scale, so scale invariance is tested with the signal propagating at the start",
        True,
        "scaled_ws",
    ),
    Rung(
        "warmup",
        "the standard network with warm-up",
        f"a larger usable rate: the rate rises linearly over the first {WARMUP:.0%} of the steps",
        "Bjorck et al. (2018, chapter 07): BatchNorm's benefit is the larger rate it allows",
        True,
        "none",
        (("warmup", True),),
        wider=True,
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
    Rung(
        "he",
        "the standard network at He initialization",
        "a start that keeps the signal's scale through the depth (He-normal weights in place of Glorot's)",
        "signal propagation at initialisation (He et al., 2015; Daneshmand et al., 2020, chapter 10): the Glorot "
        "start shrinks the VGG's signal about 1.5x per layer; a start that does not should recover BatchNorm's start",
        True,
        "none",
        (("init", "he"),),
    ),
)
LADDER = (BATCHNORM, *RUNGS, STANDARD)


def rung(key: str) -> Rung:
    return next(r for r in LADDER if r.key == key)


# ----------------------------------------------------------------------------- the search


def trains(record: Record, horizon: int) -> bool:
    """Whether a run trains: it leaves the initial plateau by the `horizon` (the ends' longer runs
    read to the same step as the rungs') and neither diverges nor dies before it."""
    left = left_plateau(record)
    stopped = record.status in FAILED and len(record.metrics["step"]) <= horizon
    return left is not None and left <= horizon and not stopped


def _neighbours(lr: float, grid: tuple[float, ...] = GRID) -> tuple[float | None, float | None]:
    i = grid.index(lr)
    return (grid[i - 1] if i > 0 else None), (grid[i + 1] if i + 1 < len(grid) else None)


def _rank(record: Record, horizon: int | None) -> tuple[int, float] | None:
    """How good a run's rate is, smaller first: (0, its steps) if it reached the target; (1, minus its
    highest training accuracy) if it trains without getting there (once the horizon is known); None if
    it does not train (no sign of how near the rate is)."""
    steps = record.steps_to(TARGET)
    if steps is not None:
        return 0, steps
    if horizon is not None and trains(record, horizon):
        return 1, -record.highest()
    return None


def best_of(seed_zero: dict[float, Record], horizon: int | None = None) -> float | None:
    """The rate at which seed 0 reached the speed target first; where it reached it at none, the one
    that trained to the highest accuracy (once the `horizon` is known; `_rank`). None: no rate trains."""
    ranked = {lr: k for lr, r in seed_zero.items() if (k := _rank(r, horizon)) is not None}
    return min(ranked, key=ranked.get) if ranked else None


def _best_block(seed_zero: dict[float, Record], horizon: int | None, grid: tuple[float, ...]) -> tuple[float, float]:
    """The lowest and highest rate of the run of neighbouring rates tied with seed 0's best (`best_of`;
    both the best itself where nothing ties with it): the best is then anywhere among them."""
    best = best_of(seed_zero, horizon)
    mine = _rank(seed_zero[best], horizon)
    low = high = grid.index(best)
    while low > 0 and grid[low - 1] in seed_zero and _rank(seed_zero[grid[low - 1]], horizon) == mine:
        low -= 1
    while high + 1 < len(grid) and grid[high + 1] in seed_zero and _rank(seed_zero[grid[high + 1]], horizon) == mine:
        high += 1
    return grid[low], grid[high]


def bracketed(seed_zero: dict[float, Record], horizon: int | None, grid: tuple[float, ...] = GRID) -> bool:
    """Whether seed 0's best rate (`best_of`, with any neighbouring rates tied with it, `_best_block`)
    has a worse rate on each side of the `grid`, both tried: the best of the grid is then not beyond it."""
    best = best_of(seed_zero, horizon)
    if best is None:
        return False
    mine = _rank(seed_zero[best], horizon)
    low, high = _best_block(seed_zero, horizon, grid)
    sides = [lr for lr in (_neighbours(low, grid)[0], _neighbours(high, grid)[1]) if lr is not None and lr in seed_zero]
    worse = [(k := _rank(seed_zero[lr], horizon)) is None or k > mine for lr in sides]
    return len(sides) == 2 and all(worse)


def next_rates(seed_zero: dict[float, Record], horizon: int | None, grid: tuple[float, ...] = GRID) -> list[float]:
    """The rates of the `grid` seed 0 must try next, given its records by rate: the untried
    neighbours of its best rate (`best_of`, past any rates tied with it; of the rates tried at the
    edges where no rate trains), and the rate above the largest at which it trains (`trains`; once
    the `horizon` is known). Empty once the search is done."""
    best = best_of(seed_zero, horizon)
    if best is not None:
        low, high = _best_block(seed_zero, horizon, grid)
        wanted = {_neighbours(low, grid)[0], _neighbours(high, grid)[1]}
    else:
        wanted = {_neighbours(min(seed_zero), grid)[0], _neighbours(max(seed_zero), grid)[1]}
    training = [lr for lr, r in seed_zero.items() if horizon is not None and trains(r, horizon)]
    if training:
        wanted.add(_neighbours(max(training), grid)[1])
    return sorted(lr for lr in wanted if lr is not None and lr not in seed_zero)


def searched(
    seed_zero: dict[float, Record], start: tuple[float, ...], horizon: int | None, grid: tuple[float, ...] = GRID
) -> list[float]:
    """The rates seed 0's search has reached, given its stored records by rate: from `start`, each
    round's `next_rates` once the rates before it are stored (so the last round's may not be yet)."""
    rates = list(start)
    while all(lr in seed_zero for lr in rates):
        more = next_rates({lr: seed_zero[lr] for lr in rates}, horizon, grid)
        if not more:
            break
        rates = sorted({*rates, *more})
    return rates


def largest_search(by_rate: dict[float, dict[int, Record]], seeds: tuple[int, ...], horizon: int) -> list[float]:
    """The search for the largest rate at which every seed trains, as the rates it reads every seed at:
    from the largest rate at which seed 0 trains downwards, each rate at which seed 0 trains, up to the
    first whose seeds are not all stored yet or at which every seed trains (the last one read). The
    rates it passed stay read: they are why it went lower. Empty if seed 0 trains at no rate."""
    passed = []
    for lr in sorted(by_rate, reverse=True):
        if not trains(by_rate[lr][0], horizon):
            continue
        passed.append(lr)
        if any(s not in by_rate[lr] for s in seeds) or _all_train(by_rate[lr], seeds, horizon):
            break
    return passed


def _all_train(by_seed: dict[int, Record], seeds: tuple[int, ...], horizon: int) -> bool:
    return all(s in by_seed and trains(by_seed[s], horizon) for s in seeds)


# ----------------------------------------------------------------------------- the runs


def experiment(step: Rung, lr: float, session: Session, seed: int = 0, horizon: int | None = None) -> Experiment:
    """A rung's run at a rate in a seed: the ends are chapter 07's (Part I's at its rates); the
    other rungs stop at the `horizon` (`horizon(scale)`, known once the ends are stored)."""
    if step in ENDS:
        return rate_run(step.norm, lr, seed)
    if horizon is None:
        raise ValueError(f"the {step.key} rung's runs stop at the ladder's horizon: pass horizon=horizon(scale)")
    return step.run(lr, session, horizon)


def _stored(step: Rung, session: Session, horizon: int | None) -> dict[float, dict[int, Record]]:
    """A rung's stored records by rate and seed, over the grid."""
    out: dict[float, dict[int, Record]] = {}
    for lr in GRID:
        for seed in session.limit(SEEDS):
            record = session.stored(experiment(step, lr, session, seed, horizon), seed)
            if record is not None:
                out.setdefault(lr, {})[seed] = record
    return out


def wanted(step: Rung, session: Session, horizon: int | None, bn_best: float | None) -> list[tuple[float, int]]:
    """The (rate, seed) pairs of a rung the ladder reads, as far as what is stored decides: seed 0
    along its search (`next_rates`), then the other seeds at its best rate, at BatchNorm's best
    (`bn_best`) and along the search for its largest training rate (`largest_search`; these two once
    the `horizon` is known)."""
    stored = _stored(step, session, horizon)
    rates = searched({lr: by[0] for lr, by in stored.items() if 0 in by}, START, horizon)
    pairs = [(lr, 0) for lr in rates]
    if not all(lr in stored and 0 in stored[lr] for lr in rates) or len(session.limit(SEEDS)) == 1:
        return pairs
    others = session.limit(SEEDS)[1:]
    best = best_of({lr: stored[lr][0] for lr in rates}, horizon)
    at = {best} if best is not None else set()
    if horizon is not None:
        at |= {bn_best} if bn_best is not None else set()
        at |= set(largest_search({lr: stored[lr] for lr in rates}, session.limit(SEEDS), horizon))
    return pairs + [(lr, s) for lr in sorted(at) for s in others]


def decided_after(standard: Speed, batchnorm: Speed) -> int:
    """The horizon: the last step at which a rung that reaches the target there could still recover
    HALF of BatchNorm's speed-up in some combination of seeds, max over seeds of
    (1 - HALF) T_standard + HALF T_BN. A rung that has not reached the target by then recovers less
    than HALF at that rate in every combination: its run can stop. A seed of either
    end that never reached the target leaves it at the ends' horizon: nothing is decided early."""
    if len(standard.reached) < len(standard.steps) or len(batchnorm.reached) < len(batchnorm.steps):
        return max(standard.horizon, batchnorm.horizon)
    return int(np.floor((1 - HALF) * max(standard.steps) + HALF * max(batchnorm.steps)))


def _ends(session: Session) -> tuple[dict[Rung, list[tuple[float, int]]], int | None, float | None]:
    """The ends' (rate, seed) pairs, the horizon their seeds at their best rates set (None until
    stored), and BatchNorm's best rate."""
    pairs = {end: wanted(end, session, None, None) for end in ENDS}
    stored = {end: _stored(end, session, None) for end in ENDS}
    best = {end: best_of({lr: by[0] for lr, by in stored[end].items() if 0 in by}) for end in ENDS}  # reached
    if any(not all(lr in stored[end] and s in stored[end][lr] for lr, s in pairs[end]) for end in ENDS):
        return pairs, None, best[BATCHNORM]
    if None in best.values():
        return pairs, _steps(session), best[BATCHNORM]
    seeds = session.limit(SEEDS)
    found = {end: speeds([stored[end][best[end]][s] for s in seeds]) for end in ENDS}
    h = decided_after(found[STANDARD], found[BATCHNORM])
    return {end: wanted(end, session, h, best[BATCHNORM]) for end in ENDS}, h, best[BATCHNORM]


def horizon(session: Session) -> int | None:
    """`decided_after` on the ends' stored seeds at their best rates (the scale's steps if an end
    reached the target at no rate); None until the ends are stored."""
    return _ends(session)[1]


def runs(session: Session) -> list[tuple[Rung, float, int, Experiment]]:
    """Every run the ladder reads, as far as what is stored decides it, as (rung, rate, seed, run):
    the ends first, then (once the ends set the horizon) every rung (`wanted`). The one list of the
    ladder's runs: the chapter reads these, and `trained` loads exactly these."""
    ends, h, bn_best = _ends(session)
    found = [(end, lr, s) for end, pairs in ends.items() for lr, s in pairs]
    if h is not None:
        found += [(step, lr, s) for step in RUNGS for lr, s in wanted(step, session, h, bn_best)]
    return [(step, lr, s, experiment(step, lr, session, s, h)) for step, lr, s in found]


def reads(session: Session) -> list[Read]:
    return [Read(run, (seed,)) for _, _, seed, run in runs(session)]


@dataclass(frozen=True)
class Ladder:
    """The ladder's runs: the horizon and every network's records by rate and seed, by rung key."""

    horizon: int
    records: dict[str, dict[float, dict[int, Record]]]


@functools.cache
def trained(session: Session) -> Ladder:
    """The ladder's runs (`runs`), the missing ones trained first, one sweep per round (the ends,
    then each step of every rung's search), until what is stored decides no further run."""
    while True:
        wanted_now = runs(session)
        session.records([(run, seed) for _, _, seed, run in wanted_now])
        if runs(session) == wanted_now:
            break
    records: dict[str, dict[float, dict[int, Record]]] = {step.key: {} for step in LADDER}
    for step, lr, seed, run in wanted_now:
        records[step.key].setdefault(lr, {})[seed] = session.get(run, seed)
    return Ladder(horizon(session) or _steps(session), records)


# ----------------------------------------------------------------------------- a rung's measurements


@dataclass(frozen=True)
class Measured:
    """A network of the ladder, measured: its best rate (`best_of`; None: no rate trains), whether
    a worse rate lies on each side of it (`bracketed`), its speed there and at BatchNorm's best
    rate, and the largest rate at which every seed trains (None: none; `at_top`: the grid's top, a
    lower bound)."""

    best: float | None
    bracketed: bool
    speed: Speed
    at_batchnorm: Speed | None
    largest: float | None

    @property
    def at_top(self) -> bool:
        return self.largest == GRID[-1]

    def best_text(self) -> str:
        if self.best is None:
            return "none"
        return f"{self.best:g}" + ("" if self.bracketed else " (at the grid's edge)")

    def largest_text(self) -> str:
        if self.largest is None:
            return "none"
        return f"{self.largest:g}" + (" (the grid's top)" if self.at_top else "")


def measure(by_rate: dict[float, dict[int, Record]], horizon: int, seeds: tuple[int, ...], bn_best: float) -> Measured:
    """A network's `Measured` from its records by rate and seed."""
    seed_zero = {lr: by[0] for lr, by in by_rate.items() if 0 in by}
    best = best_of(seed_zero, horizon)
    at = best if best is not None else (START[0] if START[0] in by_rate else min(by_rate))
    speed = speeds([by_rate[at][s] for s in seeds if s in by_rate[at]])
    there = by_rate.get(bn_best, {})
    at_batchnorm = speeds([there[s] for s in seeds]) if all(s in there for s in seeds) else None
    passed = largest_search(by_rate, seeds, horizon)
    largest = passed[-1] if passed and _all_train(by_rate[passed[-1]], seeds, horizon) else None
    return Measured(best, bracketed(seed_zero, horizon), speed, at_batchnorm, largest)


@functools.cache
def measured(step: Rung, session: Session) -> Measured:
    ladder = trained(session)
    bn_best = best_of({lr: by[0] for lr, by in ladder.records[BATCHNORM.key].items()}, ladder.horizon)
    return measure(ladder.records[step.key], ladder.horizon, session.limit(SEEDS), bn_best or START[0])


def rate(step: Rung, session: Session) -> float:
    """The rate a rung's speed is read at: its best, or the first it tried if no rate trains."""
    best = measured(step, session).best
    return best if best is not None else START[0]


def speed(step: Rung, session: Session) -> Speed:
    """A rung's speed at its best rate, over the seeds trained there."""
    return measured(step, session).speed


def inside_grid(step: Rung, session: Session) -> bool:
    """Whether a worse rate lies on each side of the rung's best (`bracketed`), so that "less than
    half" is decided: at the grid's edge, or where no rate trains, a rate beyond it might be faster."""
    return measured(step, session).bracketed


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
    than half") if all of it is below HALF and the rung's best rate is bracketed (`inside`: at the
    grid's edge, a rate beyond it might be faster); cannot tell otherwise, or if undefined."""
    if fraction.point is None:
        return Verdict.CANNOT_TELL
    if fraction.low >= HALF:
        return Verdict.REPRODUCED
    if fraction.high < HALF and inside:
        return Verdict.NOT_REPRODUCED
    return Verdict.CANNOT_TELL


def fraction(step: Rung, session: Session) -> Recovered:
    return recovered(speed(STANDARD, session), speed(step, session), speed(BATCHNORM, session))


# ----------------------------------------------------------------------------- the rates tolerated


AS_BATCHNORM, BETWEEN, AS_STANDARD = "as large as BatchNorm's", "between the two", "no larger than the standard's"


def tolerance(variant: float | None, standard: float | None, batchnorm: float | None) -> str | None:
    """Where a network's largest training rate lies against the ends': at least BatchNorm's
    (`AS_BATCHNORM`), at most the standard network's (`AS_STANDARD`, and where it trains at no
    rate), or `BETWEEN`; None if an end trains at no rate or the two ends tolerate the same rates."""
    if standard is None or batchnorm is None or batchnorm <= standard:
        return None
    if variant is not None and variant >= batchnorm:
        return AS_BATCHNORM
    if variant is None or variant <= standard:
        return AS_STANDARD
    return BETWEEN


def tolerates(step: Rung, session: Session) -> str | None:
    return tolerance(*(measured(s, session).largest for s in (step, STANDARD, BATCHNORM)))
