"""The numbers behind the chapters' tables, measured from the book's runs (`bnlib.book.plan`):
final accuracies over seeds, activation drift (Figs. 1c, 6) and successive-step changes (Fig. 8),
ICS medians (Fig. 3), landscape summaries and the Hessian beside 2 / lr (Figs. 4, 10), and Section
4's hypotheses on a trained network. The claims (`bnlib.book.claims`) quote them. Tables come back
as DataFrames of numbers; `bnlib.book.html.table` shows them.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from bnlib.book import plan, section4
from bnlib.book.plan import seeds
from bnlib.probes.activations import drifts, successive_changes
from bnlib.records import Record

# ----------------------------------------------------------------------------- training (Figs. 1, 2, 5)


def finals(name: str, scale: str, key: str) -> list[float]:
    """A final number (train_acc, test_acc, train_loss) of each of the book's seeds of a run."""
    return [plan.get(name, scale, seed).final[key] for seed in seeds(name)]


def final(name: str, scale: str, key: str) -> tuple[float, float]:
    """Mean and standard deviation over the book's seeds of a run's final number."""
    values = finals(name, scale, key)
    return float(np.mean(values)), float(np.std(values))


def percent(name: str, scale: str, key: str) -> str:
    """A final accuracy as text: '78% ± 2' over several seeds, '78%' for one."""
    mean, sd = final(name, scale, key)
    return f"{mean:.0%} ± {sd * 100:.0f}" if len(seeds(name)) > 1 else f"{mean:.0%}"


def loss_text(name: str, scale: str) -> str:
    """The final training loss of the seed-0 run, as text."""
    return f"{plan.get(name, scale).final['train_loss']:.3g}"


def steps_to(record: Record, accuracy: float, window: int = 25) -> int | None:
    """The first step at which the training accuracy (mean over `window` steps) reaches `accuracy`."""
    acc = pd.Series(record.metrics["train_acc"]).rolling(window).mean().to_numpy()
    hit = np.flatnonzero(acc >= accuracy)
    return int(record.metrics["step"][hit[0]]) if len(hit) else None


def steps_text(name: str, scale: str, accuracy: float) -> str:
    """Steps to an accuracy for each of the book's seeds of an experiment, as text."""
    hits = [steps_to(plan.get(name, scale, seed), accuracy) for seed in seeds(name)]
    return ", ".join("never" if h is None else f"{h:,}" for h in hits)


def accuracy_table(names: list[str], scale: str) -> pd.DataFrame:
    """Final training and test accuracy of experiments (mean ± sd over their seeds)."""
    return pd.DataFrame(
        [
            {
                "experiment": name,
                "seeds": len(seeds(name)),
                "steps": plan.config(name, scale).steps,
                "training accuracy": percent(name, scale, "train_acc"),
                "test accuracy": percent(name, scale, "test_acc"),
            }
            for name in names
        ]
    )


# ----------------------------------------------------------------------------- activations (Figs. 1c, 2, 6, 8, 9)


def drift(name: str, scale: str, layer: int, site: str = "input") -> dict[str, float]:
    """How far a layer's tracked units moved from their first probed moments by the last probed
    step, relative to their initial spread: medians over units of |mu_T - mu_0| / sd_0 ("mean")
    and |sd_T - sd_0| / sd_0 ("sd")."""
    moved = drifts(plan.get(name, scale).probe_frame("activations"), layer, site)
    last = moved[moved["step"] == moved["step"].max()]
    return {"mean": float(last["relative_drift_mean"].median()), "sd": float(last["relative_drift_sd"].median())}


def drift_table(names: list[str], scale: str, layers: tuple[int, ...], site: str = "input") -> pd.DataFrame:
    """`drift` for several runs and layers."""
    rows = []
    for name in names:
        for layer in layers:
            moved = drift(name, scale, layer, site)
            rows.append(
                {
                    "experiment": name,
                    "layer": layer,
                    "relative drift of the mean": moved["mean"],
                    "relative drift of the spread": moved["sd"],
                }
            )
    return pd.DataFrame(rows)


