"""Measurements several chapters share: a run's final numbers over the seeds a chapter reads, the
steps it took to reach an accuracy, and how they read as text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlib.book import plan
from bnlib.book.plan import Read
from bnlib.records import Record


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


def loss_text(read: Read, scale: str) -> str:
    """The final training loss of the seed-0 run, as text."""
    return f"{plan.get(read.run, scale).final['train_loss']:.3g}"


def steps_to(record: Record, accuracy: float, window: int = 25) -> int | None:
    """The first step at which the training accuracy (mean over `window` steps) reaches `accuracy`."""
    acc = pd.Series(record.metrics["train_acc"]).rolling(window).mean().to_numpy()
    hit = np.flatnonzero(acc >= accuracy)
    return int(record.metrics["step"][hit[0]]) if len(hit) else None


def steps_text(read: Read, scale: str, accuracy: float) -> str:
    """Steps to an accuracy for each seed of a read, as text."""
    hits = [steps_to(plan.get(read.run, scale, seed), accuracy) for seed in plan.seeds(read)]
    return ", ".join("never" if h is None else f"{h:,}" for h in hits)


def accuracy_table(reads: list[Read], scale: str) -> pd.DataFrame:
    """Final training and test accuracy of runs (mean ± sd over the seeds each read asks for)."""
    return pd.DataFrame(
        [
            {
                "experiment": read.run.name,
                "seeds": len(plan.seeds(read)),
                "steps": plan.config(read.run, scale).steps,
                "training accuracy": percent(read, scale, "train_acc"),
                "test accuracy": percent(read, scale, "test_acc"),
            }
            for read in reads
        ]
    )
