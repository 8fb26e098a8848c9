"""Chapter 06, the theory of Section 4 checked numerically.

The random instances are computed once per process (`sweeps`): the chapter's tables and figures,
its claims and its closing paragraph all read the same numbers.
"""

from __future__ import annotations

import functools

import pandas as pd

from bnlib.book import plan, section4
from bnlib.book.claims.claim import Claim, Finding, Verdict
from bnlib.book.tables import THEORY_MS, hypotheses

CHAPTER = "The theory, checked"
IDENTITY_TOLERANCE = 1e-8  # relative error under which two sides computed independently are "equal"
C1_MS = (4, 16, 64)


@functools.cache
def sweeps() -> dict[str, pd.DataFrame]:
    """Every random-instance check of Section 4, computed once per process."""
    return {
        "4.1": section4.theorem_4_1_sweep(THEORY_MS),
        "4.2": section4.theorem_4_2_sweep(THEORY_MS[1:]),
        "4.3": section4.observation_4_3_sweep(THEORY_MS),
        "4.4": section4.theorem_4_4_sweep(THEORY_MS),
        "4.4 inputs": section4.worst_input_sweep(THEORY_MS[1:4]),
        "C.1": section4.theorem_c_1_sweep(C1_MS),
        "4.5": section4.lemma_4_5_sweep((2, 10, 50)),
        "invariance": section4.scale_invariance((0.01, 100)),
    }


def theorem_4_1(scale: str) -> Finding:
    table = sweeps()["4.1"]
    error, violated = table["relative_error_1_over_m"].max(), table["printed_violated"].mean()
    proof = (
        f"with 1/m (the proof's own algebra) the two sides are equal (largest relative error {error:.1e})"
        if error <= IDENTITY_TOLERANCE
        else f"with 1/m the two sides differ by up to {error:.1e} (relative)"
    )
    text = (
        f"{len(table)} random units, m = {', '.join(map(str, THEORY_MS))}: the printed form is violated by "
        f"{violated:.0%} of them (smallest counterexample: m = 2, ||grad||^2 = 0 > "
        f"{section4.theorem_4_1_counterexample()['rhs_printed']:.3f}); {proof}"
    )
    return Finding(text, Verdict.REPRODUCED if violated == 0 else Verdict.NOT_REPRODUCED)


def theorem_4_2(scale: str) -> Finding:
    table = sweeps()["4.2"]
    error = table["relative_error"].max()
    equal = error <= IDENTITY_TOLERANCE
    text = f"{len(table)} random units: the first display's two sides are " + (
        f"equal (eq. 50; largest relative error {error:.1e})" if equal else f"apart by up to {error:.1e} (relative)"
    )
    return Finding(text, Verdict.REPRODUCED if equal else Verdict.NOT_REPRODUCED)


def theorem_4_2_second(scale: str) -> Finding:
    table = sweeps()["4.2"]
    holds, step = table["second_holds"], table["proof_step_holds"]
    text = (
        f"{len(table)} random units: holds on {holds.mean():.0%}; the proof's step v^T H v <= g^T H g holds on "
        f"{step.mean():.0%}, and where it holds the display holds on {holds[step].mean():.0%}"
    )
    if holds.all():
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if holds[step].all() else Verdict.NOT_REPRODUCED)


def theorem_4_2_hypotheses(scale: str) -> Finding:
    h = hypotheses(scale)
    trained = h[h["network"] == "trained"]
    convex, positive = (trained["g_H_g"] >= 0).mean(), (trained["g_dot_y_hat"] > 0).mean()
    initial = h[h["network"] == "initial"]
    text = (
        f"VGG with BN at lr 0.1, {len(trained)} sampled units: g^T H g >= 0 for {convex:.0%} after training "
        f"({(initial['g_H_g'] >= 0).mean():.0%} at initialisation); <g, y_hat> > 0 for {positive:.0%} "
        f"({(initial['g_dot_y_hat'] > 0).mean():.0%} at initialisation)"
    )
    share = min(convex, positive)
    if share >= 0.9:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if share >= 0.5 else Verdict.NOT_REPRODUCED)


def observation_4_3(scale: str) -> Finding:
    largest = sweeps()["4.3"]["max_abs_difference"].max()
    text = f"largest |BN(y) - y| with gamma = sigma, beta = mu: {largest:.1e}"
    return Finding(text, Verdict.REPRODUCED if largest <= 1e-10 else Verdict.NOT_REPRODUCED)


