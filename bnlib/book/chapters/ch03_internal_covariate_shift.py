"""Chapter 03, internal covariate shift as a change of gradient (Definition 2.1, Figs. 3 and 9), on
VGG at learning rates 0.1 and 0.01 and on the 25-layer deep linear network at 1e-6 and 1e-7."""

from __future__ import annotations

import pandas as pd

from bnlib.book import plan
from bnlib.book.chapters.ch01_does_batchnorm_help import BN, STD
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.plan import Read
from bnlib.experiments import Experiment, rate_text

NOTEBOOK = "03_internal_covariate_shift"
TITLE = "Internal covariate shift"

VGG_PAIRS = {0.1: (STD, BN), 0.01: (Experiment("vgg", "none", 0.01), Experiment("vgg", "batch", 0.01))}
DLN_PAIRS = {lr: (Experiment("dln", "none", lr), Experiment("dln", "batch", lr)) for lr in (1e-6, 1e-7)}
FIG9_RUNS = DLN_PAIRS[1e-6]  # the DLN's activations (Fig. 9)

L2_SHARE = 0.5  # "similar or worse ICS": BN's l2 difference at least this share of the standard's
COSINE_MARGIN = 0.1  # ... and its cosine at most this much above


def reads(scale: str) -> list[Read]:
    ics = [Read(run, (0,), ("ics",)) for pair in (*VGG_PAIRS.values(), *DLN_PAIRS.values()) for run in pair]
    return [*ics, *(Read(run, (0,), ("activations",)) for run in FIG9_RUNS)]


def ics_medians(run: Experiment, scale: str) -> pd.DataFrame:
    """Median over probed steps of Definition 2.1's l2 difference and cosine, per probed layer."""
    record = plan.get(run, scale)
    layers = record.probe_table("ics", "layer").iloc[0].astype(int).tolist()
    medians = {q: record.probe_table("ics", q).median() for q in ("l2_diff", "cosine")}
    return pd.DataFrame(
        {"layer": layers, "median l2 difference": medians["l2_diff"], "median cosine": medians["cosine"]}
    )


def ics_table(runs: list[Experiment], scale: str) -> pd.DataFrame:
    """Fig. 3 summarised: per run and layer, the median ICS over training, and the final loss."""
    parts = [
        ics_medians(run, scale).assign(
            experiment=run.name, **{"final training loss": plan.get(run, scale).final["train_loss"]}
        )
        for run in runs
    ]
    table = pd.concat(parts, ignore_index=True)
    return table[["experiment", "layer", "median l2 difference", "median cosine", "final training loss"]]


def spread_table(runs: list[Experiment], scale: str, layers: tuple[int, ...], site: str = "norm_in") -> pd.DataFrame:
    """The spread sigma_j of a layer's tracked units at the first and the last probed step (medians
    over units), per run and layer: Fig. 9's "large and highly uncontrolled" sigma, in numbers."""
    rows = []
    for run in runs:
        frame = plan.get(run, scale).probe_frame("activations")
        for layer in layers:
            var = frame[frame["quantity"] == f"L{layer}.{site}.var"]
            sd = var.pivot(index="step", columns="index", values="value").sort_index().clip(lower=0) ** 0.5
            rows.append(
                {
                    "experiment": run.name,
                    "layer": layer,
                    "sigma at the first probed step": float(sd.iloc[0].median()),
                    "sigma at the last probed step": float(sd.iloc[-1].median()),
                    "largest sigma over training": float(sd.max().max()),
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the claims


def _medians(run: Experiment, scale: str) -> dict[str, list[float]]:
    m = ics_medians(run, scale)
    return {"layer": m["layer"].tolist(), "l2": m["median l2 difference"].tolist(), "cos": m["median cosine"].tolist()}


def _cosines_text(run: Experiment, scale: str) -> str:
    m = _medians(run, scale)
    return ", ".join(f"#{layer} {cos:.2f}" for layer, cos in zip(m["layer"], m["cos"], strict=True))


def vgg_ics(scale: str) -> Finding:
    checks, parts = [], []
    for lr, (std_run, bn_run) in VGG_PAIRS.items():
        std, bn = _medians(std_run, scale), _medians(bn_run, scale)
        for i in range(len(std["layer"])):
            checks.append(bn["l2"][i] >= L2_SHARE * std["l2"][i] and bn["cos"][i] <= std["cos"][i] + COSINE_MARGIN)
        parts.append(f"lr {lr:g}: standard {_cosines_text(std_run, scale)}; BN {_cosines_text(bn_run, scale)}")
    text = "median cos(G, G') over training, " + "; ".join(parts)
    if all(checks):
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if sum(checks) >= len(checks) / 2 else Verdict.NOT_REPRODUCED
    summary = (
        f"On VGG, BatchNorm's internal covariate shift (Definition 2.1) is similar or worse than the standard "
        f"network's in {sum(checks)} of the {len(checks)} cases (two learning rates, two layers)."
    )
    return Finding(text, verdict, summary)


def _loss(run: Experiment, scale: str) -> float:
    return plan.get(run, scale).final["train_loss"]


def dln_ics(scale: str) -> Finding:
    per_lr, parts = [], []
    for lr, (std_run, bn_run) in DLN_PAIRS.items():
        std, bn = _medians(std_run, scale), _medians(bn_run, scale)
        more_shift = all(b < s for b, s in zip(bn["cos"], std["cos"], strict=True))
        per_lr.append(more_shift and _loss(bn_run, scale) < _loss(std_run, scale))
        parts.append(
            f"lr {rate_text(lr)}: median cos standard {_cosines_text(std_run, scale)}, "
            f"BN {_cosines_text(bn_run, scale)}; "
            f"final loss BN {_loss(bn_run, scale):.3g} vs standard {_loss(std_run, scale):.3g}"
        )
    text = "; ".join(parts)
    summary = (
        "On the deep linear network, BatchNorm has lower cosines (more shift) and still reaches a lower loss at "
        f"{sum(per_lr)} of the {len(per_lr)} learning rates."
    )
    return Finding(text, graded(per_lr), summary)


CLAIMS = {
    "vgg": Claim(
        "On VGG, BatchNorm does not reduce ICS (Definition 2.1)",
        'BN networks have "similar, or even worse, internal covariate shift"; layer #10 cos ~0-0.2 at lr 0.1 '
        "(Fig. 3a, read by eye)",
        f"at layers #5 and #10 and learning rates 0.1 and 0.01: reproduced if, in every case, BN's median l2 "
        f"difference is at least {L2_SHARE:g} times the standard network's and its median cosine at most "
        f"{COSINE_MARGIN:g} above it; partly if in at least half of the cases; not reproduced otherwise",
        vgg_ics,
    ),
    "dln": Claim(
        "On the deep linear network, BatchNorm increases ICS, yet reaches a lower loss",
        "standard cos ~1 throughout; BN cos around 0 or negative; final loss ~5e2 (BN) vs ~1.6e3 (standard) at lr "
        "1e-6, ~7e2 vs ~4e3 at lr 1e-7 (Fig. 3b, read by eye)",
        "reproduced if, at both learning rates, BN's median cosine is below the standard network's at layers #9 and "
        "#17 and BN's final loss is lower; partly if this holds at one learning rate; not reproduced otherwise",
        dln_ics,
    ),
}
