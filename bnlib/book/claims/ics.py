"""Chapter 03, internal covariate shift as a change of gradient (Definition 2.1, Figs. 3 and 9)."""

from __future__ import annotations

from bnlib.book import plan
from bnlib.book.claims.claim import Claim, Finding, Verdict, graded
from bnlib.book.tables import ics_medians, loss_text

CHAPTER = "Internal covariate shift"


def _medians(name: str, scale: str) -> dict[str, list[float]]:
    m = ics_medians(name, scale)
    return {"layer": m["layer"].tolist(), "l2": m["median l2 difference"].tolist(), "cos": m["median cosine"].tolist()}


def _cosines_text(name: str, scale: str) -> str:
    m = _medians(name, scale)
    return ", ".join(f"#{layer} {cos:.2f}" for layer, cos in zip(m["layer"], m["cos"], strict=True))


def vgg_ics(scale: str) -> Finding:
    checks, parts = [], []
    for lr in ("0.1", "0.01"):
        std, bn = _medians(f"vgg-std-lr{lr}", scale), _medians(f"vgg-bn-lr{lr}", scale)
        for i in range(len(std["layer"])):
            checks.append(bn["l2"][i] >= 0.5 * std["l2"][i] and bn["cos"][i] <= std["cos"][i] + 0.1)
        parts.append(
            f"lr {lr}: standard {_cosines_text(f'vgg-std-lr{lr}', scale)}; BN {_cosines_text(f'vgg-bn-lr{lr}', scale)}"
        )
    text = "median cos(G, G') over training, " + "; ".join(parts)
    if all(checks):
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if sum(checks) >= len(checks) / 2 else Verdict.NOT_REPRODUCED)


def dln_ics(scale: str) -> Finding:
    per_lr, parts = [], []
    for lr in ("1e-6", "1e-7"):
        std, bn = _medians(f"dln-std-lr{lr}", scale), _medians(f"dln-bn-lr{lr}", scale)
        more_shift = all(b < s for b, s in zip(bn["cos"], std["cos"], strict=True))
        lower_loss = (
            plan.get(f"dln-bn-lr{lr}", scale).final["train_loss"]
            < plan.get(f"dln-std-lr{lr}", scale).final["train_loss"]
        )
        per_lr.append(more_shift and lower_loss)
        parts.append(
            f"lr {lr}: median cos standard {_cosines_text(f'dln-std-lr{lr}', scale)}, "
            f"BN {_cosines_text(f'dln-bn-lr{lr}', scale)}; "
            f"final loss BN {loss_text(f'dln-bn-lr{lr}', scale)} vs standard {loss_text(f'dln-std-lr{lr}', scale)}"
        )
    return Finding("; ".join(parts), graded(per_lr))


CLAIMS = [
    Claim(
        "On VGG, BatchNorm does not reduce ICS (Definition 2.1)",
        'BN networks have "similar, or even worse, internal covariate shift"; layer #10 cos ~0-0.2 at lr 0.1 '
        "(Fig. 3a, read by eye)",
        "at layers #5 and #10 and learning rates 0.1 and 0.01: reproduced if, in every case, BN's median l2 "
        "difference is at least half the standard network's and its median cosine at most 0.1 above it; partly if "
        "in at least half of the cases; not reproduced otherwise",
        vgg_ics,
    ),
    Claim(
        "On the deep linear network, BatchNorm increases ICS, yet reaches a lower loss",
        "standard cos ~1 throughout; BN cos around 0 or negative; final loss ~5e2 (BN) vs ~1.6e3 (standard) at lr "
        "1e-6, ~7e2 vs ~4e3 at lr 1e-7 (Fig. 3b, read by eye)",
        "reproduced if, at both learning rates, BN's median cosine is below the standard network's at layers #9 and "
        "#17 and BN's final loss is lower; partly if this holds at one learning rate; not reproduced otherwise",
        dln_ics,
    ),
]


def findings(scale: str) -> str:
    """The chapter's closing paragraph: each sentence chosen by a claim's verdict at this scale."""
    vgg, dln = (claim.finding(scale) for claim in CLAIMS)
    sentences = [f"**What we find at the {scale} scale.**"]
    sentences.append(
        {
            Verdict.REPRODUCED: "On VGG, BatchNorm does not reduce internal covariate shift in the sense of "
            "Definition 2.1: with BatchNorm a layer's gradient changes as much or more when the layers below it "
            "move, at both learning rates and both layers, as the paper reports.",
            Verdict.PARTLY: "On VGG the paper's finding holds in some of the eight cases (two learning rates, two "
            "layers, two measures) and not in others: see the table.",
            Verdict.NOT_REPRODUCED: "On VGG, BatchNorm does reduce internal covariate shift by Definition 2.1 here, "
            "unlike in the paper.",
        }[vgg.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "On the deep linear network BatchNorm has more shift (lower cosines) and still "
            "reaches a lower loss, at both learning rates, as in the paper's Fig. 3b.",
            Verdict.PARTLY: "On the deep linear network the paper's finding (more shift with BatchNorm, yet a lower "
            "loss) holds at one of the two learning rates.",
            Verdict.NOT_REPRODUCED: "On the deep linear network the paper's finding does not hold here.",
        }[dln.verdict]
    )
    if Verdict.REPRODUCED in (vgg.verdict, dln.verdict):
        sentences.append(
            "Where it holds, the measure does not single out the network that trains better, which is the paper's "
            "point: whatever BatchNorm does for optimization, it is not reducing this kind of shift."
        )
    return " ".join(sentences)