def theorem_4_4(scale: str) -> Finding:
    table, inputs = sweeps()["4.4"], sweeps()["4.4 inputs"]
    by_scale = table.groupby("gradient scale")["printed_violated"].mean()
    attained = ((inputs["rank_one"] - inputs["bound"]).abs() <= 1e-9 * inputs["bound"]).all()
    never_above = (inputs["largest_random"] <= inputs["bound"] * (1 + 1e-12)).all()
    error = table["relative_error"].max()
    worst = (
        "the worst input gives lam^2 ||grad_y||^2 (attained by a rank-one input; never exceeded by random ones)"
        if attained and never_above
        else "the worst-input bound lam^2 ||grad_y||^2 fails"
    )
    corollary = (
        f"the consistent form is an equality (largest relative error {error:.1e})"
        if error <= IDENTITY_TOLERANCE
        else f"the consistent form is off by up to {error:.1e}"
    )
    text = (
        "the printed form is violated by "
        + ", ".join(f"{share:.0%} of units at gradient scale {factor:g}" for factor, share in by_scale.items())
        + f"; {worst}; {corollary}"
    )
    return Finding(text, Verdict.REPRODUCED if not table["printed_violated"].any() else Verdict.NOT_REPRODUCED)


def theorem_c_1(scale: str) -> Finding:
    counts = sweeps()["C.1"]["verdict"].value_counts()
    text = (
        f"{int(counts.sum())} random units, m = {', '.join(map(str, C1_MS))}, worst inputs bounded from both sides: "
        f"holds on {counts.get('holds', 0)}, violated on {counts.get('violated', 0)}, undecided by the bounds on "
        f"{counts.get('undecided', 0)}"
    )
    return Finding(text, Verdict.NOT_REPRODUCED if counts.get("violated", 0) else Verdict.REPRODUCED)


def lemma_4_5(scale: str) -> Finding:
    error = sweeps()["4.5"]["relative_error"].max()
    ratios = sweeps()["invariance"]["loss ratio"]
    equal = error <= IDENTITY_TOLERANCE
    invariant = ((ratios - 1).abs() <= 1e-9).all()
    text = (
        ("an equality for k W*, k = <W*, W0>/||W*||^2 " if equal else "not an equality ")
        + f"(largest relative error {error:.1e}); the BN network's loss when a layer is scaled by 0.01 or 100: "
        f"ratios {ratios.iloc[0]:.12f}, {ratios.iloc[1]:.12f}"
    )
    return Finding(text, Verdict.REPRODUCED if equal and invariant else Verdict.NOT_REPRODUCED)


def sigma_large(scale: str) -> Finding:
    table = section4.bn_scale_over_training(plan.get("vgg-bn-lr0.1", scale))
    last = table[table["step"] == table["step"].max()]
    below, ratio = last["share below 1"], last["median gamma^2/sigma^2"]
    share = float(below.mean())
    text = (
        f"VGG + BN at lr 0.1, last probed step: {share:.0%} of units have gamma^2/sigma^2 < 1 "
        f"(per layer {below.min():.0%} to {below.max():.0%}); median ratio per layer {ratio.min():.2f} to "
        f"{ratio.max():.2f}"
    )
    if share >= 0.9:
        return Finding(text, Verdict.REPRODUCED)
    return Finding(text, Verdict.PARTLY if share >= 0.5 else Verdict.NOT_REPRODUCED)


