"""Chapter 01, does BatchNorm help? (Fig. 1): VGG-16 with and without BatchNorm at learning rates
0.1 and 0.5, and the distribution of a layer's pre-activations over training."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib import records as run_records
from bnlib.book import plotting
from bnlib.book.chapter import PART_ONE, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import (
    PHASES,
    PLATEAU_DROP,
    SITE,
    TARGET,
    drift,
    faster,
    faster_rule,
    finals,
    left_plateau,
    percent,
    ratio_of,
    ratio_text,
    records,
    span,
    speeds,
)
from bnlib.book.plan import Read
from bnlib.book.runs import BN, BN_LARGE, FIG1, SEEDS, STD, STD_LARGE
from bnlib.book.session import Session
from bnlib.experiments import Experiment
from bnlib.records import Record
from bnlib.train import SPEED_WINDOW

STD_AUG, BN_AUG = Experiment("vgg", "none", 0.1, augment=True), Experiment("vgg", "batch", 0.1, augment=True)
AUGMENTED = (Read(STD_AUG, optional=True), Read(BN_AUG, optional=True))  # only on request

CHANCE = 0.10
SPEEDUP = 2.0  # "faster": BN reaches TARGET in at most half the standard network's steps
PLATEAU = 0.95  # the paper compares test accuracy at the end of training, both networks near 100% training accuracy
NEAR_CHANCE = 0.05  # "does not train": its training accuracy never more than this above chance
FIG1C_LAYERS = (3, 11)
MARGINAL = 2.0  # "marginal": the two networks' drifts within this factor of each other


def reads(session: Session) -> list[Read]:
    probed = [Read(run, SEEDS, ("activations",)) for run in (STD, BN)]  # Fig. 1c, in every seed
    return [*FIG1.values(), *probed, *AUGMENTED]


# ----------------------------------------------------------------------------- phases of training

# Where the paper's networks are: in Fig. 2a (lr 0.1) the standard VGG passes 40% training accuracy
# after roughly 400-500 steps and BatchNorm after 100-150 (read by eye), about 3-4 times apart.
PAPER_STEPS_TO_40 = {"standard": (400, 500), "BN": (100, 150)}


def phases_table(session: Session) -> pd.DataFrame:
    """Where each network of Fig. 1a at lr 0.1 is in its training, seed by seed: the step its loss
    left the initial plateau (`measures.left_plateau`) and the steps to each bound of PHASES; and
    the paper's steps to 40% beside them. Every comparison of Part I that is made "in the same phase
    of training" reads these steps."""
    rows = []
    for name, run in (("standard", STD), ("BN", BN)):
        for seed in session.seeds_of(FIG1[run]):
            record = session.get(run, seed)
            bounds = sorted({x for p in PHASES for x in p})
            steps = {f"steps to {b:.0%}": _steps(record.steps_to(b), record) for b in bounds}
            left = _steps(left_plateau(record), record)
            rows.append({"network": name, "seed": str(seed), "left the plateau": left, **steps})
    for name, (low, high) in PAPER_STEPS_TO_40.items():
        rows.append({"network": f"{name}, the paper (Fig. 2a by eye)", "steps to 40%": f"{low}-{high}"})
    return pd.DataFrame(rows).fillna("")


def _steps(step: int | None, record: Record) -> str:
    """A step as text, '> 3,000' where the run never got there."""
    return f"> {record.config.steps:,}" if step is None else f"{step:,}"


# ----------------------------------------------------------------------------- the pre-activations (Fig. 1c)


def matched_top(session: Session) -> float | None:
    """The training accuracy up to which Fig. 1c's networks are compared (`span`: every seed of both
    reaches it)."""
    return span([session.get(run, seed) for run in (STD, BN) for seed in session.seeds_of(Read(run, SEEDS))])


def drift_table(runs: list[Experiment], session: Session, layers: tuple[int, ...], site: str = SITE) -> pd.DataFrame:
    """`drift` for several runs, layers and seeds, each over its own steps from 20% training accuracy
    (off the plateau) to `matched_top`."""
    top = matched_top(session)
    rows = []
    for run in runs:
        for layer in layers:
            for seed in session.seeds_of(Read(run, SEEDS)):
                moved = (
                    drift(run, session, layer, top, seed, site) if top else dict.fromkeys(("mean", "sd", "from", "to"))
                )
                rows.append(
                    {
                        "experiment": run.name,
                        "layer": layer,
                        "seed": seed,
                        "from step": moved["from"],
                        "to step": moved["to"],
                        "relative drift of the mean": moved["mean"],
                        "relative drift of the spread": moved["sd"],
                    }
                )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the figures


