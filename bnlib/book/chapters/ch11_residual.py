"""Chapter 11: residual networks and the identity (De and Smith, 2020; Zhang, Dauphin and Ma, 2019).

The CIFAR ResNet of `bnlib.models.resnet` in four variants: with BatchNorm, without
normalization, with SkipInit and with Fixup. Two measurements:

* at initialisation, per residual block, the variance of what the branch adds against the variance
  of the skip path it adds it to (`bnlib.probes.signal.residual_variances`), in a deep ResNet;
* training at two batch sizes, each with a small grid of learning rates (scaled with the batch
  size), for the same number of examples: which of BatchNorm's benefits does the bias toward the
  identity alone recover, and which need the normalization?
"""

from __future__ import annotations

import functools
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.plan import Read
from bnlib.config import RunConfig
from bnlib.experiments import Experiment, base_config, check_scale
from bnlib.probes.signal import residual_variances
from bnlib.records import Record
from bnlib.train import first_batches, initial_model

NOTEBOOK = "11_residual"
TITLE = "Residual networks and the identity"
EXPLANATION = "BatchNorm biases residual blocks toward the identity"

VARIANTS: dict[str, dict] = {
    "BatchNorm": dict(norm="batch"),
    "no normalization": dict(norm="none"),
    "SkipInit": dict(norm="none", residual="skipinit"),
    "Fixup": dict(norm="none", residual="fixup"),
}
COLORS = {"BatchNorm": "#1f77b4", "no normalization": "#555555", "SkipInit": "#2ca02c", "Fixup": "#d62728"}
INIT_DEPTH = {"paper": 110, "cpu": 56, "smoke": 20}  # the ResNet measured at initialisation
TRAIN_DEPTH = 20
BATCHES = {"paper": (128, 1024), "cpu": (128, 512), "smoke": (16, 64)}
BASE_RATES = (0.025, 0.1, 0.4)  # at the smaller batch; scaled by batch / smaller batch at the larger
EXAMPLES = {"paper": 128 * 15_000, "cpu": 128 * 400, "smoke": 16 * 8}  # every run sees as many examples
TRAINS = 0.2


def rates(batch: int, scale: str) -> tuple[float, ...]:
    small = BATCHES[check_scale(scale)][0]
    return tuple(r * batch / small for r in BASE_RATES)


