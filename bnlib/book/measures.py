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
from dataclasses import dataclass

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


def reached_text(record: Record, accuracy: float = TARGET) -> str:
    """A run's steps to `accuracy`, or how it ended without reaching it: "never (diverged)" or
    "never (dead)", or "not by" its last step."""
    steps = record.steps_to(accuracy)
    if steps is not None:
        return f"{steps:,}"
    return f"not by {record.config.steps:,}" if record.status == "finished" else f"never ({record.status})"


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
    median does; not reproduced otherwise; cannot tell if `reference` does not reach it. A seed of
    `speed` that never got there counts at its horizon, a lower bound: where the verdict would
    change were it to get there later, it is cannot tell."""
    if len(reference.reached) * 2 <= len(reference.steps):
        return Verdict.CANNOT_TELL
    bound = factor * reference.median()
    censored = len(speed.reached) < len(speed.steps)
    if max(speed.lower()) <= bound:
        return Verdict.CANNOT_TELL if censored else Verdict.REPRODUCED
    if speed.median() <= bound:  # a censored median (half the seeds or more) is only a bound
        return Verdict.CANNOT_TELL if len(speed.reached) * 2 <= len(speed.steps) else Verdict.PARTLY
    return Verdict.NOT_REPRODUCED


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
        f"median does; not reproduced otherwise; cannot tell if {reference} gets there in at most half its seeds, or "
        f"if a seed of {speed} that never gets there (counted at its horizon) could decide it either way"
    )


def ratio_text(slow: Speed, fast: Speed) -> str:
    """The median speed-up of `fast` over `slow` as text ('9.1x', '> 12x' where `slow` is censored)."""
    value = slow.median() / fast.median()
    return f"> {value:.3g}x" if slow.median() > slow.horizon else f"{value:.3g}x"


# ----------------------------------------------------------------------------- phases of training

# At the cpu scale BatchNorm leaves the initial plateau in about 115 steps and the standard VGG in
# 1,400-2,800, so a fixed window of steps would compare one network's descent with the other's
# plateau. The chapters compare VGG networks in the same phase of training instead: by the training
# accuracy the run had reached at the probed step, once it has left its plateau, never on it (below
# 20%) nor once it has converged (above 80%; Fig. 3's caption calls the late stabilisation "an
# artifact of parameter convergence").
PHASES = ((0.2, 0.4), (0.4, 0.6), (0.6, 0.8))
# Off the plateau: the training loss (`Record.smoothed`) has fallen this far below chance, ln 10 on
# CIFAR-10 (the book's own threshold: a network that ends at loss 2.11, as the standard VGG at lr
# 0.01 does at the cpu scale, has not left its plateau, whatever its accuracy).
PLATEAU_DROP = 0.1


def left_plateau(record: Record) -> int | None:
    """The first step at which a CIFAR-10 run's training loss (`Record.smoothed`) is PLATEAU_DROP
    below chance (ln 10); None if it never is."""
    below = np.flatnonzero(record.smoothed("train_loss") <= (1 - PLATEAU_DROP) * np.log(10))
    return int(record.metrics["step"][below[0]]) if len(below) else None


def phase_of(record: Record, steps: np.ndarray) -> np.ndarray:
    """For each of a run's probed `steps`, the index into PHASES of the phase of training it lies in
    (by the training accuracy at that step, `Record.smoothed`), or -1 where it lies in none: before
    the run left its plateau (`left_plateau`), or outside every phase."""
    steps = np.asarray(steps, dtype=int)
    smoothed = record.smoothed()
    accuracy = smoothed[np.minimum(steps, len(smoothed) - 1)]
    left = left_plateau(record)
    phase = np.full(len(steps), -1)
    for i, (low, high) in enumerate(PHASES):
        phase[(accuracy >= low) & (accuracy < high)] = i
    phase[steps < (left if left is not None else np.inf)] = -1
    return phase


def phase_text(phase: tuple[float, float]) -> str:
    """'20-40%'."""
    return f"{phase[0]:.0%}-{phase[1]:.0%}".replace("%-", "-")


# ----------------------------------------------------------------------------- the pre-activations (Figs. 1c, 5, 12)

SITE = "norm_out"  # the paper's histograms: the pre-activation (the normalization's output; the convolution's without)


def span(records: list[Record]) -> float | None:
    """The stretch of training several runs are compared over: from PHASES' first bound (20%) up to
    the highest bound of PHASES every run's training accuracy reaches (`Record.highest`); None if
    some run never reaches the second."""
    reached = min(record.highest() for record in records)
    bounds = [high for _, high in PHASES if high <= reached]
    return max(bounds) if bounds else None


def window(record: Record, top: float) -> tuple[int, int] | None:
    """The steps a run spends in the span (`span`) up to `top`: from where it first reaches PHASES'
    first bound, once off its plateau (`left_plateau`), to where it first reaches `top`; None if it
    never does both."""
    start, left, end = record.steps_to(PHASES[0][0]), left_plateau(record), record.steps_to(top)
    if start is None or left is None or end is None or end <= max(start, left):
        return None
    return max(start, left), end


def drift(run: Experiment, session: Session, layer: int, top: float, seed: int = 0, site: str = SITE) -> dict:
    """How far a layer's tracked units moved over the run's `window` up to `top` (the same stretch of
    training for every network compared): between the first and the last probed step inside it, in
    units of their own typical spread there, medians over units of |mu_T - mu_t0| / s ("mean") and
    |sd_T - sd_t0| / s ("sd") (`bnlib.probes.activations.drifts`), and the window itself ("from",
    "to"). NaN where the run has no such window. With BatchNorm in training mode a channel's mean and
    spread over the batch are its beta and |gamma|, by construction: its drift is theirs."""
    record = session.get(run, seed)
    steps = window(record, top)
    if steps is None:
        return {"mean": np.nan, "sd": np.nan, "from": np.nan, "to": np.nan}
    moved = drifts(record.probe_frame("activations"), layer, site, start=steps[0], end=steps[1])
    last = moved[moved["step"] == moved["step"].max()]
    return {
        "mean": float(last["relative_drift_mean"].median()),
        "sd": float(last["relative_drift_sd"].median()),
        "from": float(moved["step"].min()),
        "to": float(moved["step"].max()),
    }


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
    gradient change; "beta": the effective beta; "beta beyond": the effective beta over the step
    sizes beyond the paper's grid, on the extended grid), or any scalar output of a probe kind
    ("grad_norm": ||g|| on the landscape's probes; "total" on the activation gradients)."""
    record = session.get(run, seed)
    table = functools.partial(record.probe_table, kind)
    if quantity == "band":
        return table("loss_max")[0] - table("loss_min")[0]
    if quantity == "beta beyond":
        beyond = table("eta_multiple").iloc[0].to_numpy() > BEYOND_MULTIPLE[record.config.model]
        return table("beta").loc[:, beyond].max(axis=1)
    return table({"grad": "grad_diff_max", "beta": "beta_max"}.get(quantity, quantity))[0]


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


