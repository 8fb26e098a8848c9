"""Measurements several chapters share: a run's final numbers over the seeds a chapter reads, its
speed (the steps it took to reach a training accuracy), the rules that compare speeds, and how
they read as text.

**Speed.** "Faster" is about speed, not the last step: the book measures it as the steps a run takes
to reach `TARGET` training accuracy (`Record.steps_to`: the accuracy averaged over the last 25
steps), a level the standard VGG reaches at every scale (book/scales.md). A run that does not reach
it within its steps is censored: all we know is that it would take more than its steps, and the
rules below use that bound, saying "cannot tell" where the bound cannot decide.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from bnlib.book.claims import Verdict
from bnlib.book.plan import Read
from bnlib.book.session import Session
from bnlib.experiments import Experiment
from bnlib.probes.activations import drifts
from bnlib.records import Record

# The training accuracy whose steps-to measure speed: one the standard VGG at lr 0.1 reaches in every
# seed at every scale (book/scales.md; at the cpu scale its slowest seed ends near 0.46).
TARGET = 0.4


def fast(run: Experiment) -> Experiment:
    """`run`, stopped as soon as it reaches TARGET: its steps until then are the full run's, step for
    step (nothing before a step depends on when the run stops), so it has the full run's speed at a
    fraction of its cost. For the seeds that only a speed claim reads."""
    return run.but(target_acc=TARGET)


def fastest(stored: dict[float, Record | None]) -> float | None:
    """Of a grid's records by rate (seed 0's), the rate whose run reached TARGET in the fewest
    steps: a network's best rate. None if a record is missing (not trained yet) or none reached it."""
    if any(record is None for record in stored.values()):
        return None
    reached = {lr: r.steps_to(TARGET) for lr, r in stored.items() if r.steps_to(TARGET) is not None}
    return min(reached, key=reached.get) if reached else None


def finals(read: Read, session: Session, key: str) -> list[float]:
    """A final number (train_acc, test_acc, train_loss) of each seed a read asks for."""
    return [session.get(read.run, seed).final[key] for seed in session.seeds_of(read)]


def final(read: Read, session: Session, key: str) -> tuple[float, float]:
    """Mean and standard deviation over the read's seeds of a run's final number."""
    values = finals(read, session, key)
    return float(np.mean(values)), float(np.std(values))


def percent(read: Read, session: Session, key: str) -> str:
    """A final accuracy as text: '78% ± 2' over several seeds, '78%' for one."""
    mean, sd = final(read, session, key)
    return f"{mean:.0%} ± {sd * 100:.0f}" if len(session.seeds_of(read)) > 1 else f"{mean:.0%}"


def records(read: Read, session: Session) -> list[Record]:
    """The records of every seed a read asks for."""
    return [session.get(read.run, seed) for seed in session.seeds_of(read)]


def accuracy_table(reads: list[Read], session: Session) -> pd.DataFrame:
    """Final training and test accuracy of runs (mean ± sd over the seeds each read asks for), with
    the steps each seed took to reach TARGET."""
    return pd.DataFrame(
        [
            {
                "experiment": read.run.name,
                "seeds": len(session.seeds_of(read)),
                "steps": session.config(read.run).steps,
                f"steps to {TARGET:.0%}": steps_text(speeds(records(read, session))),
                "training accuracy": percent(read, session, "train_acc"),
                "test accuracy": percent(read, session, "test_acc"),
            }
            for read in reads
        ]
    )


# ----------------------------------------------------------------------------- speed


class Speed:
    """Steps to TARGET of several seeds of a run; None for a seed that did not reach it within its
    `horizon` steps (all that is known: more than `horizon`)."""

    def __init__(self, steps: list[int | None], horizon: int):
        self.steps, self.horizon = list(steps), horizon

    @property
    def reached(self) -> list[int]:
        return [s for s in self.steps if s is not None]

    def lower(self) -> list[float]:
        """Each seed's steps, or the lower bound horizon + 1 where it did not reach the target."""
        return [self.horizon + 1.0 if s is None else float(s) for s in self.steps]

    def median(self) -> float:
        """The median over seeds, the censored ones counted at their bound (a lower bound itself if
        half or more are censored)."""
        return float(np.median(self.lower()))

    def text(self) -> str:
        return steps_text(self)


