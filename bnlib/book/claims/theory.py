"""Chapter 06, the theory of Section 4 checked numerically."""

from __future__ import annotations

from bnlib.book import plan, section4
from bnlib.book.claims.claim import Claim
from bnlib.book.tables import THEORY_MS, hypotheses

CHAPTER = "The theory, checked"


def theorem_4_1(scale: str) -> str:
    table = section4.theorem_4_1_sweep(THEORY_MS)
    return (
        f"{len(table)} random units, m = {', '.join(map(str, THEORY_MS))}: the 1/m form holds with equality "
        f"(largest relative error {table['relative_error_1_over_m'].max():.1e}); the printed form is violated "
        f"by {table['printed_violated'].mean():.0%} of them (counterexample: m = 2, ||grad||^2 = 0 > "
        f"{section4.theorem_4_1_counterexample()['rhs_printed']:.3f})"
    )


def theorem_4_2(scale: str) -> str:
    sweep = section4.theorem_4_2_sweep(THEORY_MS[1:])
    h = hypotheses(scale)
    share = h.groupby("network").agg(
        convex=("g_H_g", lambda v: (v >= 0).mean()), pos=("g_dot_y_hat", lambda v: (v > 0).mean())
    )
    return (
        f"identity holds on {len(sweep)} random units (largest relative error {sweep['relative_error'].max():.1e}); "
        f"on VGG with BN, share of sampled units with g^T H g >= 0: initial {share.loc['initial', 'convex']:.0%}, "
        f"trained {share.loc['trained', 'convex']:.0%}; "
        f"with <g, y_hat> > 0: initial {share.loc['initial', 'pos']:.0%}, "
        f"trained {share.loc['trained', 'pos']:.0%}"
    )


def observation_4_3(scale: str) -> str:
    return "largest |BN(y) - y|: " + f"{section4.observation_4_3_sweep(THEORY_MS)['max_abs_difference'].max():.1e}"


def theorem_4_4(scale: str) -> str:
    return (
        "consistent form g_hat = gamma^2/sigma^2 (g - lambda^2 m mu_g^2 - lambda^2/m <g, y_hat>^2) "
        f"holds with equality (largest relative error "
        f"{section4.theorem_4_4_sweep(THEORY_MS)['relative_error'].max():.1e})"
    )


def lemma_4_5(scale: str) -> str:
    error = section4.lemma_4_5_sweep((2, 10, 50))["relative_error"].max()
    ratios = section4.scale_invariance((0.01, 100))["loss ratio"]
    return (
        f"an equality for k W*, k = <W*, W0>/||W*||^2 (largest relative error {error:.1e}); the BN network's loss "
        f"is unchanged when a layer is scaled by 0.01 or 100 (ratios {ratios.iloc[0]:.12f}, {ratios.iloc[1]:.12f})"
    )


def bn_scale_below_one(scale: str) -> str:
    table = section4.bn_scale_over_training(plan.get("vgg-bn-lr0.1", scale))
    last = table[table["step"] == table["step"].max()]
    below, ratio = last["share below 1"], last["median gamma^2/sigma^2"]
    return (
        f"VGG + BN at lr 0.1, last probed step: {below.mean():.0%} of units have gamma^2/sigma^2 < 1 "
        f"(per layer {below.min():.0%} to {below.max():.0%}); "
        f"median ratio per layer {ratio.min():.2f} to {ratio.max():.2f}"
    )


CLAIMS = [
    Claim(
        "Theorem 4.1: BN shrinks the gradient reaching a layer's outputs",
        "||grad L_hat||^2 <= gamma^2/sigma^2 (||g||^2 - <1, g>^2/m - <g, y_hat>^2/sqrt(m)) (p. 9)",
        theorem_4_1,
    ),
    Claim(
        "Theorem 4.2: BN makes the loss smoother along the gradient",
        "holds, and helps where H_jj is PSD (locally convex) and <g, y_hat> > 0 (p. 9)",
        theorem_4_2,
    ),
    Claim(
        "Observation 4.3: with gamma = sigma, beta = mu, BN returns its input",
        "so every minimum of the standard landscape exists in the BN landscape (p. 10)",
        observation_4_3,
    ),
    Claim(
        "Theorem 4.4: the worst-case weight gradient is smaller with BN",
        "g_hat <= gamma^2/sigma^2 (g^2 - m mu_g^2 - lambda^2 <grad L, y_hat>^2) (p. 10; dimensionally inconsistent)",
        theorem_4_4,
    ),
    Claim(
        "Lemma 4.5: BN's scale invariance puts an optimum closer to the initialization",
        "||W0 - W_hat*||^2 <= ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2 (p. 10)",
        lemma_4_5,
    ),
    Claim(
        "The bounds help only where gamma^2/sigma^2 < 1: does it hold on a trained VGG?",
        "not measured in the paper",
        bn_scale_below_one,
    ),
]
