"""Chapter 04, the optimization landscape (Figs. 4, 10 and 11), its larger distances, and whether
the "effective beta" of BatchNorm networks is 2 / lr (the edge-of-stability level)."""

from __future__ import annotations

import pandas as pd

from bnlib.book import plan
from bnlib.book.chapters.ch01_does_batchnorm_help import BN, BN_LARGE, STD
from bnlib.book.claims import Claim, Finding, graded
from bnlib.book.plan import Read
from bnlib.experiments import Experiment

NOTEBOOK = "04_landscape"
TITLE = "The optimization landscape"

DLN_STD, DLN_BN = Experiment("dln", "none", 1e-6), Experiment("dln", "batch", 1e-6)
DLN_BN_SMALL = Experiment("dln", "batch", 1e-7)
PAIRS = {"VGG lr 0.1": (STD, BN), "DLN lr 1e-6": (DLN_STD, DLN_BN)}
TWO_OVER_LR_RUNS = (BN, BN_LARGE, DLN_BN, DLN_BN_SMALL)  # two learning rates per model
TWO_OVER_LR_FIGURE = (BN, BN_LARGE, STD, DLN_BN, DLN_BN_SMALL, DLN_STD)  # and the standard networks beside them
LANDSCAPE = ("landscape", "landscape-random", "landscape-extended", "hessian")
BEYOND_MULTIPLE = {"vgg": 4.0, "dln": 30.0}  # the largest step (x lr) of the paper's grids
TWO_OVER_LR_FACTOR = 2.0  # "sits at 2 / lr": within this factor


def reads(scale: str) -> list[Read]:
    pairs = [Read(run, (0,), LANDSCAPE) for pair in PAIRS.values() for run in pair]
    return [*pairs, *(Read(run, (0,), ("landscape", "hessian")) for run in (BN_LARGE, DLN_BN_SMALL))]


def landscape_numbers(run: Experiment, scale: str, kind: str = "landscape") -> dict[str, float]:
    """Figs. 4 and 10 summarised over training, for the seed-0 run and one landscape probe (kind
    "landscape", "landscape-random" or "landscape-extended"): medians of the loss band's width and
    of the largest gradient change, and the median and largest effective beta, also as a multiple
    of 2 / lr (the edge-of-stability level). For the extended grid, also the same numbers over the
    step sizes beyond the paper's grid alone ("... beyond")."""
    record = plan.get(run, scale)

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
        beyond = multiples > BEYOND_MULTIPLE[record.config.model]
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


def landscape_table(runs: list[Experiment], scale: str, kind: str = "landscape") -> pd.DataFrame:
    """`landscape_numbers` for several runs, as a table (medians over training)."""
    rows = [{"experiment": run.name, **landscape_numbers(run, scale, kind)} for run in runs]
    return pd.DataFrame(rows).rename(columns=LANDSCAPE_COLUMNS)


def hessian_table(runs: list[Experiment], scale: str) -> pd.DataFrame:
    """The Hessian's top eigenvalue at the probed checkpoints, beside 2 / lr and the effective beta
    measured at the same step (or the nearest step the landscape probe ran at)."""
    rows = []
    for run in runs:
        record = plan.get(run, scale)
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


# ----------------------------------------------------------------------------- the claims


def _compare(scale: str, key: str, largest: str | None, kind: str = "landscape") -> tuple[str, list[bool]]:
    """'VGG standard m (M), BN m (M); DLN ...' for one landscape number, and per model whether BN's
    median is below the standard network's."""
    parts, below = [], []
    for model, (std, bn) in PAIRS.items():
        numbers = {run: landscape_numbers(run, scale, kind) for run in (std, bn)}
        shown = {run: f"{n[key]:.3g}" + (f" ({n[largest]:.3g})" if largest else "") for run, n in numbers.items()}
        parts.append(f"{model}: standard {shown[std]}, BN {shown[bn]}")
        below.append(numbers[bn][key] < numbers[std][key])
    return "; ".join(parts), below


def _models(below: list[bool]) -> str:
    """Which of the two models a comparison held for, in words."""
    held = [model.split()[0] for model, ok in zip(PAIRS, below, strict=True) if ok]
    return " and ".join(held) if held else "neither model"


def loss_band(scale: str) -> Finding:
    text, below = _compare(scale, "loss band width", "loss band max")
    summary = f"Along the gradient, BatchNorm's median loss band is the narrower for {_models(below)}."
    return Finding(
        "width of the loss band along the gradient, median (largest) over training: " + text, graded(below), summary
    )


def gradient_predictiveness(scale: str) -> Finding:
    text, below = _compare(scale, "gradient change", "gradient change max")
    summary = f"Its median gradient change along the gradient is the smaller for {_models(below)}."
    return Finding(
        "largest gradient change over the step sizes, median (largest) over training: " + text, graded(below), summary
    )