def speeds(records: list[Record], accuracy: float = TARGET) -> Speed:
    """The steps each record took to reach `accuracy` (records of the seeds of one run)."""
    return Speed([r.steps_to(accuracy) for r in records], max(r.config.steps for r in records))


def steps_text(speed: Speed) -> str:
    """'210, 240, 255' or '1,900, > 3,000': a run's steps to the target, seed by seed."""
    return ", ".join(f"> {speed.horizon:,}" if s is None else f"{s:,}" for s in speed.steps)


def faster(fast: Speed, slow: Speed, factor: float) -> Verdict:
    """Whether `fast` reaches the target at least `factor` times sooner than `slow`: reproduced if
    its slowest seed does so against the fastest seed of `slow` (every pairing of seeds, with the
    censored seeds of `slow` at their lower bound); partly if its median is sooner but not by
    `factor` in every pairing; not reproduced if its median is not sooner; cannot tell if neither
    reaches the target in some seed, or if the bounds cannot decide (`slow` never reaches it, and
    its horizon is less than `factor` times `fast`'s slowest seed)."""
    if not fast.reached and not slow.reached:
        return Verdict.CANNOT_TELL
    if len(fast.reached) < len(fast.steps):  # a seed of `fast` never got there
        return Verdict.NOT_REPRODUCED if slow.reached else Verdict.CANNOT_TELL
    worst = min(slow.lower()) / max(fast.reached)
    if worst >= factor:
        return Verdict.REPRODUCED
    if not slow.reached and slow.horizon < factor * max(fast.reached):
        return Verdict.CANNOT_TELL
    return Verdict.PARTLY if slow.median() > fast.median() else Verdict.NOT_REPRODUCED


def comparable(speed: Speed, reference: Speed, factor: float) -> Verdict:
    """Whether `speed` reaches the target about as soon as `reference` (or sooner): reproduced if
    every seed of `speed` takes at most `factor` times the median of `reference`; partly if its
    median does; not reproduced otherwise; cannot tell if `reference` does not reach it."""
    if len(reference.reached) * 2 <= len(reference.steps):
        return Verdict.CANNOT_TELL
    bound = factor * reference.median()
    if max(speed.lower()) <= bound:
        return Verdict.REPRODUCED
    return Verdict.PARTLY if speed.median() <= bound else Verdict.NOT_REPRODUCED


def faster_rule(factor: float, fast: str, slow: str) -> str:
    """`faster`'s rule in words, every branch of it, for a claim's rule text."""
    return (
        f"reproduced if {fast}'s slowest seed takes at most 1/{factor:g} of the steps of {slow}'s fastest (a seed of "
        f"{slow} that never gets there counts at its horizon); partly if {fast}'s median is sooner but not by that "
        f"much in every pairing; not reproduced if its median is not sooner, or if a seed of {fast} never gets there "
        f"while {slow} does; cannot tell if no seed of either gets there, if a seed of {fast} never does and no seed "
        f"of {slow} does, or if {slow} never does and its horizon is less than {factor:g} times {fast}'s slowest seed"
    )


def comparable_rule(factor: float, speed: str, reference: str) -> str:
    """`comparable`'s rule in words, every branch of it, for a claim's rule text."""
    return (
        f"reproduced if every seed of {speed} takes at most {factor:g} times {reference}'s median; partly if its "
        f"median does; not reproduced otherwise; cannot tell if {reference} gets there in at most half its seeds"
    )


def ratio_text(slow: Speed, fast: Speed) -> str:
    """The median speed-up of `fast` over `slow` as text ('9.1x', '> 12x' where `slow` is censored)."""
    value = slow.median() / fast.median()
    return f"> {value:.3g}x" if slow.median() > slow.horizon else f"{value:.3g}x"


