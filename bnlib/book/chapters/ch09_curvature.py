"""Chapter 09: the gradient through the batch statistics, and the edge of stability (Ghorbani,
Krishnan and Xiao, 2019; Cohen, Kaur, Li, Kolter and Talwalkar, 2021).

Two experiments:

* frozen or active BatchNorm at identical weights (Ghorbani et al.): along Part I's BatchNorm run at
  lr 0.1, the Hessian on the step's batch with the normalization's statistics differentiated
  through (active, as in training) and held as constants (frozen), seen by Lanczos: its top
  eigenvalues against the bulk of its spectrum, and the share of the gradient in the top
  directions. Freezing also breaks scale invariance (with active statistics H W = -g for the
  weights that feed a normalization; frozen, the loss curves along W), so every quantity is also
  measured in the tangent view, with the direction of each such layer's weights projected out; and
  the scaled view (the curvature per relative change of the weights) compares networks whose raw
  parameterizations differ.
* the edge of stability as Cohen et al. run it: full-batch gradient descent with the squared loss,
  at step sizes eta below 1 / lambda_0 of both networks (so each starts below half of 2 / eta),
  trained to a loss goal, the top eigenvalue every few steps against 2 / eta, beside the weights'
  norm (without weight decay BatchNorm's weights grow, which lowers the raw sharpness by itself)
  and the scaled sharpness.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plan, plotting
from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.plan import Read
from bnlib.book.runs import BN, STD
from bnlib.book.session import Session
from bnlib.experiments import Experiment, check_scale
from bnlib.probes import HessianProbe
from bnlib.records import Record

EXPLANATION = "The gradient through the batch statistics removes curvature; the step size sets the curvature"

# ----------------------------------------------------------------------------- frozen or active

# The Hessian's spectrum along Part I's runs at lr 0.1, every so many steps per scale
# (the smoke scale: the start and the end, and the fewest Hessian-vector products that give TOP values)
SPECTRUM_EVERY = {"paper": 3000, "cpu": 1000, "smoke": 12}
TOP = 10  # the leading eigenvalues (Ghorbani et al.'s outliers: about one per class)
# Hessian-vector products: enough for the top ten to converge, the rest sketch the bulk
LANCZOS = {"paper": 40, "cpu": 40, "smoke": 12}
OUTLIER_GAP = 3.0  # "the outliers return": frozen's top eigenvalue at least this times active's (tangent view)


def spectrum_probes(session: Session, frozen: bool) -> tuple[HessianProbe, ...]:
    """The spectrum in the raw and tangent views, and (active statistics only: what compares the
    networks) the scaled one."""
    every, iters = SPECTRUM_EVERY[check_scale(session.scale)], LANCZOS[session.scale]
    views = ("raw", "tangent") if frozen else ("raw", "tangent", "scaled")
    return tuple(HessianProbe(every, TOP, iters, frozen, view, bulk=True) for view in views)


# The three spectra: BatchNorm's run with its statistics active and frozen (at the same weights and
# batch), and the standard network at its own weights. The one list the reads, the rows and the
# figure go through.
SPECTRA = (("BatchNorm, active", BN, False), ("BatchNorm, frozen", BN, True), ("standard", STD, False))


@dataclass(frozen=True)
class SpectrumRow:
    """One probed step of one spectrum in one view: its top eigenvalue, the top over the median Ritz
    value (the outliers against the bulk) and the gradient's share in the top-TOP directions."""

    network: str
    view: str
    step: int
    top: float
    over_bulk: float
    gradient_share: float


@functools.cache
def spectrum(session: Session) -> tuple[SpectrumRow, ...]:
    """Every probed step of the three spectra (`SPECTRA`), in every view probed."""
    rows = []
    for name, run, frozen in SPECTRA:
        record = session.get(run)
        for probe in spectrum_probes(session, frozen):
            key = plan.named(probe)
            ritz = record.probe_table(key, "ritz")
            mass = record.probe_table(key, "grad_mass")[0]
            for step in ritz.index:
                values = ritz.loc[step].dropna().to_numpy()
                top = float(values[0])
                rows.append(
                    SpectrumRow(
                        name, probe.view, int(step), top, top / float(np.median(np.abs(values))), float(mass.loc[step])
                    )
                )
    return tuple(rows)


