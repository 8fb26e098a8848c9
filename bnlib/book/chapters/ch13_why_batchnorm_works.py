"""Chapter 13, so why does BatchNorm work? Every explanation the book tested, weighed by its tests:
the claims of the other chapters that bear on it (referred to by chapter and key), each marked as
decisive (an intervention that removes or supplies the explanation's mechanism, or a control its
authors would accept), supporting (a correlation, or a consequence that other explanations share), a
check that the mechanism is present (an identity or an observation), or a manipulation check (it
shows an intervention did what it should); the last two are never counted as evidence.

The aggregation, stated once (`RULE`) and computed from named thresholds: each counted test scores 1
for the explanation, 0 against, 1/2 if partly reproduced; a test the scale cannot decide is left
out (that test only); the support is the mean score weighted by `WEIGHTS`. The ladder (chapter 12)
gives the sizes: how much of BatchNorm's speed-up each ingredient recovers, and the largest rate it
trains at; every ladder test shows both beside its verdict, since a "partly" scores 1/2 whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bnlib.book import ladder
from bnlib.book.chapter import BOTTOM_LINE, Chapter
from bnlib.book.claims import Claim, Finding, Verdict
from bnlib.book.plan import Read
from bnlib.book.session import Session
from bnlib.experiments import base_config

CLAIMS: dict[str, Claim] = {}  # its verdicts are on explanations, from the other chapters' claims

DECISIVE, SUPPORTING, MECHANISM, CONTROL = "decisive", "supporting", "mechanism present", "manipulation check"
WEIGHTS = {DECISIVE: 2.0, SUPPORTING: 1.0, MECHANISM: 0.0, CONTROL: 0.0}
SCORES = {Verdict.REPRODUCED: 1.0, Verdict.PARTLY: 0.5, Verdict.NOT_REPRODUCED: 0.0}
SUPPORTED_AT = 2 / 3  # "supported": at least this weighted share of the counted evidence for it
REJECTED_AT = 1 / 3  # "not supported": at most this share

SUPPORTED, NOT_SUPPORTED, MIXED, CONSISTENT, CANNOT_TELL = (
    "supported",
    "not supported",
    "mixed",
    "consistent, not tested decisively",
    "cannot tell at this scale",
)
RULE = (
    f"Each test counts with weight {WEIGHTS[DECISIVE]:g} if decisive, {WEIGHTS[SUPPORTING]:g} if supporting, "
    f"{WEIGHTS[MECHANISM]:g} if it only shows that the mechanism is present or that an intervention did what it "
    "should (a manipulation check); it scores 1 for the explanation "
    "if reproduced (for a refutation: not reproduced), 1/2 if partly, 0 otherwise; a test that cannot be decided "
    "at this scale is left out, and only that test. The support is the weighted mean score. Supported: support "
    f"at least {SUPPORTED_AT:.2f}, at least one decisive test decided, none decided against it. Not supported: "
    f"support at most {REJECTED_AT:.2f} and no decisive test decided for it. Consistent, not tested decisively: "
    f"support at least {SUPPORTED_AT:.2f} with no decisive test decided. Mixed: otherwise. Cannot tell: no "
    "counted test decided."
)


@dataclass(frozen=True)
class Test:
    """One claim of a chapter that bears on an explanation, how decisive it is, and whether a
    reproduced claim counts against the explanation (`against`: e.g. Santurkar et al.'s refutation
    of internal covariate shift)."""

    chapter: str  # its notebook's name: the session's book has the chapter
    key: str
    weight: str
    against: bool = False

    def claim(self, session: Session) -> Claim:
        return session.page(self.chapter).claims[self.key]

    def finding(self, session: Session) -> Finding:
        return session.page(self.chapter).finding(self.key, session)

    def score(self, session: Session) -> float | None:
        """1 for the explanation, 0 against, 1/2 between; None if not counted (undecided, or a
        mechanism check)."""
        verdict = self.finding(session).verdict
        if WEIGHTS[self.weight] == 0 or verdict not in SCORES:
            return None
        return 1.0 - SCORES[verdict] if self.against else SCORES[verdict]


@dataclass(frozen=True)
class Explanation:
    name: str
    source: str
    predicts: str
    tests: tuple[Test, ...]


def _tests(chapter: str, weight: str, *keys: str, against: bool = False) -> tuple[Test, ...]:
    return tuple(Test(chapter, key, weight, against) for key in keys)


LADDER = "12_batchnorm_apart"  # the ladder's claims: each rung's fraction of the speed-up
EXPLANATIONS = (
    Explanation(
        "It reduces internal covariate shift",
        "Ioffe and Szegedy (2015)",
        "stable layer-input distributions are what speeds training up: destabilise them and the benefit goes",
        (
            *_tests("02_noisy_batchnorm", DECISIVE, "trains_like_batchnorm", against=True),
            *_tests("02_noisy_batchnorm", MECHANISM, "unstable_moments"),
            *_tests("01_does_batchnorm_help", SUPPORTING, "input_stability", against=True),
            *_tests("03_internal_covariate_shift", SUPPORTING, "vgg", "dln", against=True),
            *_tests(LADDER, CONTROL, "noise"),
        ),
    ),
    Explanation(
        "It smooths the loss landscape",
        "Santurkar et al. (2018)",
        "along the training trajectory the loss and its gradient change less with BatchNorm (and with the other "
        "normalizations that train as well); smoothness is what makes it faster",
        (
            *_tests("04_landscape", SUPPORTING, "loss_band", "gradient_predictiveness", "effective_beta"),
            *_tests("05_other_normalizations", SUPPORTING, "train_as_well", "smooth_like_batchnorm"),
            *_tests("10_initialisation", SUPPORTING, "gradient_explosion", "deep_batchnorm_fails", against=True),
        ),
    ),
    Explanation(
        "It allows larger learning rates",
        "Bjorck et al. (2018)",
        "BatchNorm's speed comes from the larger rate it allows: at a matched rate most of it goes, and a "
        "standard network given a larger usable rate gets it back",
        (
            *_tests("07_learning_rates", DECISIVE, "matched_final"),
            *_tests(LADDER, DECISIVE, "warmup_rates"),
            *_tests("07_learning_rates", SUPPORTING, "matched_rate", "larger_rates", "large_step"),
            *_tests(LADDER, SUPPORTING, "warmup"),
            *_tests("01_does_batchnorm_help", SUPPORTING, "large_rate"),
        ),
    ),
    Explanation(
        "Scale invariance tunes the effective learning rate",
        "van Laarhoven (2017); Arora et al. (2019)",
        "the weights feeding a normalization grow, their effective rate falls by itself, so the nominal rate "
        "hardly matters; remove the auto-tuning and the benefit goes; supply scale invariance alone and it returns",
        (
            *_tests("08_scale_invariance", DECISIVE, "auto_tuning"),
            *_tests(LADDER, DECISIVE, "weight_std", "scaled_ws"),
            *_tests("08_scale_invariance", SUPPORTING, "robust", "equilibrium"),
            *_tests(LADDER, SUPPORTING, "scale"),
            *_tests("08_scale_invariance", MECHANISM, "identity", "norms_grow"),
        ),
    ),
    Explanation(
        "The gradient through the batch statistics removes curvature",
        "Ghorbani et al. (2019)",
        "with the statistics differentiated through, the Hessian's outliers are fewer and smaller; without that "
        "gradient BatchNorm loses its benefit",
        (
            *_tests(LADDER, DECISIVE, "detached_rates"),
            *_tests(LADDER, SUPPORTING, "detached"),
            *_tests("09_curvature", SUPPORTING, "outliers_return"),
        ),
    ),
    Explanation(
        "The step size, not BatchNorm, sets the curvature (edge of stability)",
        "Cohen et al. (2021)",
        "the curvature along the trajectory rises to 2 / eta with or without BatchNorm, so the smoothness measured "
        "along it reflects the step size",
        (
            *_tests("09_curvature", DECISIVE, "edge_of_stability"),
            *_tests("09_curvature", SUPPORTING, "sharpening", "follows_step_size"),
            *_tests("04_landscape", SUPPORTING, "two_over_lr"),
        ),
    ),
    Explanation(
        "It keeps the signal well conditioned at initialisation (rank, mean shift)",
        "Daneshmand et al. (2020); Mishkin and Matas (2016)",
        "without BatchNorm deep networks collapse a batch to few directions at initialisation and the collapsed "
        "ones fail to train; a well-conditioned start recovers the benefit",
        (
            *_tests("10_initialisation", DECISIVE, "predicts_training"),
            *_tests(LADDER, DECISIVE, "lsuv", "he"),
            *_tests("10_initialisation", SUPPORTING, "mean_shift"),
            *_tests(LADDER, SUPPORTING, "center"),
            *_tests("10_initialisation", MECHANISM, "rank_collapse"),
        ),
    ),
    Explanation(
        "It needs the batch: the batch statistics' noise or coupling",
        "Hoffer et al. (2017); Luo et al. (2019)",
        "the benefit rests on statistics shared across the batch: normalizing each example alone loses it, "
        "noisier (ghost) batch statistics keep it",
        (
            *_tests(LADDER, DECISIVE, "layer", "group", against=True),
            *_tests(LADDER, SUPPORTING, "ghost8", "ghost32"),
        ),
    ),
    Explanation(
        "It biases residual blocks toward the identity",
        "De and Smith (2020); Zhang et al. (2019)",
        "BatchNorm shrinks deep residual branches at initialisation; the same bias without normalization "
        "(SkipInit, Fixup) trains deep networks, about as fast as BatchNorm at a small batch",
        (
            *_tests("11_residual", DECISIVE, "skipinit_trains_deep", "skipinit_small_batch", "fixup_same_rate"),
            *_tests("11_residual", SUPPORTING, "large_batch"),
            *_tests("11_residual", MECHANISM, "downscaled"),
        ),
    ),
)

# The chapters whose claims decide the explanations: the runs this chapter reads are theirs
DECIDING = tuple(dict.fromkeys(test.chapter for e in EXPLANATIONS for test in e.tests))

# Claims the book decides on test accuracy rather than on training speed
ON_TEST_ACCURACY = (
    Test("01_does_batchnorm_help", "test_accuracy", SUPPORTING),
    Test("01_does_batchnorm_help", "test_accuracy_augmented", SUPPORTING),
)


def reads(session: Session) -> list[Read]:
    """Every run of the chapters whose claims decide the explanations."""
    chapters = (*DECIDING, "01_does_batchnorm_help")
    return [read for chapter in chapters for read in session.page(chapter).reads(session)]


# ----------------------------------------------------------------------------- the aggregation


def support(explanation: Explanation, session: Session) -> float | None:
    """The weighted mean score of the explanation's counted tests (None if none is decided)."""
    scored = [(WEIGHTS[t.weight], t.score(session)) for t in explanation.tests]
    scored = [(w, s) for w, s in scored if s is not None and w > 0]
    if not scored:
        return None
    return sum(w * s for w, s in scored) / sum(w for w, _ in scored)


