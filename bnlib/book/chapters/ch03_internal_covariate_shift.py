"""Chapter 03, internal covariate shift as a change of gradient (Definition 2.1, Figs. 3 and 9), on
VGG at learning rates 0.1 and 0.01 and on the 25-layer deep linear network at 1e-6 and 1e-7."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib import records as run_records
from bnlib.book import plan, plotting
from bnlib.book.chapter import PART_ONE, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import PHASES, PLATEAU_DROP, phase_of
from bnlib.book.plan import Read
from bnlib.book.runs import BN, STD
from bnlib.book.session import Session
from bnlib.experiments import Experiment, rate_text

SEEDS = (0, 1, 2)
VGG_PAIRS = {0.1: (STD, BN), 0.01: (Experiment("vgg", "none", 0.01), Experiment("vgg", "batch", 0.01))}
VGG_SEEDS = dict.fromkeys(VGG_PAIRS, SEEDS)  # both rates in three seeds
DLN_PAIRS = {lr: (Experiment("dln", "none", lr), Experiment("dln", "batch", lr)) for lr in (1e-6, 1e-7)}
FIG9_RUNS = DLN_PAIRS[1e-6]  # the DLN's activations (Fig. 9)

# Each measure votes on a case (learning rate, layer, phase): "less" shift with BatchNorm if its l2
# difference is at least L2_FACTOR times smaller (its cosine at least COSINE_GAP higher), "more" the
# other way round, "similar" within the margins. The case shows less shift if one measure says less
# and neither says more; more shift, symmetrically; similar if both say similar; the measures
# disagree if one says less and the other more.
L2_FACTOR = 2.0
COSINE_GAP = 0.1
# Where both cosines sit within this of the same +-1 (both networks' gradient moves along the same
# line, as in Fig. 3b at lr 1e-6, layer #17, where both are near -1), the cosine cannot tell the
# networks apart: the l2 difference (Definition 2.1's own measure) decides alone.
SATURATED = 0.1
# VGG's networks are compared phase by phase of training (`measures.PHASES`), once each has left
# its plateau (`measures.left_plateau`, from the loss).
MIN_PROBES = 3  # probed steps (over seeds) each network needs in a phase for it to be compared


def reads(session: Session) -> list[Read]:
    vgg = [Read(run, VGG_SEEDS[lr], ("ics",)) for lr, pair in VGG_PAIRS.items() for run in pair]
    dln = [Read(run, SEEDS, ("ics",)) for pair in DLN_PAIRS.values() for run in pair]
    return [*vgg, *dln, *(Read(run, (0,), ("activations",)) for run in FIG9_RUNS)]


def ics_frame(run: Experiment, session: Session, seeds: tuple[int, ...]) -> pd.DataFrame:
    """Every probed step of every seed: the layer, Definition 2.1's l2 difference, the cosine, and
    (on CIFAR-10) the phase of training the run was in at that step (`measures.phase_of`: an index
    into PHASES, -1 for none; -1 throughout on the DLN)."""
    parts = []
    for seed in session.seeds_of(Read(run, seeds)):
        record = session.get(run, seed)
        layers = record.probe_table("ics", "layer").iloc[0].astype(int).tolist()
        l2, cos = record.probe_table("ics", "l2_diff"), record.probe_table("ics", "cosine")
        phase = phase_of(record, l2.index.to_numpy()) if record.config.on_cifar else np.full(len(l2), -1)
        for i, layer in enumerate(layers):
            parts.append(
                pd.DataFrame(
                    {
                        "seed": seed,
                        "step": l2.index,
                        "layer": layer,
                        "l2": l2[i].to_numpy(),
                        "cosine": cos[i].to_numpy(),
                        "phase": phase,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def ics_medians(run: Experiment, session: Session, seeds: tuple[int, ...] = (0,)) -> pd.DataFrame:
    """Median over probed steps (and seeds) of Definition 2.1's l2 difference and cosine, per layer."""
    frame = ics_frame(run, session, seeds).groupby("layer")[["l2", "cosine"]].median().reset_index()
    return frame.rename(columns={"l2": "median l2 difference", "cosine": "median cosine"})


def ics_table(runs: list[Experiment], session: Session) -> pd.DataFrame:
    """Fig. 3 summarised: per run and layer, the median ICS over training and the final loss (seed 0)."""
    parts = [
        ics_medians(run, session).assign(
            experiment=run.name, **{"final training loss": session.get(run).final["train_loss"]}
        )
        for run in runs
    ]
    table = pd.concat(parts, ignore_index=True)
    return table[["experiment", "layer", "median l2 difference", "median cosine", "final training loss"]]