def figure_1(session: Session) -> plt.Figure:
    """Figs. 1a and 1b: training and test accuracy over the steps, every seed of Fig. 1's runs."""
    runs = [session.get(read.run, seed) for read in FIG1.values() for seed in session.seeds_of(read)]
    curves = plotting.smooth(run_records.frame(runs), window=25)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    panels = ("(a) training accuracy", "(b) test accuracy")
    for ax, metric, panel in zip(axes, ("train_acc", "test_acc"), panels, strict=True):
        plotting.curves(curves, metric, ax=ax, style="lr")
        ax.set(title=f"Fig. 1{panel}", ylabel="accuracy")
    fig.tight_layout()
    return fig


def ridges(session: Session, layer: int, unit: int = 0, site: str = SITE) -> plt.Figure:
    """Fig. 1c: one unit's distribution over training, the standard network and BN at lr 0.1 side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, run in zip(axes, (STD, BN), strict=True):
        plotting.unit_ridge(session.get(run), layer, unit, site, ax=ax)
        ax.set_title(f"{plotting.label(run.norm)}: layer #{layer}, {plotting.SITE_LABELS[site]}", fontsize="small")
    return fig


def ridge(session: Session, norm: str, layer: int, unit: int, site: str) -> plt.Figure:
    """One network's unit at lr 0.1 (the widget's picture)."""
    ax = plt.subplots(figsize=(6, 3.4))[1]
    plotting.unit_ridge(session.get(BN if norm == "batch" else STD), layer, unit, site, ax=ax)
    ax.set_title(f"{plotting.label(norm)}: layer #{layer}, unit {unit}, {plotting.SITE_LABELS[site]}", fontsize="small")
    return ax.figure


# ----------------------------------------------------------------------------- the claims


def faster_at_lr_01(session: Session) -> Finding:
    bn, std = speeds(records(FIG1[BN], session)), speeds(records(FIG1[STD], session))
    verdict = faster(bn, std, SPEEDUP)
    text = (
        f"steps to {TARGET:.0%} training accuracy, {len(bn.steps)} seed(s): BN {bn.text()}, standard {std.text()} "
        f"(BN {ratio_text(std, bn)} faster, medians); training accuracy after "
        f"{session.config(BN).steps:,} steps: BN {percent(FIG1[BN], session, 'train_acc')}, "
        f"standard {percent(FIG1[STD], session, 'train_acc')}"
    )
    summary = (
        f"At learning rate 0.1 BatchNorm reaches {TARGET:.0%} training accuracy in {bn.text()} steps (seed by seed), "
        f"the standard network in {std.text()}."
    )
    return Finding(text, verdict, summary)


def _plateaued(reads: list[Read], session: Session) -> bool:
    return all(min(finals(read, session, "train_acc")) >= PLATEAU for read in reads)


def _test_accuracy(bn: Read, std: Read, session: Session) -> Finding:
    bn_acc, std_acc = finals(bn, session, "test_acc"), finals(std, session, "test_acc")
    text = (
        f"test accuracy, {len(bn_acc)} seed(s): BN {percent(bn, session, 'test_acc')}, standard "
        f"{percent(std, session, 'test_acc')}; final training accuracy BN {percent(bn, session, 'train_acc')}, "
        f"standard {percent(std, session, 'train_acc')}"
    )
    ahead = sum(b > s for b, s in zip(bn_acc, std_acc, strict=True))
    if not _plateaued([bn, std], session):
        verdict = Verdict.CANNOT_TELL
        summary = (
            f"Test accuracy is {np.mean(bn_acc):.0%} with BatchNorm and {np.mean(std_acc):.0%} without, but a network "
            f"below {PLATEAU:.0%} training accuracy has not finished training, so the end-of-training comparison "
            "cannot be made here."
        )
    else:
        verdict = graded([ahead == len(bn_acc), np.mean(bn_acc) > np.mean(std_acc)])
        summary = (
            f"At the end of training BatchNorm's test accuracy is {(np.mean(bn_acc) - np.mean(std_acc)) * 100:+.0f} "
            f"points against the standard network's (higher in {ahead} of {len(bn_acc)} seeds)."
        )
    return Finding(text, verdict, summary)


def test_accuracy(session: Session) -> Finding:
    return _test_accuracy(FIG1[BN], FIG1[STD], session)


def test_accuracy_augmented(session: Session) -> Finding:
    if session.stored(BN_AUG) is None or session.stored(STD_AUG) is None:
        text = "not run at this scale (optional: set RUN_AUGMENTED = True in chapter 01)"
        return Finding(text, Verdict.CANNOT_TELL, "The optional runs with data augmentation were not made.")
    return _test_accuracy(*AUGMENTED[::-1], session)


def _ever_above_chance(session: Session) -> list[float]:
    """The highest training accuracy (smoothed) each seed of the standard network at lr 0.5 reached;
    a run that died stays at its last value, a constant prediction's, for the rest of its steps."""
    return [r.highest() for r in records(FIG1[STD_LARGE], session)]


