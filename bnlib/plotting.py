"""One look for every figure of the book: seaborn styling, fixed colours per normalization."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
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
    plt.rcParams.update({"figure.figsize": (7.5, 3.6), "figure.dpi": 100, "axes.titleweight": "bold"})


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
    """A metric against steps, one colour per normalization, mean and spread over seeds."""
    ax = ax or plt.gca()
    data = frame[frame["metric"] == metric]
    palette = NORM_COLORS if hue == "norm" else None
    sns.lineplot(data=data, x="step", y="value", hue=hue, palette=palette, errorbar="sd", ax=ax, **kwargs)
    ax.set(xlabel="step", ylabel=metric.replace("_", " "))
    if hue == "norm" and ax.get_legend() is not None:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, [NORM_LABELS.get(label, label) for label in labels], fontsize="small")
    return ax


def to_png(fig: plt.Figure) -> bytes:
    """A figure as PNG bytes (for widgets that must work without a kernel), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
