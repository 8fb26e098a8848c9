"""Chapter 08: scale invariance and the effective learning rate (van Laarhoven, 2017; Arora, Li and
Lyu, 2019; Hoffer, Banner, Golan and Soudry, 2018; Wan et al., 2021).

Four measurements:

* the mechanism: the identity ||W_{t+1}||^2 = ||W_t||^2 + eta^2 ||g_t||^2 per layer on Part I's
  BatchNorm run at lr 0.1, and the norm growth it implies (both hold by algebra for plain SGD on
  scale-invariant weights: shown as the mechanism being present, not as evidence that it explains
  anything);
* the consequence Arora et al. prove: the nominal rate of the hidden layers' weights swept over
  four orders of magnitude (0.01 to 100; every other parameter keeps 0.1), with and without
  BatchNorm, each run's speed and its effective rates eta / ||W||^2 when it reaches the target;
* the control that removes the auto-tuning: BatchNorm whose hidden weights are rescaled to their
  initial norm after every step (`RunConfig.fixed_weight_norm`), at BatchNorm's own rates (chapter
  07's best, `OWN_RATES`: the share of BatchNorm's speed-up it keeps there) and at the sweep's largest
  (where any fixed norm fails: an effective rate of 100 / ||W_0||^2, shown, not ruled on);
* practice's regime: BatchNorm with momentum and weight decay, where the angular update of each
  layer settles at sqrt(2 eta lambda / (1 + mu)).

As in chapter 07, every rate runs in seed 0 and seeds 1 and 2 where seed 0 reached the target.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import ladder, plotting
from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import TARGET, Speed, fast, speeds
from bnlib.book.plan import Read
from bnlib.book.runs import BN, STD, rate_run
from bnlib.book.session import Session
from bnlib.experiments import Experiment
from bnlib.probes.weights import norm_growth
from bnlib.records import Record

EXPLANATION = "Scale invariance tunes the effective learning rate"

WEIGHT_RATES = (0.01, 0.1, 1.0, 10.0, 100.0)
BASE_RATE = 0.1  # every parameter but the hidden layers' weights: Part I's rate
NETWORKS = ("none", "batch")
SEEDS = (0, 1, 2)
PART_ONE = {"none": STD, "batch": BN}  # the weights' rate 0.1: Part I's runs, three seeds each
FIXED_RATES = (0.1, 100.0)  # the control in the sweep, at Part I's rate and at the largest
OWN_RATES = (0.03, 0.1)  # BatchNorm's best rates (chapter 07), where the control is ruled on
STANDARD_BEST = 0.1  # the standard network's best rate (chapter 07): its speed is the speed-up's baseline
# Practice's regime (van Laarhoven; Wan et al.): momentum and weight decay, the whole run
MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4
PRACTICE = BN.but(momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)

IDENTITY_TOLERANCE = 0.01  # the identity "holds" at a layer if its median relative error is at most 1%
HARDLY = 3.0  # "the rate hardly matters": at every rate BN reaches the target within this factor of its steps at 0.1
CONVERGE = 100.0  # Arora's prediction: the effective rates' spread across nominal rates shrinks at least this much
SETTLES = 0.25  # the angular update within this relative distance of sqrt(2 eta lambda / (1 + mu))


def weight_run(norm: str, weight_lr: float, fixed: bool = False) -> Experiment:
    """A run with the hidden layers' weights at `weight_lr`, everything else at BASE_RATE: Part I's at
    the base rate, else stopped at the speed target; `fixed` rescales the weights to their initial
    norm after every step."""
    if weight_lr == BASE_RATE and not fixed:
        return PART_ONE[norm]
    fixed_norm = {"fixed_weight_norm": True} if fixed else {}
    return fast(Experiment.of("vgg", norm, BASE_RATE, weight_lr=weight_lr, **fixed_norm))


def own_rate_run(lr: float, fixed: bool) -> Experiment:
    """BatchNorm with every parameter at `lr`: chapter 07's run, or the control (`fixed`: the hidden
    weights rescaled to their initial norm after every step), stopped at the speed target (at the
    base rate the sweep's own control cell)."""
    if not fixed:
        return rate_run("batch", lr)
    return (
        weight_run("batch", lr, fixed)
        if lr == BASE_RATE
        else fast(Experiment.of("vgg", "batch", lr, weight_lr=lr, fixed_weight_norm=True))
    )


def _grid() -> list[tuple[str, float, bool]]:
    free = [(norm, r, False) for norm in NETWORKS for r in WEIGHT_RATES]
    return [*free, *(("batch", r, True) for r in FIXED_RATES)]


def reaches(norm: str, weight_lr: float, session: Session, fixed: bool = False) -> bool | None:
    record = session.stored(weight_run(norm, weight_lr, fixed))
    return None if record is None else record.steps_to(TARGET) is not None


def reads(session: Session) -> list[Read]:
    first = [Read(weight_run(*cell), (0,), ("weight-norms",)) for cell in _grid()]
    more = [
        Read(weight_run(norm, r, fixed), (seed,), ("weight-norms",))
        for norm, r, fixed in _grid()
        if reaches(norm, r, session, fixed)
        for seed in SEEDS[1:]
    ]
    own = [Read(own_rate_run(lr, True), SEEDS, ("weight-norms",)) for lr in OWN_RATES]
    # the control's baselines, every seed: BatchNorm free at its own rates, the standard network at its best
    baselines = [Read(rate_run(norm, lr, s), (s,)) for norm, lr in _baselines() for s in SEEDS]
    return [*first, *more, Read(PRACTICE, (0,), ("weight-norms",)), *own, *baselines]


def _baselines() -> list[tuple[str, float]]:
    return [("batch", lr) for lr in OWN_RATES] + [("none", STANDARD_BEST)]


@functools.cache
def runs(session: Session) -> dict[tuple[str, float, bool], list[Record]]:
    """(normalization, weights' rate, fixed norm) -> its records, seed 0 first (every seed where
    seed 0 reached the target); the missing ones trained first, as one sweep per round."""
    session.records([weight_run(*cell) for cell in _grid()])
    wanted = [cell for cell in _grid() if reaches(*cell[:2], session, cell[2])]
    session.records([(weight_run(n, r, f), s) for n, r, f in wanted for s in session.limit(SEEDS)[1:]])
    out = {}
    for norm, r, fixed in _grid():
        seeds = session.limit(SEEDS) if reaches(norm, r, session, fixed) else (0,)
        out[(norm, r, fixed)] = [session.get(weight_run(norm, r, fixed), s) for s in seeds]
    return out


# ----------------------------------------------------------------------------- the mechanism


@functools.cache
def growth(session: Session) -> pd.DataFrame:
    """Per network, layer and probed pair of steps of Part I's runs at lr 0.1: the measured growth
    of ||W||^2 beside eta^2 ||g||^2 and what plain SGD gives (`norm_growth`)."""
    frames = []
    for norm, run in PART_ONE.items():
        record = session.get(run)
        table = norm_growth(record.probe_frame("weight-norms"), record.config.lr)
        frames.append(table.assign(network=plotting.label(norm), norm=norm))
    frame = pd.concat(frames, ignore_index=True)
    predicted = frame["invariance predicts"]
    return frame.assign(**{"relative error": (frame["growth"] - predicted).abs() / predicted})


@dataclass(frozen=True)
class LayerGrowth:
    """One layer of Part I's runs at lr 0.1, over its probed pairs of steps: whether it feeds a
    BatchNorm, the median of |growth - eta^2 ||g||^2| / (eta^2 ||g||^2) and of |cos(W, g)|, and its
    weight norm at the first and last probe."""

    norm: str
    layer: int
    feeds_bn: bool
    error: float
    cosine: float
    first: float
    last: float


@functools.cache
def layers(session: Session) -> tuple[LayerGrowth, ...]:
    """Every layer of both networks (`growth`). Every layer but the classifier (the last) feeds a
    normalization in the BatchNorm network."""
    frame = growth(session)
    head = frame["layer"].max()
    return tuple(
        LayerGrowth(
            norm,
            int(layer),
            norm == "batch" and layer != head,
            float(mine["relative error"].median()),
            float(mine["cos(W, g)"].abs().median()),
            float(mine["weight norm"].iloc[0]),
            float(mine["weight norm"].iloc[-1]),
        )
        for (norm, layer), mine in frame.groupby(["norm", "layer"])
    )


def identity_table(session: Session) -> pd.DataFrame:
    """The layers (`layers`) as the page shows them."""
    return pd.DataFrame(
        [
            {
                "network": plotting.label(row.norm),
                "layer": row.layer,
                "feeds a BatchNorm": row.feeds_bn,
                "median relative error": row.error,
                "median |cos(W, g)|": row.cosine,
                "||W|| first": row.first,
                "||W|| last": row.last,
            }
            for row in layers(session)
        ]
    )


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


# ----------------------------------------------------------------------------- the consequence


def effective_rates(record: Record, step: int | None = None) -> pd.Series:
    """Per hidden layer, the effective rate eta_W / ||W||^2 at the last probed step of a run up to
    `step` (None: its last)."""
    table = norm_growth(record.probe_frame("weight-norms"), record.config.weight_lr or record.config.lr)
    if step is not None:
        table = table[table["step"] <= step]
    last = table[table["step"] == table["step"].max()]
    return last[last["layer"] < last["layer"].max()].set_index("layer")["effective lr"]


def last_probe(record: Record) -> int:
    return int(record.probe_frame("weight-norms")["step"].max())


@dataclass(frozen=True)
class Cell:
    """One cell of the sweep (network, nominal rate of the weights, norm fixed or free): how each
    seed ended, its speed, whether the rate trains (every seed reached the target), and the median
    over hidden layers of the effective rate of seed 0 at the sweep's common step (`common_step`)."""

    norm: str
    rate: float
    fixed: bool
    ended: tuple[str, ...]
    speed: Speed
    trains: bool
    effective: float


def common_step(everything: dict[tuple[str, float, bool], list[Record]]) -> int:
    """The step at which the sweep's effective rates are compared: the earliest last probe of seed 0
    of BatchNorm's free cells (each run stops at the target, at a different step; comparing each at
    its own stop would compare different moments of training)."""
    return min(
        last_probe(records[0]) for (norm, _, fixed), records in everything.items() if norm == "batch" and not fixed
    )


@functools.cache
def sweep(session: Session) -> tuple[Cell, ...]:
    """Every cell of the sweep (`runs`), its effective rate at the common step (`common_step`)."""
    at = common_step(runs(session))
    return tuple(
        Cell(
            norm,
            rate,
            fixed,
            tuple(r.status for r in records),
            (speed := speeds(records)),
            len(speed.reached) == len(speed.steps) == len(session.limit(SEEDS)),
            float(effective_rates(records[0], at).median()),
        )
        for (norm, rate, fixed), records in runs(session).items()
    )


def cell(session: Session, norm: str, rate: float, fixed: bool = False) -> Cell:
    return next(c for c in sweep(session) if (c.norm, c.rate, c.fixed) == (norm, rate, fixed))


def sweep_table(session: Session) -> pd.DataFrame:
    """The sweep (`sweep`) as the page shows it."""
    return pd.DataFrame(
        [
            {
                "network": plotting.label(c.norm) + (", norm fixed" if c.fixed else ""),
                "rate of the weights": c.rate,
                "ended": ", ".join(c.ended),
                f"steps to {TARGET:.0%}": c.speed.text(),
                "trains": c.trains,
                f"effective rate at step {common_step(runs(session)):,} (seed 0, median over layers)": c.effective,
            }
            for c in sweep(session)
        ]
    )


def sweep_figure(session: Session, rate: float | None = None) -> plt.Figure:
    """Training accuracy over steps at each nominal rate of the weights (or one), per network (seed
    0); right, BatchNorm's effective rate of its middle layer over steps."""
    everything = runs(session)
    rates = WEIGHT_RATES if rate is None else (rate,)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    colors = dict(zip(WEIGHT_RATES, plt.cm.plasma(np.linspace(0, 0.85, len(WEIGHT_RATES))), strict=True))
    for ax, norm in zip(axes[:2], NETWORKS, strict=True):
        for r in rates:
            record = everything[(norm, r, False)][0]
            ax.plot(
                record.metrics["step"], record.smoothed(), color=colors[r], lw=1.3, label=f"{r:g} ({record.status})"
            )
        ax.axhline(TARGET, color="0.6", ls=":", lw=1)
        ax.set(xlabel="step", ylabel="training accuracy", ylim=(0, 1), title=plotting.label(norm))
        ax.legend(fontsize="x-small", title="rate of the weights", title_fontsize="x-small")
    for r in rates:
        record = everything[("batch", r, False)][0]
        table = norm_growth(record.probe_frame("weight-norms"), record.config.weight_lr or record.config.lr)
        middle = int(np.median(table["layer"].unique()))
        one = table[table["layer"] == middle]
        axes[2].plot(one["step"], one["effective lr"], color=colors[r], lw=1.3)
    axes[2].set(yscale="log", xlabel="step", ylabel="eta / ||W||^2", title="BatchNorm, its middle layer")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- practice's regime


def predicted_angle() -> float:
    """The equilibrium angular update per step, sqrt(2 eta lambda / (1 + mu)) (Wan et al., 2021)."""
    return float(np.sqrt(2 * BASE_RATE * WEIGHT_DECAY / (1 + MOMENTUM)))


@functools.cache
def late_angles(session: Session) -> tuple[float, ...]:
    """Per hidden layer of the BatchNorm run with momentum and weight decay (every layer but the
    classifier feeds a BatchNorm): the median angular update over the last third of the run."""
    record = session.get(PRACTICE)
    frame = record.probe_frame("weight-norms")
    angle = frame[frame["quantity"] == "angular_update"].pivot(index="step", columns="index", values="value")
    late = angle[angle.index >= 2 * record.config.steps / 3]
    return tuple(float(late[i].median()) for i in late.columns[:-1])


def angle_table(session: Session) -> pd.DataFrame:
    """The late angular updates (`late_angles`), per layer, against the prediction."""
    return pd.DataFrame(
        [
            {
                "layer": i + 1,
                "median angular update (late)": a,
                "predicted": predicted_angle(),
                "measured / predicted": a / predicted_angle(),
            }
            for i, a in enumerate(late_angles(session))
        ]
    )


# ----------------------------------------------------------------------------- the claims


def identity(session: Session) -> Finding:
    rows = layers(session)
    head = max(row.layer for row in rows)
    bn = [row.error for row in rows if row.feeds_bn]
    std_hidden = [row.error for row in rows if row.norm == "none" and row.layer < head]
    holds = [error <= IDENTITY_TOLERANCE for error in bn]
    text = (
        f"median relative error of ||W_t+1||^2 - ||W_t||^2 = eta^2 ||g||^2 over the probed steps: BN's "
        f"{len(bn)} BN-fed layers {min(bn):.1e} to {max(bn):.1e}; "
        f"the standard network's layers {min(std_hidden):.1e} to {max(std_hidden):.1e}"
    )
    summary = (
        f"The mechanism is present: the weights that feed a BatchNorm grow by eta^2 ||g||^2 per step, within "
        f"{IDENTITY_TOLERANCE:.0%}, at {sum(holds)} of {len(holds)} layers, as plain SGD on scale-invariant "
        "weights must."
    )
    return Finding(text, Verdict.BY_CONSTRUCTION if all(holds) else Verdict.NOT_REPRODUCED, summary)


def norms_grow(session: Session) -> Finding:
    bn = [row for row in layers(session) if row.feeds_bn]
    grew = [row.last > row.first for row in bn]
    factors = [row.last / row.first for row in bn]
    text = (
        f"BN's BN-fed layers: ||W|| grew at {sum(grew)} of {len(bn)}, by factors {min(factors):.3g} to "
        f"{max(factors):.3g}, so eta / ||W||^2 fell by {min(factors) ** 2:.3g} to {max(factors) ** 2:.3g}"
    )
    summary = (
        f"So their norms grew at {sum(grew)} of {len(bn)} layers (by {min(factors):.3g} to "
        f"{max(factors):.3g}), lowering the effective rate."
    )
    return Finding(text, Verdict.BY_CONSTRUCTION if all(grew) else Verdict.NOT_REPRODUCED, summary)


def robust(session: Session) -> Finding:
    bn = [cell(session, "batch", rate) for rate in WEIGHT_RATES]
    std_top = cell(session, "none", max(WEIGHT_RATES))
    base = cell(session, "batch", BASE_RATE).speed.median()
    medians = [c.speed.median() for c in bn]
    trains = sum(c.trains for c in bn)
    within = all(m <= HARDLY * base for m in medians)
    spread_end = max(c.effective for c in bn) / min(c.effective for c in bn)
    spread_start = max(WEIGHT_RATES) / min(WEIGHT_RATES)
    at = common_step(runs(session))
    converged = spread_start / spread_end >= CONVERGE
    text = (
        "BN, median steps to the target by rate of the weights: "
        + ", ".join(f"{c.rate:g} {m:,.0f}" for c, m in zip(bn, medians, strict=True))
        + f" (trains at {trains} of {len(bn)}); the effective rates' spread across the nominal "
        f"rates fell from {spread_start:.3g}x at the start to {spread_end:.3g}x at step {at:,}; "
        "the standard network at "
        f"{max(WEIGHT_RATES):g}: " + ", ".join(std_top.ended)
    )
    everywhere = trains == len(bn)
    verdict = graded([everywhere and within and converged and not std_top.trains, everywhere])
    summary = (
        f"With BatchNorm the hidden weights' rate spans four orders of magnitude and the network trains at "
        f"{trains} of {len(bn)} of them, its median steps to the target from "
        f"{min(medians):,.0f} to {max(medians):,.0f} (at 0.1: {base:,.0f}); the effective "
        f"rates' spread across those rates shrank from {spread_start:.3g}x to {spread_end:.3g}x."
    )
    return Finding(text, verdict, summary)


@dataclass(frozen=True)
class Control:
    """The control at BatchNorm's own rates: the standard network's speed at its best rate, and
    BatchNorm's at each of `OWN_RATES`, free and with its norms held fixed, by (rate, fixed)."""

    standard: Speed
    batchnorm: dict[tuple[float, bool], Speed]

    def kept(self, lr: float) -> ladder.Recovered:
        """The share of BatchNorm's speed-up over the standard network that the fixed norm keeps at
        `lr`: the ladder's fraction f = (T_standard - T_fixed) / (T_standard - T_BN), with its
        interval over the seeds' combinations."""
        return ladder.recovered(self.standard, self.batchnorm[lr, True], self.batchnorm[lr, False])


@functools.cache
def control(session: Session) -> Control:
    seeds = session.limit(SEEDS)
    standard = speeds([session.get(rate_run("none", STANDARD_BEST, s), s) for s in seeds])
    batchnorm = {
        (lr, f): speeds([session.get(own_rate_run(lr, f), s) for s in seeds]) for lr in OWN_RATES for f in (False, True)
    }
    return Control(standard, batchnorm)


def control_table(session: Session) -> pd.DataFrame:
    """The control at BatchNorm's own rates: each seed's steps to the target free and with the norms
    held fixed, and the share of BatchNorm's speed-up the fixed norm keeps (`Control.kept`)."""
    c = control(session)
    rows = [
        {
            "rate (every parameter)": lr,
            f"BN, steps to {TARGET:.0%}": c.batchnorm[lr, False].text(),
            "BN, norms fixed": c.batchnorm[lr, True].text(),
            f"standard at {STANDARD_BEST:g}": c.standard.text(),
            "share of BN's speed-up kept": c.kept(lr).text(),
        }
        for lr in OWN_RATES
    ]
    return pd.DataFrame(rows)


def auto_tuning(session: Session) -> Finding:
    c = control(session)
    shares = {lr: c.kept(lr) for lr in OWN_RATES}
    top = max(FIXED_RATES)
    steps = {key: speed.text() for key, speed in c.batchnorm.items()}
    text = (
        "steps to the target, BN free / with its hidden weights rescaled to their initial norm after every step: "
        + "; ".join(f"lr {lr:g}: {steps[lr, False]} / {steps[lr, True]}" for lr in OWN_RATES)
        + "; share of BN's speed-up over the standard network (at lr "
        + f"{STANDARD_BEST:g}) the fixed norm keeps: "
        + "; ".join(f"lr {lr:g} {f.text()}" for lr, f in shares.items())
        + f" (at the weights' rate {top:g}, where any fixed norm is an effective rate of {top:g} / ||W_0||^2: "
        + ", ".join(cell(session, "batch", top, fixed=True).ended)
        + ")"
    )
    found = [ladder.recovers(f) for f in shares.values()]  # "keeps most" of it, at each rate
    if all(v == Verdict.NOT_REPRODUCED for v in found):
        verdict = Verdict.REPRODUCED  # the fixed norm loses most of the speed-up at every rate: auto-tuning carries it
    elif all(v == Verdict.REPRODUCED for v in found):
        verdict = Verdict.NOT_REPRODUCED
    else:
        verdict = Verdict.CANNOT_TELL
    summary = (
        "With its weight norms held fixed, BatchNorm keeps "
        + " and ".join(f"{f.text()} of its speed-up at lr {lr:g}" for lr, f in shares.items())
        + "."
    )
    return Finding(text, verdict, summary)


def equilibrium(session: Session) -> Finding:
    ratios = [angle / predicted_angle() for angle in late_angles(session)]
    close = [abs(r - 1) <= SETTLES for r in ratios]
    text = (
        f"BN with momentum {MOMENTUM:g} and weight decay {WEIGHT_DECAY:g} at lr {BASE_RATE:g}, seed 0: median angular "
        f"update over the last third of the run, per BN-fed layer, / the prediction {predicted_angle():.3g} rad: "
        f"{min(ratios):.2f} to {max(ratios):.2f}"
    )
    summary = (
        f"With momentum and weight decay, the angular update settles within {SETTLES:.0%} of sqrt(2 eta lambda / "
        f"(1 + mu)) at {sum(close)} of {len(close)} layers."
    )
    return Finding(text, graded(close), summary)


CLAIMS = {
    "identity": Claim(
        "Plain SGD grows the weights that feed a BatchNorm by exactly eta^2 ||g||^2 in squared norm per step",
        "van Laarhoven (2017), Arora et al. (2019): such weights are scale-invariant, so the gradient is orthogonal "
        "to them and ||W_t+1||^2 = ||W_t||^2 + eta^2 ||g_t||^2",
        f"an identity (it holds by algebra for plain SGD on scale-invariant weights, so it shows the mechanism is "
        f"present, not that it helps): on Part I's BatchNorm run at lr 0.1, holds by construction if within "
        f"{IDENTITY_TOLERANCE:.0%} (median over the probed steps) at every layer that feeds a BatchNorm; not "
        "reproduced otherwise",
        identity,
    ),
    "norms_grow": Claim(
        "So the norms grow and the effective rate eta / ||W||^2 falls during training",
        "Arora et al. (2019): the growth of ||W|| tunes the effective rate down automatically ('auto rate-tuning')",
        "follows from the identity (eta^2 ||g||^2 > 0): holds by construction if ||W|| grew from the first to the "
        "last probe at every layer that feeds a BatchNorm; not reproduced otherwise",
        norms_grow,
    ),
    "robust": Claim(
        "With BatchNorm, the rate of those weights hardly matters; without it, large rates fail",
        "Arora et al. (2019): gradient descent converges for any fixed rate of the scale-invariant weights, the "
        "effective rates of runs at different nominal rates being tuned toward each other; only the other "
        "parameters' rate needs tuning",
        f"the hidden layers' weights at rates {min(WEIGHT_RATES):g} to {max(WEIGHT_RATES):g} (everything else at "
        f"{BASE_RATE:g}): reproduced if BN trains (every seed reaches {TARGET:.0%}) at every rate within {HARDLY:g} "
        f"times its steps at {BASE_RATE:g}, the spread of the effective rates across the nominal rates shrinks at "
        f"least {CONVERGE:g}-fold by a common step (the earliest at which one of BN's runs stops: each stops at the "
        "target, and the rates are compared at one moment of training), and the standard network does not train at "
        f"{max(WEIGHT_RATES):g}; partly if BN trains at every rate; not reproduced otherwise",
        robust,
    ),
    "auto_tuning": Claim(
        "It is the auto-tuning that makes the large rates work",
        "Arora et al. (2019): the rate tunes itself through the growth of ||W||; remove the growth and the benefit "
        "should go",
        f"BatchNorm with its hidden weights rescaled to their initial norm after every step, at BatchNorm's own rates "
        f"{' and '.join(f'{r:g}' for r in OWN_RATES)} (every parameter at that rate), three seeds: the share of "
        f"BatchNorm's speed-up over the standard network (at its best rate, {STANDARD_BEST:g}) it keeps, "
        f"f = (T_standard - T_fixed) / (T_standard - T_BN) over every combination of seeds. Reproduced if f is below "
        f"{ladder.HALF:g} in every combination at every one of those rates; not reproduced if it is at least "
        f"{ladder.HALF:g} in every combination at every one; cannot tell otherwise. The threshold is the book's own "
        "(the ladder's, chapter 12); Arora et al. state none. At the weights' rate "
        f"{max(FIXED_RATES):g} a fixed norm fails by construction (an effective rate of {max(FIXED_RATES):g} / "
        "||W_0||^2): shown, not ruled on",
        auto_tuning,
    ),
    "equilibrium": Claim(
        "With momentum and weight decay, the rate settles at an equilibrium",
        "van Laarhoven (2017), Wan et al. (2021): with weight decay lambda and momentum mu, the norm settles where "
        "decay and growth balance, and the angular update per step at sqrt(2 eta lambda / (1 + mu))",
        f"BatchNorm at lr {BASE_RATE:g}, momentum {MOMENTUM:g}, weight decay {WEIGHT_DECAY:g}, the whole scale: "
        f"reproduced if the median angular update over the last third of the run is within {SETTLES:.0%} of the "
        "prediction at every layer that feeds a BatchNorm; partly at some; not reproduced at none",
        equilibrium,
    ),
}

CHAPTER = Chapter("08_scale_invariance", "Scale invariance and the effective learning rate", PART_TWO, reads, CLAIMS)