def large_learning_rate(session: Session) -> Finding:
    std_records = records(FIG1[STD_LARGE], session)
    highest = _ever_above_chance(session)
    bn = speeds(records(FIG1[BN_LARGE], session))
    died = [r.final["steps"] for r in std_records if r.status == "dead"]
    never = max(highest) <= CHANCE + NEAR_CHANCE
    shown = ", ".join("none (too short)" if np.isnan(h) else f"{h:.0%}" for h in highest)
    dead = f" (dead, its output the same for every example, after {', '.join(f'{s:,.0f}' for s in died)} steps)"
    text = (
        f"standard, {len(highest)} seed(s): highest training accuracy over the run {shown}{dead if died else ''}; "
        f"BN: steps to {TARGET:.0%} {bn.text()}, final training accuracy "
        f"{percent(FIG1[BN_LARGE], session, 'train_acc')}"
    )
    trains = len(bn.reached) == len(bn.steps)
    if any(np.isnan(h) for h in highest):  # a run shorter than the smoothing window has no smoothed accuracy
        short = f"A run of the standard network is shorter than the {SPEED_WINDOW}-step window accuracy is read over."
        return Finding(text, Verdict.CANNOT_TELL, short)
    summary = (
        f"At learning rate 0.5 the standard network never exceeds {max(highest):.0%} training accuracy"
        + (f" ({len(died)} of {len(highest)} seeds died)" if died else "")
        + f"; BatchNorm reaches {TARGET:.0%} in {bn.text()} steps."
    )
    return Finding(text, graded([never, trains]), summary)


def input_stability(session: Session) -> Finding:
    seeds = session.seeds_of(Read(BN, SEEDS))
    top = matched_top(session)
    if top is None:
        text = f"a seed of a network never reaches {PHASES[0][1]:.0%} training accuracy"
        summary = "The two networks do not share a phase of training past their plateau to compare their drift in."
        return Finding(text, Verdict.CANNOT_TELL, summary)
    ratios: dict[str, list[float]] = {}
    parts = []
    for layer in FIG1C_LAYERS:
        moved = {run: [drift(run, session, layer, top, s) for s in seeds] for run in (STD, BN)}
        for moment in ("mean", "sd"):
            std, bn = ([m[moment] for m in moved[run]] for run in (STD, BN))
            ratios[f"#{layer} {moment}"] = [ratio_of(b, s) for b, s in zip(bn, std, strict=True)]
            parts.append(f"#{layer} {moment}: standard {np.median(std):.2g}, BN {np.median(bn):.2g}")
    windows = {run: ", ".join(f"{m['from']:,.0f}-{m['to']:,.0f}" for m in moved[run]) for run in (STD, BN)}
    text = (
        f"pre-activations, drift over each network's own steps from {PHASES[0][0]:.0%} training accuracy (off the "
        f"plateau) to {top:.0%} (standard steps {windows[STD]}; BN {windows[BN]}, seed by seed), in units of the "
        f"unit's typical spread, median over 8 units and {len(seeds)} seed(s): " + "; ".join(parts)
    )
    medians = {k: float(np.median(v)) for k, v in ratios.items()}
    if all(1 / MARGINAL <= r <= MARGINAL for r in medians.values()):
        verdict = Verdict.REPRODUCED
    elif all(r < 1 / MARGINAL for r in medians.values()) or all(r > MARGINAL for r in medians.values()):
        verdict = Verdict.NOT_REPRODUCED
    else:
        verdict = Verdict.PARTLY
    every = [r for v in ratios.values() for r in v]
    summary = (
        f"Between {PHASES[0][0]:.0%} and {top:.0%} training accuracy the pre-activations of layers "
        f"#{FIG1C_LAYERS[0]} and #{FIG1C_LAYERS[1]} drift {min(medians.values()):.2g} to {max(medians.values()):.2g} "
        f"times as much with BatchNorm as without (median over seeds; the seeds range from {min(every):.2g} to "
        f"{max(every):.2g}); BatchNorm's side is the drift of its beta and gamma."
    )
    return Finding(text, verdict, summary)


