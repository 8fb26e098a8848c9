"""Chapter 05, l1, l2 and l-infinity normalizations (Section 3.3, Figs. 5, 6, 12 and 13), on VGG and
the deep linear network."""

from __future__ import annotations

import pandas as pd

from bnlib.book import plan
from bnlib.book.chapters.ch01_does_batchnorm_help import BN, FIG1, STD, drift
from bnlib.book.chapters.ch04_landscape import DLN_BN, DLN_STD, landscape_numbers
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import final, loss_text, percent
from bnlib.book.plan import Read
from bnlib.experiments import NORM_SHORT, Experiment

NOTEBOOK = "05_other_normalizations"
TITLE = "Other normalizations"

LP = ("l1", "l2", "linf")
VGG = {"none": STD, "batch": BN, **{p: Experiment("vgg", p, 0.1) for p in LP}}
DLN = {"none": DLN_STD, "batch": DLN_BN, **{p: Experiment("dln", p, 1e-6) for p in LP}}
VGG_READS = {norm: FIG1.get(run, Read(run)) for norm, run in VGG.items()}  # Fig. 1's seeds where it has them
FIG6_LAYER = 11

ACCURACY_MARGIN = 0.05  # "as well as BatchNorm" on VGG: final training accuracy at least BN's minus this
LOSS_FACTOR = 1.2  # ... on the DLN: final loss at most this times BN's
BEATS_FACTOR = 2.0  # "l1 beats BN": its final loss at most BN's divided by this
BETA_FACTOR = 2.0  # "smooth like BN": median effective beta within this factor of BN's


def reads(scale: str) -> list[Read]:
    vgg = [Read(run, (0,), ("activations", "landscape")) for run in VGG.values()]
    dln = [Read(run, (0,), ("landscape",)) for run in DLN.values()]
    return [*VGG_READS.values(), *vgg, *dln]


