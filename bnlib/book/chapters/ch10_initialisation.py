"""Chapter 10: at initialisation (Daneshmand, Kohler, Bach, Hofmann and Lucchi, 2020; Yang,
Pennington, Rao, Sohl-Dickstein and Schoenholz, 2019; Brock, De and Smith, 2021).

No training first: deep ReLU MLPs of several depths and the VGG family, with and without
BatchNorm, at initialisation, measured layer by layer on one batch of CIFAR-10 images
(`bnlib.probes.signal.signal_propagation`): the rank of the representations (Daneshmand et al.'s
numerical rank, and the centered effective rank, against the sqrt(width) that BatchNorm provably
keeps), the squared channel mean against the channel variance (the drift toward a constant
function), and the weight gradient's norm (BatchNorm's gradient explosion). Daneshmand et al.'s
control rides along: BatchNorm "broken" by making every weight positive (2|w|), whose
representations collapse although it normalizes.

Then training: each MLP (depth by depth, each network, the broken one too) at its own best rate of
a grid, seed 0 first and three seeds where it reaches the target: does the state at initialisation
predict which train?
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import plotting
from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import TARGET, Speed, fast, fastest, speeds
from bnlib.book.plan import Read
from bnlib.book.runs import BN
from bnlib.book.session import Session
from bnlib.config import RunConfig
from bnlib.experiments import Experiment, check_scale
from bnlib.probes.signal import signal_propagation
from bnlib.records import Record
from bnlib.train import first_batches, initial_model

EXPLANATION = "BatchNorm avoids rank collapse at initialisation (and makes gradients explode)"

# The networks: name -> (normalization, initialisation); "broken" is Daneshmand et al.'s control
NETWORKS = {"none": ("none", "default"), "batch": ("batch", "default"), "broken": ("batch", "broken")}
LABELS = {"none": "Standard", "batch": "Standard + BatchNorm", "broken": "BatchNorm, broken (2|w|)"}
COLORS = {"none": plotting.NORM_COLORS["none"], "batch": plotting.NORM_COLORS["batch"], "broken": "#9467bd"}
MLP_DEPTHS = {"paper": (2, 5, 10, 20, 50, 100), "cpu": (2, 5, 10, 20, 50), "smoke": (2, 5)}
VGG_DEPTHS = (11, 13, 16, 19)
TRAIN_DEPTHS = {"paper": (5, 10, 20, 50, 100), "cpu": (5, 20, 50), "smoke": (2, 5)}
TRAIN_RATES = (0.01, 0.03, 0.1, 0.3)
DEEP_RATES = (0.001, 0.003)  # the deepest MLP's grid goes down to these too: its best rate may lie there
SEEDS = (0, 1, 2)

YANG_FACTOR = math.sqrt(math.pi / (math.pi - 1))  # ~1.21: BN-ReLU MLP's gradient growth per layer (mean field)
GROWS = 1.1  # a fitted per-layer growth factor this large is "explosion"
MEAN_SHIFT = 10.0  # the standard network's mean^2 / variance must rise this much from first to last layer


def collapsed_below(width: int) -> float:
    """The Omega(sqrt(width)) effective rank that Daneshmand et al. prove BatchNorm keeps at any depth:
    an asymptotic bound, compared against, not a collapse criterion (`collapsed` is)."""
    return math.sqrt(width)


# Daneshmand et al.'s rank collapse: "rank -> 1", every example represented along one direction. Read
# on the stable rank ||H||_F^2 / ||H||_2^2 (1 exactly when collapsed); the margin is the book's own.
COLLAPSE_MARGIN = 0.1


def collapsed(stable_rank: float) -> bool:
    """Whether a layer's representations of the batch have collapsed to (nearly) one direction."""
    return stable_rank <= 1 + COLLAPSE_MARGIN


def mlp_run(network: str, depth: int, lr: float = 0.01) -> Experiment:
    """A deep ReLU MLP of the scale (He-initialised; `bnlib.models.mlp`)."""
    norm, init = NETWORKS[network]
    return Experiment.of("mlp", norm, lr, mlp_depth=depth, test_every=0, init=init)


def vgg_config(network: str, depth: int, session: Session) -> RunConfig:
    norm, init = NETWORKS[network]
    return session.config(BN.but(norm=norm, vgg_depth=depth, init=init))


def at_init(config: RunConfig, session: Session) -> pd.DataFrame:
    """`signal_propagation` of a config's network at initialisation, on the run's first batch (kept
    with the runs, `Session.measured`: it reads the data)."""

    def compute() -> pd.DataFrame:
        [(x, y)], loss_fn = first_batches(config, 1)
        return signal_propagation(initial_model(config), x, y, loss_fn)

    return session.measured("signal-propagation", config, compute)


