"""Chapter 06, the theory of Section 4 and appendix C checked numerically: every statement's two
sides computed, over many random instances and on the trained VGG with BatchNorm.

The numerics are the core library's (`bnlib.probes.theory`: each statement's two sides, and the
sweeps of them over random BN units and a network's units); this chapter runs them on the book's
runs and rules on each statement. The sweeps are computed once per process (`sweeps`): the
chapter's tables and figures, its claims and its closing paragraph all read the same numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from bnlib.book.chapter import PART_ONE, Chapter
from bnlib.book.claims import ALPHA, Claim, Finding, Verdict, above_chance, chance_tail
from bnlib.book.plan import Read
from bnlib.book.runs import BN, DLN_BN
from bnlib.book.session import Session
from bnlib.config import RunConfig
from bnlib.experiments import Experiment
from bnlib.probes import theory
from bnlib.records import Record
from bnlib.train import first_batch, initial_model, summed_squared_error

THEORY_MS = (2, 4, 16, 64, 256)  # batch sizes of the random instances


def reads(session: Session) -> list[Read]:
    # the trained network's weights: Theorems 4.1 and 4.2 on it (`theorem_4_1_trained`, `hypotheses`)
    return [Read(BN, (0,), ("bn-scale",), weights=True), Read(DLN_BN, (0,), ("bn-scale",))]


def hypotheses_start_and_end(record: Record, n_units: int = 2, batch: int = 32) -> pd.DataFrame:
    """`theory.hypotheses_on_network` for a run's initial and final network, on the first `batch`
    samples of its first batch (each unit costs a double-backward pass through the layers above it)."""
    x, y, loss_fn = first_batch(record.config)
    x, y = x[:batch], y[:batch]
    parts = [
        theory.hypotheses_on_network(model, x, y, loss_fn, n_units).assign(network=name)
        for name, model in (("initial", initial_model(record.config)), ("trained", record.model()))
    ]
    return pd.concat(parts, ignore_index=True)


def scale_invariance(factors: Sequence[float], seed: int = 0) -> pd.DataFrame:
    """What Lemma 4.5 rests on: a deep linear network with BN (8 layers of 10 x 10) has the same
    loss when a layer's weights are multiplied by k > 0. Loss at k W_1 over the loss at W_1."""
    config = RunConfig(model="dln", norm="batch", dln_depth=8, dln_dim=10, bn_eps=1e-30, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x, target = torch.randn(100, 10, generator=gen), torch.randn(100, 10, generator=gen)
    model = initial_model(config).double()
    x, target = x.double(), target.double()
    weight = model.layer(1).weight
    base = summed_squared_error(model(x), target).item()
    rows = []
    with torch.no_grad():
        original = weight.clone()
        for k in factors:
            weight.copy_(original * k)
            rows.append({"k": k, "loss ratio": summed_squared_error(model(x), target).item() / base})
        weight.copy_(original)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the trained network


def bn_scale_over_training(record: Record) -> pd.DataFrame:
    """From a run's BN-scale probe: per probed step and BN layer, the median over units of
    gamma^2 / sigma^2, the share of units where it is below 1, and the share with <g, y_hat> > 0."""
    data = record.probes[record.probe_key("bn-scale")]
    layers = sorted({int(k[1:].split(".")[0]) for k in data if k.startswith("L")})
    rows = []
    for i, step in enumerate(data["step"]):
        for k in layers:
            ratio, dot = data[f"L{k}.gamma_sq_over_sigma_sq"][i], data[f"L{k}.g_dot_y_hat"][i]
            rows.append(
                {
                    "step": int(step),
                    "layer": k,
                    "median gamma^2/sigma^2": float(np.median(ratio)),
                    "share below 1": float(np.mean(ratio < 1)),
                    "share <g, y_hat> > 0": float(np.mean(dot > 0)),
                }
            )
    return pd.DataFrame(rows)


@functools.cache
def hypotheses(session: Session) -> pd.DataFrame:
    """Theorem 4.2's hypotheses on the initial and trained VGG with BN at lr 0.1, on a whole training
    batch (m its batch size; computed once and kept with the runs, `Session.measured`: about a minute at
    the cpu scale, and it reads the data)."""
    config = session.config(BN)
    batch = config.batch_size

    def compute() -> pd.DataFrame:
        return hypotheses_start_and_end(session.get(BN), batch=batch)

    return session.measured("theorem-4.2-hypotheses", config, compute, batch=batch)


def theorem_4_1_trained(session: Session) -> pd.DataFrame:
    """Theorem 4.1 on every unit of the trained VGG with BN at lr 0.1, on its run's first batch
    (kept with the runs, `Session.measured`: it reads the data and the run's weights)."""

    def compute() -> pd.DataFrame:
        record = session.get(BN)
        x, y, loss_fn = first_batch(record.config)
        return theory.theorem_4_1_on_network(record.model(), x, y, loss_fn)

    return session.measured("theorem-4.1-trained", session.config(BN), compute)


# ----------------------------------------------------------------------------- the figures and tables


def theorem_4_1_figure() -> plt.Figure:
    """Theorem 4.1 on the random units: the squared gradient reaching y (autograd) against the right
    side with 1/m (the proof's algebra) and with 1/sqrt(m) (as printed)."""
    sweep = sweeps()["4.1"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    forms = (("rhs_1_over_m", "with 1/m (the proof's algebra)"), ("rhs_printed", "with 1/sqrt(m) (as printed)"))
    for ax, (rhs, title) in zip(axes, forms, strict=True):
        sns.scatterplot(data=sweep, x="lhs", y=rhs, hue="m", palette="viridis", s=12, ax=ax, legend=ax is axes[0])
        top = sweep["lhs"].max()
        ax.plot([0, top], [0, top], "k--", lw=1)
        ax.set(xlabel="$\\|\\nabla_y \\hat L\\|^2$ (autograd)", ylabel="right-hand side", title=title, yscale="symlog")
    fig.tight_layout()
    return fig


def theorem_4_1_table() -> pd.DataFrame:
    """Theorem 4.1 by batch size: the 1/m form's largest relative error, the printed form's violations."""
    return (
        sweeps()["4.1"]
        .groupby("m")
        .agg(
            largest_relative_error_1_over_m=("relative_error_1_over_m", "max"),
            share_violating_printed_form=("printed_violated", "mean"),
        )
        .reset_index()
    )


def theorem_4_2_figure() -> plt.Figure:
    """Theorem 4.2's first display on the random units: both sides."""
    sweep = sweeps()["4.2"]
    fig, ax = plt.subplots(figsize=(5, 4))
    sns.scatterplot(data=sweep, x="lhs", y="rhs", hue="m", palette="viridis", s=14, ax=ax)
    ax.plot(*[[sweep["lhs"].min(), sweep["lhs"].max()]] * 2, "k--", lw=1)
    ax.set(xscale="symlog", yscale="symlog", xlabel="left side (autograd)", ylabel="first display's right side")
    return fig


def theorem_4_2_table() -> pd.DataFrame:
    """Theorem 4.2 by batch size: the first display's largest relative error, and how often the second
    display and the proof's step hold."""
    return (
        sweeps()["4.2"]
        .groupby("m")
        .agg(
            first_display_largest_relative_error=("relative_error", "max"),
            second_display_holds=("second_holds", "mean"),
            proof_step_holds=("proof_step_holds", "mean"),
        )
        .reset_index()
    )


def hypotheses_table(session: Session) -> pd.DataFrame:
    """Theorem 4.2's hypotheses on the initial and trained network: the share of units that meet each."""
    return (
        hypotheses(session)
        .groupby("network")
        .agg(
            units=("unit", "size"),
            share_convex_along_g=("g_H_g", lambda v: (v >= 0).mean()),
            share_g_dot_y_hat_positive=("g_dot_y_hat", lambda v: (v > 0).mean()),
        )
        .reset_index()
    )


def layer_heatmap(session: Session, column: str, title: str, **kwargs) -> plt.Figure:
    """One column of the BN-scale probe's summary (`bn_scale_over_training`) of the VGG with BN at lr
    0.1, per layer and probed step."""
    fig, ax = plt.subplots(figsize=(11, 3.6))
    grid = bn_scale_over_training(session.get(BN)).pivot(index="layer", columns="step", values=column)
    sns.heatmap(grid, ax=ax, cbar_kws={"label": column}, **kwargs)
    ax.set(title=title, ylabel="layer #", xlabel="step")
    return fig


def at_last_step(session: Session, run: Experiment) -> pd.DataFrame:
    """`bn_scale_over_training` of a run at its last probed step."""
    table = bn_scale_over_training(session.get(run))
    return table[table["step"] == table["step"].max()].drop(columns="step")


def worst_input_table() -> pd.DataFrame:
    """Theorem 4.4's worst input by batch size: whether a rank-one input attains the bound, and whether
    every random input stays below it."""
    inputs = sweeps()["4.4 inputs"]
    return (
        inputs.assign(
            attained=(inputs["rank_one"] - inputs["bound"]).abs() <= 1e-9 * inputs["bound"],
            random_below_bound=inputs["largest_random"] <= inputs["bound"] * (1 + 1e-12),
        )
        .groupby("m")[["attained", "random_below_bound"]]
        .all()
        .reset_index()
    )


def theorem_4_4_table() -> pd.DataFrame:
    """Theorem 4.4 by gradient scale and batch size: the printed form's violations, the corollary's error."""
    return (
        sweeps()["4.4"]
        .groupby(["gradient scale", "m"])
        .agg(
            share_violating_printed_form=("printed_violated", "mean"), corollary_largest_error=("relative_error", "max")
        )
        .reset_index()
    )


def theorem_c_1_table() -> pd.DataFrame:
    """Theorem C.1's verdicts by hypothesis and batch size: units where it holds, where it is violated."""
    c1 = sweeps()["C.1"]
    return c1.groupby(["hypothesis", "m", "verdict"]).size().unstack(fill_value=0).reset_index()


def lemma_4_5_table() -> pd.DataFrame:
    """Lemma 4.5 by dimension: pairs, the largest relative error, the mean k."""
    return (
        sweeps()["4.5"]
        .groupby("d")
        .agg(pairs=("k", "size"), largest_relative_error=("relative_error", "max"), mean_k=("k", "mean"))
        .reset_index()
    )


def trained_table(session: Session) -> pd.DataFrame:
    """Theorem 4.1's 1/m form on the trained network: the largest relative error per layer."""
    trained = theorem_4_1_trained(session)
    error = (trained["lhs"] - trained["rhs_1_over_m"]).abs() / trained["lhs"].abs().max()
    return trained.assign(**{"relative error": error}).groupby("layer")["relative error"].max().reset_index()


def theorem_4_1_picture(m: int, gamma: float, sigma: float) -> plt.Figure:
    """The widget's picture: Theorem 4.1 on random units of batch size m with the given gamma and
    sigma: the squared gradient with BatchNorm against without, and both forms of the bound."""
    table = theory.theorem_4_1_sweep([m], gamma=gamma, sigma=sigma)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    top = table["plain"].max()
    axes[0].scatter(table["plain"], table["lhs"], s=8)
    axes[0].plot([0, top], [0, top], "k--", lw=1, label="no change")
    axes[0].plot([0, top], [0, top * gamma**2 / sigma**2], "k:", lw=1, label="$\\gamma^2/\\sigma^2$ alone")
    axes[0].set(xlabel="$\\|g\\|^2$ (no BatchNorm)", ylabel="$\\|\\nabla_y \\hat L\\|^2$ (BatchNorm)", title=f"m = {m}")
    axes[0].legend(fontsize="small")
    for rhs, label in (("rhs_1_over_m", "1/m (proof)"), ("rhs_printed", "1/sqrt(m) (printed)")):
        axes[1].scatter(table["lhs"], table[rhs], s=8, label=label)
    axes[1].plot([0, table["lhs"].max()], [0, table["lhs"].max()], "k--", lw=1)
    axes[1].set(
        xlabel="$\\|\\nabla_y \\hat L\\|^2$",
        ylabel="bound",
        title=f"printed form violated: {table['printed_violated'].mean():.0%}",
    )
    axes[1].legend(fontsize="small")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the claims

IDENTITY_TOLERANCE = 1e-8  # relative error under which two sides computed independently are "equal"
EXACT = 1e-10  # |BN(y) - y| under which Observation 4.3's layer returns its input
INVARIANT = 1e-9  # |loss ratio - 1| under which scaling a layer leaves the loss unchanged
MOST = 0.9  # the share of units for "reproduced" on the trained networks ("partly": above chance, `above_chance`)
C1_MS = (4, 16, 64)


@functools.cache
def sweeps() -> dict[str, pd.DataFrame]:
    """Every random-instance check of Section 4, computed once per process."""
    return {
        "4.1": theory.theorem_4_1_sweep(THEORY_MS),
        "4.2": theory.theorem_4_2_sweep(THEORY_MS[1:]),
        "4.3": theory.observation_4_3_sweep(THEORY_MS),
        "4.4": theory.theorem_4_4_sweep(THEORY_MS),
        "4.4 inputs": theory.worst_input_sweep(THEORY_MS[1:4]),
        "C.1": theory.theorem_c_1_sweep(C1_MS),
        "4.5": theory.lemma_4_5_sweep((2, 10, 50)),
        "invariance": scale_invariance((0.01, 100)),
    }


def theorem_4_1(session: Session) -> Finding:
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
        f"{theory.theorem_4_1_counterexample()['rhs_printed']:.3f}); {proof}"
    )
    summary = f"Theorem 4.1 as printed fails on {violated:.0%} of the random units; {proof}."
    return Finding(text, Verdict.REPRODUCED if violated == 0 else Verdict.NOT_REPRODUCED, summary)


def theorem_4_2(session: Session) -> Finding:
    table = sweeps()["4.2"]
    error = table["relative_error"].max()
    equal = error <= IDENTITY_TOLERANCE
    text = f"{len(table)} random units: the first display's two sides are " + (
        f"equal (eq. 50; largest relative error {error:.1e})" if equal else f"apart by up to {error:.1e} (relative)"
    )
    summary = f"Theorem 4.2's first display: its two sides agree to a relative {error:.1e} on every random unit."
    return Finding(text, Verdict.REPRODUCED if equal else Verdict.NOT_REPRODUCED, summary)


def theorem_4_2_second(session: Session) -> Finding:
    table = sweeps()["4.2"]
    holds, step = table["second_holds"], table["proof_step_holds"]
    text = (
        f"{len(table)} random units: the hypothesis (v^T H v <= g^T H g, our reading) holds on {step.mean():.0%}, and "
        f"there the display holds on {holds[step].mean():.0%}, as it must: with the first display an equality, the "
        f"second follows from the hypothesis by algebra; where the hypothesis fails it holds on "
        f"{holds[~step].mean() if (~step).any() else float('nan'):.0%}"
    )
    verdict = Verdict.BY_CONSTRUCTION if holds[step].all() else Verdict.NOT_REPRODUCED
    summary = (
        f"Its second display follows from the first and its hypothesis by algebra; where the hypothesis holds it "
        f"holds on {holds[step].mean():.0%} of the random units, as it must."
    )
    return Finding(text, verdict, summary)


def theorem_4_2_hypotheses(session: Session) -> Finding:
    h = hypotheses(session)
    trained, initial = h[h["network"] == "trained"], h[h["network"] == "initial"]
    n = len(trained)
    convex, positive = int((trained["g_H_g"] >= 0).sum()), int((trained["g_dot_y_hat"] > 0).sum())
    text = (
        f"VGG with BN at lr 0.1, {n} sampled units on a training batch (m = {session.config(BN).batch_size}): "
        f"g^T H g >= 0 for {convex} ({convex / n:.0%}; p = {chance_tail(convex, n):.2g} against one half) after "
        f"training ({(initial['g_H_g'] >= 0).mean():.0%} at initialisation); <g, y_hat> > 0 for {positive} "
        f"({positive / n:.0%}; p = {chance_tail(positive, n):.2g}) ({(initial['g_dot_y_hat'] > 0).mean():.0%} at "
        "initialisation)"
    )
    if min(convex, positive) >= MOST * n:
        verdict = Verdict.REPRODUCED
    elif above_chance(convex, n) and above_chance(positive, n):
        verdict = Verdict.PARTLY
    else:
        verdict = Verdict.NOT_REPRODUCED
    summary = (
        f"On the trained VGG its hypotheses hold for {convex / n:.0%} (local convexity) and {positive / n:.0%} "
        f"(<g, y_hat> > 0) of {n} sampled units."
    )
    return Finding(text, verdict, summary)


def observation_4_3(session: Session) -> Finding:
    largest = sweeps()["4.3"]["max_abs_difference"].max()
    text = f"largest |BN(y) - y| with gamma = sigma, beta = mu: {largest:.1e}"
    summary = f"With gamma = sigma and beta = mu BatchNorm returns its input to within {largest:.1e} (Observation 4.3)."
    return Finding(text, Verdict.REPRODUCED if largest <= EXACT else Verdict.NOT_REPRODUCED, summary)


def theorem_4_4(session: Session) -> Finding:
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
    violated = table["printed_violated"].any()
    summary = (
        f"Theorem 4.4 as printed fails on {table['printed_violated'].mean():.0%} of the random units; {corollary}."
    )
    return Finding(text, Verdict.NOT_REPRODUCED if violated else Verdict.REPRODUCED, summary)


def theorem_c_1(session: Session) -> Finding:
    table = sweeps()["C.1"]
    met = table[table["hypothesis"]]
    held, violated = int((met["verdict"] == "holds").sum()), int((met["verdict"] == "violated").sum())
    others = int((table[~table["hypothesis"]]["verdict"] == "violated").sum())
    text = (
        f"{len(table)} random units, m = {', '.join(map(str, C1_MS))}, both sides' maxima over the inputs solved "
        f"exactly; on the {len(met)} that meet Theorem 4.2's hypothesis: holds on {held}, violated on {violated} (on "
        f"the other {len(table) - len(met)}: violated on {others})"
    )
    if not len(met):
        verdict = Verdict.CANNOT_TELL
    else:
        verdict = Verdict.NOT_REPRODUCED if violated else Verdict.REPRODUCED
    summary = (
        f"Theorem C.1, on the {len(met)} random units that meet its hypothesis, holds on {held} and fails on "
        f"{violated}."
    )
    return Finding(text, verdict, summary)


def lemma_4_5(session: Session) -> Finding:
    error = sweeps()["4.5"]["relative_error"].max()
    ratios = sweeps()["invariance"]["loss ratio"]
    equal = error <= IDENTITY_TOLERANCE
    invariant = ((ratios - 1).abs() <= INVARIANT).all()
    text = (
        ("an equality for k W*, k = <W*, W0>/||W*||^2 " if equal else "not an equality ")
        + f"(largest relative error {error:.1e}); the BN network's loss when a layer is scaled by 0.01 or 100: "
        f"ratios {ratios.iloc[0]:.12f}, {ratios.iloc[1]:.12f}"
    )
    summary = f"Lemma 4.5's bound is an equality for k W* to a relative {error:.1e}."
    return Finding(text, Verdict.REPRODUCED if equal and invariant else Verdict.NOT_REPRODUCED, summary)


def sigma_large(session: Session) -> Finding:
    counts, parts = [], []
    for name, run in (("VGG + BN at lr 0.1", BN), ("DLN + BN at lr 1e-6", DLN_BN)):
        record = session.get(run)
        below, n = units_below_one(record)
        table = bn_scale_over_training(record)
        last = table[table["step"] == table["step"].max()]
        share, ratio = last["share below 1"], last["median gamma^2/sigma^2"]
        counts.append((below, n))
        parts.append(
            f"{name}: {below} of {n} units ({below / n:.0%}; p = {chance_tail(below, n):.2g} against one half) have "
            f"gamma^2/sigma^2 < 1 (per layer {share.min():.0%} to {share.max():.0%}); median ratio per layer "
            f"{ratio.min():.2g} to {ratio.max():.2g}"
        )
    text = "at the last probed step, " + "; ".join(parts)
    if all(below >= MOST * n for below, n in counts):
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if any(above_chance(below, n) for below, n in counts) else Verdict.NOT_REPRODUCED
    (vgg, n_vgg), (dln, n_dln) = counts
    summary = (
        f"On the trained networks, gamma^2/sigma^2 is below 1 for {vgg / n_vgg:.0%} of VGG's units and "
        f"{dln / n_dln:.0%} of the deep linear network's."
    )
    return Finding(text, verdict, summary)


def units_below_one(record: Record) -> tuple[int, int]:
    """How many of the units the BN-scale probe tracks have gamma^2/sigma^2 < 1 at its last probed
    step, and of how many."""
    data = record.probes[record.probe_key("bn-scale")]
    ratios = np.concatenate([data[key][-1].ravel() for key in data if key.endswith(".gamma_sq_over_sigma_sq")])
    return int((ratios < 1).sum()), len(ratios)


CLAIMS = {
    "theorem_4_1": Claim(
        "Theorem 4.1: BN shrinks the gradient reaching a layer's outputs",
        "||grad L_hat||^2 <= gamma^2/sigma^2 (||g||^2 - <1, g>^2/m - <g, y_hat>^2/sqrt(m)) (p. 9)",
        "reproduced if the printed inequality holds on every random unit; not reproduced if it fails on any",
        theorem_4_1,
    ),
    "theorem_4_2": Claim(
        "Theorem 4.2, first display: the curvature along the gradient",
        "v^T (d^2 L_hat/dy^2) v <= gamma^2/sigma^2 v^T H v - gamma/(m sigma^2) <g, y_hat> ||v||^2 (p. 9)",
        f"reproduced if the two sides, computed independently, agree to a relative {IDENTITY_TOLERANCE:g} on every "
        "random unit (the proof's eq. 50 is an equality); not reproduced otherwise",
        theorem_4_2,
    ),
    "theorem_4_2_second": Claim(
        "Theorem 4.2, second display",
        'if H "preserves the relative norms of g and grad L_hat": the same with g^T H g in place of v^T H v (p. 9)',
        "where its hypothesis holds (v^T H v <= g^T H g, our reading), it follows from the first display (an "
        "equality) by algebra: holds by construction if it holds on every such random unit, not reproduced "
        "otherwise (a failure would be an error of the computation)",
        theorem_4_2_second,
    ),
    "theorem_4_2_hypotheses": Claim(
        "Theorem 4.2's hypotheses hold in practice",
        'H PSD along the gradient and <g, y_hat> > 0 are "both fairly mild assumptions" (p. 9)',
        f"on a trained VGG with BN, on a whole training batch: reproduced if both hold for at least {MOST:.0%} of the "
        f"sampled units; partly if both hold for significantly more than half of them (a one-sided binomial test "
        f"against one half at {ALPHA:g}, n stated); not reproduced otherwise",
        theorem_4_2_hypotheses,
    ),
    "observation_4_3": Claim(
        "Observation 4.3: with gamma = sigma, beta = mu, BN returns its input",
        "so every minimum of the standard landscape exists in the BN landscape (p. 9)",
        f"reproduced if |BN(y) - y| <= {EXACT:g} on every random batch",
        observation_4_3,
    ),
    "theorem_4_4": Claim(
        "Theorem 4.4: the worst-case weight gradient is smaller with BN",
        "g_hat <= gamma^2/sigma^2 (g^2 - m mu_g^2 - lambda^2 <grad L, y_hat>^2), the maximum over inputs "
        "||X|| <= lambda, gradients held fixed (p. 9)",
        "reproduced if the printed inequality holds on every random unit, at every gradient scale; not reproduced "
        "if it fails on any",
        theorem_4_4,
    ),
    "theorem_c_1": Claim(
        "Theorem C.1: the worst-case curvature along the weight gradient is smaller with BN",
        "max over ||X|| <= lambda of the BN network's quadratic form < gamma^2/sigma^2 (the standard network's "
        "maximum - lambda^4 kappa) (appendix C)",
        "on the random units that meet Theorem 4.2's hypothesis (its stated conditions), each side's maximum over "
        "the inputs solved exactly (a trust-region problem): not reproduced if one violates it; reproduced "
        "otherwise; cannot tell if no unit meets the hypothesis",
        theorem_c_1,
    ),
    "lemma_4_5": Claim(
        "Lemma 4.5: BN's scale invariance puts an optimum closer to the initialization",
        "||W0 - W_hat*||^2 <= ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2 (p. 10)",
        f"reproduced if the identity for k W* holds to a relative {IDENTITY_TOLERANCE:g} on every random pair and "
        f"the BN network's loss is unchanged (to {INVARIANT:g}) when a layer is scaled",
        lemma_4_5,
    ),
    "sigma_large": Claim(
        "sigma_j is large, so the factor gamma^2/sigma^2 flattens the landscape",
        '"sigma_j tends to be large and highly uncontrolled in practice ... thus the scaling by gamma/sigma may '
        "contribute to the relative flatness\" (p. 9), citing the deep linear network's Fig. 9",
        f"on the trained VGG and deep linear network with BN (Fig. 9's, which the paper cites): reproduced if at "
        f"least {MOST:.0%} of units have gamma^2/sigma^2 < 1 at the last probed step in both; not reproduced if in "
        f"neither is the share significantly more than half (a one-sided binomial test against one half at "
        f"{ALPHA:g}, n stated); partly otherwise",
        sigma_large,
    ),
}

CHAPTER = Chapter("06_theory", "The theory, checked", PART_ONE, reads, CLAIMS)