def compare(std: pd.Series, bn: pd.Series) -> str:
    """One case: "less", "more" or "similar" shift with BatchNorm, or "disagree", from the medians
    of the l2 difference ("l2") and the cosine ("cosine") of the two networks (each measure's vote,
    as above); where both cosines are saturated at the same +-1 (`SATURATED`), from the l2
    difference alone."""
    saturated = all(1 - abs(c) <= SATURATED for c in (std["cosine"], bn["cosine"])) and (
        (std["cosine"] > 0) == (bn["cosine"] > 0)
    )
    l2 = _vote(bn["l2"] * L2_FACTOR <= std["l2"], bn["l2"] >= L2_FACTOR * std["l2"])
    lower, higher = bn["cosine"] >= std["cosine"] + COSINE_GAP, bn["cosine"] <= std["cosine"] - COSINE_GAP
    cosine = "similar" if saturated else _vote(lower, higher)
    votes = {l2, cosine} - {"similar"}
    return "disagree" if len(votes) == 2 else votes.pop() if votes else "similar"


def _vote(less: bool, more: bool) -> str:
    """One measure's vote on a case: "less" or "more" shift with BatchNorm, else "similar"."""
    return "less" if less else "more" if more else "similar"


@dataclass(frozen=True)
class Case:
    """One of VGG's cases (a learning rate, a layer, a phase of training): each network's number of
    probed steps in that phase (all seeds), its median l2 difference and cosine there, and the
    comparison ("less", "more", "similar", "disagree"; "cannot tell" where a network has too few probes)."""

    lr: float
    layer: int
    phase: tuple[float, float]
    probes: tuple[int, int]  # the standard network's, BN's
    l2: tuple[float, float]
    cosine: tuple[float, float]
    with_bn: str


@functools.cache
def cases(session: Session) -> tuple[Case, ...]:
    """VGG's cases: per learning rate, layer and phase of training (`PHASES`)."""
    found = []
    for lr, (std_run, bn_run) in VGG_PAIRS.items():
        frames = {name: ics_frame(run, session, VGG_SEEDS[lr]) for name, run in (("std", std_run), ("bn", bn_run))}
        for layer in sorted(frames["std"]["layer"].unique()):
            for i, (low, high) in enumerate(PHASES):
                inside = {name: f[(f["layer"] == layer) & (f["phase"] == i)] for name, f in frames.items()}
                std, bn = (inside[name][["l2", "cosine"]].median() for name in ("std", "bn"))
                enough = all(len(part) >= MIN_PROBES for part in inside.values())
                found.append(
                    Case(
                        lr,
                        int(layer),
                        (low, high),
                        (len(inside["std"]), len(inside["bn"])),
                        (std["l2"], bn["l2"]),
                        (std["cosine"], bn["cosine"]),
                        compare(std, bn) if enough else "cannot tell",
                    )
                )
    return tuple(found)


def phase_table(session: Session) -> pd.DataFrame:
    """VGG's cases (`cases`) as the page shows them."""
    return pd.DataFrame(
        [
            {
                "lr": case.lr,
                "layer": case.layer,
                "phase": f"{case.phase[0]:.0%}-{case.phase[1]:.0%}",
                "standard probes": case.probes[0],
                "BN probes": case.probes[1],
                "standard l2": case.l2[0],
                "BN l2": case.l2[1],
                "standard cosine": case.cosine[0],
                "BN cosine": case.cosine[1],
                "with BN": case.with_bn,
            }
            for case in cases(session)
        ]
    )


