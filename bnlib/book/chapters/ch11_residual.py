"""Chapter 11: residual networks and the identity (De and Smith, 2020; Zhang, Dauphin and Ma, 2019).

The CIFAR ResNet of `bnlib.models.resnet` in four variants: with BatchNorm, without
normalization, with SkipInit and with Fixup (its authors' recipe: scalar biases and multipliers,
which train at a tenth of the rate, and the downsampling shortcut's bias). Three measurements:

* at initialisation, per residual block of a deep ResNet, the variance of what the branch adds
  against the variance of the skip path it adds it to (`bnlib.probes.signal.residual_variances`);
* where De and Smith's claim lives, depth: a ResNet-56 without normalization and with SkipInit;
* speed (steps, or examples seen, to the speed target) of ResNet-20 at two batch sizes, each
  variant at every rate of a small grid scaled with the batch size in seed 0, and in three seeds at
  its best rate: which of BatchNorm's benefits does the bias toward the identity alone recover, and
  at which batch size does the normalization itself pull ahead?
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import TARGET, Speed, comparable, comparable_rule, fast, fastest, speeds
from bnlib.book.plan import Read
from bnlib.book.session import Session
from bnlib.config import RunConfig
from bnlib.experiments import Experiment, check_scale
from bnlib.probes.signal import residual_variances
from bnlib.records import Record
from bnlib.train import first_batches, initial_model

EXPLANATION = "BatchNorm biases residual blocks toward the identity"

VARIANTS: dict[str, dict] = {
    "BatchNorm": dict(norm="batch"),
    "no normalization": dict(norm="none"),
    "SkipInit": dict(norm="none", residual="skipinit"),
    "Fixup": dict(norm="none", residual="fixup"),
}
COLORS = {"BatchNorm": "#1f77b4", "no normalization": "#555555", "SkipInit": "#2ca02c", "Fixup": "#d62728"}
INIT_DEPTH = {"paper": 110, "cpu": 56, "smoke": 20}  # the ResNet measured at initialisation
DEEP = {"paper": 110, "cpu": 56, "smoke": 20}  # where the unnormalized network fails to train (De and Smith)
TRAIN_DEPTH = 20
BATCHES = {"paper": (128, 1024), "cpu": (128, 512), "smoke": (16, 64)}
BASE_RATES = (0.025, 0.1, 0.4)  # at the smaller batch; scaled by batch / smaller batch at the larger
SPEED_VARIANTS = ("BatchNorm", "SkipInit")  # swept at both batch sizes; Fixup at BatchNorm's best rate
SEEDS = (0, 1, 2)

SHRINKS = 5.0  # BN's branch/skip ratio must fall at least this much from the first block to the last
FLAT = 2.0  # ... while the unnormalized network's falls less than this
NEAR = 1.5  # "about as fast": every seed within this factor of BatchNorm's median examples to the target


def rates(batch: int, session: Session) -> tuple[float, ...]:
    small = BATCHES[check_scale(session.scale)][0]
    return tuple(r * batch / small for r in BASE_RATES)


def run(variant: str, batch: int, lr: float, depth: int = TRAIN_DEPTH) -> Experiment:
    """A ResNet of one variant trained at a batch size and rate, stopped at the speed target."""
    variant = dict(VARIANTS[variant])
    norm = variant.pop("norm")
    return fast(Experiment.of("resnet", norm, lr, resnet_depth=depth, batch_size=batch, test_every=0, **variant))


# ----------------------------------------------------------------------------- at initialisation


@functools.cache
def init_table(session: Session) -> pd.DataFrame:
    """Per variant and residual block of the deep ResNet at initialisation: branch and skip variances."""
    frames = []
    for variant in VARIANTS:
        cfg = session.config(run(variant, BATCHES[check_scale(session.scale)][0], 0.1, INIT_DEPTH[session.scale]))
        table = session.measured("residual-variances", cfg, lambda cfg=cfg: _residual_variances(cfg))
        frames.append(table.assign(variant=variant))
    return pd.concat(frames, ignore_index=True)


def _residual_variances(config: RunConfig) -> pd.DataFrame:
    """`residual_variances` of a config's network at initialisation, on its run's first batch."""
    [(x, _)], _ = first_batches(config, 1)
    return residual_variances(initial_model(config), x)


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


# ----------------------------------------------------------------------------- training


def _grid(session: Session) -> list[tuple[str, int, float]]:
    small, large = BATCHES[check_scale(session.scale)]
    return [(v, b, lr) for v in SPEED_VARIANTS for b in (small, large) for lr in rates(b, session)]


def _deep(session: Session) -> list[Experiment]:
    small = BATCHES[check_scale(session.scale)][0]
    return [run(v, small, 0.1, DEEP[session.scale]) for v in ("no normalization", "SkipInit")]


def best_rate(variant: str, batch: int, session: Session) -> float | None:
    """The grid's rate at which seed 0 reached the speed target first (None: at no rate, or not
    every rate stored yet). Seeds 1 and 2 run there."""
    return fastest({lr: session.stored(run(variant, batch, lr)) for lr in rates(batch, session)})


def fixup_rate(session: Session) -> float | None:
    """BatchNorm's best rate at the small batch (Fixup's claim is about the same rate), once known."""
    return best_rate("BatchNorm", BATCHES[check_scale(session.scale)][0], session)


def _best_cells(session: Session) -> list[tuple[str, int, float]]:
    small, large = BATCHES[check_scale(session.scale)]
    cells = [(v, b, best_rate(v, b, session)) for v in SPEED_VARIANTS for b in (small, large)]
    return [cell for cell in cells if cell[2] is not None]


def reads(session: Session) -> list[Read]:
    first = [Read(run(*cell)) for cell in _grid(session)]
    more = [Read(run(*cell), SEEDS[1:]) for cell in _best_cells(session)]
    fixup = fixup_rate(session)
    fixup_reads = [Read(run("Fixup", BATCHES[session.scale][0], fixup), SEEDS)] if fixup is not None else []
    return [*first, *more, *(Read(r, SEEDS) for r in _deep(session)), *fixup_reads]


@functools.cache
def runs(session: Session) -> dict[tuple[str, int, float], list[Record]]:
    """(variant, batch, rate) -> ResNet-20's records there (seed 0; every seed at each variant's best
    rate per batch, and Fixup's at BatchNorm's best rate), the missing ones trained first, a sweep
    per round."""
    session.records([run(*cell) for cell in _grid(session)])
    more = _best_cells(session)
    session.records([(run(*cell), s) for cell in more for s in session.limit(SEEDS)[1:]])
    out = {}
    for cell in _grid(session):
        seeds = session.limit(SEEDS) if cell in more else (0,)
        out[cell] = [session.get(run(*cell), s) for s in seeds]
    fixup = fixup_rate(session)
    if fixup is not None:
        small = BATCHES[session.scale][0]
        out[("Fixup", small, fixup)] = session.records([(run("Fixup", small, fixup), s) for s in session.limit(SEEDS)])
    return out


def deep_runs(session: Session) -> dict[str, list[Record]]:
    """The deep ResNet without normalization and with SkipInit, every seed (trained where missing)."""
    small = BATCHES[check_scale(session.scale)][0]
    variants = ("no normalization", "SkipInit")
    records = session.records(
        [(run(v, small, 0.1, DEEP[session.scale]), s) for v in variants for s in session.limit(SEEDS)]
    )
    n = len(session.limit(SEEDS))
    return {v: records[i * n : (i + 1) * n] for i, v in enumerate(variants)}


def speed_in_examples(records: list[Record]) -> Speed:
    """Examples seen until the speed target (steps times the batch size), seed by seed."""
    speed = speeds(records)
    batch = records[0].config.batch_size
    return Speed([None if s is None else s * batch for s in speed.steps], speed.horizon * batch)


@dataclass(frozen=True)
class Cell:
    """One cell of ResNet-20's grid (variant, batch size, rate): how each seed ended (seed 0; every
    seed at the best rate), its examples to the target, and whether the rate trains (every seed run
    there reached it)."""

    variant: str
    batch: int
    lr: float
    ended: tuple[str, ...]
    speed: Speed
    trains: bool


@functools.cache
def grid(session: Session) -> tuple[Cell, ...]:
    """Every cell of the grid (`runs`)."""
    found = []
    for (variant, batch, lr), records in runs(session).items():
        speed = speed_in_examples(records)
        ended = tuple(r.status for r in records)
        found.append(Cell(variant, batch, lr, ended, speed, len(speed.reached) == len(speed.steps)))
    return tuple(found)


def train_table(session: Session) -> pd.DataFrame:
    """The grid (`grid`) as the page shows it."""
    return pd.DataFrame(
        [
            {
                "variant": c.variant,
                "batch": c.batch,
                "lr": c.lr,
                "ended": ", ".join(c.ended),
                f"examples to {TARGET:.0%}": c.speed.text(),
                "median examples": c.speed.median(),
                "seeds": len(c.ended),
                "trains": c.trains,
            }
            for c in grid(session)
        ]
    )


def best_speed(session: Session, variant: str, batch: int) -> tuple[float | None, Speed | None]:
    """A variant's best rate at a batch size (seed 0's fastest) and its speed there, every seed
    (None, None if it reached the target at no rate)."""
    lr = best_rate(variant, batch, session)
    if lr is None:
        return None, None
    return lr, speed_in_examples(runs(session)[(variant, batch, lr)])


def train_figure(session: Session) -> plt.Figure:
    """Examples to the target against the rate, per variant, one panel per batch size (x: never)."""
    cells = grid(session)
    batches = sorted({c.batch for c in cells})
    fig, axes = plt.subplots(1, len(batches), figsize=(10, 3.5), sharey=True)
    for ax, batch in zip(np.atleast_1d(axes), batches, strict=True):
        for variant in dict.fromkeys(c.variant for c in cells if c.batch == batch):
            mine = [c for c in cells if (c.variant, c.batch) == (variant, batch)]
            ok = [c for c in mine if c.trains]
            ax.plot([c.lr for c in ok], [c.speed.median() for c in ok], "o-", color=COLORS[variant], label=variant)
            gone = [c.lr for c in mine if not c.trains]
            ax.plot(gone, [ax.get_ylim()[1] if ok else 1e6] * len(gone), "x", color=COLORS[variant], ms=9)
        ax.set(xscale="log", yscale="log", xlabel="learning rate", title=f"batch {batch}")
    np.atleast_1d(axes)[0].set_ylabel(f"examples to {TARGET:.0%} (x: never)")
    np.atleast_1d(axes)[-1].legend(fontsize="small")
    fig.tight_layout()
    return fig


def curves_figure(session: Session, variant: str, batch: int) -> plt.Figure:
    """Training accuracy over the examples seen, at each rate of the grid, for one variant and batch (seed 0)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for (v, b, lr), records in runs(session).items():
        if v == variant and b == batch:
            record = records[0]
            ax.plot(
                record.metrics["step"] * batch,
                record.smoothed(),
                color=COLORS[variant],
                label=f"lr {lr:g} ({record.status})",
            )
    ax.axhline(TARGET, color="0.6", ls=":", lw=1)
    ax.set(xlabel="examples seen", ylabel="training accuracy", ylim=(0, 1), title=f"{variant}, batch {batch}")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- the claims


