"""Chapter 11, residual networks and the identity (De and Smith, 2020; Zhang et al., 2019)."""

from __future__ import annotations

import functools
import math

from bnlib.book.beyond import residual
from bnlib.book.claims.claim import Claim, Finding, Verdict

CHAPTER = "Residual networks and the identity"
EXPLANATION = "BatchNorm biases residual blocks toward the identity"
SHRINKS = 5.0  # BN's branch/skip ratio must fall at least this much from the first block to the last
CLOSE = 0.03  # "about as well": best test accuracies within 3 points


@functools.cache
def _init(scale: str):
    return residual.init_table(scale)


@functools.cache
def _best(scale: str):
    return residual.best_table(residual.train_table(scale)).set_index(["variant", "batch"])


def downscaled(scale: str) -> Finding:
    frame = _init(scale)
    fall = {}
    for variant in ("BatchNorm", "no normalization"):
        ratio = frame[frame["variant"] == variant]["ratio"]
        fall[variant] = ratio.iloc[0] / ratio.iloc[-1]
    zero = frame[frame["variant"].isin(["SkipInit", "Fixup"])]["branch variance"].abs().max()
    blocks = frame["block"].max()
    text = (
        f"Var(branch) / Var(skip) in a ResNet-{residual.INIT_DEPTH[scale]} at initialisation, first block over "
        f"last ({blocks} blocks): BN falls {fall['BatchNorm']:.3g}-fold, no normalization "
        f"{fall['no normalization']:.3g}-fold; SkipInit's and Fixup's branches: largest variance {zero:.1g}"
    )
    if fall["BatchNorm"] >= SHRINKS and fall["no normalization"] < 2:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if fall["BatchNorm"] >= SHRINKS else Verdict.NOT_REPRODUCED)


def _acc(scale: str, variant: str, batch: int) -> float:
    return float(_best(scale).loc[(variant, batch), "best test accuracy"])


def _close(scale: str, variant: str) -> Finding:
    small = residual.BATCHES[scale][0]
    bn, other = _acc(scale, "BatchNorm", small), _acc(scale, variant, small)
    text = f"best test accuracy over the rates at batch {small}: BN {bn:.0%}, {variant} {other:.0%}"
    if other >= bn - CLOSE:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if other >= bn - 0.1 else Verdict.NOT_REPRODUCED)


def skipinit_small_batch(scale: str) -> Finding:
    return _close(scale, "SkipInit")


def fixup_small_batch(scale: str) -> Finding:
    return _close(scale, "Fixup")


def large_batch(scale: str) -> Finding:
    small, large = residual.BATCHES[scale]
    best = _best(scale)
    lead = {b: _acc(scale, "BatchNorm", b) - _acc(scale, "SkipInit", b) for b in (small, large)}
    bn_rate, skip_rate = (float(best.loc[(v, large), "largest lr that trains"]) for v in ("BatchNorm", "SkipInit"))
    text = (
        f"BN's lead over SkipInit in best test accuracy: {lead[small] * 100:+.0f} points at batch {small}, "
        f"{lead[large] * 100:+.0f} at batch {large}; largest rate that trains at batch {large}: BN "
        f"{'none' if math.isnan(bn_rate) else format(bn_rate, 'g')}, "
        f"SkipInit {'none' if math.isnan(skip_rate) else format(skip_rate, 'g')}"
    )
    grows = lead[large] > lead[small]
    larger_rate = not math.isnan(bn_rate) and (math.isnan(skip_rate) or bn_rate > skip_rate)
    if grows and larger_rate:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if grows or larger_rate else Verdict.NOT_REPRODUCED)


CLAIMS = [
    Claim(
        "With BatchNorm, deep residual blocks start close to the identity: the branch shrinks relative to the skip "
        "path with depth",
        "De and Smith (2020): at initialisation BatchNorm downscales each residual branch relative to its skip path "
        "by about the square root of the block's depth, so Var(branch) / Var(skip) falls like 1 / block",
        f"reproduced if BN's ratio falls at least {SHRINKS:g}-fold from the first block to the last while the "
        "unnormalized network's falls less than 2-fold; partly if only BN's falls; not reproduced otherwise",
        downscaled,
    ),
    Claim(
        "At a small batch, the identity bias without normalization (SkipInit) trains about as well as BatchNorm",
        "De and Smith (2020): SkipInit (a zero-initialised scalar on each branch) trains deep ResNets without "
        "normalization, close to BatchNorm at small batch sizes",
        f"reproduced if SkipInit's best test accuracy at the smaller batch is within {CLOSE * 100:.0f} points of "
        "BN's; partly within 10; not reproduced otherwise",
        skipinit_small_batch,
    ),
    Claim(
        "At a large batch BatchNorm pulls ahead, because it trains at larger rates",
        "De and Smith (2020): BatchNorm's larger stable rates pay off only at large batch sizes, where the best "
        "rate is large",
        "reproduced if BN's lead over SkipInit in best test accuracy is larger at the larger batch and BN trains "
        "at a larger rate there than SkipInit; partly if one holds; not reproduced otherwise",
        large_batch,
    ),
    Claim(
        "A careful initialisation (Fixup) trains about as well as BatchNorm",
        "Zhang et al. (2019): with Fixup, residual networks without normalization train as fast as with "
        "BatchNorm at the same rate",
        f"reproduced if Fixup's best test accuracy at the smaller batch is within {CLOSE * 100:.0f} points of BN's; "
        "partly within 10; not reproduced otherwise",
        fixup_small_batch,
    ),
]


def findings(scale: str) -> str:
    down, skip, large, fixup = (claim.finding(scale) for claim in CLAIMS)
    sentences = [f"**What we find at the {scale} scale.**"]
    sentences.append(
        {
            Verdict.REPRODUCED: "At initialisation BatchNorm's residual branches shrink relative to their skip "
            "paths with depth, as De and Smith describe, while without normalization they do not.",
            Verdict.PARTLY: "BatchNorm's residual branches shrink relative to the skip paths, but the unnormalized "
            "network's do too.",
            Verdict.NOT_REPRODUCED: "We do not see BatchNorm downscale the residual branches here.",
        }[down.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "At the small batch, SkipInit's identity bias alone recovers BatchNorm's accuracy.",
            Verdict.PARTLY: "At the small batch, SkipInit recovers much but not all of BatchNorm's accuracy.",
            Verdict.NOT_REPRODUCED: "At the small batch, SkipInit falls well short of BatchNorm.",
        }[skip.verdict]
    )
    sentences.append(  # on its own: Fixup's verdict need not follow SkipInit's
        {
            Verdict.REPRODUCED: "Fixup matches BatchNorm at the small batch.",
            Verdict.PARTLY: "Fixup comes close to BatchNorm at the small batch, but not all the way.",
            Verdict.NOT_REPRODUCED: "Fixup falls well short of BatchNorm at the small batch.",
        }[fixup.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "At the large batch BatchNorm pulls ahead and trains at larger rates: that part of "
            "its benefit needs the normalization.",
            Verdict.PARTLY: "At the large batch the picture is mixed (see the table).",
            Verdict.NOT_REPRODUCED: "At the large batch BatchNorm does not pull ahead here.",
        }[large.verdict]
    )
    return " ".join(sentences)
