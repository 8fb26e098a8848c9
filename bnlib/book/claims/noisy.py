"""Chapter 02, noisy BatchNorm (Algorithm 1, Figs. 2 and 8)."""

from __future__ import annotations

from bnlib.book import plan
from bnlib.book.claims.claim import Claim, Finding, Verdict, graded
from bnlib.book.tables import FIG8_LAYERS, final, finals, median_change, percent

CHAPTER = "Noisy BatchNorm"
CHANCE = 0.10


def trains_like_batchnorm(scale: str) -> Finding:
    bn, noisy, std = (final(n, scale, "train_acc")[0] for n in ("vgg-bn-lr0.1", "vgg-noisybn-lr0.1", "vgg-std-lr0.1"))
    text = (
        f"training accuracy after {plan.config('vgg-bn-lr0.1', scale).steps:,} steps: "
        f"BN {percent('vgg-bn-lr0.1', scale, 'train_acc')}, "
        f"noisy BN {percent('vgg-noisybn-lr0.1', scale, 'train_acc')}, "
        f"standard {percent('vgg-std-lr0.1', scale, 'train_acc')}"
    )
    close, above = abs(noisy - bn) <= 0.05, noisy - std >= 0.10
    if close and above:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if above else Verdict.NOT_REPRODUCED)


def unstable_moments(scale: str) -> Finding:
    parts, checks = [], []
    for layer in FIG8_LAYERS:
        noisy, bn, std = (
            median_change(name, scale, layer, "input")
            for name in ("vgg-noisybn-lr0.1", "vgg-bn-lr0.1", "vgg-std-lr0.1")
        )
        checks.append(noisy > std)
        parts.append(f"#{layer} noisy BN {noisy:.2g}, BN {bn:.2g}, standard {std:.2g}")
    text = "median |mu_{t+1} - mu_t| of the layer's inputs between two successive steps: " + "; ".join(parts)
    return Finding(text, graded(checks))


def noise_without_batchnorm(scale: str) -> Finding:
    accuracy = finals("vgg-stdnoise-lr0.1", scale, "train_acc")
    text = f"standard + noise: training accuracy {percent('vgg-stdnoise-lr0.1', scale, 'train_acc')}"
    return Finding(text, Verdict.REPRODUCED if max(accuracy) <= CHANCE + 0.05 else Verdict.NOT_REPRODUCED)


CLAIMS = [
    Claim(
        "BatchNorm with noise after it trains about as well as BatchNorm, and better than the standard network",
        '"the performance difference between models with BatchNorm layers, and noisy BatchNorm layers is almost '
        'non-existent"; both much better than standard (Section 2.1, Fig. 2)',
        "reproduced if noisy BN's final training accuracy is within 5 points of BN's and at least 10 points above "
        "the standard network's; partly if only the second holds; not reproduced otherwise",
        trains_like_batchnorm,
    ),
    Claim(
        "With the noise, layer inputs are less stable than in the standard network",
        "noisy BN's moments change by up to ~1 between two successive steps, BN's ~0, the standard's ~0.1 (read off "
        'Fig. 8 by eye); "qualitatively less stable distributions than even the standard" network (Section 2.1)',
        "at the inputs of layers #2, #9 and #13: reproduced if noisy BN's median change of the mean between two "
        "successive steps exceeds the standard network's at every layer; partly at some; not reproduced at none",
        unstable_moments,
    ),
    Claim(
        "The same noise without BatchNorm prevents training",
        '"adding the same amount of noise to the activations of the standard (non-BatchNorm) network prevents it from '
        'training entirely" (Section 2.1, no figure)',
        "reproduced if the standard network with the noise stays within 5 points of chance (10%); not reproduced "
        "otherwise",
        noise_without_batchnorm,
    ),
]


def findings(scale: str) -> str:
    """The chapter's closing paragraph: each sentence chosen by a claim's verdict at this scale."""
    similar, unstable, control = (claim.finding(scale) for claim in CLAIMS)
    bn, noisy = (final(n, scale, "train_acc")[0] for n in ("vgg-bn-lr0.1", "vgg-noisybn-lr0.1"))
    sentences = [f"**What we find at the {scale} scale.**"]
    sentences.append(
        {
            Verdict.REPRODUCED: "Noisy BatchNorm trains about as well as BatchNorm and far better than the standard "
            "network, as in the paper's Fig. 2.",
            Verdict.PARTLY: f"Noisy BatchNorm trains far better than the standard network but not as well as "
            f"BatchNorm ({noisy:.0%} against {bn:.0%}): the noise costs something here, where the paper saw almost "
            "no difference.",
            Verdict.NOT_REPRODUCED: "Noisy BatchNorm does not keep BatchNorm's advantage here (see the table).",
        }[similar.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "Its layer inputs are less stable from one step to the next than the standard "
            "network's at every layer shown, as the paper's Fig. 8 says.",
            Verdict.PARTLY: "Its layer inputs are less stable than the standard network's at some of the layers "
            "shown and not at others.",
            Verdict.NOT_REPRODUCED: "Its layer inputs are not less stable than the standard network's here.",
        }[unstable.verdict]
    )
    sentences.append(
        "The same noise without BatchNorm keeps the standard network at chance, as the paper states."
        if control.verdict == Verdict.REPRODUCED
        else "The same noise without BatchNorm does not stop the standard network from training here."
    )
    if similar.verdict != Verdict.NOT_REPRODUCED and unstable.verdict != Verdict.NOT_REPRODUCED:
        sentences.append(
            "So a BatchNorm network whose layer inputs are unstable still trains better than a standard network: "
            "stable input distributions are not what its advantage rests on."
        )
    return " ".join(sentences)
