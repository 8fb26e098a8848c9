"""Chapter 04, the optimization landscape (Figs. 4, 10 and 11), its larger distances, and the 2/lr test."""

from __future__ import annotations

from bnlib.book.claims.claim import Claim, Finding, Verdict, graded
from bnlib.book.tables import landscape_numbers

CHAPTER = "The optimization landscape"

PAIRS = {"VGG lr 0.1": ("vgg-std-lr0.1", "vgg-bn-lr0.1"), "DLN lr 1e-6": ("dln-std-lr1e-6", "dln-bn-lr1e-6")}
TWO_OVER_LR_RUNS = ("vgg-bn-lr0.1", "vgg-bn-lr0.5", "dln-bn-lr1e-6", "dln-bn-lr1e-7")


def _compare(scale: str, key: str, largest: str | None, kind: str = "landscape") -> tuple[str, list[bool]]:
    """'VGG standard m (M), BN m (M); DLN ...' for one landscape number, and per model whether BN's
    median is below the standard network's."""
    parts, below = [], []
    for model, (std, bn) in PAIRS.items():
        numbers = {name: landscape_numbers(name, scale, kind) for name in (std, bn)}
        shown = {name: f"{n[key]:.3g}" + (f" ({n[largest]:.3g})" if largest else "") for name, n in numbers.items()}
        parts.append(f"{model}: standard {shown[std]}, BN {shown[bn]}")
        below.append(numbers[bn][key] < numbers[std][key])
    return "; ".join(parts), below


def loss_band(scale: str) -> Finding:
    text, below = _compare(scale, "loss band width", "loss band max")
    return Finding("width of the loss band along the gradient, median (largest) over training: " + text, graded(below))


def gradient_predictiveness(scale: str) -> Finding:
    text, below = _compare(scale, "gradient change", "gradient change max")
    return Finding(
        "largest gradient change over the step sizes, median (largest) over training: " + text, graded(below)
    )


def effective_beta(scale: str) -> Finding:
    text, below = _compare(scale, "beta median", "beta max")
    return Finding("effective beta, median (largest) over training: " + text, graded(below))


def larger_distances(scale: str) -> Finding:
    text, below = _compare(scale, "beta beyond", None, kind="landscape-extended")
    multiples = {m: landscape_numbers(PAIRS[m][1], scale, "landscape-extended")["largest multiple"] for m in PAIRS}
    grids = ", ".join(f"{m} up to {x:g} x lr" for m, x in multiples.items())
    return Finding(
        f"median effective beta over the step sizes beyond the paper's grid ({grids}): " + text, graded(below)
    )


def beta_at_two_over_lr(scale: str) -> Finding:
    ratios = {name: landscape_numbers(name, scale)["beta median x lr/2"] for name in TWO_OVER_LR_RUNS}
    text = "median effective beta / (2/lr): " + ", ".join(f"{n} {r:.2f}" for n, r in ratios.items())
    return Finding(text, graded([0.5 <= r <= 2 for r in ratios.values()]))


def random_directions(scale: str) -> Finding:
    _, below_gradient = _compare(scale, "loss band width", None)
    text, below_random = _compare(scale, "loss band width", None, kind="landscape-random")
    same = [a == b for a, b in zip(below_gradient, below_random, strict=True)]
    return Finding(
        "median width of the loss band along a random direction of the gradient's length: " + text, graded(same)
    )


