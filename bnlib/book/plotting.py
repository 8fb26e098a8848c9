"""One look for every figure of the book: seaborn styling, fixed colours per normalization."""

from __future__ import annotations

import io
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

# The same colour for the same normalization in every chapter.
NORM_COLORS = {
    "none": "#555555",
    "batch": "#1f77b4",
    "noisy_batch": "#ff7f0e",
    "noise": "#8c564b",
    "l1": "#2ca02c",
    "l2": "#9467bd",
    "linf": "#d62728",
}
NORM_LABELS = {
    "none": "Standard",
    "batch": "Standard + BatchNorm",
    "noisy_batch": 'Standard + "Noisy" BatchNorm',
    "noise": "Standard + noise",
    "l1": "Standard + L1",
    "l2": "Standard + L2",
    "linf": "Standard + L\u221e",
}


def style() -> None:
    """The book's figure style."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    # An opaque white background: Jupyter's inline figures are transparent by default, and dark text
    # on a transparent figure is unreadable in the book's dark mode.
    plt.rcParams.update(
        {
            "figure.figsize": (7.5, 3.6),
            "figure.dpi": 100,
            "axes.titleweight": "bold",
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "savefig.transparent": False,
        }
    )


def smooth(frame: pd.DataFrame, window: int, by: list[str] | None = None) -> pd.DataFrame:
    """A centred rolling mean of `value` over steps, per run, for the per-batch training metrics
    (test metrics, measured every few hundred steps, are left as they are)."""
    by = by or ["run", "seed", "metric"]
    frame = frame.sort_values([*by, "step"])
    rolled = frame.groupby(by, sort=False)["value"].transform(
        lambda v: v.rolling(window, min_periods=1, center=True).mean()
    )
    return frame.assign(value=rolled.where(frame["metric"].str.startswith("train_"), frame["value"]))


def curves(frame: pd.DataFrame, metric: str, ax: plt.Axes | None = None, hue: str = "norm", **kwargs) -> plt.Axes:
    """A metric against steps, one colour per normalization (and, with style="lr", one line style
    per learning rate), mean and spread over seeds."""
    ax = ax or plt.gca()
    data = frame[frame["metric"] == metric]
    palette = NORM_COLORS if hue == "norm" else None
    sns.lineplot(data=data, x="step", y="value", hue=hue, palette=palette, errorbar="sd", ax=ax, **kwargs)
    ax.set(xlabel="step", ylabel=metric.replace("_", " "))
    if hue == "norm" and ax.get_legend() is not None:
        handles, labels = ax.get_legend_handles_labels()
        names = [
            NORM_LABELS.get(label, f"lr {label}" if kwargs.get("style") == "lr" and label != "lr" else label)
            for label in labels
        ]
        ax.legend(handles, names, fontsize="small")
    return ax


def to_png(fig: plt.Figure) -> bytes:
    """A figure as PNG bytes (for widgets that must work without a kernel), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def label(norm: str) -> str:
    """The legend name of a normalization."""
    return NORM_LABELS.get(norm, norm)


def density_from_quantiles(quantiles: np.ndarray, levels: np.ndarray, x: np.ndarray, blur: float = 1.5) -> np.ndarray:
    """A smooth density on the grid `x` from a distribution's quantiles: the derivative of the
    piecewise-linear CDF through (quantile, level), blurred by a Gaussian of `blur` grid points."""
    q, keep = np.unique(quantiles, return_index=True)
    cdf = np.interp(x, q, levels[keep], left=0.0, right=1.0) if len(q) > 1 else (x >= q[0]).astype(float)
    density = np.gradient(cdf, x)
    if blur > 0:
        k = np.arange(-int(4 * blur), int(4 * blur) + 1)
        kernel = np.exp(-0.5 * (k / blur) ** 2)
        density = np.convolve(density, kernel / kernel.sum(), mode="same")
    return density


