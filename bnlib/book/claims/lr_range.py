"""Chapter 07, a wider range of learning rates (Bjorck et al., 2018)."""

from __future__ import annotations

import functools

import numpy as np

from bnlib.book.beyond import lr_range
from bnlib.book.claims.claim import Claim, Finding, Verdict

CHAPTER = "A wider range of learning rates"
EXPLANATION = "BatchNorm allows larger learning rates"


@functools.cache
def _table(scale: str):
    return lr_range.table(scale)


def _rate(rate: float | None) -> str:
    return "none" if rate is None else f"{rate:g}"


def larger_rates(scale: str) -> Finding:
    frame = _table(scale)
    bn, std = (lr_range.largest_training_rate(frame, norm) for norm in ("batch", "none"))
    text = (
        f"largest rate that trains (final training accuracy at least {lr_range.TRAINS:.0%}) after "
        f"{lr_range.sweep_steps(scale):,} steps: BN {_rate(bn)}, standard {_rate(std)}"
    )
    if bn is None:
        return Finding(text, Verdict.NOT_REPRODUCED)
    if std is None or bn >= 3 * std:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if bn > std else Verdict.NOT_REPRODUCED)


def matched_rate(scale: str) -> Finding:
    m = lr_range.matched(_table(scale))
    overall, matched = m["bn_best"] - m["standard"], m["bn_matched"] - m["standard"]
    text = (
        f"test accuracy at the standard network's best rate ({m['rate']:g}): standard {m['standard']:.0%}, "
        f"BN {m['bn_matched']:.0%}; BN at its own best rate ({m['bn_rate']:g}) {m['bn_best']:.0%}: "
        f"{matched * 100:+.0f} of BN's {overall * 100:+.0f} points remain at the matched rate"
    )
    if overall <= 0.01:
        return Finding(text, Verdict.CANNOT_TELL)
    if matched <= overall / 2:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if matched < overall else Verdict.NOT_REPRODUCED)


@functools.cache
def _one_step(scale: str):
    return lr_range.one_step(scale)


def _ratio(frame, norm: str, layer: str) -> float:
    mine = frame[(frame["norm"] == norm) & (frame["weights"] == "trained") & (frame["lr"] == 1.0)]
    hidden = mine[mine["layer"] < mine["layer"].max()]
    value = hidden["ratio"].iloc[-1 if layer == "last" else 0]
    return float(value) if np.isfinite(value) else float("inf")


def large_step(scale: str) -> Finding:
    frame = _one_step(scale)
    std_first, std_last = _ratio(frame, "none", "first"), _ratio(frame, "none", "last")
    bn_last = _ratio(frame, "batch", "last")
    text = (
        "activation spread after / before one SGD step at lr 1 from the trained weights: standard network "
        f"{std_first:.3g} at its first layer, {std_last:.3g} at its last hidden layer; BN {bn_last:.3g} at its last "
        "hidden layer"
    )
    blows_up, with_depth = std_last > bn_last, std_last > std_first
    if blows_up and with_depth:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if blows_up else Verdict.NOT_REPRODUCED)


CLAIMS = [
    Claim(
        "BatchNorm trains at larger learning rates than the standard network",
        "Bjorck et al. (2018): BatchNorm's main benefit is that it lets training use larger learning rates; without "
        "it, training at large rates diverges (ResNet-110 on CIFAR-10)",
        "reproduced if BN's largest rate that trains is at least 3 times the standard network's (or the standard "
        "network trains at none); partly if it is larger; not reproduced otherwise",
        larger_rates,
    ),
    Claim(
        "At the standard network's best rate most of BatchNorm's advantage disappears",
        "Bjorck et al. (2018): at the same small rate, networks with and without BatchNorm train similarly; the gain "
        "comes with the larger rate",
        "test accuracy: reproduced if BN's lead at the standard network's best rate is at most half its lead when "
        "each network uses its own best rate; partly if smaller than that lead; not reproduced otherwise; cannot "
        "tell if BN leads by 1 point or less at best",
        matched_rate,
    ),
    Claim(
        "Without BatchNorm one large step blows the activations up, more so in deeper layers",
        "Bjorck et al. (2018): after a step at a large rate, the activations of an unnormalized network grow, "
        "increasingly with depth; BatchNorm keeps them in check",
        "from the trained weights of Part I's runs at lr 0.1, one step at lr 1: reproduced if the standard network's "
        "activation spread grows more at its last hidden layer than BN's does and more than at its own first layer; "
        "partly if only the first holds; not reproduced otherwise",
        large_step,
    ),
]


def findings(scale: str) -> str:
    """The chapter's closing paragraph, each sentence chosen by a verdict at this scale."""
    larger, matched, step = (claim.finding(scale) for claim in CLAIMS)
    m = lr_range.matched(_table(scale))
    sentences = [f"**What we find at the {scale} scale.**"]
    sentences.append(
        {
            Verdict.REPRODUCED: "BatchNorm trains at rates several times larger than the standard network can use.",
            Verdict.PARTLY: "BatchNorm trains at somewhat larger rates than the standard network, but less than the "
            "threefold margin our rule asks for.",
            Verdict.NOT_REPRODUCED: "BatchNorm does not train at larger rates than the standard network here.",
        }[larger.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: f"At the standard network's best rate ({m['rate']:g}) most of BatchNorm's lead is "
            "gone: much of what BatchNorm buys here is the larger rate.",
            Verdict.PARTLY: f"At the standard network's best rate ({m['rate']:g}) BatchNorm keeps more than half of "
            "its lead: the larger rate explains only part of its advantage at this budget.",
            Verdict.NOT_REPRODUCED: f"At the standard network's best rate ({m['rate']:g}) BatchNorm keeps its whole "
            "lead: at this budget its advantage does not come from the larger rate.",
            Verdict.CANNOT_TELL: "BatchNorm has no clear lead over the standard network at their best rates here, "
            "so there is nothing for the matched rate to explain.",
        }[matched.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "One large step inflates the standard network's activations, more in its deeper "
            "layers, while BatchNorm's stay in check: the mechanism Bjorck et al. give for the limit on the rate.",
            Verdict.PARTLY: "One large step inflates the standard network's activations more than BatchNorm's, but "
            "not increasingly with depth.",
            Verdict.NOT_REPRODUCED: "One large step does not inflate the standard network's activations more than "
            "BatchNorm's here.",
        }[step.verdict]
    )
    return " ".join(sentences)