CLAIMS = [
    Claim(
        "Theorem 4.1: BN shrinks the gradient reaching a layer's outputs",
        "||grad L_hat||^2 <= gamma^2/sigma^2 (||g||^2 - <1, g>^2/m - <g, y_hat>^2/sqrt(m)) (p. 9)",
        "reproduced if the printed inequality holds on every random unit; not reproduced if it fails on any",
        theorem_4_1,
    ),
    Claim(
        "Theorem 4.2, first display: the curvature along the gradient",
        "v^T (d^2 L_hat/dy^2) v <= gamma^2/sigma^2 v^T H v - gamma/(m sigma^2) <g, y_hat> ||v||^2 (p. 9)",
        "reproduced if the two sides, computed independently, agree to a relative 1e-8 on every random unit (the "
        "proof's eq. 50 is an equality); not reproduced otherwise",
        theorem_4_2,
    ),
    Claim(
        "Theorem 4.2, second display",
        'if H "preserves the relative norms of g and grad L_hat": the same with g^T H g in place of v^T H v (p. 9)',
        "reproduced if it holds on every random unit; partly if it holds on every unit where the proof's step "
        "(v^T H v <= g^T H g, our reading of the hypothesis) holds, but not on all; not reproduced otherwise",
        theorem_4_2_second,
    ),
    Claim(
        "Theorem 4.2's hypotheses hold in practice",
        'H PSD along the gradient and <g, y_hat> > 0 are "both fairly mild assumptions" (p. 9)',
        "on a trained VGG with BN: reproduced if both hold for at least 90% of sampled units; partly if for at least "
        "50%; not reproduced otherwise",
        theorem_4_2_hypotheses,
    ),
    Claim(
        "Observation 4.3: with gamma = sigma, beta = mu, BN returns its input",
        "so every minimum of the standard landscape exists in the BN landscape (p. 9)",
        "reproduced if |BN(y) - y| <= 1e-10 on every random batch",
        observation_4_3,
    ),
    Claim(
        "Theorem 4.4: the worst-case weight gradient is smaller with BN",
        "g_hat <= gamma^2/sigma^2 (g^2 - m mu_g^2 - lambda^2 <grad L, y_hat>^2), the maximum over inputs "
        "||X|| <= lambda, gradients held fixed (p. 9)",
        "reproduced if the printed inequality holds on every random unit, at every gradient scale; not reproduced "
        "if it fails on any",
        theorem_4_4,
    ),
    Claim(
        "Theorem C.1: the worst-case curvature along the weight gradient is smaller with BN",
        "max over ||X|| <= lambda of the BN network's quadratic form < gamma^2/sigma^2 (the standard network's "
        "maximum - lambda^4 kappa) (appendix C)",
        "reproduced if no random unit violates it (each side's maximum bounded from below and above); not "
        "reproduced if one does",
        theorem_c_1,
    ),
    Claim(
        "Lemma 4.5: BN's scale invariance puts an optimum closer to the initialization",
        "||W0 - W_hat*||^2 <= ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2 (p. 10)",
        "reproduced if the identity for k W* holds to a relative 1e-8 on every random pair and the BN network's loss "
        "is unchanged (to 1e-9) when a layer is scaled",
        lemma_4_5,
    ),
    Claim(
        "sigma_j is large, so the factor gamma^2/sigma^2 flattens the landscape",
        '"sigma_j tends to be large and highly uncontrolled in practice ... thus the scaling by gamma/sigma may '
        'contribute to the relative flatness" (p. 9)',
        "on a trained VGG with BN: reproduced if at least 90% of units have gamma^2/sigma^2 < 1 at the last probed "
        "step; partly if at least 50%; not reproduced otherwise",
        sigma_large,
    ),
]


LABELS = {
    "theorem_4_1": "Theorem 4.1 as printed",
    "theorem_4_2": "Theorem 4.2's first display",
    "theorem_4_2_second": "Theorem 4.2's second display",
    "observation_4_3": "Observation 4.3",
    "theorem_4_4": "Theorem 4.4 as printed",
    "theorem_c_1": "Theorem C.1",
    "lemma_4_5": "Lemma 4.5",
}


def findings(scale: str) -> str:
    """The chapter's closing paragraph: each sentence chosen by a claim's verdict (and, for the
    trained network, at this scale)."""
    verdict = {claim.measure.__name__: claim.finding(scale).verdict for claim in CLAIMS}
    held = [label for name, label in LABELS.items() if verdict[name] == Verdict.REPRODUCED]
    failed = [label for name, label in LABELS.items() if verdict[name] != Verdict.REPRODUCED]
    sentences = ["**What the checks find.**"]
    if held:
        sentences.append(f"{'; '.join(held)}: each checks out on every random instance.")
    if failed:
        sentences.append(f"{'; '.join(failed)}: each fails on some instances (the table says how often, and why).")
    sentences.append(
        f"On the trained VGG (the {scale} scale), Theorem 4.2's hypotheses "
        + {
            Verdict.REPRODUCED: "hold for at least 90% of the sampled units, as the paper assumes",
            Verdict.PARTLY: "hold for most sampled units but not for all",
            Verdict.NOT_REPRODUCED: "fail for at least half of the sampled units",
        }[verdict["theorem_4_2_hypotheses"]]
        + ", and the factor gamma^2/sigma^2 that every bound carries is below 1 "
        + {
            Verdict.REPRODUCED: "for at least 90% of units.",
            Verdict.PARTLY: "for at least half of the units but not for most.",
            Verdict.NOT_REPRODUCED: "for fewer than half of them: for most units it amplifies rather than shrinks.",
        }[verdict["sigma_large"]]
    )
    return " ".join(sentences)