def verdict(explanation: Explanation, session: Session) -> str:
    """The explanation's verdict by `RULE`."""
    share = support(explanation, session)
    if share is None:
        return CANNOT_TELL
    decisive = [t.score(session) for t in explanation.tests if t.weight == DECISIVE]
    decided = [s for s in decisive if s is not None]
    if share >= SUPPORTED_AT:
        if not decided:
            return CONSISTENT
        return SUPPORTED if min(decided) > 0 else MIXED
    if share <= REJECTED_AT and not any(s == 1.0 for s in decided):
        return NOT_SUPPORTED
    return MIXED


def counts(test: Test, session: Session) -> str:
    """How a test counts: for, against, half, or not counted (and why)."""
    score = test.score(session)
    if WEIGHTS[test.weight] == 0:
        return f"not counted ({test.weight})"
    if score is None:
        return "not counted (cannot tell)"
    return {1.0: "for", 0.0: "against", 0.5: "half"}[score]


def effect(test: Test, session: Session) -> str:
    """A test's effect size, with its uncertainty: for a rung of the ladder, the fraction of
    BatchNorm's speed-up it recovers with the seeds' interval and the largest rate at which every
    seed trains, beside the ends'; otherwise the claim's own sentence, which gives its numbers over
    the seeds."""
    if test.chapter == LADDER:
        rung = ladder.rung(test.key.removesuffix("_rates"))
        largest = {s: ladder.measured(s, session).largest_text() for s in (rung, ladder.STANDARD, ladder.BATCHNORM)}
        return (
            f"{rung.label}: {ladder.fraction(rung, session).text()} of the speed-up; trains up to lr "
            f"{largest[rung]} (standard {largest[ladder.STANDARD]}, BN {largest[ladder.BATCHNORM]})."
        )
    return test.finding(session).summary