def effective_beta(scale: str) -> Finding:
    text, below = _compare(scale, "beta median", "beta max")
    summary = f"Its median effective beta is the lower for {_models(below)}."
    return Finding("effective beta, median (largest) over training: " + text, graded(below), summary)


def larger_distances(scale: str) -> Finding:
    text, below = _compare(scale, "beta beyond", None, kind="landscape-extended")
    multiples = {m: landscape_numbers(PAIRS[m][1], scale, "landscape-extended")["largest multiple"] for m in PAIRS}
    grids = ", ".join(f"{m} up to {x:g} x lr" for m, x in multiples.items())
    summary = f"Beyond the paper's step sizes, BatchNorm's median effective beta is the lower for {_models(below)}."
    return Finding(
        f"median effective beta over the step sizes beyond the paper's grid ({grids}): " + text, graded(below), summary
    )


def beta_at_two_over_lr(scale: str) -> Finding:
    ratios = {run: landscape_numbers(run, scale)["beta median x lr/2"] for run in TWO_OVER_LR_RUNS}
    text = "median effective beta / (2/lr): " + ", ".join(f"{run.name} {r:.2f}" for run, r in ratios.items())
    near = [1 / TWO_OVER_LR_FACTOR <= r <= TWO_OVER_LR_FACTOR for r in ratios.values()]
    summary = (
        f"The median effective beta of {sum(near)} of the {len(near)} BatchNorm runs lies within a factor of "
        f"{TWO_OVER_LR_FACTOR:g} of 2/lr (ratios {min(ratios.values()):.2f} to {max(ratios.values()):.2f})."
    )
    return Finding(text, graded(near), summary)


def random_directions(scale: str) -> Finding:
    _, below_gradient = _compare(scale, "loss band width", None)
    text, below_random = _compare(scale, "loss band width", None, kind="landscape-random")
    same = [a == b for a, b in zip(below_gradient, below_random, strict=True)]
    summary = f"Along a random direction, BatchNorm's loss band is the narrower for {_models(below_random)}."
    return Finding(
        "median width of the loss band along a random direction of the gradient's length: " + text,
        graded(same),
        summary,
    )


CLAIMS = {
    "loss_band": Claim(
        "BatchNorm makes the loss change less along the gradient",
        "VGG: the standard network's loss band up to ~10, BN's narrow; DLN: standard up to ~1e14 early, BN ~1e4-1e5 "
        "(read off Figs. 4a and 10a by eye)",
        "reproduced if BN's median band width over training is below the standard network's for both VGG and the DLN; "
        "partly if for one",
        loss_band,
    ),
    "gradient_predictiveness": Claim(
        "BatchNorm makes the gradient more predictive",
        "VGG: standard spikes to ~250, BN <~30-50; DLN: up to ~1e16 vs ~1e4-1e6 (read off Figs. 4b and 10b by eye)",
        "reproduced if BN's median largest gradient change is below the standard network's for both VGG and the DLN; "
        "partly if for one",
        gradient_predictiveness,
    ),
    "effective_beta": Claim(
        "BatchNorm lowers the effective beta-smoothness",
        "VGG: standard spikes 5-45, BN ~20 flat; DLN: up to 1e15 vs ~2e6 flat (read off Figs. 4c and 10c by eye)",
        "reproduced if BN's median effective beta is below the standard network's for both VGG and the DLN; partly "
        "if for one",
        effective_beta,
    ),
    "larger_distances": Claim(
        "BatchNorm keeps smoothing at larger distances",
        '"BatchNorm however continues to provide smoothing for even larger distances" (captions of Figs. 4 and 10, '
        "no figure)",
        "on a grid extended beyond the paper's (VGG to 32 x lr, DLN to 1000 x lr): reproduced if BN's median effective "
        "beta over the extra step sizes is below the standard network's for both models; partly if for one",
        larger_distances,
    ),
    "two_over_lr": Claim(
        "(Our test) The effective beta of BatchNorm networks sits at 2 / lr, the edge-of-stability level",
        "not in the paper; its BN plateaus read ~20 = 2/0.1 (VGG) and ~2e6 = 2/1e-6 (DLN), read off Figs. 4c and "
        "10c by eye",
        f"holds (reproduced) if the median effective beta of each BN run, at two learning rates per model, lies "
        f"within a factor of {TWO_OVER_LR_FACTOR:g} of 2/lr; partly if for some",
        beta_at_two_over_lr,
    ),
    "random_directions": Claim(
        "Along random directions the loss behaves similarly",
        '"the loss behaves in a similar way when we examine other (random) directions too" (Section 3.2, no figure)',
        "reproduced if, for both models, BN's loss band is narrower than the standard network's along a random "
        "direction exactly when it is along the gradient; partly if for one model",
        random_directions,
    ),
}
