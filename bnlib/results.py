"""The book's claim-by-claim results: what the paper says, what we measure, at this scale.

Each chapter adds its claims here (one `Claim` each, measuring from run records), shows its own at
its end, and the results page shows them all in one table. Measuring loads the chapter's runs
through `bnlib.runs`, training whatever is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from bnlib import runs, theory_checks
from bnlib.experiments import experiment
from bnlib.summaries import (
    LP_DLN,
    LP_VGG,
    THEORY_MS,
    drift,
    hypotheses,
    ics_medians,
    landscape_numbers,
    moment_changes,
    percent,
    steps_text,
)


@dataclass(frozen=True)
class Claim:
    claim: str
    paper: str
    chapter: str
    measure: Callable[[str], str]  # scale -> what we measure, as text


# Chapter titles, as the claims name them.


PERFORMANCE = "Does BatchNorm help?"


NOISY = "Noisy BatchNorm"


ICS = "Internal covariate shift"


LANDSCAPE = "The optimization landscape"


LP = "Other normalizations"


THEORY = "The theory, checked"


def _moment_changes_text(scale: str) -> str:
    parts = []
    for label, name in (("noisy BN", "vgg-noisybn-lr0.1"), ("BN", "vgg-bn-lr0.1"), ("standard", "vgg-std-lr0.1")):
        changes = moment_changes(name, scale)["abs_change_mean"]
        parts.append(f"{label} {changes.median():.2g} ({changes.max():.2g})")
    return "|change of the mean| between probed steps, layers #2, #9, #13, median (largest): " + ", ".join(parts)


def _ics_text(name: str, scale: str) -> str:
    m = ics_medians(name, scale)
    return ", ".join(f"#{layer} {cos:.2f}" for layer, cos in zip(m["layer"], m["median cosine"], strict=True))


def _loss(name: str, scale: str) -> str:
    return f"{runs.get(name, scale).final['train_loss']:.3g}"


def _landscape(name: str, scale: str, key: str, direction: str = "gradient") -> str:
    return f"{landscape_numbers(name, scale, direction)[key]:.3g}"


def _pair(scale: str, key: str, direction: str = "gradient", labels: tuple[str, str] = ("VGG", "DLN")) -> str:
    """'VGG standard m (M), BN m (M); DLN ...': the median of a landscape number over training and,
    in brackets, the largest, for the standard and BN networks (VGG at lr 0.1, the DLN at 1e-6)."""
    largest = {"loss band width": "loss band max", "gradient change": "gradient change max", "beta median": "beta max"}
    parts = []
    pairs = (("vgg-std-lr0.1", "vgg-bn-lr0.1"), ("dln-std-lr1e-6", "dln-bn-lr1e-6"))
    for model, (std, bn) in zip(labels, pairs, strict=True):
        pair = ", ".join(
            f"{label} {_landscape(name, scale, key, direction)} ({_landscape(name, scale, largest[key], direction)})"
            for label, name in (("standard", std), ("BN", bn))
        )
        parts.append(f"{model} {pair}")
    return "; ".join(parts)


def _final_bn_scale(scale: str) -> pd.DataFrame:
    table = theory_checks.bn_scale_over_training(runs.get("vgg-bn-lr0.1", scale))
    return table[table["step"] == table["step"].max()]


def _theorem_4_1(scale: str) -> str:
    table = theory_checks.theorem_4_1_sweep(THEORY_MS)
    return (
        f"{len(table)} random units, m = {', '.join(map(str, THEORY_MS))}: the 1/m form holds with equality "
        f"(largest relative error {table['relative_error_1_over_m'].max():.1e}); the printed form is violated "
        f"by {table['printed_violated'].mean():.0%} of them (counterexample: m = 2, ||grad||^2 = 0 > "
        f"{theory_checks.theorem_4_1_counterexample()['rhs_printed']:.3f})"
    )


def _theorem_4_2(scale: str) -> str:
    sweep = theory_checks.theorem_4_2_sweep(THEORY_MS[1:])
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


def _lemma_4_5(scale: str) -> str:
    error = theory_checks.lemma_4_5_sweep((2, 10, 50))["relative_error"].max()
    ratios = theory_checks.scale_invariance((0.01, 100))["loss ratio"]
    return (
        f"an equality for k W*, k = <W*, W0>/||W*||^2 (largest relative error {error:.1e}); the BN network's loss "
        f"is unchanged when a layer is scaled by 0.01 or 100 (ratios {ratios.iloc[0]:.12f}, {ratios.iloc[1]:.12f})"
    )


def _bn_scale(scale: str) -> str:
    last = _final_bn_scale(scale)
    below, ratio = last["share below 1"], last["median gamma^2/sigma^2"]
    return (
        f"VGG + BN at lr 0.1, last probed step: {below.mean():.0%} of units have gamma^2/sigma^2 < 1 "
        f"(per layer {below.min():.0%} to {below.max():.0%}); "
        f"median ratio per layer {ratio.min():.2f} to {ratio.max():.2f}"
    )


CLAIMS: list[Claim] = [
    Claim(
        "BatchNorm makes VGG train faster at lr 0.1",
        "BN near 100% training accuracy by ~3k steps, standard by ~7-8k (Fig. 1)",
        PERFORMANCE,
        lambda scale: (
            f"training accuracy after {experiment('vgg-bn-lr0.1', scale).steps:,} steps, 3 seeds: "
            f"BN {percent('vgg-bn-lr0.1', scale, 'train_acc')}, "
            f"standard {percent('vgg-std-lr0.1', scale, 'train_acc')}; "
            f"steps to 50%: BN {steps_text('vgg-bn-lr0.1', scale, 0.5)}, "
            f"standard {steps_text('vgg-std-lr0.1', scale, 0.5)}"
        ),
    ),
    Claim(
        "BatchNorm improves test accuracy (no augmentation)",
        "83% with BN, 80% without, at 15k steps (Fig. 1, appendix A)",
        PERFORMANCE,
        lambda scale: (
            f"test accuracy, 3 seeds: BN {percent('vgg-bn-lr0.1', scale, 'test_acc')}, "
            f"standard {percent('vgg-std-lr0.1', scale, 'test_acc')}"
        ),
    ),
    Claim(
        "At lr 0.5 the standard VGG does not train; with BN it does",
        "standard at chance (10%) for 15k steps; BN ~95-100% train, ~80% test (Fig. 1)",
        PERFORMANCE,
        lambda scale: (
            f"training accuracy, 3 seeds: standard {percent('vgg-std-lr0.5', scale, 'train_acc')}, "
            f"BN {percent('vgg-bn-lr0.5', scale, 'train_acc')} (test {percent('vgg-bn-lr0.5', scale, 'test_acc')})"
        ),
    ),
    Claim(
        "BatchNorm with noise after it still trains about as fast as BatchNorm, and faster than standard",
        "noisy BN close to BN in training accuracy; both clearly faster than standard (Fig. 2)",
        NOISY,
        lambda scale: (
            f"training accuracy after {experiment('vgg-bn-lr0.1', scale).steps:,} steps: "
            f"BN {percent('vgg-bn-lr0.1', scale, 'train_acc')} (3 seeds), "
            f"noisy BN {percent('vgg-noisybn-lr0.1', scale, 'train_acc')}, "
            f"standard {percent('vgg-std-lr0.1', scale, 'train_acc')} (3 seeds)"
        ),
    ),
    Claim(
        "The noise makes the activation moments far less stable than in the standard network",
        "noisy BN moments jump by up to ~1 between steps, BN ~0, standard ~0.1 (Fig. 8)",
        NOISY,
        _moment_changes_text,
    ),
    Claim(
        "The same noise without BatchNorm prevents training",
        "stated in the text (Section 2.1), no figure",
        NOISY,
        lambda scale: f"standard + noise: training accuracy {percent('vgg-stdnoise-lr0.1', scale, 'train_acc')}",
    ),
    Claim(
        "On VGG, BatchNorm does not reduce ICS (Definition 2.1)",
        "BN: similar or larger l2 difference, similar or lower cos(G, G'); layer #10 cos ~0-0.2 at lr 0.1 (Fig. 3a)",
        ICS,
        lambda scale: (
            "median cos(G, G') over training, lr 0.1: "
            f"standard {_ics_text('vgg-std-lr0.1', scale)}; BN {_ics_text('vgg-bn-lr0.1', scale)}; "
            f"lr 0.01: standard {_ics_text('vgg-std-lr0.01', scale)}; BN {_ics_text('vgg-bn-lr0.01', scale)}"
        ),
    ),
    Claim(
        "On the deep linear network, BatchNorm increases ICS, yet reaches a lower loss",
        "standard cos ~1 throughout; BN cos around 0 or negative; final loss ~5e2 (BN) vs ~1.6e3 (standard) "
        "at lr 1e-6, ~7e2 vs ~4e3 at lr 1e-7 (Fig. 3b)",
        ICS,
        lambda scale: (
            "median cos(G, G'), lr 1e-6: "
            f"standard {_ics_text('dln-std-lr1e-6', scale)}; BN {_ics_text('dln-bn-lr1e-6', scale)}; "
            f"final loss at lr 1e-6: BN {_loss('dln-bn-lr1e-6', scale)} vs standard {_loss('dln-std-lr1e-6', scale)}, "
            f"at lr 1e-7: BN {_loss('dln-bn-lr1e-7', scale)} vs standard {_loss('dln-std-lr1e-7', scale)}"
        ),
    ),
    Claim(
        "BatchNorm makes the loss change less along the gradient",
        "VGG: standard's loss band up to ~10, BN's narrow; DLN: standard up to ~1e14 early, "
        "BN ~1e4-1e5 (Figs. 4a, 10a)",
        LANDSCAPE,
        lambda scale: (
            "width of the loss band, median (largest) over training: "
            + _pair(scale, "loss band width", labels=("VGG lr 0.1", "DLN lr 1e-6"))
        ),
    ),
    Claim(
        "BatchNorm makes the gradient more predictive",
        "VGG: standard spikes to ~250, BN <~30-50; DLN: up to ~1e16 vs ~1e4-1e6 (Figs. 4b, 10b)",
        LANDSCAPE,
        lambda scale: (
            "largest gradient change over the step sizes, median (largest) over training: "
            + _pair(scale, "gradient change")
        ),
    ),
    Claim(
        "BatchNorm lowers the effective beta-smoothness",
        "VGG: standard spikes 5-45, BN ~20 flat; DLN: up to 1e15 vs ~2e6 flat (Figs. 4c, 10c)",
        LANDSCAPE,
        lambda scale: "effective beta, median (largest) over training: " + _pair(scale, "beta median"),
    ),
    Claim(
        "(Our test) The effective beta sits at 2 / lr, the edge-of-stability level",
        "not in the paper; its BN plateaus read ~20 = 2/0.1 (VGG) and ~2e6 = 2/1e-6 (DLN) (protocol 8.3)",
        LANDSCAPE,
        lambda scale: (
            "median effective beta / (2/lr): "
            + ", ".join(
                f"{name} {_landscape(name, scale, 'beta median x lr/2')}"
                for name in ("vgg-bn-lr0.1", "vgg-bn-lr0.5", "vgg-std-lr0.1", "dln-bn-lr1e-6", "dln-bn-lr1e-7")
            )
        ),
    ),
    Claim(
        "Along random directions the loss behaves similarly",
        "stated without a figure (Section 3.2)",
        LANDSCAPE,
        lambda scale: (
            "width of the loss band along a random direction of the gradient's length, median (largest): "
            + _pair(scale, "loss band width", "random")
        ),
    ),
    Claim(
        "l1, l2 and l-infinity normalization train as well as BatchNorm",
        "all three match or beat BN on VGG (Fig. 5a) and the DLN (Fig. 5b)",
        LP,
        lambda scale: (
            "VGG training accuracy: "
            + ", ".join(f"{n.split('-')[1]} {percent(n, scale, 'train_acc')}" for n in LP_VGG)
            + "; DLN final loss: "
            + ", ".join(f"{n.split('-')[1]} {_loss(n, scale)}" for n in LP_DLN)
        ),
    ),
    Claim(
        "On the DLN, l1 normalization beats BatchNorm",
        "final loss ~1e2 (l1) vs ~5e2 (BN and l2), ~1e3 (l-inf), ~1.6e3 (standard) (Fig. 5b, by eye)",
        LP,
        lambda scale: f"final loss: l1 {_loss('dln-l1-lr1e-6', scale)}, BN {_loss('dln-bn-lr1e-6', scale)}",
    ),
    Claim(
        "Their activations drift more than the standard network's",
        "l_p activations non-Gaussian, with larger distributional shift than standard (Fig. 6)",
        LP,
        lambda scale: (
            "layer #11, median over units of |mu_T - mu_0| and |var_T - var_0|: "
            + ", ".join(
                f"{n.split('-')[1]} {d['mean']:.2g} and {d['var']:.2g}" for n in LP_VGG for d in [drift(n, scale)]
            )
        ),
    ),
    Claim(
        "They smooth the landscape as BatchNorm does",
        "landscape probes similar to BN's (Figs. 12, 13)",
        LP,
        lambda scale: (
            "median effective beta, VGG: "
            + ", ".join(f"{n.split('-')[1]} {_landscape(n, scale, 'beta median')}" for n in LP_VGG)
            + "; DLN: "
            + ", ".join(f"{n.split('-')[1]} {_landscape(n, scale, 'beta median')}" for n in LP_DLN)
        ),
    ),
    Claim(
        "Theorem 4.1: BN shrinks the gradient reaching a layer's outputs",
        "||grad L_hat||^2 <= gamma^2/sigma^2 (||g||^2 - <1, g>^2/m - <g, y_hat>^2/sqrt(m)) (p. 9)",
        THEORY,
        _theorem_4_1,
    ),
    Claim(
        "Theorem 4.2: BN makes the loss smoother along the gradient",
        "holds, and helps where H_jj is PSD (locally convex) and <g, y_hat> > 0 (p. 9)",
        THEORY,
        _theorem_4_2,
    ),
    Claim(
        "Observation 4.3: with gamma = sigma, beta = mu, BN returns its input",
        "so every minimum of the standard landscape exists in the BN landscape (p. 10)",
        THEORY,
        lambda scale: (
            "largest |BN(y) - y|: "
            + f"{theory_checks.observation_4_3_sweep(THEORY_MS)['max_abs_difference'].max():.1e}"
        ),
    ),
    Claim(
        "Theorem 4.4: the worst-case weight gradient is smaller with BN",
        "g_hat <= gamma^2/sigma^2 (g^2 - m mu_g^2 - lambda^2 <grad L, y_hat>^2) (p. 10; dimensionally inconsistent)",
        THEORY,
        lambda scale: (
            "consistent form g_hat = gamma^2/sigma^2 (g - lambda^2 m mu_g^2 - lambda^2/m <g, y_hat>^2) "
            f"holds with equality (largest relative error "
            f"{theory_checks.theorem_4_4_sweep(THEORY_MS)['relative_error'].max():.1e})"
        ),
    ),
    Claim(
        "Lemma 4.5: BN's scale invariance puts an optimum closer to the initialization",
        "||W0 - W_hat*||^2 <= ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2 (p. 10)",
        THEORY,
        _lemma_4_5,
    ),
    Claim(
        "The bounds help only where gamma^2/sigma^2 < 1: does it hold on a trained VGG?",
        "not measured in the paper",
        THEORY,
        _bn_scale,
    ),
]


def chapter_table(chapter: str, scale: str) -> str:
    """A chapter's closing 'paper says / we measure' table, as HTML naming the scale it ran at."""
    table = summary(scale, chapter).drop(columns="chapter")
    return f"<p><em>Measured at the {scale} scale.</em></p>" + table.to_html(index=False)


def summary(scale: str, chapter: str | None = None) -> pd.DataFrame:
    """The results table: one row per claim (of one chapter, or all)."""
    rows = [
        {"claim": c.claim, "paper says": c.paper, "we measure": c.measure(scale), "chapter": c.chapter}
        for c in CLAIMS
        if chapter is None or c.chapter == chapter
    ]
    return pd.DataFrame(rows)