def ridge(
    quantiles: pd.DataFrame, levels: np.ndarray, ax: plt.Axes | None = None, n: int = 8, color: str = "#1f77b4"
) -> plt.Axes:
    """Distributions over training drawn like the paper's Figs. 1c and 2: one ridge per probed
    step (n of them, evenly spaced), later steps lower. `quantiles` has a row per step and a column
    per quantile level (one unit's `probe_table(..., "L3.input.quantiles")` columns)."""
    ax = ax or plt.gca()
    steps = quantiles.index[np.linspace(0, len(quantiles) - 1, min(n, len(quantiles))).round().astype(int)]
    values = quantiles.loc[steps].to_numpy()
    lo, hi = np.percentile(values[:, 1], 50), np.percentile(values[:, -2], 50)
    pad = 0.15 * (hi - lo or 1.0)
    x = np.linspace(min(values[:, 1].min(), lo) - pad, max(values[:, -2].max(), hi) + pad, 400)
    densities = [density_from_quantiles(v, levels, x) for v in values]
    height = max(d.max() for d in densities) or 1.0
    for i, (step, d) in enumerate(zip(steps, densities, strict=True)):
        base = -i * 0.75
        ax.fill_between(x, base, base + d / height, color=color, alpha=0.35, lw=0, zorder=i)
        ax.plot(x, base + d / height, color=color, lw=0.8, zorder=i)
        ax.text(x[-1], base + 0.05, f"{step}", fontsize="x-small", ha="right", va="bottom", color="0.3")
    ax.set_yticks([])
    ax.set_xlim(x[0], x[-1])
    return ax


def band(
    lower: pd.Series, upper: pd.Series, ax: plt.Axes | None = None, color: str = "#1f77b4", label: str = ""
) -> plt.Axes:
    """A shaded band between two series over steps (the paper's min-max bands of Figs. 4, 10)."""
    ax = ax or plt.gca()
    ax.fill_between(lower.index, lower.to_numpy(), upper.to_numpy(), color=color, alpha=0.35, lw=0, label=label)
    ax.plot(lower.index, lower.to_numpy(), color=color, lw=0.6)
    ax.plot(upper.index, upper.to_numpy(), color=color, lw=0.6)
    ax.set_xlabel("step")
    return ax


def by_step_size(
    etas: pd.DataFrame, values: pd.DataFrame, ax: plt.Axes | None = None, cmap: str = "coolwarm"
) -> plt.Axes:
    """A quantity against step size, one curve per probed training step coloured from blue (early)
    to red (late), as in the paper's Fig. 11."""
    ax = ax or plt.gca()
    colors = plt.get_cmap(cmap)(np.linspace(0, 1, len(values)))
    for color, step in zip(colors, values.index, strict=True):
        ax.plot(etas.loc[step], values.loc[step], color=color, lw=1, marker=".", ms=3)
    norm = plt.Normalize(values.index.min(), values.index.max())
    ax.figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="training step", pad=0.01)
    ax.set_xlabel("step size $\\eta$")
    return ax


def ics_diagram(k: int = 6, i: int = 4) -> plt.Figure:
    """Definition 2.1 as a picture: the two gradients of layer i that the ICS measure compares."""
    fig, ax = plt.subplots(figsize=(7.5, 2.2))
    rows = [("$G_{t,i}$", "all layers at step $t$"), ("$G'_{t,i}$", "layers $1..i-1$ already updated to $t+1$")]
    for r, (name, caption) in enumerate(rows):
        y = 1 - r
        for j in range(1, k + 1):
            moved = r == 1 and j < i
            face = "#fdd9a0" if moved else ("#b7d3ee" if j == i else "white")
            ax.add_patch(plt.Rectangle((j - 0.43, y - 0.28), 0.86, 0.56, fc=face, ec="0.3", lw=1))
            ax.text(
                j, y, f"$W_{j}^{{({'t+1' if moved else 't'})}}$", ha="center", va="center", fontsize=8 if moved else 10
            )
            if j < k:
                ax.annotate(
                    "",
                    (j + 0.57, y),
                    (j + 0.43, y),
                    arrowprops=dict(arrowstyle="->", color="0.4", shrinkA=0, shrinkB=0),
                )
        ax.text(0.2, y, name, ha="right", va="center", fontsize=12)
        ax.text(k + 0.6, y, caption, ha="left", va="center", fontsize=9, color="0.25")
    ax.text(i, -0.55, f"gradient taken with respect to layer $i={i}$, on the same batch", ha="center", fontsize=9)
    ax.set(xlim=(-0.6, k + 4.2), ylim=(-0.8, 1.5))
    ax.axis("off")
    return fig


