"""The numbers behind the chapters' tables, measured from the book's runs (`bnlib.book.plan`):
final accuracies over seeds, activation-moment changes (Fig. 8), ICS medians (Fig. 3), landscape
summaries and the Hessian beside 2 / lr (Figs. 4, 10), l_p drift (Fig. 6), and Section 4's
hypotheses on a trained network. The claims (`bnlib.book.claims`) quote them.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from bnlib.book import plan, section4
from bnlib.book.plan import seeds
from bnlib.experiments import experiment
from bnlib.probes.activations import moment_shifts
from bnlib.records import Record


def final(name: str, scale: str, key: str) -> tuple[float, float]:
    """Mean and standard deviation over the book's seeds of a run's final number (e.g. test_acc)."""
    values = [plan.get(name, scale, seed).final[key] for seed in seeds(name)]
    return float(np.mean(values)), float(np.std(values))


def percent(name: str, scale: str, key: str) -> str:
    """A final accuracy as text: '78% ± 2' over several seeds, '78%' for one."""
    mean, sd = final(name, scale, key)
    return f"{mean:.0%} ± {sd * 100:.0f}" if len(seeds(name)) > 1 else f"{mean:.0%}"


def steps_to(record: Record, accuracy: float, window: int = 25) -> int | None:
    """The first step at which the training accuracy (mean over `window` steps) reaches `accuracy`."""
    acc = pd.Series(record.metrics["train_acc"]).rolling(window).mean().to_numpy()
    hit = np.flatnonzero(acc >= accuracy)
    return int(record.metrics["step"][hit[0]]) if len(hit) else None


def steps_text(name: str, scale: str, accuracy: float) -> str:
    """Steps to an accuracy for each of the book's seeds of an experiment, as text."""
    hits = [steps_to(plan.get(name, scale, seed), accuracy) for seed in seeds(name)]
    return ", ".join("never" if h is None else f"{h:,}" for h in hits)


def final_loss_text(name: str, scale: str) -> str:
    """The final training loss of the seed-0 run, as text."""
    return f"{plan.get(name, scale).final['train_loss']:.3g}"


def accuracy_table(names: list[str], scale: str) -> pd.DataFrame:
    """Final training and test accuracy of experiments (mean ± sd over their seeds)."""
    rows = []
    for name in names:
        rows.append(
            {
                "experiment": name,
                "seeds": len(seeds(name)),
                "steps": experiment(name, scale).steps,
                "training accuracy": percent(name, scale, "train_acc"),
                "test accuracy": percent(name, scale, "test_acc"),
            }
        )
    return pd.DataFrame(rows)


def moment_changes(name: str, scale: str, layers: tuple[int, ...] = (2, 9, 13)) -> pd.DataFrame:
    """|mu_{t+1} - mu_t| and |var_{t+1} - var_t| of every tracked unit of `layers` (at the
    normalization's output) between consecutive probed steps of the seed-0 run (Fig. 8a)."""
    frame = plan.get(name, scale).probe_frame("activations")
    shifts = pd.concat([moment_shifts(frame, layer) for layer in layers])
    return shifts.dropna(subset=["abs_change_mean"])[["abs_change_mean", "abs_change_var"]]


def moment_change_table(scale: str) -> pd.DataFrame:
    """Fig. 8a summarised: the change of the activation moments between probed steps, layers
    #2, #9 and #13, standard vs BatchNorm vs noisy BatchNorm."""
    rows = []
    for name in ("vgg-std-lr0.1", "vgg-bn-lr0.1", "vgg-noisybn-lr0.1"):
        changes = moment_changes(name, scale)
        row = {"experiment": name}
        for moment, column in (("mean", "abs_change_mean"), ("variance", "abs_change_var")):
            values = changes[column]
            row |= {
                f"median |change of {moment}|": f"{values.median():.3g}",
                f"max |change of {moment}|": f"{values.max():.3g}",
            }
        rows.append(row)
    return pd.DataFrame(rows)


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
    parts = []
    for name in names:
        record = plan.get(name, scale)
        medians = ics_medians(name, scale)
        parts.append(medians.assign(experiment=name, **{"final training loss": f"{record.final['train_loss']:.4g}"}))
    table = pd.concat(parts, ignore_index=True)
    table["median l2 difference"] = table["median l2 difference"].map(lambda v: f"{v:.3g}")
    table["median cosine"] = table["median cosine"].map(lambda v: f"{v:.2f}")
    return table[["experiment", "layer", "median l2 difference", "median cosine", "final training loss"]]