def table(session: Session) -> pd.DataFrame:
    """One row per explanation: its source, what it predicts, its decisive tests and how each
    counts, their effect sizes, the support, and its verdict."""
    rows = []
    for e in EXPLANATIONS:
        share = support(e, session)
        decisive = [t for t in e.tests if t.weight == DECISIVE]
        rows.append(
            {
                "explanation": e.name,
                "source": e.source,
                "it predicts": e.predicts,
                "decisive tests": "; ".join(f"{t.claim(session).claim}: {counts(t, session)}" for t in decisive)
                or "none",
                "effect sizes": " ".join(effect(t, session) for t in decisive) or "",
                "support": "" if share is None else f"{share:.2f}",
                "verdict": verdict(e, session),
            }
        )
    return pd.DataFrame(rows)


def evidence(explanation: Explanation, session: Session) -> pd.DataFrame:
    """The tests of one explanation: the claim, its weight, what we measure, its verdict, and how it counts."""
    return pd.DataFrame(
        [
            {
                "test": t.claim(session).claim,
                "chapter": t.chapter,
                "weight": t.weight,
                "we measure": t.finding(session).measured,
                "verdict": str(t.finding(session).verdict),
                "counts": counts(t, session) + (" (a reproduced claim refutes it)" if t.against else ""),
            }
            for t in explanation.tests
        ]
    )