def run(variant: str, batch: int, lr: float, scale: str, depth: int = TRAIN_DEPTH) -> Experiment:
    """A ResNet of one variant trained at a batch size and rate, for the scale's number of examples."""
    steps = max(1, EXAMPLES[check_scale(scale)] // batch)
    every = base_config("resnet", scale).test_every and max(1, steps // 5)
    variant = dict(VARIANTS[variant])
    norm = variant.pop("norm")
    return Experiment.of(
        "resnet", norm, lr, resnet_depth=depth, batch_size=batch, steps=steps, test_every=every, **variant
    )


def config(variant: str, batch: int, lr: float, scale: str, depth: int = TRAIN_DEPTH) -> RunConfig:
    return plan.config(run(variant, batch, lr, scale, depth), scale)


def init_table(scale: str) -> pd.DataFrame:
    """Per variant and residual block of the deep ResNet at initialisation: branch and skip variances."""
    frames = []
    for variant in VARIANTS:
        cfg = config(variant, BATCHES[check_scale(scale)][0], 0.1, scale, depth=INIT_DEPTH[scale])
        [(x, _)], _ = first_batches(cfg, 1)
        frames.append(residual_variances(initial_model(cfg), x).assign(variant=variant))
    return pd.concat(frames, ignore_index=True)


def init_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Var(branch) / Var(skip) per variant at the first, middle and last residual block."""
    last = int(frame["block"].max())
    blocks = sorted({1, (last + 1) // 2, last})
    table = frame[frame["block"].isin(blocks)].pivot(index="variant", columns="block", values="ratio")
    table = table.reindex(list(VARIANTS)).rename(columns=lambda b: f"block {b}")
    table.columns.name = None
    return table.reset_index()


def init_figure(frame: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for variant, mine in frame.groupby("variant", sort=False):
        ratio = mine["ratio"].where(mine["ratio"] > 0)  # SkipInit and Fixup: exactly 0, off the log axis
        ax.plot(mine["block"], ratio, "o-", ms=3, color=COLORS[variant], label=variant)
    blocks = frame["block"].unique()
    ax.plot(blocks, 1 / blocks, ":", color="0.5", label="1 / block")
    ax.set(yscale="log", xlabel="residual block", ylabel="Var(branch) / Var(skip)")
    ax.legend(fontsize="small")
    return fig


def _trained(scale: str) -> dict[tuple[str, int, float], Experiment]:
    return {
        (variant, batch, lr): run(variant, batch, lr, scale)
        for variant in VARIANTS
        for batch in BATCHES[check_scale(scale)]
        for lr in rates(batch, scale)
    }


def reads(scale: str) -> list[Read]:
    return [Read(r) for r in _trained(scale).values()]


def runs(scale: str) -> dict[tuple[str, int, float], Record]:
    own = _trained(scale)
    return dict(zip(own, plan.records(list(own.values()), scale), strict=True))


def train_table(scale: str) -> pd.DataFrame:
    """Per variant, batch size and rate: diverged, final training loss and accuracy, test accuracy."""
    rows = []
    for (variant, batch, lr), record in runs(scale).items():
        rows.append(
            {
                "variant": variant,
                "batch": batch,
                "lr": lr,
                "steps": record.config.steps,
                "diverged": record.diverged,
                "training loss": np.nan if record.diverged else record.final["train_loss"],
                "training accuracy": np.nan if record.diverged else record.final["train_acc"],
                "test accuracy": np.nan if record.diverged else record.final["test_acc"],
            }
        )
    return pd.DataFrame(rows)


def best_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant and batch size: the best test accuracy over the rates, at which rate, and the
    largest rate that trains (final training accuracy >= TRAINS)."""
    rows = []
    for (variant, batch), mine in frame.groupby(["variant", "batch"], sort=False):
        ok = mine[~mine["diverged"]]
        top = ok.loc[ok["test accuracy"].idxmax()] if len(ok) else None
        training = mine[mine["training accuracy"] >= TRAINS]["lr"]
        rows.append(
            {
                "variant": variant,
                "batch": batch,
                "best test accuracy": np.nan if top is None else top["test accuracy"],
                "at lr": np.nan if top is None else top["lr"],
                "largest lr that trains": training.max() if len(training) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def train_figure(frame: pd.DataFrame) -> plt.Figure:
    """Final test accuracy against the rate, per variant, one panel per batch size."""
    batches = sorted(frame["batch"].unique())
    fig, axes = plt.subplots(1, len(batches), figsize=(10, 3.5), sharey=True)
    for ax, batch in zip(np.atleast_1d(axes), batches, strict=True):
        for variant, mine in frame[frame["batch"] == batch].groupby("variant", sort=False):
            ax.plot(mine["lr"], mine["test accuracy"], "o-", color=COLORS[variant], label=variant)
            gone = mine[mine["diverged"]]
            ax.plot(gone["lr"], [0.05] * len(gone), "x", color=COLORS[variant], ms=9, mew=2)
        ax.set(xscale="log", xlabel="learning rate", title=f"batch {batch}", ylim=(0, None))
    np.atleast_1d(axes)[0].set_ylabel("test accuracy (x: diverged)")
    np.atleast_1d(axes)[-1].legend(fontsize="small")
    fig.tight_layout()
    return fig


def curves_figure(scale: str, variant: str, batch: int) -> plt.Figure:
    """Training loss over the examples seen, at each rate of the grid, for one variant and batch."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    styles = dict(zip(rates(batch, scale), ("-", "--", ":"), strict=True))
    for (v, b, lr), record in runs(scale).items():
        if v == variant and b == batch:
            loss = pd.Series(record.metrics["train_loss"]).rolling(10, min_periods=1).mean()
            ax.plot(record.metrics["step"] * batch, loss, styles[lr], color=COLORS[variant], label=f"lr {lr:g}")
    ax.set(xlabel="examples seen", ylabel="training loss", ylim=(0, 3.5), title=f"{variant}, batch {batch}")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- the claims

SHRINKS = 5.0  # BN's branch/skip ratio must fall at least this much from the first block to the last
FLAT = 2.0  # ... while the unnormalized network's falls less than this
CLOSE = 0.03  # "about as well": best test accuracies within 3 points
SHORT = 0.10  # "partly": within 10 points


@functools.cache
def _init(scale: str):
    return init_table(scale)


@functools.cache
def _best(scale: str):
    return best_table(train_table(scale)).set_index(["variant", "batch"])


def downscaled(scale: str) -> Finding:
    frame = _init(scale)
    fall = {}
    for variant in ("BatchNorm", "no normalization"):
        ratio = frame[frame["variant"] == variant]["ratio"]
        fall[variant] = ratio.iloc[0] / ratio.iloc[-1]
    zero = frame[frame["variant"].isin(["SkipInit", "Fixup"])]["branch variance"].abs().max()
    blocks = frame["block"].max()
    text = (
        f"Var(branch) / Var(skip) in a ResNet-{INIT_DEPTH[scale]} at initialisation, first block over "
        f"last ({blocks} blocks): BN falls {fall['BatchNorm']:.3g}-fold, no normalization "
        f"{fall['no normalization']:.3g}-fold; SkipInit's and Fixup's branches: largest variance {zero:.1g}"
    )
    if fall["BatchNorm"] >= SHRINKS and fall["no normalization"] < FLAT:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if fall["BatchNorm"] >= SHRINKS else Verdict.NOT_REPRODUCED
    summary = (
        f"At initialisation, Var(branch) / Var(skip) falls {fall['BatchNorm']:.3g}-fold from the first residual block "
        f"to the last with BatchNorm and {fall['no normalization']:.3g}-fold without."
    )
    return Finding(text, verdict, summary)


def _acc(scale: str, variant: str, batch: int) -> float:
    return float(_best(scale).loc[(variant, batch), "best test accuracy"])


def _close(scale: str, variant: str) -> Finding:
    small = BATCHES[scale][0]
    bn, other = _acc(scale, "BatchNorm", small), _acc(scale, variant, small)
    text = f"best test accuracy over the rates at batch {small}: BN {bn:.0%}, {variant} {other:.0%}"
    if other >= bn - CLOSE:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if other >= bn - SHORT else Verdict.NOT_REPRODUCED
    summary = f"At batch {small}, {variant}'s best test accuracy is {other:.0%}, BatchNorm's {bn:.0%}."
    return Finding(text, verdict, summary)


def skipinit_small_batch(scale: str) -> Finding:
    return _close(scale, "SkipInit")


def fixup_small_batch(scale: str) -> Finding:
    return _close(scale, "Fixup")


def large_batch(scale: str) -> Finding:
    small, large = BATCHES[scale]
    best = _best(scale)
    lead = {b: _acc(scale, "BatchNorm", b) - _acc(scale, "SkipInit", b) for b in (small, large)}
    bn_rate, skip_rate = (float(best.loc[(v, large), "largest lr that trains"]) for v in ("BatchNorm", "SkipInit"))
    text = (
        f"BN's lead over SkipInit in best test accuracy: {lead[small] * 100:+.0f} points at batch {small}, "
        f"{lead[large] * 100:+.0f} at batch {large}; largest rate that trains at batch {large}: BN "
        f"{'none' if math.isnan(bn_rate) else format(bn_rate, 'g')}, "
        f"SkipInit {'none' if math.isnan(skip_rate) else format(skip_rate, 'g')}"
    )
    grows = lead[large] > lead[small]
    larger_rate = not math.isnan(bn_rate) and (math.isnan(skip_rate) or bn_rate > skip_rate)
    summary = (
        f"BatchNorm's lead over SkipInit is {lead[small] * 100:+.0f} points at batch {small} and "
        f"{lead[large] * 100:+.0f} at batch {large}."
    )
    return Finding(text, graded([grows, larger_rate]), summary)


CLAIMS = {
    "downscaled": Claim(
        "With BatchNorm, deep residual blocks start close to the identity: the branch shrinks relative to the skip "
        "path with depth",
        "De and Smith (2020): at initialisation BatchNorm downscales each residual branch relative to its skip path "
        "by about the square root of the block's depth, so Var(branch) / Var(skip) falls like 1 / block",
        f"reproduced if BN's ratio falls at least {SHRINKS:g}-fold from the first block to the last while the "
        f"unnormalized network's falls less than {FLAT:g}-fold; partly if only BN's falls; not reproduced otherwise",
        downscaled,
    ),
    "skipinit_small_batch": Claim(
        "At a small batch, the identity bias without normalization (SkipInit) trains about as well as BatchNorm",
        "De and Smith (2020): SkipInit (a zero-initialised scalar on each branch) trains deep ResNets without "
        "normalization, close to BatchNorm at small batch sizes",
        f"reproduced if SkipInit's best test accuracy at the smaller batch is within {CLOSE * 100:.0f} points of "
        f"BN's; partly within {SHORT * 100:.0f}; not reproduced otherwise",
        skipinit_small_batch,
    ),
    "large_batch": Claim(
        "At a large batch BatchNorm pulls ahead, because it trains at larger rates",
        "De and Smith (2020): BatchNorm's larger stable rates pay off only at large batch sizes, where the best "
        "rate is large",
        "reproduced if BN's lead over SkipInit in best test accuracy is larger at the larger batch and BN trains "
        "at a larger rate there than SkipInit; partly if one holds; not reproduced otherwise",
        large_batch,
    ),
    "fixup_small_batch": Claim(
        "A careful initialisation (Fixup) trains about as well as BatchNorm",
        "Zhang et al. (2019): with Fixup, residual networks without normalization train as fast as with "
        "BatchNorm at the same rate",
        f"reproduced if Fixup's best test accuracy at the smaller batch is within {CLOSE * 100:.0f} points of BN's; "
        f"partly within {SHORT * 100:.0f}; not reproduced otherwise",
        fixup_small_batch,
    ),
}
