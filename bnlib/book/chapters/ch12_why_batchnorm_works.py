"""Chapter 12, so why does BatchNorm work? Every explanation the book tested, with a verdict on the
explanation computed from the verdicts of the claims that test it (referred to by chapter and key),
and the answer they add up to, each sentence from a claim's finding."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import pandas as pd

from bnlib.book.chapters import (
    ch02_noisy_batchnorm,
    ch03_internal_covariate_shift,
    ch04_landscape,
    ch07_learning_rates,
    ch08_scale_invariance,
    ch09_curvature,
    ch10_initialisation,
    ch11_residual,
)
from bnlib.book.claims import Claim, Verdict
from bnlib.book.plan import Read

NOTEBOOK = "12_why_batchnorm_works"
TITLE = "So why does BatchNorm work?"
CLAIMS: dict[str, Claim] = {}  # its verdicts are on explanations, from the other chapters' claims


def reads(scale: str) -> list[Read]:
    """Every run of the chapters whose claims decide the explanations."""
    return [read for chapter in DECIDING for read in chapter.reads(scale)]


SUPPORTED, PARTLY, NOT_SUPPORTED, CANNOT_TELL = "supported", "partly supported", "not supported", "cannot tell"


@dataclass(frozen=True)
class Explanation:
    """One explanation of BatchNorm's benefit, the chapter that tests it, what it predicts, and
    the claims whose verdicts decide it. `refuted_by`: the claims state the explanation's refutation
    (Santurkar et al.'s on ICS), so a reproduced claim counts against it."""

    name: str
    source: str
    chapter: ModuleType
    predicts: str
    claims: tuple[Claim, ...]
    refuted_by: bool = False


def _claims(chapter: ModuleType, *keys: str) -> tuple[Claim, ...]:
    return tuple(chapter.CLAIMS[key] for key in keys)


EXPLANATIONS = (
    Explanation(
        "It reduces internal covariate shift",
        "Ioffe and Szegedy (2015)",
        ch03_internal_covariate_shift,
        "stable layer-input distributions are what speeds training up: destabilise them and the benefit goes; "
        "BatchNorm networks have less ICS",
        (
            *_claims(ch02_noisy_batchnorm, "trains_like_batchnorm", "unstable_moments"),
            *_claims(ch03_internal_covariate_shift, "vgg"),
        ),
        refuted_by=True,
    ),
    Explanation(
        "It smooths the loss landscape",
        "Santurkar et al. (2018)",
        ch04_landscape,
        "along the training trajectory the loss changes less, the gradient is more predictive and the effective "
        "beta-smoothness is lower with BatchNorm",
        _claims(ch04_landscape, "loss_band", "gradient_predictiveness", "effective_beta"),
    ),
    Explanation(
        "It allows larger learning rates",
        "Bjorck et al. (2018)",
        ch07_learning_rates,
        "BatchNorm trains at much larger rates; at a matched rate most of its advantage goes; without it a large "
        "step blows the activations up",
        _claims(ch07_learning_rates, "larger_rates", "matched_rate", "large_step"),
    ),
    Explanation(
        "Scale invariance tunes the effective learning rate",
        "van Laarhoven (2017); Arora et al. (2019)",
        ch08_scale_invariance,
        "the weights feeding BatchNorm grow as eta^2 ||g||^2 per step, the effective rate falls by itself, and "
        "their nominal rate hardly matters",
        _claims(ch08_scale_invariance, "identity", "norms_grow", "robust"),
    ),
    Explanation(
        "The gradient through the batch statistics removes curvature",
        "Ghorbani et al. (2019)",
        ch09_curvature,
        "at the same weights the Hessian's top is lower with the statistics differentiated through than frozen",
        _claims(ch09_curvature, "active_below_frozen"),
    ),
    Explanation(
        "The step size sets the curvature (edge of stability)",
        "Cohen et al. (2021)",
        ch09_curvature,
        "the curvature along the trajectory sits at 2 / eta with or without BatchNorm, and falls when the step grows",
        (*_claims(ch04_landscape, "two_over_lr"), *_claims(ch09_curvature, "edge_of_stability", "follows_step_size")),
    ),
    Explanation(
        "It avoids rank collapse at initialisation",
        "Daneshmand et al. (2020)",
        ch10_initialisation,
        "without BatchNorm deep networks collapse a batch to one direction at initialisation, and the collapsed "
        "networks are the ones that do not train",
        _claims(ch10_initialisation, "rank_collapse", "predicts_training"),
    ),
    Explanation(
        "(Against smoothness at initialisation) It makes the gradient explode with depth",
        "Yang et al. (2019)",
        ch10_initialisation,
        "at initialisation BatchNorm networks' gradients grow by a constant factor per layer",
        _claims(ch10_initialisation, "gradient_explosion"),
    ),
    Explanation(
        "It biases residual blocks toward the identity",
        "De and Smith (2020); Zhang et al. (2019)",
        ch11_residual,
        "BatchNorm shrinks deep residual branches at initialisation; the same bias without normalization "
        "(SkipInit, Fixup) recovers its benefit at small batch, not at large batch",
        _claims(ch11_residual, "downscaled", "skipinit_small_batch", "large_batch", "fixup_small_batch"),
    ),
)


# The chapters whose claims decide the explanations: the runs this chapter reads are theirs
DECIDING = (
    ch02_noisy_batchnorm,
    ch03_internal_covariate_shift,
    ch04_landscape,
    ch07_learning_rates,
    ch08_scale_invariance,
    ch09_curvature,
    ch10_initialisation,
    ch11_residual,
)


def verdict(explanation: Explanation, scale: str) -> str:
    """The explanation's verdict from its claims' verdicts: supported if every claim is reproduced
    (for a refutation: not reproduced), not supported if none is, cannot tell if a claim cannot be
    decided at this scale, partly supported otherwise."""
    verdicts = [claim.finding(scale).verdict for claim in explanation.claims]
    if Verdict.CANNOT_TELL in verdicts:
        return CANNOT_TELL
    for_it = Verdict.NOT_REPRODUCED if explanation.refuted_by else Verdict.REPRODUCED
    against = Verdict.REPRODUCED if explanation.refuted_by else Verdict.NOT_REPRODUCED
    if all(v == for_it for v in verdicts):
        return SUPPORTED
    if all(v == against for v in verdicts):
        return NOT_SUPPORTED
    return PARTLY


RULE = (
    "An explanation is supported if every claim that tests it is reproduced, not supported if none is (for "
    "internal covariate shift, whose claims are Santurkar et al.'s refutation, the other way round), partly "
    "supported otherwise, and undecided if one claim cannot be decided at this scale."
)


def table(scale: str) -> pd.DataFrame:
    """One row per explanation: its source, what it predicts, the claims' verdicts, and its verdict."""
    rows = []
    for e in EXPLANATIONS:
        evidence = "; ".join(f"{c.claim}: {c.finding(scale).verdict}" for c in e.claims)
        rows.append(
            {
                "explanation": e.name,
                "source": e.source,
                "chapter": e.chapter.NOTEBOOK,
                "it predicts": e.predicts,
                "the book's tests (claim: verdict)": evidence,
                "verdict": verdict(e, scale),
            }
        )
    return pd.DataFrame(rows)


def evidence(explanation: Explanation, scale: str) -> pd.DataFrame:
    """The claims that test one explanation: what each predicts, what we measure, the rule, the verdict."""
    return pd.DataFrame(
        [
            {
                "the explanation predicts": c.claim,
                "we measure": c.finding(scale).measured,
                "rule": c.rule,
                "verdict": str(c.finding(scale).verdict),
            }
            for c in explanation.claims
        ]
    )


def answer(scale: str) -> list[str]:
    """The book's answer, one paragraph per explanation: its verdict, then what each claim that
    decides it found (the claims' own sentences, so the paragraph cannot say the opposite of its table)."""
    return [
        f"**{e.name}** ({e.source}): {verdict(e, scale)}. "
        + " ".join(claim.finding(scale).summary for claim in e.claims)
        for e in EXPLANATIONS
    ]
