"""Chapter 04, the optimization landscape (Figs. 4, 10 and 11), its larger distances, and whether
the "effective beta" of BatchNorm networks is 2 / lr (the edge-of-stability level)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plotting
from bnlib.book.chapter import PART_ONE, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import (
    BETA_GAP,
    EARLY,
    GAP,
    MIN_BAND_PROBES,
    PHASES,
    QUANTILE,
    band_text,
    bands,
    deciding,
    early_spikes,
    phase_text,
    ratio_of,
    series,
)
from bnlib.book.plan import Read
from bnlib.book.runs import BN, BN_LARGE, DLN_BN, DLN_STD, SEEDS, STD
from bnlib.book.session import Session
from bnlib.experiments import Experiment

DLN_BN_SMALL = Experiment("dln", "batch", 1e-7)
PAIRS = {"VGG lr 0.1": (STD, BN), "DLN lr 1e-6": (DLN_STD, DLN_BN)}
TWO_OVER_LR_RUNS = (BN, BN_LARGE, DLN_BN, DLN_BN_SMALL)  # two learning rates per model
TWO_OVER_LR_FIGURE = (BN, BN_LARGE, STD, DLN_BN, DLN_BN_SMALL, DLN_STD)  # and the standard networks beside them
LANDSCAPE = ("landscape", "landscape-random", "landscape-extended")

TWO_OVER_LR_FACTOR = 2.0  # "sits at 2 / lr": within this factor


def reads(session: Session) -> list[Read]:
    pairs = [Read(run, SEEDS, (*LANDSCAPE, "activation-gradients")) for pair in PAIRS.values() for run in pair]
    hessian = [
        Read(run, (0,), ("landscape", "hessian")) for run in (*PAIRS["VGG lr 0.1"], BN_LARGE, DLN_BN, DLN_BN_SMALL)
    ]
    return [*pairs, *hessian, *(Read(run, (0,), ("hessian",)) for run in PAIRS["DLN lr 1e-6"])]


def landscape_numbers(run: Experiment, session: Session, kind: str = "landscape") -> dict[str, float]:
    """Figs. 4 and 10 summarised over training, for the seed-0 run and one landscape probe (kind
    "landscape", "landscape-random" or "landscape-extended"): medians of the loss band's width and
    of the largest gradient change, and the median and largest effective beta, also as a multiple
    of 2 / lr (the edge-of-stability level). For the extended grid, also the median effective beta
    over the step sizes beyond the paper's grid alone."""
    band, grad, beta = (series(run, session, q, kind) for q in ("band", "grad", "beta"))
    numbers = {
        "loss band width": float(band.median()),
        "loss band max": float(band.max()),
        "gradient change": float(grad.median()),
        "gradient change max": float(grad.max()),
        "beta median": float(beta.median()),
        "beta max": float(beta.max()),
        "beta median x lr/2": float(beta.median() * run.lr / 2),
    }
    if kind == "landscape-extended":
        record = session.get(run)
        numbers |= {
            "beta beyond": float(series(run, session, "beta beyond", kind).median()),
            "largest multiple": float(record.probe_table(kind, "eta_multiple").iloc[0].max()),
        }
    return numbers


# What the rules compare: (quantity, probe kind) by name. The gradient's magnitude is taken with
# respect to each layer's activations (Sections 3.1 and 4.1), over all layers.
QUANTITIES = {
    "loss band width": ("band", "landscape"),
    "largest gradient change": ("grad", "landscape"),
    "effective beta": ("beta", "landscape"),
    "activation gradient norm": ("total", "activation-gradients"),
    "effective beta beyond the paper's step sizes": ("beta beyond", "landscape-extended"),
    "loss band width along a random direction": ("band", "landscape-random"),
}


def phase_table(session: Session) -> pd.DataFrame:
    """What the rules read on VGG: per quantity and phase of training, each network's probed steps
    in it (all seeds) and the QUANTILE of the quantity over them, and their ratio."""
    std, bn = PAIRS["VGG lr 0.1"]
    rows = []
    for name, (quantity, kind) in QUANTITIES.items():
        for band in bands(Read(std, SEEDS), Read(bn, SEEDS), session, quantity, kind):
            rows.append(
                {
                    "quantity": name,
                    "phase": phase_text(band.phase),
                    "standard probes": band.probes[0],
                    "BN probes": band.probes[1],
                    f"standard q{QUANTILE * 100:.0f}": band.levels[0],
                    f"BN q{QUANTILE * 100:.0f}": band.levels[1],
                    "standard / BN": band.ratio if band.compared else np.nan,
                    "seed by seed": ", ".join(f"{r:.3g}" for r in band.seeds),
                }
            )
    return pd.DataFrame(rows)