def landscape_numbers(name: str, scale: str, direction: str = "gradient") -> dict[str, float]:
    """Figs. 4 and 10 summarised over training, for the seed-0 run: medians of the loss band's
    width and of the largest gradient change, and the median and largest effective beta, also
    as a multiple of 2 / lr (the edge-of-stability level)."""
    record = plan.get(name, scale)
    probe = f"landscape-{direction}"

    def series(quantity: str) -> pd.Series:
        return record.probe_table(probe, quantity)[0]

    beta = series("beta_max")
    two_over_lr = 2 / record.config.lr
    return {
        "loss band width": float((series("loss_max") - series("loss_min")).median()),
        "loss band max": float((series("loss_max") - series("loss_min")).max()),
        "gradient change": float(series("grad_diff_max").median()),
        "gradient change max": float(series("grad_diff_max").max()),
        "beta median": float(beta.median()),
        "beta max": float(beta.max()),
        "beta median x lr/2": float(beta.median() / two_over_lr),
    }


def landscape_text(name: str, scale: str, key: str, direction: str = "gradient") -> str:
    """One of `landscape_numbers`, as text."""
    return f"{landscape_numbers(name, scale, direction)[key]:.3g}"


def landscape_table(names: list[str], scale: str, direction: str = "gradient") -> pd.DataFrame:
    """`landscape_numbers` for several runs, as a table (medians over training)."""
    rows = [{"experiment": n, **landscape_numbers(n, scale, direction)} for n in names]
    table = pd.DataFrame(rows).rename(
        columns={
            "loss band width": "median loss band width",
            "loss band max": "widest loss band",
            "gradient change": "median max gradient change",
            "gradient change max": "largest gradient change",
            "beta median": "median effective beta",
            "beta max": "largest effective beta",
            "beta median x lr/2": "median effective beta / (2/lr)",
        }
    )
    return table.map(lambda v: f"{v:.3g}" if isinstance(v, float) else v)


def hessian_table(names: list[str], scale: str) -> pd.DataFrame:
    """The Hessian's top eigenvalue at the probed checkpoints, beside 2 / lr and the effective beta
    measured at the same step (or the nearest step the landscape probe ran at)."""
    rows = []
    for name in names:
        record = plan.get(name, scale)
        top = record.probe_table("hessian", "eigenvalues")[0]
        beta = record.probe_table("landscape-gradient", "beta_max")[0]
        for step, value in top.items():
            rows.append(
                {
                    "experiment": name,
                    "step": int(step),
                    "top Hessian eigenvalue": f"{value:.4g}",
                    "effective beta": f"{beta.iloc[abs(beta.index - step).argmin()]:.4g}",
                    "2 / lr": f"{2 / record.config.lr:.4g}",
                    "eigenvalue / (2/lr)": f"{value * record.config.lr / 2:.2f}",
                }
            )
    return pd.DataFrame(rows)


LP_VGG = ["vgg-std-lr0.1", "vgg-bn-lr0.1", "vgg-l1-lr0.1", "vgg-l2-lr0.1", "vgg-linf-lr0.1"]


LP_DLN = ["dln-std-lr1e-6", "dln-bn-lr1e-6", "dln-l1-lr1e-6", "dln-l2-lr1e-6", "dln-linf-lr1e-6"]


def drift(name: str, scale: str, layer: int = 11) -> dict[str, float]:
    """How far the tracked units of a layer (at the normalization's output) moved from their first
    probed moments by the end: medians over units of |mu_T - mu_0| and |var_T - var_0| (Fig. 6)."""
    shifts = moment_shifts(plan.get(name, scale).probe_frame("activations"), layer)
    last = shifts[shifts["step"] == shifts["step"].max()]
    return {"mean": float(last["drift_mean"].abs().median()), "var": float(last["drift_var"].abs().median())}


def lp_table(scale: str) -> pd.DataFrame:
    """Figs. 5, 6, 12 and 13 summarised: final training numbers, the drift of layer #11's
    activations (VGG) and the landscape medians, per normalization."""
    rows = []
    for vgg, dln in zip(LP_VGG, LP_DLN, strict=True):
        numbers, moved = landscape_numbers(vgg, scale), drift(vgg, scale)
        rows.append(
            {
                "normalization": vgg.split("-")[1],
                "VGG training accuracy": percent(vgg, scale, "train_acc"),
                "VGG #11 |drift of mean|": f"{moved['mean']:.3g}",
                "VGG #11 |drift of variance|": f"{moved['var']:.3g}",
                "VGG median gradient change": f"{numbers['gradient change']:.3g}",
                "VGG median effective beta": f"{numbers['beta median']:.3g}",
                "DLN final loss": f"{plan.get(dln, scale).final['train_loss']:.3g}",
                "DLN median effective beta": f"{landscape_numbers(dln, scale)['beta median']:.3g}",
            }
        )
    return pd.DataFrame(rows)


THEORY_MS = (2, 4, 16, 64, 256)  # batch sizes of the theory chapter's random instances


@functools.cache
def hypotheses(scale: str) -> pd.DataFrame:
    """Theorem 4.2's hypotheses on the initial and trained VGG with BN at lr 0.1 (computed once per
    process: about half a minute at the cpu scale)."""
    return section4.hypotheses_start_and_end(plan.get("vgg-bn-lr0.1", scale))
