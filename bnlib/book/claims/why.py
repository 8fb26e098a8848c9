"""Chapter 12, so why does BatchNorm work? Every explanation the book tested, with a verdict on the
explanation computed from the verdicts of the claims that test it, and the answer they add up to."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import pandas as pd

from bnlib.book.claims import (
    curvature,
    ics,
    initialisation,
    landscape,
    lr_range,
    noisy,
    residual,
    scale_invariance,
)
from bnlib.book.claims.claim import Claim, Verdict

CHAPTER = "So why does BatchNorm work?"

SUPPORTED, PARTLY, NOT_SUPPORTED, CANNOT_TELL = "supported", "partly supported", "not supported", "cannot tell"


@dataclass(frozen=True)
class Explanation:
    """One explanation of BatchNorm's benefit, the chapter that tests it, what it predicts, and
    the claims whose verdicts decide it. `refuted_by`: the claims state the explanation's refutation
    (Santurkar et al.'s on ICS), so a reproduced claim counts against it."""

    name: str
    source: str
    chapter: str
    predicts: str
    claims: tuple[Claim, ...]
    refuted_by: bool = False


def _claims(module: ModuleType, *indices: int) -> tuple[Claim, ...]:
    return tuple(module.CLAIMS[i] for i in indices)


EXPLANATIONS = (
    Explanation(
        "It reduces internal covariate shift",
        "Ioffe and Szegedy (2015)",
        "03_internal_covariate_shift",
        "stable layer-input distributions are what speeds training up: destabilise them and the benefit goes; "
        "BatchNorm networks have less ICS",
        (*_claims(noisy, 0, 1), *_claims(ics, 0)),
        refuted_by=True,
    ),
    Explanation(
        "It smooths the loss landscape",
        "Santurkar et al. (2018)",
        "04_landscape",
        "along the training trajectory the loss changes less, the gradient is more predictive and the effective "
        "beta-smoothness is lower with BatchNorm",
        _claims(landscape, 0, 1, 2),
    ),
    Explanation(
        "It allows larger learning rates",
        "Bjorck et al. (2018)",
        "07_learning_rates",
        "BatchNorm trains at much larger rates; at a matched rate most of its advantage goes; without it a large "
        "step blows the activations up",
        _claims(lr_range, 0, 1, 2),
    ),
    Explanation(
        "Scale invariance tunes the effective learning rate",
        "van Laarhoven (2017); Arora et al. (2019)",
        "08_scale_invariance",
        "the weights feeding BatchNorm grow as eta^2 ||g||^2 per step, the effective rate falls by itself, and "
        "their nominal rate hardly matters",
        _claims(scale_invariance, 0, 1, 2),
    ),
    Explanation(
        "The gradient through the batch statistics removes curvature",
        "Ghorbani et al. (2019)",
        "09_curvature",
        "at the same weights the Hessian's top is lower with the statistics differentiated through than frozen",
        _claims(curvature, 0),
    ),
    Explanation(
        "The step size sets the curvature (edge of stability)",
        "Cohen et al. (2021)",
        "09_curvature",
        "the curvature along the trajectory sits at 2 / eta with or without BatchNorm, and falls when the step grows",
        (*_claims(landscape, 4), *_claims(curvature, 1, 2)),
    ),
    Explanation(
        "It avoids rank collapse at initialisation",
        "Daneshmand et al. (2020)",
        "10_initialisation",
        "without BatchNorm deep networks collapse a batch to one direction at initialisation, and the collapsed "
        "networks are the ones that do not train",
        _claims(initialisation, 0, 3),
    ),
    Explanation(
        "(Against smoothness at initialisation) It makes the gradient explode with depth",
        "Yang et al. (2019)",
        "10_initialisation",
        "at initialisation BatchNorm networks' gradients grow by a constant factor per layer",
        _claims(initialisation, 1),
    ),
    Explanation(
        "It biases residual blocks toward the identity",
        "De and Smith (2020); Zhang et al. (2019)",
        "11_residual",
        "BatchNorm shrinks deep residual branches at initialisation; the same bias without normalization "
        "(SkipInit, Fixup) recovers its benefit at small batch, not at large batch",
        _claims(residual, 0, 1, 2, 3),
    ),
)


def verdict(explanation: Explanation, scale: str) -> str:
    """The explanation's verdict from its claims' verdicts: supported if every claim is reproduced
    (for a refutation: not reproduced), not supported if none is, cannot tell if a claim cannot be
    decided at this scale, partly supported otherwise (chapter 12,
    notebooks/12_why_batchnorm_works.ipynb)."""
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
                "chapter": e.chapter,
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
    """The book's answer, paragraph by paragraph, each sentence chosen by the verdicts at this scale."""
    v = {e.name: verdict(e, scale) for e in EXPLANATIONS}
    (ics_, smooth, rates, invariance, through, edge, rank, explode, identity) = (v[e.name] for e in EXPLANATIONS)
    out = []
    out.append(
        {
            NOT_SUPPORTED: "**Not internal covariate shift.** Noisy BatchNorm destabilises every layer's inputs and "
            "still trains about as well as BatchNorm, and BatchNorm does not reduce ICS as Santurkar et al. define "
            "it: stable input distributions are not what BatchNorm's benefit rests on.",
            PARTLY: "**Internal covariate shift: the evidence is mixed at this scale.** Some of Santurkar et al.'s "
            "refutation holds here and some does not (see the table).",
            SUPPORTED: "**Internal covariate shift survives our tests at this scale**, against Santurkar et al.'s "
            "refutation (see the table).",
            CANNOT_TELL: "**Internal covariate shift: undecided at this scale** (see the table).",
        }[ics_]
    )
    rate_sentence = {
        SUPPORTED: "BatchNorm trains at much larger learning rates, and most of its advantage at a fixed budget "
        "comes with that larger rate",
        PARTLY: "BatchNorm trains at larger learning rates, though the larger rate explains only part of its "
        "advantage here",
        NOT_SUPPORTED: "the larger learning rate does not explain BatchNorm's advantage here",
        CANNOT_TELL: "whether the larger rate explains BatchNorm's advantage cannot be told at this scale",
    }[rates]
    invariance_sentence = {
        SUPPORTED: "the weights that feed a BatchNorm are scale-invariant, so their norm grows by exactly "
        "eta^2 ||g||^2 per step and their effective rate tunes itself, which is why their nominal rate hardly "
        "matters",
        PARTLY: "scale invariance holds (the norms grow as predicted), though the nominal rate of the weights "
        "matters more than the theory suggests here",
        NOT_SUPPORTED: "the scale-invariance account does not hold up here",
        CANNOT_TELL: "the scale-invariance account cannot be decided at this scale",
    }[invariance]
    out.append(
        f"**A larger usable learning rate, tuned by scale invariance.** In our runs, {rate_sentence}; and "
        f"{invariance_sentence} (Bjorck et al., 2018; Arora et al., 2019)."
    )
    smooth_sentence = {
        SUPPORTED: "BatchNorm's trajectory is smoother by Santurkar et al.'s measures",
        PARTLY: "BatchNorm's trajectory is smoother by some of Santurkar et al.'s measures and not others",
        NOT_SUPPORTED: "BatchNorm's trajectory is not smoother by Santurkar et al.'s measures here",
        CANNOT_TELL: "whether BatchNorm's trajectory is smoother cannot be told at this scale",
    }[smooth]
    edge_sentence = {
        SUPPORTED: "but the curvature along a trajectory is set by the step size (it sits at 2 / eta and falls when "
        "the step grows, with or without BatchNorm), so smoothness measured along the trajectory largely restates "
        "the rate the network could use",
        PARTLY: "and the step size sets part of that curvature (it reaches 2 / eta in some of our runs, not all)",
        NOT_SUPPORTED: "and the curvature along the trajectory is not simply set by the step size here",
        CANNOT_TELL: "and whether the step size sets it cannot be told at this scale",
    }[edge]
    through_sentence = {
        SUPPORTED: "What is BatchNorm's own is the gradient through the batch statistics: at identical weights, "
        "freezing them raises the top of the Hessian (Ghorbani et al., 2019).",
        PARTLY: "The gradient through the batch statistics lowers the top of the Hessian at some steps and not at "
        "others.",
        NOT_SUPPORTED: "Freezing the batch statistics does not raise the curvature here, so we cannot attribute a "
        "smoothing to the gradient through them.",
        CANNOT_TELL: "Whether the gradient through the statistics removes curvature cannot be told at this scale.",
    }[through]
    out.append(
        f"**Smoothness, and where it comes from.** {smooth_sentence[0].upper()}{smooth_sentence[1:]}, "
        f"{edge_sentence} (Cohen et al., 2021). {through_sentence}"
    )
    init_sentence = {
        SUPPORTED: "At initialisation BatchNorm keeps deep networks' representations from collapsing, and the "
        "collapsed networks are the ones that fail to train (Daneshmand et al., 2020)",
        PARTLY: _rank_partly(scale),
        NOT_SUPPORTED: "Rank collapse at initialisation does not explain which networks train here",
        CANNOT_TELL: "Rank collapse cannot be tested at this scale",
    }[rank]
    explode_sentence = {
        SUPPORTED: ". BatchNorm also makes the gradient explode with depth at initialisation (Yang et al., 2019), "
        "so there it does not make the landscape smoother.",
        PARTLY: ". BatchNorm networks' gradients grow with depth at initialisation, though not only theirs.",
        NOT_SUPPORTED: ". We do not see BatchNorm's gradients explode with depth at initialisation here.",
        CANNOT_TELL: ".",
    }[explode]
    identity_sentence = {
        SUPPORTED: "In residual networks much of BatchNorm's benefit is its bias toward the identity: SkipInit "
        "and Fixup recover it at small batch, and only at large batch, with large rates, does the normalization "
        "itself pull ahead (De and Smith, 2020).",
        PARTLY: _identity_partly(scale),
        NOT_SUPPORTED: "In residual networks the identity bias alone does not recover BatchNorm's benefit here.",
        CANNOT_TELL: "The residual identity bias cannot be decided at this scale.",
    }[identity]
    out.append(
        f"**At initialisation, and in residual networks.** {init_sentence}{explode_sentence} {identity_sentence}"
    )
    return out


def _verdicts(name: str, scale: str) -> list[Verdict]:
    """The verdicts of the claims that test one explanation, in order."""
    explanation = next(e for e in EXPLANATIONS if e.name == name)
    return [claim.finding(scale).verdict for claim in explanation.claims]


def _rank_partly(scale: str) -> str:
    """Rank collapse, partly supported: say which half held."""
    apart, predicts = _verdicts("It avoids rank collapse at initialisation", scale)
    if apart != Verdict.REPRODUCED:
        return "At initialisation BatchNorm keeps representations apart only in part (see the table)"
    if predicts == Verdict.NOT_REPRODUCED:
        return (
            "At initialisation BatchNorm keeps deep networks' representations from collapsing, but collapse does "
            "not predict which networks fail to train here"
        )
    return "At initialisation BatchNorm keeps representations apart, but collapse predicts training only in part"


def _identity_partly(scale: str) -> str:
    """The residual identity bias, partly supported: say whether SkipInit and Fixup recovered anything."""
    branch, skipinit, _, fixup = _verdicts("It biases residual blocks toward the identity", scale)
    recovered = [v for v in (skipinit, fixup) if v != Verdict.NOT_REPRODUCED]
    if branch == Verdict.REPRODUCED and not recovered:
        return (
            "In residual networks BatchNorm does start deep blocks close to the identity (De and Smith, 2020), but "
            "here the same bias without normalization (SkipInit, Fixup) does not recover its benefit: at the "
            "small batch both stay short of BatchNorm's test accuracy (see the table)."
        )
    return (
        "In residual networks the bias toward the identity recovers part of BatchNorm's benefit (see the table for "
        "which part)."
    )