def early_table(session: Session) -> pd.DataFrame:
    """What the rules read on the DLN: per quantity, the QUANTILE of each seed's values over the
    early window (the first EARLY of the run), standard and BN, and their ratio (median over seeds)."""
    std, bn = PAIRS["DLN lr 1e-6"]
    rows = []
    for name, (quantity, kind) in QUANTITIES.items():
        s, b = early_spikes(std, session, quantity, kind), early_spikes(bn, session, quantity, kind)
        rows.append(
            {
                "quantity": name,
                "standard, seed by seed": ", ".join(f"{v:.3g}" for v in s),
                "BN, seed by seed": ", ".join(f"{v:.3g}" for v in b),
                "standard / BN (median over seeds)": float(np.median([x / y for x, y in zip(s, b, strict=True)])),
            }
        )
    return pd.DataFrame(rows)


LANDSCAPE_COLUMNS = {
    "loss band width": "median loss band width",
    "loss band max": "widest loss band",
    "gradient change": "median max gradient change",
    "gradient change max": "largest gradient change",
    "beta median": "median effective beta",
    "beta max": "largest effective beta",
    "beta median x lr/2": "median effective beta / (2/lr)",
    "beta beyond": "median effective beta beyond the paper's grid",
    "largest multiple": "largest step / lr",
}


def landscape_table(runs: list[Experiment], session: Session, kind: str = "landscape") -> pd.DataFrame:
    """`landscape_numbers` for several runs, as a table (medians over training)."""
    rows = [{"experiment": run.name, **landscape_numbers(run, session, kind)} for run in runs]
    return pd.DataFrame(rows).rename(columns=LANDSCAPE_COLUMNS)