# ----------------------------------------------------------------------------- the answer, from the findings


def ladder_answer(session: Session) -> str:
    """How much of BatchNorm's speed-up each ingredient recovers, grouped by what the seeds and the
    grid of rates decide."""
    groups: dict[str, list[str]] = {"most": [], "less": [], "edge": [], "open": []}
    for step in sorted(ladder.RUNGS, key=lambda s: -(ladder.fraction(s, session).point or -9)):
        f = ladder.fraction(step, session)
        where = {Verdict.REPRODUCED: "most", Verdict.NOT_REPRODUCED: "less"}.get(ladder.recovers(f), "open")
        if where == "less" and not ladder.inside_grid(step, session):
            where = "edge"  # below one half at the grid's rates, but a rate beyond the grid might be faster
        largest = ladder.measured(step, session).largest_text()
        groups[where].append(f"{step.label} ({f.text()}; trains up to lr {largest})")
    parts = []
    if groups["most"]:
        parts.append(f"at least {ladder.HALF:g} of it in every combination of seeds: " + "; ".join(groups["most"]))
    if groups["less"]:
        parts.append(f"less than {ladder.HALF:g} in every combination: " + "; ".join(groups["less"]))
    if groups["edge"]:
        parts.append(
            f"less than {ladder.HALF:g} at the grid's rates, undecided because a rate beyond the grid might be "
            "faster (none of the grid's rates reached the target, or the best is at its edge): "
            + "; ".join(groups["edge"])
        )
    if groups["open"]:
        parts.append("undecided by the seeds: " + "; ".join(groups["open"]))
    ends = {end: ladder.measured(end, session).largest_text() for end in ladder.ENDS}
    return (
        "Of BatchNorm's speed-up, these recover "
        + ". Those recovering ".join(parts)
        + f". (The largest rate every seed trains at: BatchNorm {ends[ladder.BATCHNORM]}, the standard network "
        f"{ends[ladder.STANDARD]}.)"
    )