SITE_LABELS = {
    "norm_out": "pre-activation (the paper's site)",
    "norm_in": "before the normalization",
    "input": "after the ReLU (the next layer's input)",
}


def unit_ridge(record, layer: int, unit: int = 0, site: str = "norm_out", ax: plt.Axes | None = None) -> plt.Axes:
    """`ridge` for one tracked unit of a layer at a site ("norm_out", "norm_in", "input"), from a
    run record's activation probe, in the colour of the run's normalization. Only the probed steps
    t (not their successors t + 1) are drawn."""
    levels = record.probes["activations"]["quantile_levels"][0]
    table = record.probe_table("activations", f"L{layer}.{site}.quantiles")
    table = table[~table.index.isin(table.index + 1)]  # the probed steps t, without their successors t + 1
    quantiles = table[list(range(unit * len(levels), (unit + 1) * len(levels)))]
    return ridge(quantiles, levels, ax=ax, color=NORM_COLORS.get(record.config.norm, "#1f77b4"))


def landscape(records, kind: str = "landscape", log_all: bool = False) -> plt.Figure:
    """The paper's three landscape probes over training for several runs (Figs. 4, 10, 12, 13):
    the loss band, the gradient-predictiveness band and the effective beta (`kind`: the probe,
    "landscape", "landscape-random" or "landscape-extended")."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    probe = kind
    for record in records:
        color, name = NORM_COLORS[record.config.norm], label(record.config.norm)
        table = {q: record.probe_table(probe, q)[0] for q in ("loss_min", "loss_max", "grad_diff_min", "grad_diff_max")}
        band(table["loss_min"], table["loss_max"], ax=axes[0], color=color, label=name)
        band(table["grad_diff_min"], table["grad_diff_max"], ax=axes[1], color=color, label=name)
        beta = record.probe_table(probe, "beta_max")[0]
        axes[2].plot(beta.index, beta, color=color, lw=1, label=name)
    axes[0].set(yscale="log", title="loss landscape")
    axes[1].set(title="gradient predictiveness", yscale="log" if log_all else "linear")
    axes[2].set(title="effective $\\beta$-smoothness", xlabel="step", yscale="log" if log_all else "linear")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def fraction_bars(ax: plt.Axes, rows: list[tuple[str, Any, str, bool]], half: float) -> None:
    """The ladder's picture (chapter 12): per row (label, fraction, colour, bold), the fraction of
    BatchNorm's speed-up a network recovers, a `bnlib.book.ladder.Recovered` (dot: the medians'; bar:
    the seeds' range, clipped to -1..1.5; an arrow where the range is open on that side), top to
    bottom, with lines at 0 (the standard network), 1 (BatchNorm) and `half` (dotted)."""
    for i, (_, f, color, _) in enumerate(rows):
        y = len(rows) - 1 - i
        if f.point is None:
            continue
        low, high = max(f.low, -1.0), min(f.high, 1.5)
        ax.plot([low, high], [y, y], color=color, lw=3, alpha=0.45, solid_capstyle="butt")
        ax.plot([min(max(f.point, -1.0), 1.5)], [y], "o", color=color, ms=7)
        if f.low == -np.inf:
            ax.annotate("", (-1.05, y), (-0.9, y), arrowprops=dict(arrowstyle="->", color=color))
        if f.high == np.inf:
            ax.annotate("", (1.55, y), (1.4, y), arrowprops=dict(arrowstyle="->", color=color))
    ax.axvline(0, color="0.4", lw=1)
    ax.axvline(1, color=NORM_COLORS["batch"], lw=1)
    ax.axvline(half, color="0.6", lw=1, ls=":")
    ax.set_yticks(range(len(rows)), [label for label, *_ in reversed(rows)])
    for tick, (*_, bold) in zip(ax.get_yticklabels(), reversed(rows), strict=True):
        tick.set_fontweight("bold" if bold else "normal")
    ax.set(xlim=(-1.1, 1.6), xlabel="fraction of BatchNorm's speed-up recovered")


def accuracy_curves(ax: plt.Axes, records: list, label: str, color: str) -> None:
    """Training accuracy over the steps (`Record.smoothed`) of several seeds of one network, in one
    colour, labelled once."""
    for i, record in enumerate(records):
        ax.plot(record.metrics["step"], record.smoothed(), color=color, lw=1.2, label=label if i == 0 else None)