def lp_table(scale: str) -> pd.DataFrame:
    """Figs. 5, 6, 12 and 13 summarised: final training numbers, the drift of the inputs of VGG's
    layer #11 and the landscape medians, per normalization."""
    rows = []
    for norm, vgg in VGG.items():
        numbers, moved = landscape_numbers(vgg, scale), drift(vgg, scale, FIG6_LAYER)
        rows.append(
            {
                "normalization": NORM_SHORT[norm],
                "VGG training accuracy": percent(VGG_READS[norm], scale, "train_acc"),
                f"VGG #{FIG6_LAYER} input: relative drift of mean": moved["mean"],
                f"VGG #{FIG6_LAYER} input: relative drift of spread": moved["sd"],
                "VGG median gradient change": numbers["gradient change"],
                "VGG median effective beta": numbers["beta median"],
                "DLN final loss": plan.get(DLN[norm], scale).final["train_loss"],
                "DLN median effective beta": landscape_numbers(DLN[norm], scale)["beta median"],
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the claims


def _loss(run: Experiment, scale: str) -> float:
    return plan.get(run, scale).final["train_loss"]


def train_as_well(scale: str) -> Finding:
    bn_acc, bn_loss = final(VGG_READS["batch"], scale, "train_acc")[0], _loss(DLN["batch"], scale)
    checks = [final(VGG_READS[p], scale, "train_acc")[0] >= bn_acc - ACCURACY_MARGIN for p in LP]
    checks += [_loss(DLN[p], scale) <= LOSS_FACTOR * bn_loss for p in LP]
    text = (
        "VGG training accuracy: "
        + ", ".join(f"{NORM_SHORT[n]} {percent(read, scale, 'train_acc')}" for n, read in VGG_READS.items())
        + "; DLN final loss: "
        + ", ".join(f"{NORM_SHORT[n]} {loss_text(Read(run), scale)}" for n, run in DLN.items())
    )
    if all(checks):
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if sum(checks) >= len(checks) / 2 else Verdict.NOT_REPRODUCED
    summary = f"The l_p normalizations train as well as BatchNorm in {sum(checks)} of {len(checks)} comparisons."
    return Finding(text, verdict, summary)


def l1_beats_batchnorm(scale: str) -> Finding:
    l1, bn = _loss(DLN["l1"], scale), _loss(DLN["batch"], scale)
    text = f"final loss: l1 {l1:.3g}, BN {bn:.3g} (ratio {l1 / bn:.2f})"
    if l1 <= bn / BEATS_FACTOR:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if l1 < bn else Verdict.NOT_REPRODUCED
    summary = f"On the deep linear network, l1 normalization ends at {l1 / bn:.2f} times BatchNorm's loss."
    return Finding(text, verdict, summary)


def drift_more(scale: str) -> Finding:
    standard = drift(STD, scale, FIG6_LAYER)
    moved = {p: drift(VGG[p], scale, FIG6_LAYER) for p in LP}
    checks = [m["mean"] > standard["mean"] or m["sd"] > standard["sd"] for m in moved.values()]
    text = f"inputs of layer #{FIG6_LAYER}, median relative drift of the mean and of the spread: " + ", ".join(
        f"{n} {d['mean']:.2g} and {d['sd']:.2g}" for n, d in {"standard": standard, **moved}.items()
    )
    summary = (
        f"The inputs of layer #{FIG6_LAYER} drift more than the standard network's with {sum(checks)} of the "
        f"{len(checks)} l_p normalizations."
    )
    return Finding(text, graded(checks), summary)


def smooth_like_batchnorm(scale: str) -> Finding:
    checks, parts = [], []
    for model, runs in (("VGG", VGG), ("DLN", DLN)):
        betas = {NORM_SHORT[n]: landscape_numbers(run, scale)["beta median"] for n, run in runs.items()}
        checks += [1 / BETA_FACTOR <= betas[p] / betas["bn"] <= BETA_FACTOR for p in LP]
        parts.append(f"{model}: " + ", ".join(f"{n} {b:.3g}" for n, b in betas.items()))
    text = "median effective beta, " + "; ".join(parts)
    if all(checks):
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if sum(checks) >= len(checks) / 2 else Verdict.NOT_REPRODUCED
    summary = (
        f"Their median effective beta is within a factor of {BETA_FACTOR:g} of BatchNorm's in {sum(checks)} of "
        f"{len(checks)} cases."
    )
    return Finding(text, verdict, summary)


CLAIMS = {
    "train_as_well": Claim(
        "l1, l2 and l-infinity normalization train as well as BatchNorm",
        '"all lp normalization strategies perform comparably or even better than BatchNorm", on VGG (Fig. 5a) and '
        "the DLN (Fig. 5b)",
        f"reproduced if every l_p network's final VGG training accuracy is at least BN's minus "
        f"{ACCURACY_MARGIN * 100:.0f} points and its final DLN loss at most {LOSS_FACTOR:g} times BN's; partly if at "
        "least half of these six comparisons hold",
        train_as_well,
    ),
    "l1_beats_batchnorm": Claim(
        "On the DLN, l1 normalization beats BatchNorm",
        '"for deep linear networks, l1-normalization performs even better than BatchNorm": final loss ~1e2 (l1) vs '
        "~5e2 (BN and l2), ~1e3 (l-inf), ~1.6e3 (standard) (read off Fig. 5b by eye)",
        f"reproduced if l1's final loss is at most 1/{BEATS_FACTOR:g} of BN's; partly if it is lower at all; not "
        "reproduced otherwise",
        l1_beats_batchnorm,
    ),
    "drift_more": Claim(
        "Their layer inputs drift more than the standard network's",
        '"the lp-normalization techniques lead to larger distributional covariate shift" than the unnormalized '
        "network (Section 3.3, Fig. 6)",
        f"at the inputs of layer #{FIG6_LAYER}: reproduced if for every l_p the median relative drift of the mean or "
        "of the spread exceeds the standard network's; partly if for some",
        drift_more,
    ),
    "smooth_like_batchnorm": Claim(
        "They smooth the landscape as BatchNorm does",
        '"all these techniques result in an improved smoothness of the landscape that is similar to the effect of '
        'BatchNorm" (Figs. 12, 13)',
        f"reproduced if every l_p network's median effective beta is within a factor of {BETA_FACTOR:g} of BN's, for "
        "VGG and the DLN; partly if at least half of the six are",
        smooth_like_batchnorm,
    ),
}