def signal_table(session: Session) -> pd.DataFrame:
    """Per family (MLP, VGG), depth, network and layer: `signal_propagation` at initialisation."""
    mlps = [mlp_at_depth(session, depth) for depth in MLP_DEPTHS[check_scale(session.scale)]]
    vggs = [_every("VGG", depth, session, lambda net, d=depth: vgg_config(net, d, session)) for depth in VGG_DEPTHS]
    return pd.concat(mlps + vggs, ignore_index=True)


def mlp_at_depth(session: Session, depth: int, width: int | None = None) -> pd.DataFrame:
    """`signal_propagation` of one MLP depth (and width), for every network."""

    def config(network: str) -> RunConfig:
        cfg = session.config(mlp_run(network, depth))
        return cfg.replace(mlp_width=width) if width else cfg

    return _every("MLP", depth, session, config)


def _every(family: str, depth: int, session: Session, config) -> pd.DataFrame:
    frames = []
    for network in NETWORKS:
        cfg = config(network)
        width = cfg.mlp_width if family == "MLP" else None
        frames.append(at_init(cfg, session).assign(family=family, depth=depth, network=network, width=width))
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(**{"mean^2 / variance": frame["channel mean^2"] / frame["channel variance"]})


def last_hidden(frame: pd.DataFrame) -> pd.DataFrame:
    """Each network's last hidden layer (the one before its classifier)."""
    keys = ["family", "depth", "network"]
    hidden = frame[frame["layer"] < frame.groupby(keys)["layer"].transform("max")]
    return hidden.loc[hidden.groupby(keys)["layer"].idxmax()]


def gradient_growth(frame: pd.DataFrame, family: str, depth: int, network: str) -> float:
    """The factor by which the weight gradient's norm grows per layer toward the input, fitted
    (least squares on the logarithm) over the hidden layers of one network."""
    mine = frame[(frame["family"] == family) & (frame["depth"] == depth) & (frame["network"] == network)]
    hidden = mine[mine["layer"] < mine["layer"].max()]
    slope = np.polyfit(hidden["layer"], np.log(hidden["gradient norm"]), 1)[0]
    return float(np.exp(-slope))


def growth_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per family, depth and network: the fitted per-layer growth of the weight gradient's norm."""
    keys = frame[["family", "depth", "network"]].drop_duplicates()
    return pd.DataFrame(
        [
            {
                "family": family,
                "depth": depth,
                "network": LABELS[network],
                "gradient growth per layer": gradient_growth(frame, family, depth, network),
            }
            for family, depth, network in keys.itertuples(index=False)
        ]
    )


def signal_figure(frame: pd.DataFrame, family: str = "MLP") -> plt.Figure:
    """Per layer, for each depth: effective rank, mean cosine, squared mean over variance, gradient norm."""
    mine = frame[frame["family"] == family]
    quantities = ("effective rank", "mean cosine", "mean^2 / variance", "gradient norm")
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    depths = sorted(mine["depth"].unique())
    shades = dict(zip(depths, np.linspace(0.35, 1.0, len(depths)), strict=True))
    for ax, quantity in zip(axes, quantities, strict=True):
        for (depth, network), one in mine.groupby(["depth", "network"]):
            ax.plot(one["layer"], one[quantity], color=COLORS[network], alpha=shades[depth], lw=1.3)
        ax.set(xlabel="layer", title=quantity)
        if quantity != "mean cosine":
            ax.set_yscale("log")
    handles = [plt.Line2D([], [], color=COLORS[n]) for n in NETWORKS]
    axes[0].legend(handles, [LABELS[n] for n in NETWORKS], fontsize="x-small")
    fig.suptitle(
        f"{family}s at initialisation, depths {', '.join(map(str, depths))} (darker: deeper)", fontsize="small"
    )
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- trainability against depth


def train_rates(depth: int, session: Session) -> tuple[float, ...]:
    """The rates an MLP of this depth trains at: the grid, and at the deepest also DEEP_RATES."""
    deepest = depth == max(TRAIN_DEPTHS[check_scale(session.scale)])
    return (*DEEP_RATES, *TRAIN_RATES) if deepest else TRAIN_RATES


def best_rate(network: str, depth: int, session: Session) -> float | None:
    """The grid's rate at which seed 0 reaches the target soonest (None if at none, or not yet known)."""
    return fastest({lr: session.stored(fast(mlp_run(network, depth, lr))) for lr in train_rates(depth, session)})