# On VGG the rules compare the landscape in matched phases of training (`PHASES`), each network's
# QUANTILE over its probed steps in a phase (all seeds read), once both have enough of them there.
MIN_BAND_PROBES = 30


@dataclass(frozen=True)
class Band:
    """One phase of training and one landscape quantity, the standard network against another: each
    one's probed steps in the phase (over the seeds read) and the QUANTILE of the quantity over them,
    and the same ratio seed by seed (seed i against seed i, where both have probes in the phase)."""

    phase: tuple[float, float]
    probes: tuple[int, int]
    levels: tuple[float, float]
    seeds: tuple[float, ...]

    @property
    def compared(self) -> bool:
        """Whether both networks have at least MIN_BAND_PROBES probed steps in the phase."""
        return min(self.probes) >= MIN_BAND_PROBES

    @property
    def ratio(self) -> float:
        """The standard network's level over the other's."""
        return ratio_of(*self.levels)


def ratio_of(a: float, b: float) -> float:
    """a / b, inf where b is 0 (a level against a flat one)."""
    return a / b if b > 0 else np.inf


def phase_values(
    run: Experiment, session: Session, quantity: str, kind: str, seeds: tuple[int, ...]
) -> list[dict[int, pd.Series]]:
    """Per phase of PHASES, per seed, a landscape quantity's values at the probed steps in it."""
    found: list[dict[int, pd.Series]] = [{} for _ in PHASES]
    for seed in session.seeds_of(Read(run, seeds)):
        values = series(run, session, quantity, kind, seed)
        phase = phase_of(session.get(run, seed), values.index.to_numpy())
        for i in range(len(PHASES)):
            found[i][seed] = values[phase == i]
    return found


def bands(std: Read, other: Read, session: Session, quantity: str, kind: str = "landscape") -> tuple[Band, ...]:
    """The standard network against another, phase by phase of PHASES (`Band`)."""
    a, b = (phase_values(read.run, session, quantity, kind, read.seeds) for read in (std, other))
    found = []
    for phase, mine, theirs in zip(PHASES, a, b, strict=True):
        pooled = [pd.concat(list(part.values())) for part in (mine, theirs)]
        levels = tuple(upper_quantile(p) if len(p) else np.nan for p in pooled)
        common = [seed for seed in mine if seed in theirs and len(mine[seed]) and len(theirs[seed])]
        seeds = tuple(ratio_of(upper_quantile(mine[s]), upper_quantile(theirs[s])) for s in common)
        found.append(Band(phase, (len(pooled[0]), len(pooled[1])), levels, seeds))
    return tuple(found)


def deciding(found: tuple[Band, ...]) -> Band | None:
    """The earliest phase both networks can be compared in (the paper's claims are "especially in
    the initial phases of training"); None if there is none."""
    return next((band for band in found if band.compared), None)


def band_text(found: tuple[Band, ...], names: tuple[str, str] = ("standard", "BN")) -> str:
    """Each phase as text: '20-40%: standard 3.1 (54 probes), BN 1.2 (57): x2.6 (seeds x2.1 to x3)'."""
    parts = []
    for band in found:
        (a, b), (n, m) = band.levels, band.probes
        head = f"{phase_text(band.phase)}: {names[0]} {a:.3g} ({n} probes), {names[1]} {b:.3g} ({m})"
        if not band.compared:
            parts.append(f"{head}: too few probes to compare")
            continue
        spread = f" (seeds x{min(band.seeds):.3g} to x{max(band.seeds):.3g})" if len(band.seeds) > 1 else ""
        parts.append(f"{head}: x{band.ratio:.3g}{spread}")
    return "; ".join(parts)