def spread_table(names: list[str], scale: str, layers: tuple[int, ...], site: str = "norm_in") -> pd.DataFrame:
    """The spread sigma_j of a layer's tracked units at the first and the last probed step (medians
    over units), per run and layer: Fig. 9's "large and highly uncontrolled" sigma, in numbers."""
    rows = []
    for name in names:
        frame = plan.get(name, scale).probe_frame("activations")
        for layer in layers:
            var = frame[frame["quantity"] == f"L{layer}.{site}.var"]
            sd = var.pivot(index="step", columns="index", values="value").sort_index().clip(lower=0) ** 0.5
            rows.append(
                {
                    "experiment": name,
                    "layer": layer,
                    "sigma at the first probed step": float(sd.iloc[0].median()),
                    "sigma at the last probed step": float(sd.iloc[-1].median()),
                    "largest sigma over training": float(sd.max().max()),
                }
            )
    return pd.DataFrame(rows)


def successive(name: str, scale: str, layers: tuple[int, ...], site: str) -> pd.DataFrame:
    """|mu_{t+1} - mu_t| and |var_{t+1} - var_t| of every tracked unit of `layers`, for every probed
    pair of successive steps of the seed-0 run (Fig. 8a)."""
    frame = plan.get(name, scale).probe_frame("activations")
    return pd.concat([successive_changes(frame, layer, site).assign(layer=layer) for layer in layers])


FIG8_LAYERS = (2, 9, 13)
FIG8_RUNS = ("vgg-std-lr0.1", "vgg-bn-lr0.1", "vgg-noisybn-lr0.1")


def moment_change_table(scale: str, site: str) -> pd.DataFrame:
    """Fig. 8a summarised: per run and layer, the median and largest change of the mean and of the
    variance between two successive steps, over all tracked units and probed pairs."""
    rows = []
    for name in FIG8_RUNS:
        changes = successive(name, scale, FIG8_LAYERS, site)
        for layer, part in changes.groupby("layer"):
            rows.append(
                {
                    "experiment": name,
                    "layer": int(layer),
                    "median |change of mean|": part["abs_change_mean"].median(),
                    "largest |change of mean|": part["abs_change_mean"].max(),
                    "median |change of variance|": part["abs_change_var"].median(),
                    "largest |change of variance|": part["abs_change_var"].max(),
                }
            )
    return pd.DataFrame(rows)


def median_change(name: str, scale: str, layer: int, site: str) -> float:
    """The median over units and successive pairs of |mu_{t+1} - mu_t| at one layer."""
    return float(successive(name, scale, (layer,), site)["abs_change_mean"].median())


# ----------------------------------------------------------------------------- ICS (Fig. 3)


def ics_medians(name: str, scale: str) -> pd.DataFrame:
    """Median over probed steps of Definition 2.1's l2 difference and cosine, per probed layer."""
    record = plan.get(name, scale)
    layers = record.probe_table("ics", "layer").iloc[0].astype(int).tolist()
    medians = {q: record.probe_table("ics", q).median() for q in ("l2_diff", "cosine")}
    return pd.DataFrame(
        {"layer": layers, "median l2 difference": medians["l2_diff"], "median cosine": medians["cosine"]}
    )


def ics_table(names: list[str], scale: str) -> pd.DataFrame:
    """Fig. 3 summarised: per run and layer, the median ICS over training, and the final loss."""
    parts = [
        ics_medians(name, scale).assign(
            experiment=name, **{"final training loss": plan.get(name, scale).final["train_loss"]}
        )
        for name in names
    ]
    table = pd.concat(parts, ignore_index=True)
    return table[["experiment", "layer", "median l2 difference", "median cosine", "final training loss"]]


# ----------------------------------------------------------------------------- the landscape (Figs. 4, 10-13)


def landscape_numbers(name: str, scale: str, kind: str = "landscape") -> dict[str, float]:
    """Figs. 4 and 10 summarised over training, for the seed-0 run and one landscape probe (kind
    "landscape", "landscape-random" or "landscape-extended"): medians of the loss band's width and
    of the largest gradient change, and the median and largest effective beta, also as a multiple
    of 2 / lr (the edge-of-stability level). For the extended grid, also the same numbers over the
    step sizes beyond the paper's grid alone ("... beyond")."""
    record = plan.get(name, scale)

    def series(quantity: str) -> pd.Series:
        return record.probe_table(kind, quantity)[0]

    beta = series("beta_max")
    numbers = {
        "loss band width": float((series("loss_max") - series("loss_min")).median()),
        "loss band max": float((series("loss_max") - series("loss_min")).max()),
        "gradient change": float(series("grad_diff_max").median()),
        "gradient change max": float(series("grad_diff_max").max()),
        "beta median": float(beta.median()),
        "beta max": float(beta.max()),
        "beta median x lr/2": float(beta.median() * record.config.lr / 2),
    }
    if kind == "landscape-extended":
        multiples = record.probe_table(kind, "eta_multiple").iloc[0].to_numpy()
        beyond = multiples > (4.0 if record.config.on_cifar else 30.0)
        numbers |= {
            "gradient change beyond": float(record.probe_table(kind, "grad_diff").loc[:, beyond].max(axis=1).median()),
            "beta beyond": float(record.probe_table(kind, "beta").loc[:, beyond].max(axis=1).median()),
            "largest multiple": float(multiples.max()),
        }
    return numbers


