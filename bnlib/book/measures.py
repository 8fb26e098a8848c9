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

import numpy as np
import pandas as pd

from bnlib.book import plan
from bnlib.book.claims import Verdict
from bnlib.book.plan import Read
from bnlib.experiments import Experiment
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


def finals(read: Read, scale: str, key: str) -> list[float]:
    """A final number (train_acc, test_acc, train_loss) of each seed a read asks for."""
    return [plan.get(read.run, scale, seed).final[key] for seed in plan.seeds(read)]


def final(read: Read, scale: str, key: str) -> tuple[float, float]:
    """Mean and standard deviation over the read's seeds of a run's final number."""
    values = finals(read, scale, key)
    return float(np.mean(values)), float(np.std(values))


def percent(read: Read, scale: str, key: str) -> str:
    """A final accuracy as text: '78% ± 2' over several seeds, '78%' for one."""
    mean, sd = final(read, scale, key)
    return f"{mean:.0%} ± {sd * 100:.0f}" if len(plan.seeds(read)) > 1 else f"{mean:.0%}"


def records(read: Read, scale: str) -> list[Record]:
    """The records of every seed a read asks for."""
    return [plan.get(read.run, scale, seed) for seed in plan.seeds(read)]


def accuracy_table(reads: list[Read], scale: str) -> pd.DataFrame:
    """Final training and test accuracy of runs (mean ± sd over the seeds each read asks for), with
    the steps each seed took to reach TARGET."""
    return pd.DataFrame(
        [
            {
                "experiment": read.run.name,
                "seeds": len(plan.seeds(read)),
                "steps": plan.config(read.run, scale).steps,
                f"steps to {TARGET:.0%}": steps_text(speeds(records(read, scale))),
                "training accuracy": percent(read, scale, "train_acc"),
                "test accuracy": percent(read, scale, "test_acc"),
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


def ratio_text(slow: Speed, fast: Speed) -> str:
    """The median speed-up of `fast` over `slow` as text ('9.1x', '> 12x' where `slow` is censored)."""
    value = slow.median() / fast.median()
    return f"> {value:.3g}x" if slow.median() > slow.horizon else f"{value:.3g}x"