# ----------------------------------------------------------------------------- the pre-activations (Figs. 1c, 5, 12)

SITE = "norm_out"  # the paper's histograms: the pre-activation (the normalization's output; the convolution's without)
TRANSIENT = 0.1  # the first tenth of the run, where the standard network's units grow out of a small start


def drift(run: Experiment, session: Session, layer: int, seed: int = 0, site: str = SITE) -> dict[str, float]:
    """How far a layer's tracked units moved between the end of the initial transient (the first
    probed step after TRANSIENT of the run) and the last probed step, in units of their own typical
    spread over that window: medians over units of |mu_T - mu_t0| / s ("mean") and
    |sd_T - sd_t0| / s ("sd") (`bnlib.probes.activations.drifts`)."""
    record = session.get(run, seed)
    start = int(TRANSIENT * record.config.steps)
    moved = drifts(record.probe_frame("activations"), layer, site, start=start)
    last = moved[moved["step"] == moved["step"].max()]
    return {"mean": float(last["relative_drift_mean"].median()), "sd": float(last["relative_drift_sd"].median())}


# ----------------------------------------------------------------------------- the landscape (Figs. 4, 10, 6, 13)

BEYOND_MULTIPLE = {"vgg": 4.0, "dln": 30.0}  # the largest step (x lr) of the paper's grids
# What the paper claims is about spikes and the start of training: "especially in the initial phases"
# (Section 3.2), "close to two orders of magnitude ... especially early in training". So the rules
# compare the upper quantile of each probe over the first fifth of the run, seed by seed.
EARLY = 0.2  # the early window: the first fifth of the run's steps
QUANTILE = 0.9  # its 90th percentile: the level of the spikes, not a single outlier
GAP = 2.0  # "smoother": the standard network's upper quantile at least twice BN's
BETA_GAP = 1.5  # for the effective beta, whose BN level is pinned at 2/lr (Fig. 4c: spikes to ~45 against ~20)


def series(run: Experiment, session: Session, quantity: str, kind: str = "landscape", seed: int = 0) -> pd.Series:
    """One landscape quantity over training ("band": the loss band's width; "grad": the largest
    gradient change; "beta": the effective beta; "grad_norm": ||g||; "beta beyond": the effective beta
    over the step sizes beyond the paper's grid, on the extended grid)."""
    record = session.get(run, seed)
    table = functools.partial(record.probe_table, kind)
    if quantity == "band":
        return table("loss_max")[0] - table("loss_min")[0]
    if quantity == "beta beyond":
        beyond = table("eta_multiple").iloc[0].to_numpy() > BEYOND_MULTIPLE[record.config.model]
        return table("beta").loc[:, beyond].max(axis=1)
    return table({"grad": "grad_diff_max", "beta": "beta_max", "grad_norm": "grad_norm"}[quantity])[0]


def upper_quantile(values: pd.Series) -> float:
    """The QUANTILE of a quantity over a window. A value that is not finite (the loss overflowed
    along the step, as the standard DLN's does far along its gradient) counts as +inf, the roughest
    a landscape can be: the quantile is then inf where it falls on one, never NaN."""
    x = values.to_numpy(dtype=float)
    x = np.where(np.isfinite(x), x, np.inf)
    return float(np.quantile(x, QUANTILE, method="linear" if np.isfinite(x).all() else "higher"))


def early_spikes(
    run: Experiment, session: Session, quantity: str, kind: str = "landscape", seeds: tuple[int, ...] = (0, 1, 2)
) -> list[float]:
    """Per seed: the QUANTILE of a landscape quantity over the early window (the first EARLY of the run)."""
    values = []
    for seed in session.seeds_of(Read(run, seeds)):
        one = series(run, session, quantity, kind, seed)
        values.append(upper_quantile(one[one.index < EARLY * session.config(run).steps]))
    return values