CLAIMS = [
    Claim(
        "BatchNorm makes the loss change less along the gradient",
        "VGG: the standard network's loss band up to ~10, BN's narrow; DLN: standard up to ~1e14 early, BN ~1e4-1e5 "
        "(read off Figs. 4a and 10a by eye)",
        "reproduced if BN's median band width over training is below the standard network's for both VGG and the DLN; "
        "partly if for one",
        loss_band,
    ),
    Claim(
        "BatchNorm makes the gradient more predictive",
        "VGG: standard spikes to ~250, BN <~30-50; DLN: up to ~1e16 vs ~1e4-1e6 (read off Figs. 4b and 10b by eye)",
        "reproduced if BN's median largest gradient change is below the standard network's for both VGG and the DLN; "
        "partly if for one",
        gradient_predictiveness,
    ),
    Claim(
        "BatchNorm lowers the effective beta-smoothness",
        "VGG: standard spikes 5-45, BN ~20 flat; DLN: up to 1e15 vs ~2e6 flat (read off Figs. 4c and 10c by eye)",
        "reproduced if BN's median effective beta is below the standard network's for both VGG and the DLN; partly "
        "if for one",
        effective_beta,
    ),
    Claim(
        "BatchNorm keeps smoothing at larger distances",
        '"BatchNorm however continues to provide smoothing for even larger distances" (captions of Figs. 4 and 10, '
        "no figure)",
        "on a grid extended beyond the paper's (VGG to 32 x lr, DLN to 1000 x lr): reproduced if BN's median effective "
        "beta over the extra step sizes is below the standard network's for both models; partly if for one",
        larger_distances,
    ),
    Claim(
        "(Our test) The effective beta of BatchNorm networks sits at 2 / lr, the edge-of-stability level",
        "not in the paper; its BN plateaus read ~20 = 2/0.1 (VGG) and ~2e6 = 2/1e-6 (DLN), read off Figs. 4c and "
        "10c by eye",
        "holds (reproduced) if the median effective beta of each BN run, at two learning rates per model, lies "
        "within a factor of 2 of 2/lr; partly if for some",
        beta_at_two_over_lr,
    ),
    Claim(
        "Along random directions the loss behaves similarly",
        '"the loss behaves in a similar way when we examine other (random) directions too" (Section 3.2, no figure)',
        "reproduced if, for both models, BN's loss band is narrower than the standard network's along a random "
        "direction exactly when it is along the gradient; partly if for one model",
        random_directions,
    ),
]


def findings(scale: str) -> str:
    """The chapter's closing paragraph: each sentence chosen by a claim's verdict at this scale."""
    band, predictive, beta, larger, level, _ = (claim.finding(scale) for claim in CLAIMS)
    smoother = [f.verdict for f in (band, predictive, beta)]
    sentences = [f"**What we find at the {scale} scale.**"]
    if all(v == Verdict.REPRODUCED for v in smoother):
        sentences.append(
            "By the medians over training, all three probes find the BatchNorm networks smoother than the standard "
            "ones, for VGG and for the deep linear network, as in the paper's Figs. 4 and 10."
        )
    elif all(v == Verdict.NOT_REPRODUCED for v in smoother):
        sentences.append(
            "By the medians over training, none of the three probes finds the BatchNorm networks smoother than the "
            "standard ones here, for either model, unlike the paper's Figs. 4 and 10; the table gives the numbers."
        )
    else:
        sentences.append(
            "By the medians over training, the three probes agree with the paper's Figs. 4 and 10 only in part "
            f"(loss band: {band.verdict}; gradient predictiveness: {predictive.verdict}; effective beta: "
            f"{beta.verdict}); the table gives the numbers."
        )
    sentences.append(
        {
            Verdict.REPRODUCED: "Beyond the paper's step sizes, BatchNorm stays the smoother of the two for both "
            "models, as the captions say.",
            Verdict.PARTLY: "Beyond the paper's step sizes, BatchNorm stays the smoother of the two for one model "
            "only.",
            Verdict.NOT_REPRODUCED: "Beyond the paper's step sizes, BatchNorm is not the smoother of the two here.",
        }[larger.verdict]
    )
    sentences.append(
        {
            Verdict.REPRODUCED: "And the effective beta of every BatchNorm run sits within a factor of 2 of "
            "2/lr at both learning rates of each model: the level the paper reports for BatchNorm is set by the "
            "learning rate.",
            Verdict.PARTLY: "The effective beta of some BatchNorm runs sits near 2/lr and of others not: see "
            "the last table.",
            Verdict.NOT_REPRODUCED: "The effective beta of the BatchNorm runs does not sit at 2/lr here.",
        }[level.verdict]
    )
    return " ".join(sentences)