def _grid(session: Session) -> list[tuple[str, int, float]]:
    depths = TRAIN_DEPTHS[check_scale(session.scale)]
    return [(n, d, lr) for n in NETWORKS for d in depths for lr in train_rates(d, session)]


def reads(session: Session) -> list[Read]:
    first = [Read(fast(mlp_run(n, d, lr))) for n, d, lr in _grid(session)]
    best = {(n, d): best_rate(n, d, session) for n in NETWORKS for d in TRAIN_DEPTHS[check_scale(session.scale)]}
    more = [Read(fast(mlp_run(n, d, lr)), SEEDS[1:]) for (n, d), lr in best.items() if lr is not None]
    return [*first, *more]


@functools.cache
def runs(session: Session) -> dict[tuple[str, int], list[Record]]:
    """(network, depth) -> its records at its best rate (every seed), or seed 0's at every rate if it
    reaches the target at none; the missing ones trained first, as one sweep per round."""
    session.records([fast(mlp_run(n, d, lr)) for n, d, lr in _grid(session)])
    out = {}
    depths = TRAIN_DEPTHS[check_scale(session.scale)]
    wanted = [((n, d), best_rate(n, d, session)) for n in NETWORKS for d in depths]
    session.records([(fast(mlp_run(n, d, lr)), s) for (n, d), lr in wanted if lr for s in session.limit(SEEDS)[1:]])
    for (n, d), lr in wanted:
        if lr is None:
            out[(n, d)] = [session.get(fast(mlp_run(n, d, rate))) for rate in train_rates(d, session)]
        else:
            out[(n, d)] = [session.get(fast(mlp_run(n, d, lr)), s) for s in session.limit(SEEDS)]
    return out


@dataclass(frozen=True)
class Trainability:
    """One MLP (network, depth): its best rate of the grid (None: it reaches the target at none), its
    speed there (every seed; None where there is no best rate), whether it trains (every seed reaches
    the target), and its last hidden layer at initialisation: width, effective rank, stable rank,
    mean cosine, and whether it was collapsed (`collapsed`)."""

    network: str
    depth: int
    best: float | None
    speed: Speed | None
    trains: bool
    width: int
    rank: float
    stable: float
    cosine: float
    collapsed: bool


@functools.cache
def trainability(session: Session) -> tuple[Trainability, ...]:
    """Every MLP (network, depth) of the grid (`runs`), beside its state at initialisation (`signal_table`)."""
    last = last_hidden(_signal(session)[lambda f: f["family"] == "MLP"]).set_index(["depth", "network"])
    found = []
    for (network, depth), records in runs(session).items():
        lr = best_rate(network, depth, session)
        speed = speeds(records) if lr is not None else None
        state = last.loc[(depth, network)]
        width, rank, stable = int(state["width"]), float(state["effective rank"]), float(state["stable rank"])
        trains = bool(speed and len(speed.reached) == len(speed.steps))
        cosine = float(state["mean cosine"])
        found.append(Trainability(network, depth, lr, speed, trains, width, rank, stable, cosine, collapsed(stable)))
    return tuple(found)


def trainability_table(session: Session) -> pd.DataFrame:
    """The MLPs (`trainability`) as the page shows them."""
    return pd.DataFrame(
        [
            {
                "depth": t.depth,
                "network": LABELS[t.network],
                "best lr": t.best,
                f"steps to {TARGET:.0%}": t.speed.text() if t.speed else "never",
                "trains": t.trains,
                "width": t.width,
                "effective rank at init": t.rank,
                "stable rank at init": t.stable,
                "mean cosine at init": t.cosine,
                "collapsed at init": t.collapsed,
            }
            for t in trainability(session)
        ]
    )


def trainability_figure(session: Session) -> plt.Figure:
    """The effective rank at initialisation against depth (hollow markers: fails to train)."""
    found = trainability(session)
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for network in NETWORKS:
        mine = [t for t in found if t.network == network]
        ax.plot([t.depth for t in mine], [t.rank for t in mine], "-", color=COLORS[network], label=LABELS[network])
        for trains, face in ((True, COLORS[network]), (False, "white")):
            part = [t for t in mine if t.trains == trains]
            ax.plot([t.depth for t in part], [t.rank for t in part], "o", color=COLORS[network], mfc=face, ms=8)
    ax.axhline(collapsed_below(found[0].width), color="0.5", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="hidden layers", ylabel="effective rank at initialisation")
    ax.set_title("hollow: does not reach the target at any rate; dotted: sqrt(width), a bound", fontsize="small")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- the claims


@functools.cache
def _signal(session: Session) -> pd.DataFrame:
    return signal_table(session)


