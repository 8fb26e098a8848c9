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
# "The outliers return": frozen's top eigenvalue at least this times active's (tangent view). Ghorbani
# et al. (and Papyan's and Page's spectra) show the outliers 10 to 100 times the bulk's edge: the gap's low end.
OUTLIER_GAP = 10.0


def spectrum_probes(session: Session, frozen: bool) -> tuple[HessianProbe, ...]:
    """The spectrum in the raw and tangent views, and (active statistics only: what compares the
    networks) the scaled one. BatchNorm's run is probed in every seed, the standard network's in seed 0."""
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
    seed: int
    step: int
    top: float
    over_bulk: float
    gradient_share: float


@functools.cache
def spectrum(session: Session) -> tuple[SpectrumRow, ...]:
    """Every probed step of the three spectra (`SPECTRA`), in every view probed."""
    rows = []
    for name, run, frozen in SPECTRA:
        for seed in session.limit(spectrum_seeds(run)):
            record = session.get(run, seed)
            for probe in spectrum_probes(session, frozen):
                key = plan.named(probe)
                ritz = record.probe_table(key, "ritz")
                mass = record.probe_table(key, "grad_mass")[0]
                for step in ritz.index:
                    values = ritz.loc[step].dropna().to_numpy()
                    top = float(values[0])
                    over_bulk = top / float(np.median(np.abs(values)))
                    rows.append(SpectrumRow(name, probe.view, seed, int(step), top, over_bulk, float(mass.loc[step])))
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
        ritz = session.get(run).probe_table(plan.named(probe), "ritz")  # seed 0
        for step in ritz.index:
            values = ritz.loc[step].dropna().to_numpy()
            ax.plot([step] * len(values), values, "_", ms=9, color=plotting.NORM_COLORS[run.norm])
        ax.set(yscale="symlog", xlabel="step", title=name)
    axes[0].set_ylabel(f"Hessian eigenvalues ({view} view, Lanczos)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the edge of stability

# Full-batch gradient descent with the squared loss on a fixed balanced subset of CIFAR-10, per scale.
# `time` is Cohen et al.'s axis, eta times the steps: every step size gets the same, so the smaller
# step has as long to sharpen as the larger (its steps, time / eta, are the cap; most runs stop at the
# loss goal first); `every` probes the sharpness every so much time.
EOS = {
    "paper": dict(examples_per_class=500, mlp_width=512, time=80.0, every=0.4),
    "cpu": dict(examples_per_class=100, mlp_width=64, time=60.0, every=3.0),
    "smoke": dict(examples_per_class=4, mlp_width=16, time=0.24, every=0.08),
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


def eos_steps(lr: float, session: Session) -> int:
    """A step size's steps: the scale's time over eta (rounded to the nearest step)."""
    return round(EOS[check_scale(session.scale)]["time"] / lr)


def eos_every(lr: float, session: Session) -> int:
    """A step size's probe stride in steps: the scale's `every` over eta."""
    return max(1, round(EOS[check_scale(session.scale)]["every"] / lr))


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
        steps=eos_steps(lr, session),
        test_every=0,
        target_loss=LOSS_GOAL,
    )


def eos_description(session: Session) -> str:
    """The full-batch runs' set-up at a scale, in words."""
    s, cfg = EOS[check_scale(session.scale)], session.config(eos_run("none", STEP_SIZES[session.scale][0], session))
    return (
        f"a ReLU MLP with {cfg.mlp_depth} hidden layers of {cfg.mlp_width} units, on {cfg.batch_size:,} CIFAR-10 "
        f"images ({s['examples_per_class']} per class), full-batch gradient descent with the squared loss until it "
        f"falls to {LOSS_GOAL:g} or until the time eta x steps reaches {s['time']:g} ("
        + ", ".join(f"{eos_steps(lr, session):,} steps at eta {lr:g}" for lr in STEP_SIZES[session.scale])
        + f"), the top eigenvalue every {s['every']:g} of that time"
    )


def eos_probes(lr: float, session: Session) -> tuple[HessianProbe, ...]:
    every = eos_every(lr, session)
    return HessianProbe(every, k=1), HessianProbe(every, k=1, view="scaled")


def _eos(session: Session) -> dict[tuple[str, float], Experiment]:
    return {
        (norm, lr): eos_run(norm, lr, session) for norm in NETWORKS for lr in STEP_SIZES[check_scale(session.scale)]
    }


def spectrum_seeds(run: Experiment) -> tuple[int, ...]:
    """The seeds whose spectra are read: BatchNorm's, frozen against active, in every seed."""
    return SEEDS if run == BN else (0,)


def reads(session: Session) -> list[Read]:
    spectra = [Read(run, spectrum_seeds(run), spectrum_probes(session, frozen)) for _, run, frozen in SPECTRA]
    eos = [Read(run, SEEDS, (*eos_probes(lr, session), "weight-norms")) for (_, lr), run in _eos(session).items()]
    return [*spectra, *eos]


def eos_runs(session: Session) -> dict[tuple[str, float], list[Record]]:
    own = _eos(session)
    seeds = session.limit(SEEDS)
    records = session.records([(run, s) for run in own.values() for s in seeds])
    return {key: records[i * len(seeds) : (i + 1) * len(seeds)] for i, key in enumerate(own)}


def sharpness(record: Record, session: Session, view: str = "raw") -> pd.Series:
    """The top Hessian eigenvalue at each probed step of an edge-of-stability run."""
    probe = next(p for p in eos_probes(record.config.lr, session) if p.view == view)
    return record.probe_table(plan.named(probe), "eigenvalues")[0]


CANNOT_TEST, NOT_YET = "cannot test", "not yet"


def at_edge(top: pd.Series, lr: float, reached_goal: bool) -> tuple[float, float, str]:
    """A run's start and late sharpness as shares of 2 / eta, and where it ended: "yes" (at the edge:
    its late median within EDGE of 2 / eta), "no" (it reached the loss goal, or went past the edge,
    without settling there), or NOT_YET (below the edge when its steps ran out, before the loss goal:
    censored). Where it started does not enter (`sharpens` reads it)."""
    edge = 2 / lr
    start, late = top.iloc[0] / edge, top.iloc[-max(1, int(LATE * len(top))) :].median() / edge
    if EDGE[0] <= late <= EDGE[1]:
        return start, late, "yes"
    return start, late, "no" if reached_goal or late > EDGE[1] else NOT_YET


def sharpens(start: float, ended: str) -> str:
    """Progressive sharpening: whether a run that started below BELOW of 2 / eta rose to the edge
    ("yes", "no", NOT_YET as `at_edge`); CANNOT_TEST for one that started above."""
    return CANNOT_TEST if start >= BELOW else ended


@dataclass(frozen=True)
class EdgeRow:
    """One edge-of-stability run: its network and step size, its top eigenvalue at the start and over
    the last LATE of the probes as shares of 2 / eta, whether it ended at the edge (`at_edge`), whether
    it rose there from below (`sharpens`), how it ended, its weights' growth and its scaled sharpness
    at the end."""

    norm: str
    lr: float
    seed: int
    start: float
    late: float
    at_edge: str
    sharpened: str
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
            rows.append(
                EdgeRow(
                    norm,
                    lr,
                    record.config.seed,
                    start,
                    late,
                    edge,
                    sharpens(start, edge),
                    record.status,
                    steps,
                    growth,
                    scaled,
                )
            )
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
                "ends at the edge": row.at_edge,
                "rose to it from below": row.sharpened,
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
    # BatchNorm's spectra by (seed, step), every seed; the standard network's against seed 0's
    by = {(n, v): t.set_index(["seed", "step"]) for (n, v), t in table.groupby(["network", "view"])}
    active, frozen = by[("BatchNorm, active", "tangent")], by[("BatchNorm, frozen", "tangent")]
    raw_ratio = by[("BatchNorm, frozen", "raw")]["top"] / by[("BatchNorm, active", "raw")]["top"]
    ratio = frozen["top"] / active["top"]
    share = "gradient_share"
    concentrated = frozen[share] > active[share]
    checks = [(r >= OUTLIER_GAP) and c for r, c in zip(ratio, concentrated, strict=True)]
    std_scaled = by[("standard", "scaled")]["top"].xs(0)
    bn_scaled = by[("BatchNorm, active", "scaled")]["top"].xs(0)
    raw_std = by[("standard", "raw")]["top"].xs(0)
    raw_bn = by[("BatchNorm, active", "raw")]["top"].xs(0)
    seeds = ratio.index.get_level_values("seed").unique()
    text = (
        f"BN's run at lr 0.1, {len(ratio)} probed steps over {len(seeds)} seeds, tangent view (each BN-fed "
        "layer's radial direction removed): "
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


def _runs_text(rows: tuple[EdgeRow, ...]) -> str:
    parts = []
    for norm, lr in dict.fromkeys((r.norm, r.lr) for r in rows):
        pairs = ", ".join(f"{r.start:.2f}->{r.late:.2f}" for r in rows if (r.norm, r.lr) == (norm, lr))
        parts.append(f"{plotting.label(norm)} eta {lr:g}: {pairs}")
    return (
        f"top eigenvalue as a share of 2 / eta, at the start -> over the last {LATE:.0%} of the probes, seed by seed: "
        + "; ".join(parts)
    )


def _both(decided: list[EdgeRow], yes: list[bool]) -> tuple[Verdict, list[str]]:
    """Reproduced if every decided run of both networks says yes, partly if some do, not reproduced
    if none; a network with no decided run leaves "with or without BatchNorm" undecided."""
    undecided = [n for n in NETWORKS if not any(r.norm == n for r in decided)]
    if not decided:
        return Verdict.CANNOT_TELL, undecided
    if undecided:
        return (
            Verdict.CANNOT_TELL if all(yes) else (Verdict.PARTLY if any(yes) else Verdict.NOT_REPRODUCED)
        ), undecided
    by_network = [all(ok for r, ok in zip(decided, yes, strict=True) if r.norm == n) for n in NETWORKS]
    return graded([all(by_network), any(yes)]), undecided


def _undecided_text(undecided: list[str]) -> str:
    """The end of a summary sentence: which network `_both` left undecided, if any."""
    if not undecided:
        return "."
    return f"; the {', '.join(plotting.label(n) for n in undecided)} network has no decided run here."


def edge_of_stability(session: Session) -> Finding:
    rows = edge_runs(session)
    decided = [r for r in rows if r.at_edge != NOT_YET]
    at = [r.at_edge == "yes" for r in decided]
    text = _runs_text(rows) + (
        f" ({len(rows) - len(decided)} of {len(rows)} runs were still below the edge when their steps ran out, "
        "before the loss goal)"
    )
    verdict, undecided = _both(decided, at)
    summary = (
        f"Under full-batch gradient descent, {sum(at)} of the {len(decided)} decided runs end at the edge of "
        f"stability (within {EDGE[0]:g} to {EDGE[1]:g} of 2 / eta), wherever they started" + _undecided_text(undecided)
    )
    return Finding(text, verdict, summary)


def sharpening(session: Session) -> Finding:
    rows = edge_runs(session)
    tested = [r for r in rows if r.sharpened != CANNOT_TEST]
    decided = [r for r in tested if r.sharpened != NOT_YET]
    rose = [r.sharpened == "yes" for r in decided]
    text = _runs_text(rows) + (
        f" ({len(rows) - len(tested)} of {len(rows)} runs started above {BELOW:g} and cannot test it; "
        f"{len(tested) - len(decided)} were still below the edge when their steps ran out, before the loss goal)"
    )
    verdict, undecided = _both(decided, rose)
    summary = (
        f"Of the {len(decided)} decided runs that start below {BELOW:g} of 2 / eta, {sum(rose)} rise to the edge"
        + _undecided_text(undecided)
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
        f"at every probed step of BN's run at lr 0.1, every seed, on the step's batch, in the tangent view (so that "
        f"the radial curvature freezing adds by breaking scale invariance does not count): reproduced if the top "
        f"eigenvalue frozen is at least {OUTLIER_GAP:g} times active's (the low end of the 10-100x gaps between the "
        f"outliers and the bulk that Ghorbani et al. report) and the gradient's share in the top {TOP} directions is "
        "larger frozen, at every step; partly at some; not reproduced at none",
        outliers_return,
    ),
    "edge_of_stability": Claim(
        "Under full-batch gradient descent the top eigenvalue ends at about 2 / eta, with or without BatchNorm",
        "Cohen et al. (2021): once the sharpness reaches 2 / eta it hovers there ('edge of stability'); their "
        "BatchNorm networks do it too",
        f"trained to the loss goal {LOSS_GOAL:g} (or the scale's time), every seed, wherever it started: a run is at "
        f"the edge if the median of its last {LATE:.0%} of probes lies within {EDGE[0]:g} to {EDGE[1]:g} of 2 / eta; "
        "one below that when its steps ran out, before the loss goal, is undecided; reproduced if every decided run "
        "of both networks is at the edge, partly if some are, not reproduced if none; cannot tell if a network has "
        "no decided run and no decided run contradicts the claim",
        edge_of_stability,
    ),
    "sharpening": Claim(
        "Starting below it, the top eigenvalue rises to 2 / eta (progressive sharpening), with or without BatchNorm",
        "Cohen et al. (2021): the sharpness rises during training until it reaches 2 / eta",
        f"the runs that start below {BELOW:g} of 2 / eta (those above cannot show a rise), judged as "
        "`edge_of_stability` judges where a run ends: reproduced if every decided one of both networks ends at the "
        "edge, partly if some do, not reproduced if none; cannot tell if a network has no decided run and no decided "
        "run contradicts the claim",
        sharpening,
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
