"""Chapter 05, l1, l2 and l-infinity normalizations (Figs. 5, 6, 12 and 13)."""

from __future__ import annotations

from bnlib.book import plan
from bnlib.book.claims.claim import Claim, Finding, Verdict, graded
from bnlib.book.tables import LP_DLN, LP_VGG, drift, final, landscape_numbers, loss_text, percent

CHAPTER = "Other normalizations"
LP = ("l1", "l2", "linf")


def _name(model: str, norm: str) -> str:
    return f"vgg-{norm}-lr0.1" if model == "vgg" else f"dln-{norm}-lr1e-6"


def _loss(name: str, scale: str) -> float:
    return plan.get(name, scale).final["train_loss"]


def train_as_well(scale: str) -> Finding:
    bn_acc, bn_loss = final("vgg-bn-lr0.1", scale, "train_acc")[0], _loss("dln-bn-lr1e-6", scale)
    checks = [final(_name("vgg", n), scale, "train_acc")[0] >= bn_acc - 0.05 for n in LP]
    checks += [_loss(_name("dln", n), scale) <= 1.2 * bn_loss for n in LP]
    text = (
        "VGG training accuracy: "
        + ", ".join(f"{n.split('-')[1]} {percent(n, scale, 'train_acc')}" for n in LP_VGG)
        + "; DLN final loss: "
        + ", ".join(f"{n.split('-')[1]} {loss_text(n, scale)}" for n in LP_DLN)
    )
    if all(checks):
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if sum(checks) >= len(checks) / 2 else Verdict.NOT_REPRODUCED)


def l1_beats_batchnorm(scale: str) -> Finding:
    l1, bn = _loss("dln-l1-lr1e-6", scale), _loss("dln-bn-lr1e-6", scale)
    text = f"final loss: l1 {l1:.3g}, BN {bn:.3g} (ratio {l1 / bn:.2f})"
    if l1 <= bn / 2:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if l1 < bn else Verdict.NOT_REPRODUCED)


def drift_more(scale: str) -> Finding:
    standard = drift("vgg-std-lr0.1", scale, 11)
    moved = {n: drift(_name("vgg", n), scale, 11) for n in LP}
    checks = [m["mean"] > standard["mean"] or m["sd"] > standard["sd"] for m in moved.values()]
    text = "inputs of layer #11, median relative drift of the mean and of the spread: " + ", ".join(
        f"{n} {d['mean']:.2g} and {d['sd']:.2g}" for n, d in {"standard": standard, **moved}.items()
    )
    return Finding(text, graded(checks))


def smooth_like_batchnorm(scale: str) -> Finding:
    checks, parts = [], []
    for model, names in (("VGG", LP_VGG), ("DLN", LP_DLN)):
        betas = {n.split("-")[1]: landscape_numbers(n, scale)["beta median"] for n in names}
        checks += [0.5 <= betas[n] / betas["bn"] <= 2 for n in LP]
        parts.append(f"{model}: " + ", ".join(f"{n} {b:.3g}" for n, b in betas.items()))
    text = "median effective beta, " + "; ".join(parts)
    if all(checks):
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if sum(checks) >= len(checks) / 2 else Verdict.NOT_REPRODUCED)


CLAIMS = [
    Claim(
        "l1, l2 and l-infinity normalization train as well as BatchNorm",
        '"all lp normalization strategies perform comparably or even better than BatchNorm", on VGG (Fig. 5a) and '
        "the DLN (Fig. 5b)",
        "reproduced if every l_p network's final VGG training accuracy is at least BN's minus 5 points and its final "
        "DLN loss at most 1.2 times BN's; partly if at least half of these six comparisons hold",
        train_as_well,
    ),
    Claim(
        "On the DLN, l1 normalization beats BatchNorm",
        '"for deep linear networks, l1-normalization performs even better than BatchNorm": final loss ~1e2 (l1) vs '
        "~5e2 (BN and l2), ~1e3 (l-inf), ~1.6e3 (standard) (read off Fig. 5b by eye)",
        "reproduced if l1's final loss is at most half of BN's; partly if it is lower at all; not reproduced otherwise",
        l1_beats_batchnorm,
    ),
    Claim(
        "Their layer inputs drift more than the standard network's",
        '"the lp-normalization techniques lead to larger distributional covariate shift" than the unnormalized '
        "network (Section 3.3, Fig. 6)",
        "at the inputs of layer #11: reproduced if for every l_p the median relative drift of the mean or of the "
        "spread exceeds the standard network's; partly if for some",
        drift_more,
    ),
    Claim(
        "They smooth the landscape as BatchNorm does",
        '"all these techniques result in an improved smoothness of the landscape that is similar to the effect of '
        'BatchNorm" (Figs. 12, 13)',
        "reproduced if every l_p network's median effective beta is within a factor of 2 of BN's, for VGG and the "
        "DLN; partly if at least half of the six are",
        smooth_like_batchnorm,
    ),
]


def findings(scale: str) -> str:
    """The chapter's closing paragraph: each sentence chosen by a claim's verdict at this scale."""
    train, l1, moved, smooth = (claim.finding(scale) for claim in CLAIMS)
    sentences = [f"**What we find at the {scale} scale.**"]
    sentences.append(
        {
            Verdict.REPRODUCED: "The three l_p normalizations train VGG and the deep linear network about as well as "
            "BatchNorm, as the paper's Fig. 5 says.",
            Verdict.PARTLY: "The three l_p normalizations train about as well as BatchNorm in some of the six "
            "comparisons and not in others (see the table).",
            Verdict.NOT_REPRODUCED: "The l_p normalizations do not train as well as BatchNorm here.",
        }[train.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "l1 normalization beats BatchNorm on the deep linear network by more than a factor "
            "of 2, as in the paper.",
            Verdict.PARTLY: "l1 normalization reaches a lower loss than BatchNorm on the deep linear network, but not "
            "by the paper's factor of about 5 (read off its Fig. 5b).",
            Verdict.NOT_REPRODUCED: "l1 normalization does not beat BatchNorm on the deep linear network here.",
        }[l1.verdict]
    )
    better = final("vgg-std-lr0.1", scale, "train_acc")[0] < min(
        final(_name("vgg", n), scale, "train_acc")[0] for n in LP
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "Their layer inputs drift more than the standard network's"
            + (
                ", yet all three train VGG better than it does: distributional stability is not what makes them work."
                if better
                else "."
            ),
            Verdict.PARTLY: "Only some of them drift more than the standard network at layer #11's inputs.",
            Verdict.NOT_REPRODUCED: "Their layer inputs do not drift more than the standard network's here.",
        }[moved.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "Their effective beta is within a factor of 2 of BatchNorm's for both models.",
            Verdict.PARTLY: "Their effective beta is close to BatchNorm's in some cases only.",
            Verdict.NOT_REPRODUCED: "Their effective beta is not close to BatchNorm's here.",
        }[smooth.verdict]
    )
    return " ".join(sentences)