def _deepest(session: Session) -> int:
    return max(MLP_DEPTHS[check_scale(session.scale)])


def rank_collapse(session: Session) -> Finding:
    last = last_hidden(_signal(session))
    mlp = last[last["family"] == "MLP"].set_index(["depth", "network"])
    depths = MLP_DEPTHS[check_scale(session.scale)]
    width = int(mlp["width"].iloc[0])
    floor = collapsed_below(width)
    bn_keeps = all(mlp.loc[(d, "batch"), "effective rank"] >= floor for d in depths)
    d = _deepest(session)
    std, bn, broken = (mlp.loc[(d, n)] for n in NETWORKS)
    std_collapses = std["effective rank"] < floor
    effective = mlp["effective rank"]
    ranks = "; ".join(
        f"depth {k}: standard {effective[(k, 'none')]:.3g}, BN {effective[(k, 'batch')]:.3g}" for k in depths
    )
    text = (
        f"effective rank (centered) of the last hidden layer at initialisation, width {width}, so sqrt(width) = "
        f"{floor:.0f}: {ranks}; numerical rank at depth {d}: standard {int(std['rank'])}, BN {int(bn['rank'])}; the "
        f"broken BatchNorm control: effective rank {broken['effective rank']:.3g}"
    )
    summary = (
        f"At initialisation BatchNorm keeps the effective rank of the last hidden layer at or above sqrt(width) = "
        f"{floor:.0f} at {'every' if bn_keeps else 'not every'} depth up to {d}; without it the effective rank falls "
        f"to {std['effective rank']:.3g} at depth {d} ({'collapsed' if std_collapses else 'not collapsed'} by that "
        f"measure), and the broken BatchNorm network's to {broken['effective rank']:.3g}."
    )
    return Finding(text, graded([bn_keeps, std_collapses]), summary)


def gradient_explosion(session: Session) -> Finding:
    d = _deepest(session)
    bn, std = (gradient_growth(_signal(session), "MLP", d, n) for n in ("batch", "none"))
    text = (
        f"growth of the weight gradient's norm per layer toward the input, fitted over the {d}-layer MLP: "
        f"BN {bn:.3f}, standard {std:.3f} (mean-field theory for BN: {YANG_FACTOR:.3f})"
    )
    if bn >= GROWS and std < GROWS:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if bn >= GROWS else Verdict.NOT_REPRODUCED
    summary = (
        f"With BatchNorm the weight gradient grows by {bn:.3f} per layer toward the input (mean-field theory: "
        f"{YANG_FACTOR:.3f}), without it by {std:.3f}."
    )
    return Finding(text, verdict, summary)


def mean_shift(session: Session) -> Finding:
    frame = _signal(session)
    checks, parts = [], []
    for family, depths in (("MLP", MLP_DEPTHS[check_scale(session.scale)]), ("VGG", VGG_DEPTHS)):
        d = max(depths)
        rises = {}
        for network in ("none", "batch"):
            mine = frame[(frame["family"] == family) & (frame["depth"] == d) & (frame["network"] == network)]
            hidden = mine[mine["layer"] < mine["layer"].max()]["mean^2 / variance"]
            rises[network] = hidden.iloc[-1] / hidden.iloc[0]
        checks.append(rises["none"] >= MEAN_SHIFT and rises["batch"] < MEAN_SHIFT)
        parts.append(f"{family}-{d}: standard x{rises['none']:.3g}, BN x{rises['batch']:.3g}")
    text = "squared channel mean over channel variance, last hidden layer against the first: " + "; ".join(parts)
    summary = f"Without BatchNorm the channel means drift with depth ({'; '.join(parts)})."
    return Finding(text, graded(checks), summary)


def predicts_training(session: Session) -> Finding:
    found = trainability(session)
    agree = [t.collapsed != t.trains for t in found]
    text = (
        f"per MLP (depth, network): collapsed at initialisation (stable rank at most {1 + COLLAPSE_MARGIN:g}) and "
        f"trains (every seed reaches {TARGET:.0%} at its best rate of {', '.join(f'{r:g}' for r in TRAIN_RATES)}, "
        f"down to {min(DEEP_RATES):g} at the deepest): "
        + "; ".join(
            f"{LABELS[t.network]} {t.depth}: {'collapsed' if t.collapsed else 'not collapsed'} ({t.stable:.3g}), "
            f"{'trains' if t.trains else 'fails'}"
            for t in found
        )
    )
    summary = (
        f"The state at initialisation predicts training in {sum(agree)} of {len(found)} networks; those that "
        "fail to reach the target at any rate: "
        + (", ".join(f"{LABELS[t.network]} at depth {t.depth}" for t in found if not t.trains) or "none")
        + "."
    )
    collapsed_count = sum(t.collapsed for t in found)
    if collapsed_count in (0, len(found)):
        return Finding(text, Verdict.CANNOT_TELL, summary)  # nothing to tell apart
    return Finding(text, graded([all(agree), sum(agree) / len(agree) > 0.5]), summary)


