"""The book's claim-by-claim results: what the paper says, what we measure, at this scale.

Each chapter adds its claims here (one `Claim` each, measuring from run records), and the intro
shows them all in one table. Measuring trains whatever run is missing, through the shared records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnlib.experiments import experiment
from bnlib.records import Record, load_or_run


@dataclass(frozen=True)
class Claim:
    claim: str
    paper: str
    chapter: str
    measure: Callable[[str], str]  # scale -> what we measure, as text


def run(name: str, scale: str, seed: int = 0) -> Record:
    return load_or_run(experiment(name, scale, seed=seed), label=name)


def final_train_acc(name: str, scale: str) -> float:
    return float(np.mean([run(name, scale, seed).final["train_acc"] for seed in (0, 1, 2)]))


CLAIMS: list[Claim] = [
    Claim(
        "BatchNorm makes VGG train faster at lr 0.1",
        "BN near 100% training accuracy by ~3k steps, standard by ~7-8k (Fig. 1)",
        "A first look",
        lambda scale: (
            f"training accuracy after {experiment('vgg-bn-lr0.1', scale).steps} steps, mean of 3 seeds: "
            f"BN {final_train_acc('vgg-bn-lr0.1', scale):.0%}, standard {final_train_acc('vgg-std-lr0.1', scale):.0%}"
        ),
    ),
    Claim(
        "At lr 0.5 the standard VGG does not train; with BN it does",
        "standard at chance (10%) for 15k steps; BN ~95-100% train (Fig. 1)",
        "A first look",
        lambda scale: (
            f"training accuracy, mean of 3 seeds: standard {final_train_acc('vgg-std-lr0.5', scale):.0%}, "
            f"BN {final_train_acc('vgg-bn-lr0.5', scale):.0%}"
        ),
    ),
]


def summary(scale: str) -> pd.DataFrame:
    """The results table: one row per claim."""
    rows = [
        {"claim": c.claim, "paper says": c.paper, "we measure": c.measure(scale), "chapter": c.chapter} for c in CLAIMS
    ]
    return pd.DataFrame(rows)