def verdicts_answer(session: Session) -> str:
    """The explanations grouped by verdict."""
    by: dict[str, list[str]] = {}
    for e in EXPLANATIONS:
        by.setdefault(verdict(e, session), []).append(f"{e.name.lower()} ({e.source})")
    order = (SUPPORTED, CONSISTENT, MIXED, NOT_SUPPORTED, CANNOT_TELL)
    return " ".join(f"{v[0].upper()}{v[1:]}: {'; '.join(by[v])}." for v in order if v in by)


def answer(session: Session) -> list[str]:
    """One paragraph per explanation: its verdict and support, then what its decisive tests found
    (their own sentences, so the paragraph cannot say the opposite of its table)."""
    paragraphs = []
    for e in EXPLANATIONS:
        share = support(e, session)
        decisive = [t for t in e.tests if t.weight == DECISIVE] or [t for t in e.tests if t.weight == SUPPORTING]
        said = " ".join(effect(t, session) if t.chapter == LADDER else t.finding(session).summary for t in decisive)
        weighed = "" if share is None else f", support {share:.2f}"
        paragraphs.append(f"**{e.name}** ({e.source}): {verdict(e, session)}{weighed}. {said}")
    return paragraphs


def limits(session: Session) -> list[str]:
    """What the answer cannot say at this scale: the scale's size against the paper's, the seeds,
    and the verdicts decided on test accuracy (from the configs and the findings, not written in)."""
    here, paper = base_config("vgg", session.scale), base_config("vgg", "paper")
    images = f"{here.train_per_class * 10:,}" if here.train_per_class else "all 50,000"
    said = "; ".join(f"{t.claim(session).claim}: {t.finding(session).verdict}" for t in ON_TEST_ACCURACY)
    return [
        f"**The scale.** Every run here is the {session.scale} scale's: VGG at {here.width:g} of the paper's width, "
        f"{images} training images, {here.steps:,} steps (the paper: full width, 50,000 images, {paper.steps:,} "
        "steps). An effect that needs width, data or steps past these is outside what this page can decide; the "
        "rules say 'cannot tell' where a run's horizon cuts a measurement off.",
        "**The seeds.** Three seeds per compared network (the ladder: seed 0 along each network's search of the "
        "grid, three at its best rate, at BatchNorm's and at its largest training rate); an interval is the range "
        "over the seeds' combinations, not a confidence interval.",
        "**Optimization only.** The ladder and most tests measure training speed. Generalization at equal "
        "training loss, and BatchNorm's regularisation, are a different question. The verdicts decided on test "
        f"accuracy: {said}.",
    ]


def verdict_rows(session: Session) -> pd.DataFrame:
    """The chapter's verdicts as rows of the book's results table: one per explanation, its support
    and how its decisive tests count."""
    weighed = table(session)
    return pd.DataFrame(
        {
            "claim": weighed["explanation"],
            "verdict": weighed["verdict"],
            "we measure": "support "
            + weighed["support"].replace("", "none")
            + "; decisive tests: "
            + weighed["decisive tests"],
        }
    )


CHAPTER = Chapter("13_why_batchnorm_works", "So why does BatchNorm work?", BOTTOM_LINE, reads, CLAIMS, verdict_rows)
