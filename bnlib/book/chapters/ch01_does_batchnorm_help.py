"""Chapter 01, does BatchNorm help? (Fig. 1): VGG-16 with and without BatchNorm at learning rates
0.1 and 0.5, and the distribution of a layer's inputs over training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlib.book import plan
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import finals, percent, steps_text
from bnlib.book.plan import Read
from bnlib.experiments import Experiment
from bnlib.probes.activations import drifts

NOTEBOOK = "01_does_batchnorm_help"
TITLE = "Does BatchNorm help?"

# The runs of Fig. 1 (three seeds each), shared with later chapters
SEEDS = (0, 1, 2)
STD, BN = Experiment("vgg", "none", 0.1), Experiment("vgg", "batch", 0.1)
STD_LARGE, BN_LARGE = Experiment("vgg", "none", 0.5), Experiment("vgg", "batch", 0.5)
STD_AUG, BN_AUG = Experiment("vgg", "none", 0.1, augment=True), Experiment("vgg", "batch", 0.1, augment=True)
FIG1 = {run: Read(run, SEEDS) for run in (STD, BN, STD_LARGE, BN_LARGE)}
AUGMENTED = (Read(STD_AUG, optional=True), Read(BN_AUG, optional=True))  # only on request

CHANCE = 0.10
FIG1C_LAYERS = (3, 11)
LEAD = 0.10  # "faster": BN's training accuracy at the last step at least this far ahead
NEAR_CHANCE = 0.05  # "does not train": within this of chance
TRAINS = 0.20  # "trains": at least this far above chance
MARGINAL = 2.0  # "marginal": drifts within this factor of each other


def reads(scale: str) -> list[Read]:
    return [*FIG1.values(), Read(STD, (0,), ("activations",)), Read(BN, (0,), ("activations",)), *AUGMENTED]


# ----------------------------------------------------------------------------- the inputs of a layer (Fig. 1c)


def drift(run: Experiment, scale: str, layer: int, site: str = "input") -> dict[str, float]:
    """How far a layer's tracked units moved from their first probed moments by the last probed
    step, relative to their initial spread: medians over units of |mu_T - mu_0| / sd_0 ("mean")
    and |sd_T - sd_0| / sd_0 ("sd"), for the seed-0 run."""
    moved = drifts(plan.get(run, scale).probe_frame("activations"), layer, site)
    last = moved[moved["step"] == moved["step"].max()]
    return {"mean": float(last["relative_drift_mean"].median()), "sd": float(last["relative_drift_sd"].median())}


def drift_table(runs: list[Experiment], scale: str, layers: tuple[int, ...], site: str = "input") -> pd.DataFrame:
    """`drift` for several runs and layers."""
    rows = []
    for run in runs:
        for layer in layers:
            moved = drift(run, scale, layer, site)
            rows.append(
                {
                    "experiment": run.name,
                    "layer": layer,
                    "relative drift of the mean": moved["mean"],
                    "relative drift of the spread": moved["sd"],
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the claims


def faster_at_lr_01(scale: str) -> Finding:
    bn, std = finals(FIG1[BN], scale, "train_acc"), finals(FIG1[STD], scale, "train_acc")
    leads = [b - s for b, s in zip(bn, std, strict=True)]
    steps = plan.config(BN, scale).steps
    text = (
        f"training accuracy after {steps:,} steps, {len(bn)} seed(s): "
        f"BN {percent(FIG1[BN], scale, 'train_acc')}, standard {percent(FIG1[STD], scale, 'train_acc')}; "
        f"steps to 50%: BN {steps_text(FIG1[BN], scale, 0.5)}, standard {steps_text(FIG1[STD], scale, 0.5)}"
    )
    if all(lead >= LEAD for lead in leads):
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if np.mean(leads) > 0 else Verdict.NOT_REPRODUCED
    held = sum(lead >= LEAD for lead in leads)
    summary = (
        f"At learning rate 0.1, BatchNorm ends {np.mean(leads) * 100:+.0f} points of training accuracy ahead of the "
        f"standard network after {steps:,} steps ({held} of {len(leads)} seeds by at least {LEAD * 100:.0f})."
    )
    return Finding(text, verdict, summary)


def test_accuracy(scale: str) -> Finding:
    bn, std = finals(FIG1[BN], scale, "test_acc"), finals(FIG1[STD], scale, "test_acc")
    text = (
        f"test accuracy, {len(bn)} seed(s): BN {percent(FIG1[BN], scale, 'test_acc')}, "
        f"standard {percent(FIG1[STD], scale, 'test_acc')}"
    )
    ahead = sum(b > s for b, s in zip(bn, std, strict=True))
    if ahead == len(bn):
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if np.mean(bn) > np.mean(std) else Verdict.NOT_REPRODUCED
    summary = (
        f"Its test accuracy is {(np.mean(bn) - np.mean(std)) * 100:+.0f} points against the standard network's "
        f"(higher in {ahead} of {len(bn)} seeds)."
    )
    return Finding(text, verdict, summary)


def test_accuracy_augmented(scale: str) -> Finding:
    bn, std = plan.stored(BN_AUG, scale), plan.stored(STD_AUG, scale)
    if bn is None or std is None:
        text = "not run at this scale (optional: set RUN_AUGMENTED = True in chapter 01)"
        return Finding(text, Verdict.CANNOT_TELL, "The optional runs with data augmentation were not made.")
    text = f"test accuracy, seed 0: BN {bn.final['test_acc']:.0%}, standard {std.final['test_acc']:.0%}"
    verdict = Verdict.REPRODUCED if bn.final["test_acc"] > std.final["test_acc"] else Verdict.NOT_REPRODUCED
    summary = (
        f"With augmentation BatchNorm's test accuracy is {bn.final['test_acc']:.0%} against "
        f"{std.final['test_acc']:.0%}."
    )
    return Finding(text, verdict, summary)


def large_learning_rate(scale: str) -> Finding:
    std, bn = finals(FIG1[STD_LARGE], scale, "train_acc"), finals(FIG1[BN_LARGE], scale, "train_acc")
    text = (
        f"training accuracy, {len(std)} seed(s): standard {percent(FIG1[STD_LARGE], scale, 'train_acc')}, "
        f"BN {percent(FIG1[BN_LARGE], scale, 'train_acc')} (test {percent(FIG1[BN_LARGE], scale, 'test_acc')})"
    )
    stuck, trains = max(std) <= CHANCE + NEAR_CHANCE, min(bn) >= CHANCE + TRAINS
    summary = (
        f"At learning rate 0.5 the standard network ends at {np.mean(std):.0%} training accuracy "
        f"({'at' if stuck else 'not at'} chance in every seed) and BatchNorm at {np.mean(bn):.0%}."
    )
    return Finding(text, graded([stuck, trains]), summary)


def input_stability(scale: str) -> Finding:
    ratios, parts = [], []
    for layer in FIG1C_LAYERS:
        std, bn = drift(STD, scale, layer), drift(BN, scale, layer)
        for moment in ("mean", "sd"):
            ratios.append(bn[moment] / std[moment] if std[moment] > 0 else np.inf)
        parts.append(
            f"#{layer}: mean {std['mean']:.2g} (standard) vs {bn['mean']:.2g} (BN), "
            f"spread {std['sd']:.2g} vs {bn['sd']:.2g}"
        )
    text = "median over 8 units of the drift from the first to the last probed step, relative to the initial spread: "
    text += "; ".join(parts)
    if all(1 / MARGINAL <= r <= MARGINAL for r in ratios):
        verdict = Verdict.REPRODUCED
    elif all(r < 1 / MARGINAL for r in ratios) or all(r > MARGINAL for r in ratios):
        verdict = Verdict.NOT_REPRODUCED
    else:
        verdict = Verdict.PARTLY
    summary = (
        f"The inputs of layers #{FIG1C_LAYERS[0]} and #{FIG1C_LAYERS[1]} drift between {min(ratios):.2g} and "
        f"{max(ratios):.2g} times as much with BatchNorm as without (mean and spread)."
    )
    return Finding(text, verdict, summary)


CLAIMS = {
    "faster": Claim(
        "BatchNorm makes VGG train faster at lr 0.1",
        "BN near 100% training accuracy by ~3k steps, standard by ~7-8k (read off Fig. 1a by eye)",
        f"reproduced if BN's training accuracy at the last step exceeds the standard network's by at least "
        f"{LEAD * 100:.0f} points in every seed; partly if it exceeds it on average; not reproduced otherwise",
        faster_at_lr_01,
    ),
    "test_accuracy": Claim(
        "BatchNorm improves test accuracy (no augmentation)",
        "83% with BN, 80% without, at 15k steps (appendix A)",
        "reproduced if BN's test accuracy exceeds the standard network's in every seed; partly if on average; "
        "not reproduced otherwise",
        test_accuracy,
    ),
    "test_accuracy_augmented": Claim(
        "BatchNorm improves test accuracy (with augmentation)",
        "92% with BN, 88% without (appendix A)",
        "reproduced if BN's test accuracy exceeds the standard network's; cannot tell if the optional runs were "
        "not made",
        test_accuracy_augmented,
    ),
    "large_rate": Claim(
        "At lr 0.5 the standard VGG does not train; with BN it does",
        "standard at chance (10%) for 15k steps; BN ~95-100% train, ~80% test (read off Fig. 1 by eye)",
        f"reproduced if the standard network's training accuracy stays within {NEAR_CHANCE * 100:.0f} points of "
        f"chance and BN's is at least {TRAINS * 100:.0f} points above chance, in every seed; partly if one of the "
        "two holds",
        large_learning_rate,
    ),
    "input_stability": Claim(
        "The inputs of a layer are about as (un)stable with BatchNorm as without (Fig. 1c)",
        'the difference in distributional stability (change in the mean and variance) "seems to be marginal" '
        '(Section 2; the caption: "much less pronounced"), layers #3 and #11',
        f"at the inputs of layers #{FIG1C_LAYERS[0]} and #{FIG1C_LAYERS[1]}: reproduced if, for both layers and "
        f"both moments, BN's relative drift is within a factor of {MARGINAL:g} of the standard network's; not "
        f"reproduced if it is more than a factor of {MARGINAL:g} apart in the same direction for all four; partly "
        "otherwise",
        input_stability,
    ),
}