def spread_table(
    runs: list[Experiment], session: Session, layers: tuple[int, ...], site: str = "norm_in"
) -> pd.DataFrame:
    """The spread sigma_j of a layer's tracked units at the first and the last probed step (medians
    over units), per run and layer: Fig. 9's "large and highly uncontrolled" sigma, in numbers."""
    rows = []
    for run in runs:
        frame = session.get(run).probe_frame("activations")
        for layer in layers:
            var = frame[frame["quantity"] == f"L{layer}.{site}.var"]
            sd = var.pivot(index="step", columns="index", values="value").sort_index().clip(lower=0) ** 0.5
            rows.append(
                {
                    "experiment": run.name,
                    "layer": layer,
                    "sigma at the first probed step": float(sd.iloc[0].median()),
                    "sigma at the last probed step": float(sd.iloc[-1].median()),
                    "largest sigma over training": float(sd.max().max()),
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the figures


def figure_3(session: Session, runs: tuple[Experiment, Experiment]) -> plt.Figure:
    """Fig. 3: a pair's training accuracy (VGG) or loss (DLN), then per ICS layer Definition 2.1's
    l2 difference and cosine over the steps (seed 0)."""
    recs = [session.get(run) for run in runs]
    model = recs[0].config.model
    layers = recs[0].probe_table("ics", "layer").iloc[0].astype(int).tolist()
    fig, axes = plt.subplots(1, 1 + 2 * len(layers), figsize=(16, 3.2))
    metric = "train_acc" if model == "vgg" else "train_loss"
    plotting.curves(plotting.smooth(run_records.frame(recs), window=25), metric, ax=axes[0])
    axes[0].set_title(f"lr {recs[0].config.lr:g}: {metric.replace('_', ' ')}", fontsize="small")
    if model == "dln":
        axes[0].set_yscale("log")
    for i, layer in enumerate(layers):
        for record in recs:
            color = plotting.NORM_COLORS[record.config.norm]
            for j, quantity in enumerate(("l2_diff", "cosine")):
                series = record.probe_table("ics", quantity)[i]
                axes[1 + 2 * i + j].plot(series.index, series, color=color, lw=1)
        axes[1 + 2 * i].set(yscale="log", xlabel="step")
        axes[1 + 2 * i].set_title(f"layer #{layer}: $\\ell_2$ difference", fontsize="small")
        axes[2 + 2 * i].set(xlabel="step")
        axes[2 + 2 * i].set_title(f"layer #{layer}: cos$(G, G')$", fontsize="small")
    fig.tight_layout()
    return fig


def figure_9(session: Session) -> plt.Figure:
    """Fig. 9: the deep linear network's units before the normalization, over training, per layer."""
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.4))
    for row, run in enumerate(FIG9_RUNS):
        record = session.get(run)
        for col, layer in enumerate(plan.ACTIVATION_LAYERS["dln"]):
            plotting.unit_ridge(record, layer, site="norm_in", ax=axes[row, col])
            title = f"{plotting.label(run.norm)}, layer #{layer}, before the normalization"
            axes[row, col].set_title(title, fontsize="small")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the claims


def vgg_ics(session: Session) -> Finding:
    found = cases(session)
    compared = [case.with_bn for case in found if case.with_bn not in ("cannot tell", "disagree")]
    counts = {outcome: compared.count(outcome) for outcome in ("less", "more", "similar")}
    less, n = counts["less"], len(compared)
    disagree = sum(case.with_bn == "disagree" for case in found)
    by_lr = {lr: [case.with_bn for case in found if case.lr == lr] for lr in dict.fromkeys(c.lr for c in found)}
    per_lr = "; ".join(
        f"lr {lr:g}: {sum(w != 'cannot tell' for w in mine)} of {len(mine)} (layer, phase) cases comparable"
        for lr, mine in by_lr.items()
    )
    text = (
        f"{per_lr}; of the {n} comparable cases where the measures do not disagree, BN has less shift in {less}, more "
        f"in {counts['more']}, similar in {counts['similar']} (the measures disagree in {disagree})"
    )
    if n == 0:
        verdict = Verdict.CANNOT_TELL
    elif less == 0:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.NOT_REPRODUCED if less == n else Verdict.PARTLY
    untrained = [f"{lr:g}" for lr, mine in by_lr.items() if all(w == "cannot tell" for w in mine)]
    summary = (
        f"On VGG, compared phase by phase of training, BatchNorm has less internal covariate shift (by Definition "
        f"2.1's l2 difference or the cosine, the other not saying more) in {less} of {n} cases"
        + (
            f"; at lr {', '.join(untrained)} no phase could be compared (a network never left its plateau)."
            if untrained
            else "."
        )
    )
    return Finding(text, verdict, summary)


def _loss(run: Experiment, session: Session) -> float:
    return float(np.median([session.get(run, seed).final["train_loss"] for seed in session.seeds_of(Read(run, SEEDS))]))