CLAIMS = {
    "faster": Claim(
        "BatchNorm makes VGG train faster at lr 0.1",
        '"a consistent gain in training speed" (Fig. 1 caption); BN near 100% training accuracy by ~3k steps, '
        "standard by ~7-8k (read off Fig. 1a by eye)",
        f"steps to {TARGET:.0%} training accuracy: " + faster_rule(SPEEDUP, "BN", "the standard network"),
        faster_at_lr_01,
    ),
    "test_accuracy": Claim(
        "BatchNorm improves test accuracy (no augmentation)",
        "83% with BN, 80% without, at 15k steps, both networks near 100% training accuracy (appendix A)",
        f"at the end of training: cannot tell if either network is below {PLATEAU:.0%} training accuracy (it has "
        "not finished training); else reproduced if BN's test accuracy is higher in every seed, partly if on "
        "average, not reproduced otherwise",
        test_accuracy,
    ),
    "test_accuracy_augmented": Claim(
        "BatchNorm improves test accuracy (with augmentation)",
        "92% with BN, 88% without (appendix A)",
        f"as without augmentation (cannot tell below {PLATEAU:.0%} training accuracy, or if the optional runs were "
        "not made)",
        test_accuracy_augmented,
    ),
    "large_rate": Claim(
        "At lr 0.5 the standard VGG does not train; with BN it does",
        "standard at chance (10%) for 15k steps; BN ~95-100% train, ~80% test (read off Fig. 1 by eye)",
        f"reproduced if the standard network's training accuracy never rises more than {NEAR_CHANCE * 100:.0f} points "
        f"above chance in any seed (a network that died, its output the same for every example, stays there) and BN "
        f"reaches {TARGET:.0%} in every seed; partly if one of the two holds; cannot tell if a run of the standard "
        f"network is shorter than the {SPEED_WINDOW}-step window its accuracy is averaged over",
        large_learning_rate,
    ),
    "input_stability": Claim(
        "The inputs of a layer are about as (un)stable with BatchNorm as without (Fig. 1c)",
        'the difference in distributional stability (change in the mean and variance) "seems to be marginal" '
        '(Section 2; the caption: "much less pronounced"), layers #3 and #11, histograms of pre-activations '
        "(they have negative values: standard #3 about -4..4, #11 about -0.8..2, BN both about -4..4, Fig. 1c)",
        f"pre-activations of layers #{FIG1C_LAYERS[0]} and #{FIG1C_LAYERS[1]}, each network's drift over its own "
        f"steps from {PHASES[0][0]:.0%} training accuracy (once its loss is {PLATEAU_DROP:.0%} below chance) to the "
        f"highest of {', '.join(f'{high:.0%}' for _, high in PHASES)} that every seed of both reaches, in units of "
        "each unit's typical spread there "
        "(with BatchNorm in training mode a channel's mean and spread over the batch are its beta and |gamma| by "
        f"construction, so BN's side measures how far they move): reproduced if, for both layers and both moments, "
        f"BN's drift is within a factor of {MARGINAL:g} of the standard network's (medians over seeds); not "
        f"reproduced if it is more than a factor of {MARGINAL:g} apart in the same direction for all four; partly "
        f"otherwise; cannot tell if a seed never reaches {PHASES[0][1]:.0%}",
        input_stability,
    ),
}

CHAPTER = Chapter("01_does_batchnorm_help", "Does BatchNorm help?", PART_ONE, reads, CLAIMS)
