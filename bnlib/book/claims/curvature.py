"""Chapter 09, frozen or active BatchNorm, and the edge of stability (Ghorbani et al., 2019; Cohen
et al., 2021)."""

from __future__ import annotations

import functools
import itertools

from bnlib.book.beyond import curvature
from bnlib.book.claims.claim import Claim, Finding, Verdict, graded

CHAPTER = "Frozen or active BatchNorm, and the edge of stability"
EXPLANATION = "The gradient through the batch statistics removes curvature; the step size sets the curvature"
EDGE = 0.9  # a run "reaches the edge" if its top eigenvalue reaches 90% of 2 / eta after the start


@functools.cache
def _frozen(scale: str):
    return curvature.frozen_table(scale)


@functools.cache
def _eos(scale: str):
    return curvature.eos_table(scale)


def active_below_frozen(scale: str) -> Finding:
    frame = _frozen(scale)
    below = frame["BatchNorm active"] < frame["BatchNorm frozen"]
    text = (
        f"top Hessian eigenvalue at {len(frame)} probed steps of BN's run at lr 0.1: active below frozen at "
        f"{int(below.sum())}; frozen / active from {frame['frozen / active'].min():.3g} to "
        f"{frame['frozen / active'].max():.3g}; the standard network at its own weights "
        f"{frame['standard'].min():.3g} to {frame['standard'].max():.3g}"
    )
    return Finding(text, graded(list(below)))


def edge_of_stability(scale: str) -> Finding:
    frame = _eos(scale)
    trained = frame[~frame["diverged"]]
    parts = [
        f"{network} eta {lr:g}: " + ("diverged" if gone else f"largest {largest:.2f}, end {end:.2f}")
        for network, lr, gone, largest, end in zip(
            frame["network"], frame["step size"], frame["diverged"], frame["largest"], frame["end"], strict=True
        )
    ]
    text = "top eigenvalue as a fraction of 2 / eta after the start of full-batch GD: " + "; ".join(parts)
    if trained.empty:
        return Finding(text, Verdict.CANNOT_TELL)
    return Finding(text, graded(list(trained["largest"] >= EDGE)))


def follows_step_size(scale: str) -> Finding:
    frame = _eos(scale)
    checks, parts = [], []
    for _, mine in frame.groupby("norm", sort=False):
        mine = mine.sort_values("step size")
        trained = mine[~mine["diverged"]]
        ends = (trained["end"] * trained["2 / eta"]).tolist()
        if len(ends) >= 2:
            checks.append(all(b < a for a, b in itertools.pairwise(ends)))
        described = [
            f"eta {lr:g} -> {'diverged' if gone else format(end * edge, '.3g')}"
            for lr, gone, end, edge in zip(
                mine["step size"], mine["diverged"], mine["end"], mine["2 / eta"], strict=True
            )
        ]
        parts.append(f"{mine['network'].iloc[0]}: " + ", ".join(described))
    text = "top eigenvalue at the end of full-batch GD: " + "; ".join(parts)
    if not checks:
        return Finding(text, Verdict.CANNOT_TELL)
    return Finding(text, graded(checks))


CLAIMS = [
    Claim(
        "Differentiating through the batch statistics lowers the top of the Hessian: BatchNorm active is smoother "
        "than the same network with its statistics frozen",
        "Ghorbani et al. (2019): with BatchNorm the large outlier eigenvalues of the Hessian disappear; they return "
        "when the network is evaluated with fixed (population) statistics",
        "at every probed step of BN's run at lr 0.1, on the step's batch: reproduced if the top eigenvalue with "
        "BN active is below that with BN frozen at every step; partly at some; not reproduced at none",
        active_below_frozen,
    ),
    Claim(
        "Under full-batch gradient descent the top eigenvalue rises to about 2 / eta, with or without BatchNorm",
        "Cohen et al. (2021): the sharpness rises ('progressive sharpening') until it reaches 2 / eta and then "
        "hovers there ('edge of stability'); their BatchNorm networks do it too",
        f"over the runs that do not diverge: reproduced if in every one the top eigenvalue reaches at least "
        f"{EDGE:.0%} of 2 / eta after the start; partly if in some; not reproduced in none",
        edge_of_stability,
    ),
    Claim(
        "So the curvature along the trajectory follows the step size: a larger step ends flatter",
        "Cohen et al. (2021): the sharpness gradient descent ends at is set by 2 / eta, not by the architecture",
        "over the step sizes at which a network trains without diverging: reproduced if in every network that "
        "trains at two or more the top eigenvalue at the end is lower at each larger step size; partly if in some; "
        "not reproduced in none; cannot tell if no network trains at two",
        follows_step_size,
    ),
]


def findings(scale: str) -> str:
    frozen, edge, follows = (claim.finding(scale) for claim in CLAIMS)
    sentences = [f"**What we find at the {scale} scale.**"]
    sentences.append(
        {
            Verdict.REPRODUCED: "At the same weights and batch, letting the gradient flow through the batch "
            "statistics lowers the top of the Hessian at every step we probed: part of BatchNorm's smoothing is a "
            "property of the normalization itself, not of where training went.",
            Verdict.PARTLY: "At the same weights, the active BatchNorm is smoother than the frozen one at some "
            "probed steps and not at others.",
            Verdict.NOT_REPRODUCED: "At the same weights, freezing the statistics does not raise the top of the "
            "Hessian here.",
        }[frozen.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "Under full-batch gradient descent both networks' sharpness reaches about 2 / eta, "
            "with or without BatchNorm.",
            Verdict.PARTLY: "Under full-batch gradient descent some runs reach the edge of stability and others "
            "stay below it (see the table).",
            Verdict.NOT_REPRODUCED: "Under full-batch gradient descent no run reaches 2 / eta here.",
            Verdict.CANNOT_TELL: "Every full-batch run diverged here.",
        }[edge.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "And a larger step ends flatter in both networks: along the trajectory, the "
            "curvature follows the step size.",
            Verdict.PARTLY: "A larger step ends flatter in some networks only.",
            Verdict.NOT_REPRODUCED: "A larger step does not end flatter here.",
            Verdict.CANNOT_TELL: "No network trains at two step sizes here, so whether a larger step ends flatter "
            "cannot be told.",
        }[follows.verdict]
    )
    return " ".join(sentences)