def dln_ics(session: Session) -> Finding:
    cases, lower, parts = [], [], []
    for lr, (std_run, bn_run) in DLN_PAIRS.items():
        std, bn = (
            ics_frame(run, session, SEEDS).groupby("layer")[["l2", "cosine"]].median() for run in (std_run, bn_run)
        )
        found = {int(layer): compare(std.loc[layer], bn.loc[layer]) for layer in std.index}
        cases += list(found.values())
        lower.append(_loss(bn_run, session) < _loss(std_run, session))
        shown = ", ".join(
            f"#{layer} l2 {std.loc[layer, 'l2']:.3g} vs {bn.loc[layer, 'l2']:.3g}, "
            f"cos {std.loc[layer, 'cosine']:.2f} vs {bn.loc[layer, 'cosine']:.2f} ({found[layer]} shift with BN)"
            for layer in std.index
        )
        parts.append(
            f"lr {rate_text(lr)}: standard vs BN {shown}; final loss BN {_loss(bn_run, session):.3g} vs standard "
            f"{_loss(std_run, session):.3g}"
        )
    more = [case == "more" for case in cases]
    verdict = graded([all(more) and all(lower), any(more) and any(lower)])
    summary = (
        f"On the deep linear network BatchNorm has more shift (by one measure, the other not saying less) in "
        f"{sum(more)} of {len(more)} "
        f"(learning rate, layer) cases, and a lower final loss at {sum(lower)} of {len(lower)} learning rates."
    )
    return Finding("; ".join(parts) + " (medians over probed steps and seeds)", verdict, summary)


def _layers(model: str) -> str:
    """The layers the ICS probe measures, in the paper's numbering: '#5 and #10'."""
    return " and ".join(f"#{layer}" for layer in plan.ICS_LAYERS[model])


def _votes() -> str:
    """How each measure votes on a case, in words."""
    return (
        f"The l2 difference says less shift with BN if BN's is at least {L2_FACTOR:g} times smaller, more if at "
        f"least {L2_FACTOR:g} times larger; the cosine says less if BN's is at least {COSINE_GAP:g} higher, more if at "
        f"least {COSINE_GAP:g} lower, and nothing where both cosines lie within {SATURATED:g} of the same +-1; "
        "otherwise a measure says similar."
    )


def _rates(pairs: dict) -> str:
    return " and ".join(rate_text(lr) for lr in pairs)


CLAIMS = {
    "vgg": Claim(
        "On VGG, BatchNorm does not reduce ICS (Definition 2.1)",
        'BN networks have "similar, or even worse, internal covariate shift"; layer #10 cos ~0-0.2 at lr 0.1 '
        '(Fig. 3a, read by eye); "stabilization of BatchNorm faster during training is an artifact of parameter '
        'convergence" (caption)',
        f"layers {_layers('vgg')} at lr {_rates(VGG_PAIRS)}, each network's medians over its probed steps "
        f"(all seeds) in the same phase of training ({', '.join(f'{a:.0%}-{b:.0%}' for a, b in PHASES)} training "
        f"accuracy, once its loss is {PLATEAU_DROP:.0%} below chance, at least {MIN_PROBES} probes each). "
        + _votes()
        + " A case shows less shift if one measure says less and neither says more (more, symmetrically); "
        "reproduced if no comparable case shows less shift with BN, not reproduced if every one does, partly "
        "otherwise; cases where the measures disagree are left out; cannot tell if no case is comparable",
        vgg_ics,
    ),
    "dln": Claim(
        "On the deep linear network, BatchNorm increases ICS, yet reaches a lower loss",
        "the text: the standard network's cos ~1 (almost no ICS), BN's G and G' almost uncorrelated (cos around 0 "
        "or negative), l2 ~1e3 vs ~1e1 at lr 1e-7; in Fig. 3b at lr 1e-6, layer #17, both networks' cos is about -1 "
        "and BN's l2 difference is the larger; final loss ~5e2 (BN) vs ~1.6e3 (standard) at lr 1e-6, ~7e2 vs ~4e3 at "
        "lr 1e-7 (read by eye)",
        f"layers {_layers('dln')} at lr {_rates(DLN_PAIRS)}, medians over probed steps and seeds. "
        + _votes()
        + " A case shows more shift if one measure says more and neither says less; reproduced if every case shows "
        "more shift with BN and its median final loss is lower at both rates; partly if some case does and at "
        "some rate; not reproduced otherwise",
        dln_ics,
    ),
}

CHAPTER = Chapter("03_internal_covariate_shift", "Internal covariate shift", PART_ONE, reads, CLAIMS)