def spectrum_table(session: Session) -> pd.DataFrame:
    """The spectra's rows as the page shows them."""
    headers = {
        "top": "top eigenvalue",
        "over_bulk": "top / median (bulk)",
        "gradient_share": f"gradient share in the top {TOP}",
    }
    return pd.DataFrame([asdict(row) for row in spectrum(session)]).rename(columns=headers)


def spectrum_figure(session: Session, view: str = "tangent") -> plt.Figure:
    """The Ritz values at each probed step, per network (one dot each): the outliers above the bulk."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5), sharey=True)
    for ax, (name, run, frozen) in zip(axes, SPECTRA, strict=True):
        probe = next(p for p in spectrum_probes(session, frozen) if p.view == view)
        ritz = session.get(run).probe_table(plan.named(probe), "ritz")
        for step in ritz.index:
            values = ritz.loc[step].dropna().to_numpy()
            ax.plot([step] * len(values), values, "_", ms=9, color=plotting.NORM_COLORS[run.norm])
        ax.set(yscale="symlog", xlabel="step", title=name)
    axes[0].set_ylabel(f"Hessian eigenvalues ({view} view, Lanczos)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the edge of stability

# Full-batch gradient descent with the squared loss on a fixed balanced subset of CIFAR-10, per scale
EOS = {
    "paper": dict(examples_per_class=500, mlp_width=512, steps=20_000, every=100),
    "cpu": dict(examples_per_class=100, mlp_width=64, steps=3000, every=150),
    "smoke": dict(examples_per_class=4, mlp_width=16, steps=12, every=4),
}
EOS_DEPTH = 3
# Below each network's 2 / lambda_0 (book/scales.md: at the cpu scale lambda_0 is about 180 without
# BatchNorm and 40 with it): the smaller starts both networks below half of 2 / eta, the larger only
# BatchNorm (the standard network then starts above 2 / eta and cannot test progressive sharpening).
STEP_SIZES = {"paper": (0.002, 0.004), "cpu": (0.0045, 0.02), "smoke": (0.01, 0.02)}
LOSS_GOAL = 0.05  # half the squared error, averaged: trained until this, as Cohen et al. train to a goal
NETWORKS = ("none", "batch")
SEEDS = (0, 1, 2)
BELOW = 0.5  # a run tests progressive sharpening if it starts below this share of 2 / eta
EDGE = (0.8, 1.2)  # "at the edge": the median of its last LATE of probes within these shares of 2 / eta
LATE = 0.2


def eos_run(norm: str, lr: float, session: Session) -> Experiment:
    """A full-batch gradient-descent run of the MLP with the squared loss, to the loss goal."""
    s = EOS[check_scale(session.scale)]
    return Experiment.of(
        "mlp",
        norm,
        lr,
        loss="mse",
        mlp_depth=EOS_DEPTH,
        mlp_width=s["mlp_width"],
        train_per_class=s["examples_per_class"],
        batch_size=10 * s["examples_per_class"],
        steps=s["steps"],
        test_every=0,
        target_loss=LOSS_GOAL,
    )


def eos_description(session: Session) -> str:
    """The full-batch runs' set-up at a scale, in words."""
    s, cfg = EOS[check_scale(session.scale)], session.config(eos_run("none", STEP_SIZES[session.scale][0], session))
    return (
        f"a ReLU MLP with {cfg.mlp_depth} hidden layers of {cfg.mlp_width} units, on {cfg.batch_size:,} CIFAR-10 "
        f"images ({s['examples_per_class']} per class), full-batch gradient descent with the squared loss until it "
        f"falls to {LOSS_GOAL:g} or for {cfg.steps:,} steps, the top eigenvalue every {s['every']} steps"
    )


def eos_probes(session: Session) -> tuple[HessianProbe, ...]:
    every = EOS[check_scale(session.scale)]["every"]
    return HessianProbe(every, k=1), HessianProbe(every, k=1, view="scaled")


def _eos(session: Session) -> dict[tuple[str, float], Experiment]:
    return {
        (norm, lr): eos_run(norm, lr, session) for norm in NETWORKS for lr in STEP_SIZES[check_scale(session.scale)]
    }


def reads(session: Session) -> list[Read]:
    spectra = [Read(run, (0,), spectrum_probes(session, frozen)) for _, run, frozen in SPECTRA]
    eos = [Read(run, SEEDS, (*eos_probes(session), "weight-norms")) for run in _eos(session).values()]
    return [*spectra, *eos]