LANDSCAPE_COLUMNS = {
    "loss band width": "median loss band width",
    "loss band max": "widest loss band",
    "gradient change": "median max gradient change",
    "gradient change max": "largest gradient change",
    "beta median": "median effective beta",
    "beta max": "largest effective beta",
    "beta median x lr/2": "median effective beta / (2/lr)",
    "gradient change beyond": "median max gradient change beyond the paper's grid",
    "beta beyond": "median effective beta beyond the paper's grid",
    "largest multiple": "largest step / lr",
}


def landscape_table(names: list[str], scale: str, kind: str = "landscape") -> pd.DataFrame:
    """`landscape_numbers` for several runs, as a table (medians over training)."""
    rows = [{"experiment": n, **landscape_numbers(n, scale, kind)} for n in names]
    return pd.DataFrame(rows).rename(columns=LANDSCAPE_COLUMNS)


def hessian_table(names: list[str], scale: str) -> pd.DataFrame:
    """The Hessian's top eigenvalue at the probed checkpoints, beside 2 / lr and the effective beta
    measured at the same step (or the nearest step the landscape probe ran at)."""
    rows = []
    for name in names:
        record = plan.get(name, scale)
        top = record.probe_table("hessian", "eigenvalues")[0]
        beta = record.probe_table("landscape", "beta_max")[0]
        for step, value in top.items():
            rows.append(
                {
                    "experiment": name,
                    "step": int(step),
                    "top Hessian eigenvalue": value,
                    "effective beta": beta.iloc[abs(beta.index - step).argmin()],
                    "2 / lr": 2 / record.config.lr,
                    "eigenvalue / (2/lr)": value * record.config.lr / 2,
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- l_p (Figs. 5, 6, 12, 13)

LP_VGG = ["vgg-std-lr0.1", "vgg-bn-lr0.1", "vgg-l1-lr0.1", "vgg-l2-lr0.1", "vgg-linf-lr0.1"]
LP_DLN = ["dln-std-lr1e-6", "dln-bn-lr1e-6", "dln-l1-lr1e-6", "dln-l2-lr1e-6", "dln-linf-lr1e-6"]


def lp_table(scale: str) -> pd.DataFrame:
    """Figs. 5, 6, 12 and 13 summarised: final training numbers, the drift of the inputs of VGG's
    layer #11 and the landscape medians, per normalization."""
    rows = []
    for vgg, dln in zip(LP_VGG, LP_DLN, strict=True):
        numbers, moved = landscape_numbers(vgg, scale), drift(vgg, scale, 11)
        rows.append(
            {
                "normalization": vgg.split("-")[1],
                "VGG training accuracy": percent(vgg, scale, "train_acc"),
                "VGG #11 input: relative drift of mean": moved["mean"],
                "VGG #11 input: relative drift of spread": moved["sd"],
                "VGG median gradient change": numbers["gradient change"],
                "VGG median effective beta": numbers["beta median"],
                "DLN final loss": plan.get(dln, scale).final["train_loss"],
                "DLN median effective beta": landscape_numbers(dln, scale)["beta median"],
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- Section 4

THEORY_MS = (2, 4, 16, 64, 256)  # batch sizes of the theory chapter's random instances


@functools.cache
def hypotheses(scale: str) -> pd.DataFrame:
    """Theorem 4.2's hypotheses on the initial and trained VGG with BN at lr 0.1 (computed once per
    process: about half a minute at the cpu scale)."""
    return section4.hypotheses_start_and_end(plan.get("vgg-bn-lr0.1", scale))