def hessian_table(runs: list[Experiment], session: Session) -> pd.DataFrame:
    """The Hessian's top eigenvalue at the probed checkpoints, beside 2 / lr and the effective beta
    measured at the same step (or the nearest step the landscape probe ran at)."""
    rows = []
    for run in runs:
        record = session.get(run)
        top = record.probe_table("hessian", "eigenvalues")[0]
        beta = record.probe_table("landscape", "beta_max")[0]
        for step, value in top.items():
            rows.append(
                {
                    "experiment": run.name,
                    "step": int(step),
                    "top Hessian eigenvalue": value,
                    "effective beta": beta.iloc[abs(beta.index - step).argmin()],
                    "2 / lr": 2 / record.config.lr,
                    "eigenvalue / (2/lr)": value * record.config.lr / 2,
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the figures


def landscape_figure(
    session: Session, runs: tuple[Experiment, ...], kind: str = "landscape", log_all: bool = False
) -> plt.Figure:
    """Figs. 4 and 10: the loss band, the gradient change and the effective beta over training (seed 0)."""
    return plotting.landscape([session.get(run) for run in runs], kind, log_all)


def figure_11(session: Session, runs: tuple[Experiment, ...], log: bool, kind: str = "landscape") -> plt.Figure:
    """Fig. 11: the gradient change against the step size, one curve per probed step (seed 0)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 3.6), sharey=True)
    for ax, run in zip(axes, runs, strict=True):
        record = session.get(run)
        plotting.by_step_size(record.probe_table(kind, "eta"), record.probe_table(kind, "grad_diff"), ax=ax)
        ax.set(title=plotting.label(record.config.norm), ylabel="gradient change")
        if log:
            ax.set(xscale="log", yscale="log")
    fig.tight_layout()
    return fig


def two_over_lr_figure(session: Session, runs: tuple[Experiment, ...]) -> plt.Figure:
    """The effective beta over training against 2 / lr, with the top Hessian eigenvalue where probed."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4))
    for ax, run in zip(axes, runs, strict=True):
        record = session.get(run)
        beta = record.probe_table("landscape", "beta_max")[0]
        color = plotting.NORM_COLORS[record.config.norm]
        ax.plot(beta.index, beta, color=color, lw=1, label="effective $\\beta$")
        ax.axhline(2 / record.config.lr, color="k", ls="--", lw=1, label="2 / lr")
        if "hessian" in record.probes:
            top = record.probe_table("hessian", "eigenvalues")[0]
            ax.plot(top.index, top, "D", color="k", ms=5, mfc="w", label="top Hessian eigenvalue")
        ax.set(title=f"{plotting.label(record.config.norm)}, lr {record.config.lr:g}", xlabel="step")
        ax.title.set_fontsize("small")
        ax.set_yscale("log")
    axes[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def at_step(session: Session, model: str, step: int) -> plt.Figure:
    """The loss and the gradient change along the gradient against the step size, at the probed step
    nearest `step`, standard and BN ("VGG" at lr 0.1 or "DLN" at lr 1e-6; seed 0)."""
    runs = PAIRS["VGG lr 0.1" if model == "VGG" else "DLN lr 1e-6"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for run in runs:
        record = session.get(run)
        etas = record.probe_table("landscape", "eta")
        nearest = etas.index[abs(etas.index - step).argmin()]
        color, label = plotting.NORM_COLORS[record.config.norm], plotting.label(record.config.norm)
        for ax, quantity in zip(axes, ("loss", "grad_diff"), strict=True):
            values = record.probe_table("landscape", quantity).loc[nearest]
            ax.plot(etas.loc[nearest], values, "o-", color=color, label=label)
    for ax, title in zip(axes, ("loss at $w - \\eta g$", "gradient change"), strict=True):
        ax.set(
            xlabel="step size $\\eta$",
            title=f"{title}, step {nearest}",
            yscale="log",
            xscale="log" if model == "DLN" else "linear",
        )
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the claims


def _finding(session: Session, what: str, gap: float) -> Finding:
    """One landscape claim: the standard network's QUANTILE over BN's, on VGG in the earliest phase of
    training both networks can be compared in (`bands`), on the DLN over the early window (median
    over seeds), each at least `gap` for the claim to hold for that model."""
    quantity, kind = QUANTITIES[what]
    vgg_std, vgg_bn = PAIRS["VGG lr 0.1"]
    found = bands(Read(vgg_std, SEEDS), Read(vgg_bn, SEEDS), session, quantity, kind)
    decided = deciding(found)
    dln_std, dln_bn = PAIRS["DLN lr 1e-6"]
    spikes = [early_spikes(run, session, quantity, kind) for run in (dln_std, dln_bn)]
    ratios = [ratio_of(s, b) for s, b in zip(*spikes, strict=True)]
    dln = float(np.median(ratios))
    text = (
        f"{what}, its {QUANTILE:.0%} quantile. VGG, phase by phase of training: {band_text(found)}. DLN, over the "
        f"first {EARLY:.0%} of training: standard {np.median(spikes[0]):.3g}, BN {np.median(spikes[1]):.3g} "
        f"(x{dln:.3g}; seeds x{min(ratios):.3g} to x{max(ratios):.3g})"
    )
    if decided is None:
        summary = (
            f"On VGG no phase of training holds {MIN_BAND_PROBES} probed steps of both networks, so the {what} "
            f"cannot be compared there; on the DLN the standard network's is {dln:.3g} times BatchNorm's early on."
        )
        return Finding(text, Verdict.CANNOT_TELL, summary)
    checks = [decided.ratio >= gap, dln >= gap]
    summary = (
        f"The standard network's {what} is {decided.ratio:.3g} times BatchNorm's on VGG (at "
        f"{phase_text(decided.phase)} training accuracy, the earliest phase both networks can be compared in) and "
        f"{dln:.3g} times on the DLN early in training: at least {gap:g} times for "
        f"{' and '.join(m for m, ok in zip(('VGG', 'the DLN'), checks, strict=True) if ok) or 'neither model'}."
    )
    return Finding(text, graded(checks), summary)


def loss_band(session: Session) -> Finding:
    return _finding(session, "loss band width", GAP)


def gradient_predictiveness(session: Session) -> Finding:
    return _finding(session, "largest gradient change", GAP)


def effective_beta(session: Session) -> Finding:
    return _finding(session, "effective beta", BETA_GAP)


def gradient_magnitude(session: Session) -> Finding:
    return _finding(session, "activation gradient norm", GAP)


def larger_distances(session: Session) -> Finding:
    return _finding(session, "effective beta beyond the paper's step sizes", BETA_GAP)


def random_directions(session: Session) -> Finding:
    return _finding(session, "loss band width along a random direction", GAP)


def beta_at_two_over_lr(session: Session) -> Finding:
    ratios = {run: landscape_numbers(run, session)["beta median x lr/2"] for run in TWO_OVER_LR_RUNS}
    tops = {run: session.get(run).probe_table("hessian", "eigenvalues")[0] * run.lr / 2 for run in TWO_OVER_LR_RUNS}
    text = (
        "median effective beta / (2/lr): "
        + ", ".join(f"{run.name} {r:.2f}" for run, r in ratios.items())
        + "; the top Hessian eigenvalue at the probed steps / (2/lr): "
        + ", ".join(f"{run.name} {t.min():.2g} to {t.max():.2g}" for run, t in tops.items())
    )
    near = [1 / TWO_OVER_LR_FACTOR <= r <= TWO_OVER_LR_FACTOR for r in ratios.values()]
    summary = (
        f"The median effective beta of {sum(near)} of the {len(near)} BatchNorm runs lies within a factor of "
        f"{TWO_OVER_LR_FACTOR:g} of 2/lr (ratios {min(ratios.values()):.2f} to {max(ratios.values()):.2f}), while "
        f"the top of the Hessian lies at {min(t.min() for t in tops.values()):.2g} to "
        f"{max(t.max() for t in tops.values()):.2g} times 2/lr: the curvature along the gradient, not the largest, "
        "is what sits at 2/lr."
    )
    return Finding(text, graded(near), summary)


def _early_rule(what: str, gap: float) -> str:
    return (
        f"{what}, its {QUANTILE:.0%} quantile, the standard network's at least {gap:g} times BN's. On VGG in the "
        f"earliest phase of training ({', '.join(phase_text(p) for p in PHASES)} training accuracy, once the "
        f"network's loss has left its plateau) where both networks have at least {MIN_BAND_PROBES} probed steps "
        f"over their seeds; on the DLN over the first {EARLY:.0%} of training (median over seeds). Reproduced if it "
        "holds for both models, partly if for one, not reproduced if for neither; cannot tell if no phase of VGG "
        "can be compared"
    )


CLAIMS = {
    "loss_band": Claim(
        "BatchNorm makes the loss change less along the gradient",
        '"the loss of a vanilla ... network has a very wide range of values along the direction of the gradient, '
        "especially in the initial phases of training\" (Section 3.2); VGG: the standard network's band up to ~10, "
        "BN's narrow; DLN: standard up to ~1e14 early, BN ~1e4-1e5 (read off Figs. 4a and 10a by eye)",
        _early_rule("The loss band's width", GAP),
        loss_band,
    ),
    "gradient_predictiveness": Claim(
        "BatchNorm makes the gradient more predictive",
        '"a significant difference (close to two orders of magnitude) in such gradient predictiveness ... especially '
        "early in training\" (Section 3.2); yet in Fig. 4b VGG's standard network spikes to ~250 against BN's "
        "~30-50, one order; DLN: up to ~1e16 vs ~1e4-1e6 (Fig. 10b, read by eye)",
        _early_rule("The largest gradient change", GAP),
        gradient_predictiveness,
    ),
    "effective_beta": Claim(
        "BatchNorm lowers the effective beta-smoothness",
        "VGG: standard spikes 5-45, BN ~20 flat; DLN: up to 1e15 vs ~2e6 flat (read off Figs. 4c and 10c by eye)",
        _early_rule("The effective beta", BETA_GAP),
        effective_beta,
    ),
    "gradient_magnitude": Claim(
        "With BatchNorm the gradients are smaller too",
        '"the loss changes at a smaller rate and the magnitudes of the gradients are smaller too" (Section 3.1, no '
        "figure)",
        _early_rule(
            "The gradient with respect to the layers' activations (the outputs y = Wx of Section 4.1, over all layers)",
            GAP,
        ),
        gradient_magnitude,
    ),
    "larger_distances": Claim(
        "BatchNorm keeps smoothing at larger distances",
        '"BatchNorm however continues to provide smoothing for even larger distances" (captions of Figs. 4 and 10, '
        "no figure)",
        _early_rule(
            "On a grid extended beyond the paper's (VGG to 32 x lr, DLN to 1000 x lr), the effective beta over "
            "the extra step sizes",
            BETA_GAP,
        ),
        larger_distances,
    ),
    "random_directions": Claim(
        "Along random directions the loss behaves similarly",
        '"the loss behaves in a similar way when we examine other (random) directions too" (Section 3.2, no figure): '
        "BatchNorm smoother along them too",
        _early_rule("Along a random direction of the gradient's length, the loss band's width", GAP),
        random_directions,
    ),
    "two_over_lr": Claim(
        "(Our test) The effective beta of BatchNorm networks sits at 2 / lr, the edge-of-stability level",
        "not in the paper; its BN plateaus read ~20 = 2/0.1 (VGG) and ~2e6 = 2/1e-6 (DLN), read off Figs. 4c and "
        "10c by eye",
        f"holds (reproduced) if the median effective beta of each BN run, at two learning rates per model, lies "
        f"within a factor of {TWO_OVER_LR_FACTOR:g} of 2/lr; partly if for some; not reproduced if for none; the top "
        "Hessian eigenvalue is reported beside it",
        beta_at_two_over_lr,
    ),
}

CHAPTER = Chapter("04_landscape", "The optimization landscape", PART_ONE, reads, CLAIMS)