def eos_runs(session: Session) -> dict[tuple[str, float], list[Record]]:
    own = _eos(session)
    seeds = session.limit(SEEDS)
    records = session.records([(run, s) for run in own.values() for s in seeds])
    return {key: records[i * len(seeds) : (i + 1) * len(seeds)] for i, key in enumerate(own)}


def sharpness(record: Record, session: Session, view: str = "raw") -> pd.Series:
    """The top Hessian eigenvalue at each probed step of an edge-of-stability run."""
    probe = next(p for p in eos_probes(session) if p.view == view)
    return record.probe_table(plan.named(probe), "eigenvalues")[0]


CANNOT_TEST, NOT_YET = "cannot test", "not yet"


def at_edge(top: pd.Series, lr: float, reached_goal: bool) -> tuple[float, float, str]:
    """A run's start and late sharpness as shares of 2 / eta, and whether it is at the edge: "yes",
    "no" (it reached the loss goal, or went past the edge, without settling there), NOT_YET (below the
    edge when its steps ran out, before the loss goal: censored), or CANNOT_TEST (it started above
    BELOW of 2 / eta, so it cannot show progressive sharpening)."""
    edge = 2 / lr
    start, late = top.iloc[0] / edge, top.iloc[-max(1, int(LATE * len(top))) :].median() / edge
    if start >= BELOW:
        return start, late, CANNOT_TEST
    if EDGE[0] <= late <= EDGE[1]:
        return start, late, "yes"
    return start, late, "no" if reached_goal or late > EDGE[1] else NOT_YET


@dataclass(frozen=True)
class EdgeRow:
    """One edge-of-stability run: its network and step size, its top eigenvalue at the start and over
    the last LATE of the probes as shares of 2 / eta, whether it is at the edge (`at_edge`), how it
    ended, its weights' growth and its scaled sharpness at the end."""

    norm: str
    lr: float
    seed: int
    start: float
    late: float
    at_edge: str
    ended: str
    steps: int
    growth: float
    scaled_end: float


@functools.cache
def edge_runs(session: Session) -> tuple[EdgeRow, ...]:
    """Every edge-of-stability run (network, step size, seed), as a row."""
    rows = []
    for (norm, lr), records in eos_runs(session).items():
        for record in records:
            start, late, edge = at_edge(sharpness(record, session), lr, record.status == "reached")
            weights = record.probe_frame("weight-norms")
            norms = weights[weights["quantity"] == "weight_sq"].groupby("step")["value"].sum() ** 0.5
            scaled = float(sharpness(record, session, "scaled").iloc[-1])
            growth = float(norms.iloc[-1] / norms.iloc[0])
            steps = int(record.final["steps"])
            rows.append(EdgeRow(norm, lr, record.config.seed, start, late, edge, record.status, steps, growth, scaled))
    return tuple(rows)


def eos_table(session: Session) -> pd.DataFrame:
    """The edge-of-stability runs as the page shows them."""
    return pd.DataFrame(
        [
            {
                "network": plotting.label(row.norm),
                "step size": row.lr,
                "seed": row.seed,
                "2 / eta": 2 / row.lr,
                "start / (2/eta)": row.start,
                "late / (2/eta)": row.late,
                "at the edge": row.at_edge,
                "ended": row.ended,
                "steps": row.steps,
                "||W|| growth": row.growth,
                "scaled sharpness at the end": row.scaled_end,
            }
            for row in edge_runs(session)
        ]
    )