def deep_batchnorm_fails(session: Session) -> Finding:
    d = max(TRAIN_DEPTHS[check_scale(session.scale)])
    found = {t.network: t for t in trainability(session) if t.depth == d}
    bn, std = found["batch"], found["none"]
    rates = ", ".join(f"{r:g}" for r in train_rates(d, session))

    def said(t: Trainability) -> str:
        return f"trains (best lr {t.best:g}: {t.speed.text()})" if t.trains else f"fails at every rate of {rates}"

    text = f"the {d}-layer MLP: BN {said(bn)}; standard {said(std)}"
    if bn.trains:
        verdict = Verdict.NOT_REPRODUCED
    elif std.trains:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.CANNOT_TELL  # both fail: the depth (or the steps) defeats both networks here
    summary = f"At depth {d}, BatchNorm {said(bn)}, the standard network {said(std)}."
    return Finding(text, verdict, summary)


CLAIMS = {
    "rank_collapse": Claim(
        "Without BatchNorm, deep ReLU networks' representations lose their rank at initialisation; with it they do not",
        "Daneshmand et al. (2020): BatchNorm provably keeps the rank of the representations at Omega(sqrt(width)) "
        "at any depth (linear networks; seen for ReLU), where unnormalized networks' rank collapses with depth",
        "the last hidden layer's effective rank (centered) at initialisation: reproduced if BN's is at least "
        "sqrt(width) at every MLP depth and the standard network's falls below it at the deepest; partly if one of "
        "the two holds; not reproduced otherwise",
        rank_collapse,
    ),
    "gradient_explosion": Claim(
        "But BatchNorm makes the gradient explode with depth at initialisation",
        f"Yang et al. (2019): in BatchNorm ReLU MLPs the gradient grows by a constant factor per layer toward the "
        f"input (about {YANG_FACTOR:.2f} in norm), which no initialisation removes",
        f"on the deepest MLP: reproduced if BN's fitted per-layer growth is at least {GROWS} and the standard "
        "network's is not; partly if both are; not reproduced if BN's is not",
        gradient_explosion,
    ),
    "mean_shift": Claim(
        "Without normalization the channel means drift with depth, toward a constant function",
        "Brock et al. (2021): in unnormalized networks the squared channel means grow with depth relative to the "
        "variance; BatchNorm removes this mean shift",
        f"on the deepest MLP and VGG: reproduced if in both the standard network's mean^2 / variance rises at least "
        f"{MEAN_SHIFT:g}-fold from its first to its last hidden layer while BN's does not; partly if in one",
        mean_shift,
    ),
    "predicts_training": Claim(
        "Rank collapse at initialisation predicts which networks fail to train",
        "Daneshmand et al. (2020): networks whose representations collapse at initialisation train slowly or not at "
        "all (their control: BatchNorm broken by positive weights collapses and fails)",
        f"every MLP of the depths trained, each network (the broken BatchNorm control too) at its best rate of a "
        f"grid, every seed: it trains if every seed reaches {TARGET:.0%}; collapsed if its last hidden layer's "
        f"stable rank at initialisation is at most {1 + COLLAPSE_MARGIN:g} (Daneshmand et al.'s rank -> 1, the "
        "margin the book's own); reproduced if collapse tells the networks that fail from those that train in every "
        "case, partly in most, not reproduced otherwise; cannot tell if all or none collapsed",
        predicts_training,
    ),
    "deep_batchnorm_fails": Claim(
        "At depth 50 and beyond, BatchNorm fails to train where the standard network trains",
        "Yang et al. (2019): the gradient explosion makes BatchNorm ReLU networks without skip connections deeper than "
        "about 50 layers untrainable, where a well-initialised unnormalized network is not",
        "the deepest MLP trained, each network at every rate of its grid (down to "
        f"{min(DEEP_RATES):g}): reproduced if BN reaches {TARGET:.0%} in no seed at any rate while the standard "
        "network trains (every seed, at its best rate); not reproduced if BN trains; cannot tell if both fail",
        deep_batchnorm_fails,
    ),
}

CHAPTER = Chapter("10_initialisation", "At initialisation", PART_TWO, reads, CLAIMS)
