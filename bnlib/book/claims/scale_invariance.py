"""Chapter 08, scale invariance and the effective learning rate (van Laarhoven, 2017; Arora et al.,
2019; Hoffer et al., 2018)."""

from __future__ import annotations

import functools

from bnlib.book.beyond import scale_invariance as si
from bnlib.book.claims.claim import Claim, Finding, Verdict, graded

CHAPTER = "Scale invariance and the effective learning rate"
EXPLANATION = "Scale invariance tunes the effective learning rate"
IDENTITY_TOLERANCE = 0.01  # the identity "holds" at a layer if its median relative error is at most 1%


@functools.cache
def _identity(scale: str):
    return si.identity_table(si.growth(scale))


@functools.cache
def _sweep(scale: str):
    return si.sweep_table(scale)


def identity(scale: str) -> Finding:
    table = _identity(scale)
    bn = table[table["feeds a BatchNorm"]]
    std_hidden = table[(table["network"] != bn["network"].iloc[0]) & (table["layer"] < table["layer"].max())]
    holds = bn["median relative error"] <= IDENTITY_TOLERANCE
    text = (
        f"median relative error of ||W_t+1||^2 - ||W_t||^2 = eta^2 ||g||^2 over the probed steps: BN's "
        f"{len(bn)} BN-fed layers {bn['median relative error'].min():.1e} to {bn['median relative error'].max():.1e}; "
        f"the standard network's layers {std_hidden['median relative error'].min():.1e} to "
        f"{std_hidden['median relative error'].max():.1e}"
    )
    return Finding(text, graded(list(holds)))


def norms_grow(scale: str) -> Finding:
    bn = _identity(scale)
    bn = bn[bn["feeds a BatchNorm"]]
    grew = bn["||W|| last"] > bn["||W|| first"]
    factors = bn["||W|| last"] / bn["||W|| first"]
    text = (
        f"BN's BN-fed layers: ||W|| grew at {int(grew.sum())} of {len(bn)}, by factors {factors.min():.3g} to "
        f"{factors.max():.3g}, so eta / ||W||^2 fell by {factors.min() ** 2:.3g} to {factors.max() ** 2:.3g}"
    )
    if grew.all():
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if grew.mean() >= 0.5 else Verdict.NOT_REPRODUCED)


def robust(scale: str) -> Finding:
    frame = _sweep(scale)
    bn, std = frame[frame["norm"] == "batch"], frame[frame["norm"] == "none"]
    top = max(si.WEIGHT_RATES)
    std_top = std[std["rate of the weights"] == top].iloc[0]
    losses = ", ".join(
        f"{rate:g}: {'diverged' if gone else format(loss, '.2f')}"
        for rate, gone, loss in zip(bn["rate of the weights"], bn["diverged"], bn["training loss"], strict=True)
    )
    std_end = "diverges" if std_top["diverged"] else f"ends at training accuracy {std_top['training accuracy']:.0%}"
    text = (
        f"BN trains at {int(bn['trains'].sum())} of {len(bn)} rates of the weights (final training loss {losses}); "
        f"the standard network at {top:g} {std_end}"
    )
    if bn["trains"].all() and not std_top["trains"]:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if bn["trains"].sum() >= 3 else Verdict.NOT_REPRODUCED)


CLAIMS = [
    Claim(
        "Plain SGD grows the weights that feed a BatchNorm by exactly eta^2 ||g||^2 in squared norm per step",
        "van Laarhoven (2017), Arora et al. (2019): such weights are scale-invariant, so the gradient is orthogonal "
        "to them and ||W_t+1||^2 = ||W_t||^2 + eta^2 ||g_t||^2",
        f"on Part I's BatchNorm run at lr 0.1: reproduced if the identity holds within {IDENTITY_TOLERANCE:.0%} "
        "(median over the probed steps) at every layer that feeds a BatchNorm; partly if at some; not reproduced "
        "if at none",
        identity,
    ),
    Claim(
        "So the norms grow and the effective rate eta / ||W||^2 falls during training",
        "Arora et al. (2019): the growth of ||W|| tunes the effective rate down automatically ('auto rate-tuning')",
        "reproduced if ||W|| grew from the first to the last probe at every layer that feeds a BatchNorm; partly "
        "if at least at half of them; not reproduced otherwise",
        norms_grow,
    ),
    Claim(
        "With BatchNorm, the rate of those weights hardly matters; without it, large rates diverge",
        "Arora et al. (2019): gradient descent converges for any fixed rate of the scale-invariant weights; only "
        "the other parameters' rate needs tuning",
        "the hidden layers' weights at rates 0.01 to 100 (everything else at 0.1), same steps as chapter 07: "
        "reproduced if BN trains at all five rates and the standard network does not train at 100; partly if BN "
        "trains at three or more; not reproduced otherwise",
        robust,
    ),
]


def findings(scale: str) -> str:
    identity_found, grow, sweep = (claim.finding(scale) for claim in CLAIMS)
    sentences = [f"**What we find at the {scale} scale.**"]
    sentences.append(
        {
            Verdict.REPRODUCED: "On a real run, the weights that feed a BatchNorm grow exactly as scale invariance "
            "says, to within rounding and BatchNorm's epsilon, while the standard network's do not follow the "
            "identity.",
            Verdict.PARTLY: "The identity holds at some of the layers that feed a BatchNorm and not at others "
            "(see the table).",
            Verdict.NOT_REPRODUCED: "The identity does not hold on our run (see the table).",
        }[identity_found.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "Every such layer's norm grows, so its effective learning rate falls during training "
            "without anyone scheduling it.",
            Verdict.PARTLY: "Most such layers' norms grow, and their effective rates fall.",
            Verdict.NOT_REPRODUCED: "The norms do not grow as predicted here.",
        }[grow.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "And the consequence holds: over four orders of magnitude of the weights' nominal "
            "rate, BatchNorm trains every time, while the standard network fails at the top.",
            Verdict.PARTLY: "The consequence holds in part: BatchNorm trains at most of the nominal rates, not all "
            "(or the standard network survives the largest).",
            Verdict.NOT_REPRODUCED: "The consequence does not hold here: BatchNorm fails at most of the nominal rates.",
        }[sweep.verdict]
    )
    sentences.append(_other_parameters(scale))
    return " ".join(sentences)


def _other_parameters(scale: str) -> str:
    """What giving the large rate to every parameter, not only the invariant ones, did."""
    table = si.all_parameters_table(scale)
    parts = []
    for rate, mine in table.groupby("rate"):
        outcome = {
            which: "diverged" if gone else f"trained to {acc:.0%} training accuracy" if acc >= si.TRAINS else "stalled"
            for which, gone, acc in zip(mine["at that rate"], mine["diverged"], mine["training accuracy"], strict=True)
        }
        parts.append(
            f"at rate {rate:g}, BatchNorm {outcome['every parameter']} with every parameter at it, and "
            f"{outcome['hidden weights only']} with only the invariant weights"
        )
    return "With the non-invariant parameters at the large rate too: " + "; ".join(parts) + "."