def downscaled(session: Session) -> Finding:
    frame = init_table(session)
    fall = {}
    for variant in ("BatchNorm", "no normalization"):
        ratio = frame[frame["variant"] == variant]["ratio"]
        fall[variant] = ratio.iloc[0] / ratio.iloc[-1]
    zero = frame[frame["variant"].isin(["SkipInit", "Fixup"])]["branch variance"].abs().max()
    blocks = frame["block"].max()
    text = (
        f"Var(branch) / Var(skip) in a ResNet-{INIT_DEPTH[session.scale]} at initialisation, first block over "
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


def skipinit_trains_deep(session: Session) -> Finding:
    deep = deep_runs(session)
    none_fails = all(r.steps_to(TARGET) is None for r in deep["no normalization"])
    skip = speed_in_examples(deep["SkipInit"])
    skip_trains = len(skip.reached) == len(skip.steps)
    text = (
        f"ResNet-{DEEP[session.scale]} at batch {BATCHES[session.scale][0]}, lr 0.1, {len(skip.steps)} seed(s): "
        "without normalization "
        f"{', '.join(r.status for r in deep['no normalization'])}; SkipInit: examples to {TARGET:.0%} {skip.text()}"
    )
    ended = ", ".join(sorted({r.status for r in deep["no normalization"]}))
    summary = (
        f"At depth {DEEP[session.scale]} the unnormalized ResNet ends {ended} and SkipInit reaches {TARGET:.0%} in "
        f"{skip.text()} examples (seed by seed)."
    )
    return Finding(text, graded([none_fails and skip_trains, none_fails or skip_trains]), summary)


def _near_batchnorm(session: Session, variant: str, speed: Speed | None, where: str) -> Finding:
    small = BATCHES[session.scale][0]
    bn_lr, bn = best_speed(session, "BatchNorm", small)
    if bn is None or speed is None:
        text = f"BatchNorm or {variant} reaches {TARGET:.0%} at no rate of the grid at batch {small}"
        return Finding(text, Verdict.CANNOT_TELL, f"At batch {small} the comparison cannot be made here.")
    verdict = comparable(speed, bn, NEAR)
    text = (
        f"examples to {TARGET:.0%} at batch {small}: BatchNorm at its best rate {bn_lr:g} {bn.text()}; {variant} "
        f"{where} {speed.text()}"
    )
    summary = (
        f"At batch {small}, {variant} reaches {TARGET:.0%} in {speed.text()} examples {where}, BatchNorm in "
        f"{bn.text()}."
    )
    return Finding(text, verdict, summary)


def skipinit_small_batch(session: Session) -> Finding:
    lr, speed = best_speed(session, "SkipInit", BATCHES[session.scale][0])
    return _near_batchnorm(session, "SkipInit", speed, f"at its best rate {lr:g}" if lr else "")


def fixup_same_rate(session: Session) -> Finding:
    lr = fixup_rate(session)
    records = runs(session).get(("Fixup", BATCHES[session.scale][0], lr)) if lr is not None else None
    speed = speed_in_examples(records) if records else None
    return _near_batchnorm(session, "Fixup", speed, f"at BatchNorm's rate {lr:g}" if lr else "")


def large_batch(session: Session) -> Finding:
    small, large = BATCHES[session.scale]
    lead, largest = {}, {}
    for b in (small, large):
        _, bn = best_speed(session, "BatchNorm", b)
        _, skip = best_speed(session, "SkipInit", b)
        lead[b] = None if bn is None or skip is None else skip.median() / bn.median()
    for v in ("BatchNorm", "SkipInit"):
        ok = [c.lr for c in grid(session) if (c.variant, c.batch) == (v, large) and c.trains]
        largest[v] = float(max(ok)) if ok else None
    shown = {b: "n/a" if x is None else f"{x:.3g}x" for b, x in lead.items()}
    text = (
        f"SkipInit's median examples to {TARGET:.0%} over BatchNorm's, each at its best rate: {shown[small]} at batch "
        f"{small}, {shown[large]} at batch {large}; largest rate that trains at batch {large}: BatchNorm "
        f"{largest['BatchNorm'] or 'none'}, SkipInit {largest['SkipInit'] or 'none'}"
    )
    if None in lead.values() or largest["BatchNorm"] is None:
        verdict = Verdict.CANNOT_TELL
    else:
        grows = lead[large] > lead[small]
        larger_rate = largest["SkipInit"] is None or largest["BatchNorm"] > largest["SkipInit"]
        verdict = graded([grows and larger_rate, grows or larger_rate])
    summary = (
        f"SkipInit needs {shown[small]} BatchNorm's examples at batch {small} and {shown[large]} at batch {large}; at "
        f"batch {large} the largest rate that trains is {largest['BatchNorm'] or 'none'} for BatchNorm, "
        f"{largest['SkipInit'] or 'none'} for SkipInit."
    )
    return Finding(text, verdict, summary)


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
    "skipinit_trains_deep": Claim(
        "Deep unnormalized residual networks do not train; with SkipInit they do",
        "De and Smith (2020): without normalization a deep ResNet's signal explodes with depth and it does not "
        "train; SkipInit (a zero-initialised scalar on each branch) trains it",
        lambda scale: (
            f"a ResNet-{DEEP[scale]}, batch {BATCHES[scale][0]}, lr 0.1, every seed: reproduced if the unnormalized "
            f"network never reaches {TARGET:.0%} training accuracy while SkipInit does in every seed; partly if one "
            "of the two holds; not reproduced otherwise"
        ),
        skipinit_trains_deep,
    ),
    "skipinit_small_batch": Claim(
        "At a small batch, the identity bias without normalization (SkipInit) trains about as fast as BatchNorm",
        "De and Smith (2020): SkipInit trains deep ResNets without normalization, close to BatchNorm at small batch "
        "sizes",
        lambda scale: (
            f"ResNet-{TRAIN_DEPTH} at batch {BATCHES[scale][0]}, each at its best rate of the grid, examples to "
            f"{TARGET:.0%}: "
            + comparable_rule(NEAR, "SkipInit", "BatchNorm")
            + "; cannot tell also if either reaches it at no rate of the grid"
        ),
        skipinit_small_batch,
    ),
    "large_batch": Claim(
        "At a large batch BatchNorm pulls ahead, because it trains at larger rates",
        "De and Smith (2020): BatchNorm's larger stable rates pay off only at large batch sizes, where the best "
        "rate is large",
        lambda scale: (
            f"ResNet-{TRAIN_DEPTH} at batch {BATCHES[scale][0]} and {BATCHES[scale][1]} (rates scaled with the batch), "
            "examples to the target at each network's best rate: reproduced if SkipInit's shortfall against BatchNorm "
            "is larger at the larger batch and BatchNorm trains there at a larger rate than SkipInit (a rate trains if "
            "every seed run there reaches the target: seed 0 at the rates other than the best); partly if one holds; "
            "not reproduced otherwise; cannot tell if a network reaches it at no rate"
        ),
        large_batch,
    ),
    "fixup_same_rate": Claim(
        "A careful initialisation (Fixup) trains as fast as BatchNorm at the same rate",
        "Zhang et al. (2019): with Fixup, residual networks without normalization train as fast as with BatchNorm at "
        "the same rate (training speed; its best test accuracy needs extra regularization)",
        lambda scale: (
            f"ResNet-{TRAIN_DEPTH} at batch {BATCHES[scale][0]}, Fixup at BatchNorm's best rate, examples to "
            f"{TARGET:.0%}: "
            + comparable_rule(NEAR, "Fixup", "BatchNorm")
            + "; cannot tell also if BatchNorm reaches it at no rate of the grid"
        ),
        fixup_same_rate,
    ),
}

CHAPTER = Chapter("11_residual", "Residual networks and the identity", PART_TWO, reads, CLAIMS)