def eos_figure(session: Session, step_sizes: tuple[float, ...] | None = None) -> plt.Figure:
    """The top eigenvalue over training against 2 / eta (dashed), per network (seed 0); and the loss."""
    runs = eos_runs(session)
    step_sizes = step_sizes or STEP_SIZES[check_scale(session.scale)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    styles = dict(zip(STEP_SIZES[session.scale], ("-", "--", ":"), strict=False))
    for ax, norm in zip(axes[:2], NETWORKS, strict=True):
        for lr in step_sizes:
            top = sharpness(runs[(norm, lr)][0], session)
            ax.plot(top.index, top.values, styles[lr], color=plotting.NORM_COLORS[norm], label=f"eta {lr:g}")
            ax.axhline(2 / lr, ls=styles[lr], color="0.5", lw=1)
        ax.set(yscale="log", xlabel="step", ylabel="top Hessian eigenvalue", title=plotting.label(norm))
        ax.legend(fontsize="x-small", title="grey: 2 / eta", title_fontsize="x-small")
    for norm in NETWORKS:
        for lr in step_sizes:
            record = runs[(norm, lr)][0]
            axes[2].plot(
                record.metrics["step"], record.metrics["train_loss"], styles[lr], color=plotting.NORM_COLORS[norm]
            )
    axes[2].set(yscale="log", xlabel="step", ylabel="training loss (full batch)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the claims


def outliers_return(session: Session) -> Finding:
    table = pd.DataFrame([asdict(row) for row in spectrum(session)])
    by = {(n, v): t.set_index("step") for (n, v), t in table.groupby(["network", "view"])}
    active, frozen = by[("BatchNorm, active", "tangent")], by[("BatchNorm, frozen", "tangent")]
    raw_ratio = by[("BatchNorm, frozen", "raw")]["top"] / by[("BatchNorm, active", "raw")]["top"]
    ratio = frozen["top"] / active["top"]
    share = "gradient_share"
    concentrated = frozen[share] > active[share]
    checks = [(r >= OUTLIER_GAP) and c for r, c in zip(ratio, concentrated, strict=True)]
    std_scaled = by[("standard", "scaled")]["top"]
    bn_scaled = by[("BatchNorm, active", "scaled")]["top"]
    raw_std = by[("standard", "raw")]["top"]
    raw_bn = by[("BatchNorm, active", "raw")]["top"]
    text = (
        f"BN's run at lr 0.1, {len(ratio)} probed steps, tangent view (each BN-fed layer's radial direction removed): "
        f"frozen / active top eigenvalue {ratio.min():.3g} to {ratio.max():.3g} (raw view: {raw_ratio.min():.3g} to "
        f"{raw_ratio.max():.3g}); top / median Ritz value active {active['over_bulk'].median():.3g}, frozen "
        f"{frozen['over_bulk'].median():.3g}; gradient share in the top {TOP}: active {active[share].median():.2f}, "
        f"frozen {frozen[share].median():.2f} (medians); the standard network's top eigenvalue against BN's: raw "
        f"{(raw_std / raw_bn).min():.3g} to {(raw_std / raw_bn).max():.3g}, scaled "
        f"{(std_scaled / bn_scaled).min():.3g} to {(std_scaled / bn_scaled).max():.3g}"
    )
    summary = (
        f"At the same weights, freezing BatchNorm's statistics multiplies the top of the Hessian by {ratio.min():.3g} "
        f"to {ratio.max():.3g} once the radial directions scale invariance adds are removed ({raw_ratio.min():.3g} to "
        f"{raw_ratio.max():.3g} with them), and the gradient's share in the top {TOP} directions goes from "
        f"{active[share].median():.2f} to {frozen[share].median():.2f}."
    )
    return Finding(text, graded(checks), summary)


def edge_of_stability(session: Session) -> Finding:
    rows = edge_runs(session)
    tested = [r for r in rows if r.at_edge != CANNOT_TEST]
    decided = [r for r in tested if r.at_edge != NOT_YET]
    at = [r.at_edge == "yes" for r in decided]
    parts = []
    for norm, lr in dict.fromkeys((r.norm, r.lr) for r in rows):
        pairs = ", ".join(f"{r.start:.2f}->{r.late:.2f}" for r in rows if (r.norm, r.lr) == (norm, lr))
        parts.append(f"{plotting.label(norm)} eta {lr:g}: {pairs}")
    text = (
        f"top eigenvalue as a share of 2 / eta, at the start -> over the last {LATE:.0%} of the probes, seed by "
        "seed: " + "; ".join(parts) + f" ({len(rows) - len(tested)} of {len(rows)} runs started above "
        f"{BELOW:g} and cannot test it; {len(tested) - len(decided)} were still below the edge when their steps ran "
        "out, before the loss goal)"
    )
    undecided = [n for n in NETWORKS if not any(r.norm == n for r in decided)]
    if not decided:
        verdict = Verdict.CANNOT_TELL
    elif undecided:  # "with or without BatchNorm": one network cannot be decided at this scale
        verdict = Verdict.CANNOT_TELL if all(at) else (Verdict.PARTLY if any(at) else Verdict.NOT_REPRODUCED)
    else:
        by_network = [all(r.at_edge == "yes" for r in decided if r.norm == n) for n in NETWORKS]
        verdict = graded([all(by_network), any(at)])
    summary = (
        f"Under full-batch gradient descent, {sum(at)} of the {len(decided)} decided runs that start below half "
        f"of 2 / eta end at the edge of stability (within {EDGE[0]:g} to {EDGE[1]:g} of 2 / eta)"
        + (
            f"; the {', '.join(plotting.label(n) for n in undecided)} network has no decided run here."
            if undecided
            else "."
        )
    )
    return Finding(text, verdict, summary)


def follows_step_size(session: Session) -> Finding:
    """Where each network ends, by step size. A run still below its edge when its steps ran out
    (NOT_YET) has not ended anywhere yet: it is left out, and a network with fewer than two step
    sizes left cannot be compared."""
    rows = edge_runs(session)
    ended = [r for r in rows if r.at_edge != NOT_YET]
    checks, parts = [], []
    for norm in dict.fromkeys(r.norm for r in ended):
        mine = [r for r in ended if r.norm == norm]
        late = pd.Series([r.late * (2 / r.lr) for r in mine], index=[r.lr for r in mine]).groupby(level=0).median()
        if len(late) >= 2:
            checks.append(bool((late.diff().dropna() < 0).all()))
        parts.append(f"{plotting.label(norm)}: " + ", ".join(f"eta {lr:g} -> {v:.3g}" for lr, v in late.items()))
    text = (
        "median late top eigenvalue by step size, of the runs that ended (at the edge, past it, or at the loss goal): "
        + ("; ".join(parts) or "none")
        + f" ({len(rows) - len(ended)} of {len(rows)} runs were still below their edge when their steps ran out)"
    )
    summary = (
        f"A larger step ends flatter in {sum(checks)} of the {len(checks)} networks that ended at two step sizes."
        if checks
        else "No network ended at two step sizes within its steps, so where the step size puts the curvature "
        "cannot be compared at this scale."
    )
    return Finding(text, graded(checks) if checks else Verdict.CANNOT_TELL, summary)


CLAIMS = {
    "outliers_return": Claim(
        "Differentiating through the batch statistics removes the outliers of the Hessian: frozen at the same "
        "weights, they return",
        "Ghorbani et al. (2019): without BatchNorm, or with its statistics fixed, a few large isolated eigenvalues "
        "separate from the bulk and the gradient concentrates in their directions; with BatchNorm active both are "
        "almost absent",
        f"at every probed step of BN's run at lr 0.1, on the step's batch, in the tangent view (so that the radial "
        f"curvature freezing adds by breaking scale invariance does not count): reproduced if the top eigenvalue "
        f"frozen is at least {OUTLIER_GAP:g} times active's and the gradient's share in the top {TOP} directions is "
        "larger frozen, at every step; partly at some; not reproduced at none",
        outliers_return,
    ),
    "edge_of_stability": Claim(
        "Under full-batch gradient descent the top eigenvalue rises to about 2 / eta, with or without BatchNorm",
        "Cohen et al. (2021): the sharpness rises ('progressive sharpening') until it reaches 2 / eta and then "
        "hovers there ('edge of stability'); their BatchNorm networks do it too",
        f"trained to the loss goal {LOSS_GOAL:g} (or the scale's steps), every seed: a run that starts below "
        f"{BELOW:g} of 2 / eta is at the edge if the median of its last {LATE:.0%} of probes lies within {EDGE[0]:g} "
        f"to {EDGE[1]:g} of 2 / eta; one below that when its steps ran out, before the loss goal, is undecided; "
        "reproduced if every decided run of both networks is at the edge, partly if some are, not reproduced if none; "
        "cannot tell if a network has no decided run and no decided run contradicts the claim",
        edge_of_stability,
    ),
    "follows_step_size": Claim(
        "So the curvature along the trajectory follows the step size: a larger step ends flatter",
        "Cohen et al. (2021): the sharpness gradient descent ends at is set by 2 / eta, not by the architecture",
        "of the runs that ended (at the edge, past it, or at the loss goal; not those still below their edge when "
        "their steps ran out): reproduced if in every network that ended at two or more step sizes the median late "
        "top eigenvalue is lower at each larger step size; partly if in some; not reproduced in none; cannot tell "
        "if no network ended at two step sizes",
        follows_step_size,
    ),
}

CHAPTER = Chapter("09_curvature", "Frozen or active BatchNorm, and the edge of stability", PART_TWO, reads, CLAIMS)
