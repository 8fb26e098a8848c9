"""Chapter 10, at initialisation (Daneshmand et al., 2020; Yang et al., 2019; Brock et al., 2021)."""

from __future__ import annotations

import functools
import math

from bnlib.book.beyond import initialisation as init
from bnlib.book.claims.claim import Claim, Finding, Verdict, graded
from bnlib.experiments import check_scale

CHAPTER = "At initialisation"
EXPLANATION = "BatchNorm avoids rank collapse at initialisation (and makes gradients explode)"
YANG_FACTOR = math.sqrt(math.pi / (math.pi - 1))  # ~1.21: BN-ReLU MLP's gradient growth per layer (mean field)
GROWS = 1.1  # a fitted per-layer growth factor this large is "explosion"
MEAN_SHIFT = 10.0  # the standard network's mean^2 / variance must rise this much from first to last layer


@functools.cache
def _signal(scale: str):
    return init.signal_table(scale)


def _deepest(scale: str) -> int:
    return max(init.MLP_DEPTHS[check_scale(scale)])


def rank_collapse(scale: str) -> Finding:
    last = init.last_hidden(_signal(scale))
    mlp = last[last["family"] == "MLP"].set_index(["depth", "norm"])
    deep = [d for d in init.MLP_DEPTHS[scale] if d >= 10] or list(init.MLP_DEPTHS[scale])
    higher = all(mlp.loc[(d, "none"), "mean cosine"] > mlp.loc[(d, "batch"), "mean cosine"] for d in deep)
    d = _deepest(scale)
    std, bn = mlp.loc[(d, "none")], mlp.loc[(d, "batch")]
    text = (
        f"last hidden layer of the {d}-layer MLP at initialisation: mean pairwise cosine standard "
        f"{std['mean cosine']:.3f}, BN {bn['mean cosine']:.3f}; stable rank standard {std['stable rank']:.2f}, "
        f"BN {bn['stable rank']:.2f}; the standard network more collinear than BN at every depth from "
        f"{deep[0]}: {'yes' if higher else 'no'}"
    )
    collapsed = std["mean cosine"] >= init.COLLAPSED and bn["mean cosine"] < init.COLLAPSED
    if higher and collapsed:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if higher or collapsed else Verdict.NOT_REPRODUCED)


def gradient_explosion(scale: str) -> Finding:
    d = _deepest(scale)
    bn, std = (init.gradient_growth(_signal(scale), "MLP", d, norm) for norm in ("batch", "none"))
    text = (
        f"growth of the weight gradient's norm per layer toward the input, fitted over the {d}-layer MLP: "
        f"BN {bn:.3f}, standard {std:.3f} (mean-field theory for BN: {YANG_FACTOR:.3f})"
    )
    if bn >= GROWS and std < GROWS:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if bn >= GROWS else Verdict.NOT_REPRODUCED)


def mean_shift(scale: str) -> Finding:
    frame = _signal(scale)
    checks, parts = [], []
    for family, depths in (("MLP", init.MLP_DEPTHS[scale]), ("VGG", init.VGG_DEPTHS)):
        d = max(depths)
        rises = {}
        for norm in init.NETWORKS:
            mine = frame[(frame["family"] == family) & (frame["depth"] == d) & (frame["norm"] == norm)]
            hidden = mine[mine["layer"] < mine["layer"].max()]["mean^2 / variance"]
            rises[norm] = hidden.iloc[-1] / hidden.iloc[0]
        checks.append(rises["none"] >= MEAN_SHIFT and rises["batch"] < MEAN_SHIFT)
        parts.append(f"{family}-{d}: standard x{rises['none']:.3g}, BN x{rises['batch']:.3g}")
    text = "squared channel mean over channel variance, last hidden layer against the first: " + "; ".join(parts)
    return Finding(text, graded(checks))


def predicts_training(scale: str) -> Finding:
    table = init.trainability(scale, _signal(scale))
    collapsed, healthy = table[table["collapsed at init"]], table[~table["collapsed at init"]]
    text = (
        f"{len(collapsed)} of {len(table)} MLPs collapsed at initialisation (mean cosine >= {init.COLLAPSED}); "
        f"of them {int((~collapsed['trains']).sum())} fail to train; of the others {int(healthy['trains'].sum())} "
        f"of {len(healthy)} train (best of lr {', '.join(f'{r:g}' for r in init.TRAIN_RATES)})"
    )
    if collapsed.empty:
        return Finding(text, Verdict.CANNOT_TELL)
    checks = [not collapsed["trains"].any(), bool(healthy["trains"].all())]
    return Finding(text, graded(checks))


