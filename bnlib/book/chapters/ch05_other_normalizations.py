"""Chapter 05, l1, l2 and l-infinity normalizations (Section 3.3, Figs. 5, 6, 12 and 13), on VGG and
the deep linear network."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib import records as run_records
from bnlib.book import plotting
from bnlib.book.chapter import PART_ONE, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded, majority
from bnlib.book.measures import (
    BETA_GAP,
    EARLY,
    GAP,
    MIN_BAND_PROBES,
    PHASES,
    QUANTILE,
    TARGET,
    bands,
    comparable,
    deciding,
    drift,
    early_spikes,
    fast,
    phase_text,
    records,
    span,
    speeds,
)
from bnlib.book.plan import Read
from bnlib.book.runs import BN, DLN_BN, DLN_STD, FIG1, STD
from bnlib.book.session import Session
from bnlib.experiments import NORM_SHORT, Experiment
from bnlib.records import Record

LP = ("l1", "l2", "linf")
SEEDS = (0, 1, 2)
VGG = {"none": STD, "batch": BN, **{p: Experiment("vgg", p, 0.1) for p in LP}}
# Each l_p network in three seeds: seed 0 runs the whole scale (Figs. 5, 6, 12), seeds 1 and 2 stop at
# the speed target (all the speed claim reads of them); the standard and BN networks are Fig. 1's.
VGG_SEEDS = {p: {0: VGG[p], 1: fast(VGG[p]), 2: fast(VGG[p])} for p in LP}
FIG6_LAYER = 11
# The VGG landscape of every network in seed 0: the l_p networks' seeds 1 and 2 stop at the speed
# target, before the early window the rules read has ended
VGG_LANDSCAPE_SEEDS = (0,)

COMPARABLE = 1.5  # "comparably" on VGG: each seed reaches TARGET in at most this times BN's median steps
LOSS_COMPARABLE = 2.5  # on the DLN: a final loss at most this times BN's (Fig. 5b calls l-infinity's ~2x comparable)
L1_SEPARATES = 5000  # in Fig. 5b l1 leaves BN and l2 only after about 5k steps (read by eye)
BEATS_FACTOR = 2.0  # "l1 beats BN": its final loss at most BN's divided by this
MORE_SHIFT = 2.0  # "larger covariate shift": a drift at least this times the standard network's


def dln_runs(scale: str) -> dict[str, Experiment]:
    """The deep linear networks by normalization, at Fig. 5b's length (the paper's 10,000 steps): l1
    leaves BN only after about L1_SEPARATES steps, and a DLN run costs a minute or two at the cpu
    scale. The smoke scale keeps its own steps."""
    runs = {"none": DLN_STD, "batch": DLN_BN, **{p: Experiment("dln", p, 1e-6) for p in LP}}
    if scale == "smoke":
        return runs
    return {norm: run.but(steps=run.config("paper").steps) for norm, run in runs.items()}


def reads(session: Session) -> list[Read]:
    vgg = [Read(run, (0,), ("activations", "landscape")) for run in VGG.values()]
    fast_seeds = [Read(run, (seed,)) for p in LP for seed, run in VGG_SEEDS[p].items() if seed]
    dln = [Read(run, SEEDS, ("landscape",)) for run in dln_runs(session.scale).values()]
    return [FIG1[STD], FIG1[BN], Read(STD, SEEDS, ("activations", "landscape")), *vgg, *fast_seeds, *dln]


def vgg_records(norm: str, session: Session) -> list[Record]:
    """A VGG network's records in every seed (Fig. 1's for the standard and BN networks)."""
    if norm in LP:
        return [
            session.get(run, seed)
            for seed, run in VGG_SEEDS[norm].items()
            if seed in session.seeds_of(Read(STD, SEEDS))
        ]
    return records(FIG1[VGG[norm]], session)


def dln_losses(norm: str, session: Session) -> list[float]:
    run = dln_runs(session.scale)[norm]
    return [session.get(run, seed).final["train_loss"] for seed in session.seeds_of(Read(run, SEEDS))]


def lp_table(session: Session) -> pd.DataFrame:
    """Figs. 5, 6, 12 and 13 summarised: steps to TARGET (every seed) and final training accuracy,
    the drift of VGG's layer #11 pre-activations (seed 0, from 20% training accuracy to the highest
    bound of PHASES every network reaches), and the DLN's early effective beta and final loss."""
    rows = []
    top = span([session.get(run) for run in VGG.values()])
    for norm, vgg in VGG.items():
        moved = drift(vgg, session, FIG6_LAYER, top) if top else dict.fromkeys(("mean", "sd"), np.nan)
        rows.append(
            {
                "normalization": NORM_SHORT[norm],
                f"VGG steps to {TARGET:.0%}": speeds(vgg_records(norm, session)).text(),
                "VGG final training accuracy (seed 0)": session.get(vgg).final["train_acc"],
                f"VGG #{FIG6_LAYER} drift of the mean": moved["mean"],
                f"VGG #{FIG6_LAYER} drift of the spread": moved["sd"],
                "DLN final loss (median)": float(np.median(dln_losses(norm, session))),
                "DLN early effective beta (q90)": float(
                    np.median(early_spikes(dln_runs(session.scale)[norm], session, "beta"))
                ),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the figures


def _seed_zero(session: Session, runs: dict[str, Experiment]) -> list[Record]:
    return [session.get(run) for run in runs.values()]


def figure_5(session: Session) -> plt.Figure:
    """Fig. 5: the VGG's training accuracy at lr 0.1 and the deep linear network's training loss at
    lr 1e-6, with each normalization (seed 0)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    vgg, dln = _seed_zero(session, VGG), _seed_zero(session, dln_runs(session.scale))
    plotting.curves(plotting.smooth(run_records.frame(vgg), window=25), "train_acc", ax=axes[0])
    plotting.curves(plotting.smooth(run_records.frame(dln), window=25), "train_loss", ax=axes[1])
    axes[0].set(title="VGG, lr 0.1: training accuracy")
    axes[1].set(title="deep linear network, lr 1e-6: training loss", yscale="log")
    fig.tight_layout()
    return fig


def figure_6(session: Session) -> plt.Figure:
    """Fig. 6: one unit of layer FIG6_LAYER over training, with each normalization (seed 0)."""
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.4))
    for ax, record in zip(axes, _seed_zero(session, VGG), strict=True):
        plotting.unit_ridge(record, FIG6_LAYER, ax=ax)
        ax.set_title(plotting.label(record.config.norm), fontsize="small")
    fig.tight_layout()
    return fig


def landscape_figure(session: Session, model: str) -> plt.Figure:
    """Figs. 12 and 13 (the landscape): "vgg" or "dln", with each normalization (seed 0)."""
    if model == "vgg":
        return plotting.landscape(_seed_zero(session, VGG))
    return plotting.landscape(_seed_zero(session, dln_runs(session.scale)), log_all=True)


# ----------------------------------------------------------------------------- the claims


def train_as_well(session: Session) -> Finding:
    bn = speeds(vgg_records("batch", session))
    verdicts, parts = [], []
    for p in LP:
        lp = speeds(vgg_records(p, session))
        verdicts.append(comparable(lp, bn, COMPARABLE))
        parts.append(f"{p} {lp.text()}")
    bn_loss = float(np.median(dln_losses("batch", session)))
    losses = {p: float(np.median(dln_losses(p, session))) for p in LP}
    checks = [v == Verdict.REPRODUCED for v in verdicts] + [losses[p] <= LOSS_COMPARABLE * bn_loss for p in LP]
    text = (
        f"VGG steps to {TARGET:.0%}: BN {bn.text()}, "
        + ", ".join(parts)
        + f"; DLN median final loss: BN {bn_loss:.3g}, "
        + ", ".join(f"{p} {v:.3g}" for p, v in losses.items())
    )
    verdict = Verdict.CANNOT_TELL if Verdict.CANNOT_TELL in verdicts else majority(checks)
    summary = (
        f"The l_p normalizations train about as fast or as far as BatchNorm in {sum(checks)} of {len(checks)} "
        "comparisons."
    )
    return Finding(text, verdict, summary)


def l1_beats_batchnorm(session: Session) -> Finding:
    l1, bn = (float(np.median(dln_losses(n, session))) for n in ("l1", "batch"))
    steps = session.config(dln_runs(session.scale)["batch"]).steps
    text = f"median final loss after {steps:,} steps: l1 {l1:.3g}, BN {bn:.3g} (ratio {l1 / bn:.2f})"
    if steps < L1_SEPARATES:
        verdict = Verdict.CANNOT_TELL
        summary = (
            f"On the deep linear network l1 normalization ends at {l1 / bn:.2f} times BatchNorm's loss after {steps:,} "
            f"steps; in the paper the two separate only after about {L1_SEPARATES:,}."
        )
    else:
        verdict = graded([l1 <= bn / BEATS_FACTOR, l1 < bn])
        summary = f"On the deep linear network l1 normalization ends at {l1 / bn:.2f} times BatchNorm's loss."
    return Finding(text, verdict, summary)


def drift_more(session: Session) -> Finding:
    seeds = session.seeds_of(Read(STD, SEEDS))
    standard = [session.get(STD, s) for s in seeds]
    checks, parts, undecided = [], [], []
    for p in LP:  # each l_p against the standard network over the same stretch of training
        top = span([*standard, session.get(VGG[p])])
        if top is None:
            undecided.append(p)
            continue
        std = {m: float(np.median([drift(STD, session, FIG6_LAYER, top, s)[m] for s in seeds])) for m in ("mean", "sd")}
        moved = drift(VGG[p], session, FIG6_LAYER, top)
        checks.append(max(moved["mean"] / std["mean"], moved["sd"] / std["sd"]) >= MORE_SHIFT)
        parts.append(
            f"{p} {moved['mean']:.2g} and {moved['sd']:.2g} against the standard network's {std['mean']:.2g} and "
            f"{std['sd']:.2g} (median over {len(seeds)} seeds), up to {top:.0%}"
        )
    text = (
        f"pre-activations of layer #{FIG6_LAYER}, drift of the mean and of the spread over each network's own steps "
        f"from {PHASES[0][0]:.0%} training accuracy (off the plateau) up to the highest bound both reach, in units of "
        "the typical spread: "
        + "; ".join(parts)
        + (f"; {', '.join(undecided)}: no shared stretch" if undecided else "")
    )
    summary = (
        f"Over the same stretch of training the pre-activations of layer #{FIG6_LAYER} drift at least "
        f"{MORE_SHIFT:g} times as much as the standard network's with {sum(checks)} of the {len(checks)} l_p "
        "normalizations compared."
    )
    verdict = Verdict.CANNOT_TELL if not checks else graded(checks)
    return Finding(text, verdict, summary)


def smooth_like_batchnorm(session: Session) -> Finding:
    checks, parts, undecided = [], [], []
    dln = dln_runs(session.scale)
    for quantity, gap in (("band", GAP), ("grad", GAP), ("beta", BETA_GAP)):
        vgg = {}
        for p in LP:  # VGG in matched phases of training: the standard network's seeds against the l_p's seed 0
            decided = deciding(bands(Read(STD, SEEDS), Read(VGG[p], VGG_LANDSCAPE_SEEDS), session, quantity))
            if decided is None:
                undecided.append(f"VGG {quantity} {p}")
                vgg[p] = "cannot tell"
                continue
            checks.append(decided.ratio >= gap)
            vgg[p] = f"x{decided.ratio:.3g} at {phase_text(decided.phase)}"
        std = float(np.median(early_spikes(dln["none"], session, quantity)))
        ratios = {p: std / float(np.median(early_spikes(dln[p], session, quantity))) for p in LP}
        checks += [r >= gap for r in ratios.values()]
        parts.append(f"VGG {quantity}: " + ", ".join(f"{p} {v}" for p, v in vgg.items()))
        parts.append(f"DLN {quantity}: " + ", ".join(f"{p} x{r:.3g}" for p, r in ratios.items()))
    text = (
        f"the standard network's {QUANTILE:.0%} quantile over each l_p's (loss band, gradient change, effective "
        "beta; VGG in the earliest phase of training both can be compared in, the DLN over its first "
        f"{EARLY:.0%}): " + "; ".join(parts)
    )
    summary = (
        f"By the three landscape probes, the l_p networks are smoother than the standard network in {sum(checks)} "
        f"of the {len(checks)} comparisons that could be made"
        + (f" ({len(undecided)} on VGG could not: too few probes in every phase)." if undecided else ".")
    )
    verdict = Verdict.CANNOT_TELL if len(undecided) == 3 * len(LP) else majority(checks)
    return Finding(text, verdict, summary)


CLAIMS = {
    "train_as_well": Claim(
        "l1, l2 and l-infinity normalization train as well as BatchNorm",
        '"all lp normalization strategies perform comparably or even better than BatchNorm", on VGG (Fig. 5a) and '
        "the DLN (Fig. 5b, where l-infinity ends at about twice BN's loss)",
        f"VGG: every seed of each l_p reaches {TARGET:.0%} training accuracy in at most {COMPARABLE:g} times BN's "
        f"median steps; DLN: each l_p's median final loss at most {LOSS_COMPARABLE:g} times BN's; reproduced if all "
        "six comparisons hold, partly if at least half, not reproduced otherwise; cannot tell if BN's speed is "
        "censored",
        train_as_well,
    ),
    "l1_beats_batchnorm": Claim(
        "On the DLN, l1 normalization beats BatchNorm",
        '"for deep linear networks, l1-normalization performs even better than BatchNorm": final loss ~1e2 (l1) vs '
        "~5e2 (BN and l2), ~1e3 (l-inf), ~1.6e3 (standard); l1 separates from BN after about 5k of its 10k steps "
        "(read off Fig. 5b by eye)",
        f"cannot tell if the DLN runs stop before {L1_SEPARATES:,} steps; else reproduced if l1's median final loss "
        f"is at most 1/{BEATS_FACTOR:g} of BN's, partly if it is lower at all, not reproduced otherwise",
        l1_beats_batchnorm,
    ),
    "drift_more": Claim(
        "Their layer inputs drift more than the standard network's",
        '"the lp-normalization techniques lead to larger distributional covariate shift" than the unnormalized '
        "network (Section 3.3, Fig. 6, histograms of pre-activations)",
        f"pre-activations of layer #{FIG6_LAYER}, each network's drift over its own steps from {PHASES[0][0]:.0%} "
        f"training accuracy (off the plateau) up to the highest of {', '.join(f'{h:.0%}' for _, h in PHASES)} that "
        "the standard network's seeds and the l_p's seed 0 all reach, in units of the unit's typical spread there: "
        f"reproduced if for every l_p the drift of the mean or of the spread is at least {MORE_SHIFT:g} times the "
        "standard network's (its median over seeds); partly if for some; not reproduced if for none; an l_p that "
        "shares no such stretch with it is left out, and cannot tell if none does",
        drift_more,
    ),
    "smooth_like_batchnorm": Claim(
        "They smooth the landscape as BatchNorm does",
        '"networks with any normalization strategy have improved performance and smoothness of the loss landscape '
        'over standard training" (Figs. 12, 13)',
        f"each l_p against the standard network, by the three probes of chapter 04 (their {QUANTILE:.0%} quantile; "
        f"the standard's at least {GAP:g} times, {BETA_GAP:g} for the effective beta): on VGG in the earliest phase "
        f"of training ({', '.join(phase_text(p) for p in PHASES)} training accuracy, off the plateau) where both have "
        f"at least {MIN_BAND_PROBES} probed steps (the standard network's three seeds, the l_p's seed 0: its other "
        f"seeds stop at the speed target), on the DLN over the first {EARLY:.0%} of training (every seed). "
        "Reproduced if every comparison made holds, partly if at least half, not reproduced otherwise; a VGG "
        "comparison without such a phase is left out, and if none of VGG's can be made, cannot tell",
        smooth_like_batchnorm,
    ),
}

CHAPTER = Chapter("05_other_normalizations", "Other normalizations", PART_ONE, reads, CLAIMS)