CLAIMS = [
    Claim(
        "Without BatchNorm, deep ReLU networks map a batch to nearly collinear representations at initialisation; "
        "with it they do not",
        "Daneshmand et al. (2020): BatchNorm provably keeps the rank of the representations high at any depth "
        "(linear networks; seen for ReLU), where unnormalized networks' rank collapses",
        f"reproduced if at every MLP depth from 10 the standard network's last hidden layer has a higher mean "
        f"cosine than BN's, and at the deepest it is at least {init.COLLAPSED} while BN's is below; partly if one "
        "of the two holds; not reproduced otherwise",
        rank_collapse,
    ),
    Claim(
        "But BatchNorm makes the gradient explode with depth at initialisation",
        f"Yang et al. (2019): in BatchNorm ReLU MLPs the gradient grows by a constant factor per layer toward the "
        f"input (about {YANG_FACTOR:.2f} in norm), which no initialisation removes",
        f"on the deepest MLP: reproduced if BN's fitted per-layer growth is at least {GROWS} and the standard "
        "network's is not; partly if both are; not reproduced if BN's is not",
        gradient_explosion,
    ),
    Claim(
        "Without normalization the channel means drift with depth, toward a constant function",
        "Brock et al. (2021): in unnormalized networks the squared channel means grow with depth relative to the "
        "variance; BatchNorm removes this mean shift",
        f"on the deepest MLP and VGG: reproduced if in both the standard network's mean^2 / variance rises at least "
        f"{MEAN_SHIFT:g}-fold from its first to its last hidden layer while BN's does not; partly if in one",
        mean_shift,
    ),
    Claim(
        "Rank collapse at initialisation predicts which networks fail to train",
        "Daneshmand et al. (2020): networks whose representations collapse at initialisation train slowly or not "
        "at all; restoring the rank makes them trainable",
        f"short runs of the MLPs (best of two rates): reproduced if every collapsed network fails to train (final "
        f"training accuracy below {init.TRAINS:.0%}) and every other one trains; partly if one of the two holds; "
        "cannot tell if none collapsed",
        predicts_training,
    ),
]


def findings(scale: str) -> str:
    rank, explode, shift, predicts = (claim.finding(scale) for claim in CLAIMS)
    sentences = [f"**What we find at the {scale} scale.**"]
    sentences.append(
        {
            Verdict.REPRODUCED: "At initialisation the deep standard networks collapse a batch toward one direction "
            "while BatchNorm keeps the representations apart.",
            Verdict.PARTLY: "BatchNorm keeps the representations less collinear than the standard network, but "
            "the collapse is not as complete as the rule asks (see the table).",
            Verdict.NOT_REPRODUCED: "We do not see the standard networks collapse relative to BatchNorm here.",
        }[rank.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "The same BatchNorm networks have exploding gradients at initialisation, as the "
            "mean-field theory predicts: at initialisation BatchNorm makes the landscape rougher, not smoother.",
            Verdict.PARTLY: "BatchNorm's gradients grow with depth at initialisation, but so do the standard "
            "network's.",
            Verdict.NOT_REPRODUCED: "BatchNorm's gradients do not explode with depth here.",
        }[explode.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "Without normalization the channel means drift with depth in both families; "
            "BatchNorm removes the drift.",
            Verdict.PARTLY: "The mean shift shows in one family and not the other.",
            Verdict.NOT_REPRODUCED: "We do not see the mean shift here.",
        }[shift.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "And the state at initialisation predicts training: the collapsed networks fail, the "
            "others train.",
            Verdict.PARTLY: "The state at initialisation predicts training only in part (see the table).",
            Verdict.NOT_REPRODUCED: "The state at initialisation does not predict which networks train here.",
            Verdict.CANNOT_TELL: "No network collapsed, so the prediction cannot be tested at this scale.",
        }[predicts.verdict]
    )
    return " ".join(sentences)
