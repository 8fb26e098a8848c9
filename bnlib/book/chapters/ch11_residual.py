"""Chapter 11: residual networks and the identity (De and Smith, 2020; Zhang, Dauphin and Ma, 2019).

The CIFAR ResNet of `bnlib.models.resnet` as each source builds it: SkipInit's family on
pre-activation blocks with projection shortcuts (BatchNorm, no normalization, SkipInit), Fixup's on
He et al.'s post-activation blocks (BatchNorm, Fixup: its authors' recipe, scalar biases and
multipliers trained at a tenth of the rate); every network trained by SGD with momentum 0.9, as
both sources do. Three measurements:

* at initialisation, per residual block of a deep ResNet, the variance of what the branch adds
  against the variance of the skip path it adds it to (`bnlib.probes.signal.residual_variances`);
* where De and Smith's claim lives, depth: a ResNet-56 without normalization at three rates and
  with SkipInit;
* speed (examples seen until the speed target) of ResNet-20 at two batch sizes, each network's
  rate searched on a x2 grid (scaled with the batch size) until a slower rate lies on each side of
  its best (`bnlib.book.ladder.searched`), three seeds at the best: which of BatchNorm's benefits
  does the bias toward the identity alone recover, and at which batch size does the normalization
  itself pull ahead?

One censoring rule for every speed comparison (`measures.comparable`): a seed that has not reached
the target by the horizon counts at the horizon, a lower bound; where the bound cannot decide the
verdict, it is "cannot tell".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib.book import ladder
from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import TARGET, Speed, comparable, comparable_rule, fast, speeds
from bnlib.book.plan import Read
from bnlib.book.session import Session
from bnlib.config import RunConfig
from bnlib.experiments import Experiment, check_scale
from bnlib.probes.signal import residual_variances
from bnlib.records import Record
from bnlib.train import first_batches, initial_model

EXPLANATION = "BatchNorm biases residual blocks toward the identity"

VARIANTS: dict[str, dict] = {
    "BatchNorm": dict(norm="batch", resnet_block="pre"),
    "no normalization": dict(norm="none", resnet_block="pre"),
    "SkipInit": dict(norm="none", residual="skipinit", resnet_block="pre"),
    "post-activation BatchNorm": dict(norm="batch"),
    "Fixup": dict(norm="none", residual="fixup"),
}
COLORS = {
    "BatchNorm": "#1f77b4",
    "no normalization": "#555555",
    "SkipInit": "#2ca02c",
    "post-activation BatchNorm": "#9467bd",
    "Fixup": "#d62728",
}
MOMENTUM = 0.9  # both sources train with SGD and momentum 0.9
INIT_DEPTH = {"paper": 110, "cpu": 56, "smoke": 20}  # the ResNet measured at initialisation
DEEP = {"paper": 110, "cpu": 56, "smoke": 20}  # where the unnormalized network fails to train (De and Smith)
DEEP_RATES = (0.1, 0.01, 0.001)  # the unnormalized deep network at each: "does not train" is not one rate's
TRAIN_DEPTH = 20
BATCHES = {"paper": (128, 1024), "cpu": (128, 512), "smoke": (16, 64)}
# The rates at the smaller batch, x2 apart up to 1.6 (De and Smith's grid at batch 128), scaled by
# batch / smaller batch at the larger (with the steps divided by it: the same examples at both).
GRID = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
GRIDS = {"paper": GRID, "cpu": GRID, "smoke": (0.05, 0.1, 0.2)}  # the smoke scale checks the machinery
START = 0.1  # both sources' rate at batch 128: each search starts there
SEARCHED = {  # the networks whose rate is searched, at which batch sizes (0: the smaller, 1: the larger)
    "BatchNorm": (0, 1),
    "SkipInit": (0, 1),
    "post-activation BatchNorm": (0,),
    "Fixup": (0,),
}
SEEDS = (0, 1, 2)

# De and Smith's 1/block law is a slope of -1 of log Var(branch)/Var(skip) against log(block) along
# a stage's identity shortcuts; "downscaled" asks for at least half of it in the exponent.
DOWNSCALING = 0.5
NEAR = 1.5  # "about as fast": every seed within this factor of BatchNorm's median examples to the target


def _scaled(rate: float, batch: int, session: Session) -> float:
    """A rate at the smaller batch, scaled to `batch` (times batch / the smaller batch)."""
    return rate * batch / BATCHES[check_scale(session.scale)][0]


def grid(batch: int, session: Session) -> tuple[float, ...]:
    """The rate grid at a batch size: the scale's grid, scaled to it."""
    return tuple(_scaled(r, batch, session) for r in GRIDS[session.scale])


def run(variant: str, batch: int, lr: float, session: Session, depth: int = TRAIN_DEPTH) -> Experiment:
    """A ResNet of one variant trained at a batch size and rate with momentum, stopped at the speed
    target; at the larger batch for as many examples as the scale's steps at the smaller."""
    changes = dict(VARIANTS[variant])
    norm = changes.pop("norm")
    small = BATCHES[check_scale(session.scale)][0]
    if batch != small:
        changes["steps"] = max(1, Experiment("resnet", norm, lr).config(session.scale, 0).steps * small // batch)
    experiment = Experiment.of(
        "resnet", norm, lr, resnet_depth=depth, batch_size=batch, momentum=MOMENTUM, test_every=0, **changes
    )
    return fast(experiment)


def batches(variant: str, session: Session) -> tuple[int, ...]:
    """The batch sizes at which a variant's rate is searched."""
    return tuple(BATCHES[check_scale(session.scale)][i] for i in SEARCHED[variant])


def searches(session: Session) -> list[tuple[str, int]]:
    """Every (variant, batch size) whose rate is searched."""
    return [(variant, batch) for variant in SEARCHED for batch in batches(variant, session)]


# ----------------------------------------------------------------------------- at initialisation


@functools.cache
def init_table(session: Session) -> pd.DataFrame:
    """Per variant and residual block of the deep ResNet at initialisation: branch and skip variances."""
    frames = []
    small = BATCHES[check_scale(session.scale)][0]
    for variant in VARIANTS:
        cfg = session.config(run(variant, small, START, session, INIT_DEPTH[session.scale]))
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


# ----------------------------------------------------------------------------- the runs


def _horizon(session: Session, batch: int) -> int:
    """The steps of a ResNet-20 run at a batch size in this session."""
    return session.config(run("BatchNorm", batch, START, session)).steps


def _seed_zero(session: Session, variant: str, batch: int) -> dict[float, Record]:
    """Seed 0's stored records of a variant at a batch size, by rate of the grid."""
    found = {lr: session.stored(run(variant, batch, lr, session)) for lr in grid(batch, session)}
    return {lr: r for lr, r in found.items() if r is not None}


def search(session: Session, variant: str, batch: int) -> tuple[list[float], float | None]:
    """Seed 0's rates along a variant's search at a batch size (`ladder.searched` on the scaled grid,
    from `START`), and its best rate once the search is done (`ladder.best_of`: the fastest to the
    target, else the one that trained furthest; None while the search goes on, or if no rate trains)."""
    stored, rates = _seed_zero(session, variant, batch), grid(batch, session)
    horizon = _horizon(session, batch)
    tried = ladder.searched(stored, (_scaled(START, batch, session),), horizon, rates)
    done = all(lr in stored for lr in tried) and not ladder.next_rates({lr: stored[lr] for lr in tried}, horizon, rates)
    return tried, ladder.best_of({lr: stored[lr] for lr in tried}, horizon) if done else None


def _deep(session: Session) -> list[Experiment]:
    small, depth = BATCHES[check_scale(session.scale)][0], DEEP[session.scale]
    unnormalized = [run("no normalization", small, lr, session, depth) for lr in DEEP_RATES]
    return [*unnormalized, run("SkipInit", small, START, session, depth)]


def _wanted(session: Session) -> list[tuple[Experiment, int]]:
    """Every ResNet-20 run the chapter reads, as far as what is stored decides it: seed 0 along each
    search, every seed at each best rate, Fixup's every seed at post-activation BatchNorm's best."""
    small = BATCHES[check_scale(session.scale)][0]
    pairs, bests = [], {}
    for variant, batch in searches(session):
        tried, best = search(session, variant, batch)
        bests[(variant, batch)] = best
        pairs += [(run(variant, batch, lr, session), 0) for lr in tried]
        if best is not None:
            pairs += [(run(variant, batch, best, session), s) for s in session.limit(SEEDS)[1:]]
    same = bests[("post-activation BatchNorm", small)]
    if same is not None:
        pairs += [(run("Fixup", small, same, session), s) for s in session.limit(SEEDS)]
    return list(dict.fromkeys(pairs))


def reads(session: Session) -> list[Read]:
    return [*(Read(r, (s,)) for r, s in _wanted(session)), *(Read(r, SEEDS) for r in _deep(session))]


@functools.cache
def trained(session: Session) -> None:
    """Trains the missing ResNet-20 runs, one sweep per round of the searches, until what is stored
    decides no further run."""
    while True:
        wanted = _wanted(session)
        session.records(wanted)
        if _wanted(session) == wanted:
            return


def deep_runs(session: Session) -> dict[tuple[str, float], list[Record]]:
    """(variant, rate) -> the deep ResNet's records, every seed (trained where missing): without
    normalization at each of `DEEP_RATES`, SkipInit at `START`."""
    runs = _deep(session)
    seeds = session.limit(SEEDS)
    records = session.records([(r, s) for r in runs for s in seeds])
    keys = [("no normalization", lr) for lr in DEEP_RATES] + [("SkipInit", START)]
    return {key: records[i * len(seeds) : (i + 1) * len(seeds)] for i, key in enumerate(keys)}


def speed_in_examples(records: list[Record]) -> Speed:
    """Examples seen until the speed target (steps times the batch size), seed by seed."""
    speed = speeds(records)
    batch = records[0].config.batch_size
    return Speed([None if s is None else s * batch for s in speed.steps], speed.horizon * batch)


def records_at(session: Session, variant: str, batch: int, lr: float) -> list[Record]:
    """The stored seeds of a ResNet-20 run (seed 0 first), once the chapter's runs are trained."""
    trained(session)
    found = [session.stored(run(variant, batch, lr, session), s) for s in session.limit(SEEDS)]
    return [r for r in found if r is not None]


@dataclass(frozen=True)
class Searched:
    """A variant at a batch size, measured: the rates its search tried (seed 0), its best rate (None:
    no rate trains), whether a slower rate lies on each side of it (`ladder.bracketed`), its examples
    to the target there (every seed), and the largest rate of the search at which seed 0 reached the
    target (None: none)."""

    variant: str
    batch: int
    tried: tuple[float, ...]
    best: float | None
    bracketed: bool
    speed: Speed | None
    largest: float | None


@functools.cache
def searched(session: Session, variant: str, batch: int) -> Searched:
    trained(session)
    tried, best = search(session, variant, batch)
    seed_zero = {lr: session.stored(run(variant, batch, lr, session)) for lr in tried}
    bracketed = ladder.bracketed(seed_zero, _horizon(session, batch), grid(batch, session))
    speed = speed_in_examples(records_at(session, variant, batch, best)) if best is not None else None
    reached = [lr for lr, r in seed_zero.items() if r.steps_to(TARGET) is not None]
    return Searched(variant, batch, tuple(tried), best, bracketed, speed, max(reached) if reached else None)


def train_table(session: Session) -> pd.DataFrame:
    """Every ResNet-20 run of the searches, as the page shows it: each rate tried (seed 0; every
    seed at the best rate) and how it ended."""
    rows = []
    for variant, batch in searches(session):
        found = searched(session, variant, batch)
        for lr in found.tried:
            records = records_at(session, variant, batch, lr)
            rows.append(_row(variant, batch, lr, records, "best" if lr == found.best else ""))
    small = BATCHES[check_scale(session.scale)][0]
    same = searched(session, "post-activation BatchNorm", small).best
    if same is not None:
        rows.append(_row("Fixup", small, same, records_at(session, "Fixup", small, same), "BatchNorm's best"))
    return pd.DataFrame(rows)


def _row(variant: str, batch: int, lr: float, records: list[Record], note: str) -> dict:
    speed = speed_in_examples(records)
    return {
        "variant": variant,
        "batch": batch,
        "lr": lr,
        "rate": note,
        "ended": ", ".join(r.status for r in records),
        f"examples to {TARGET:.0%}": speed.text(),
        "median examples": speed.median(),
    }


def train_figure(session: Session) -> plt.Figure:
    """Examples to the target against the rate, seed 0 along each search, one panel per batch size
    (x: did not reach it)."""
    table = train_table(session)
    panels = sorted(table["batch"].unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(10, 3.5), sharey=True)
    for ax, batch in zip(np.atleast_1d(axes), panels, strict=True):
        mine = table[table["batch"] == batch]
        top = mine["median examples"].max()
        for variant, rows in mine.groupby("variant", sort=False):
            rows = rows.sort_values("lr")
            seed_zero = [records_at(session, variant, batch, lr)[0].steps_to(TARGET) for lr in rows["lr"]]
            ok = [(lr, s * batch) for lr, s in zip(rows["lr"], seed_zero, strict=True) if s is not None]
            if ok:
                ax.plot(*zip(*ok, strict=True), "o-", color=COLORS[variant], label=variant)
            gone = [lr for lr, s in zip(rows["lr"], seed_zero, strict=True) if s is None]
            ax.plot(gone, [top] * len(gone), "x", color=COLORS[variant], ms=9)
        ax.set(xscale="log", yscale="log", xlabel="learning rate", title=f"batch {batch}")
    np.atleast_1d(axes)[0].set_ylabel(f"examples to {TARGET:.0%}, seed 0 (x: never)")
    if np.atleast_1d(axes)[0].get_legend_handles_labels()[0]:
        np.atleast_1d(axes)[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def curves_figure(session: Session, variant: str, batch: int) -> plt.Figure:
    """Training accuracy over the examples seen at each rate of a variant's search (seed 0)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for lr in searched(session, variant, batch).tried:
        record = records_at(session, variant, batch, lr)[0]
        ax.plot(record.metrics["step"] * batch, record.smoothed(), label=f"lr {lr:g} ({record.status})")
    ax.axhline(TARGET, color="0.6", ls=":", lw=1)
    ax.set(xlabel="examples seen", ylabel="training accuracy", ylim=(0, 1), title=f"{variant}, batch {batch}")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- the claims


def stage_slopes(frame: pd.DataFrame, variant: str) -> list[float]:
    """Per stage of a variant's ResNet at initialisation, the least-squares slope of
    log Var(branch)/Var(skip) against log(the block's place in its stage), over the blocks whose
    shortcut is the identity (a stage's first block after the first stage has a projection, which
    starts the skip path afresh)."""
    mine = frame[frame["variant"] == variant]
    per_stage = len(mine) // 3
    slopes = []
    for stage in range(3):
        place = np.arange(1, per_stage + 1)
        ratio = mine["ratio"].to_numpy()[stage * per_stage : (stage + 1) * per_stage]
        keep = place >= (1 if stage == 0 else 2)
        slopes.append(float(np.polyfit(np.log(place[keep]), np.log(ratio[keep]), 1)[0]))
    return slopes


def downscaled(session: Session) -> Finding:
    frame = init_table(session)
    slope = {v: stage_slopes(frame, v) for v in ("BatchNorm", "no normalization")}
    median = {v: float(np.median(s)) for v, s in slope.items()}
    zero = frame[frame["variant"].isin(["SkipInit", "Fixup"])]["branch variance"].abs().max()
    shown = {v: ", ".join(f"{x:.2f}" for x in s) for v, s in slope.items()}
    text = (
        f"slope of log Var(branch)/Var(skip) against log(block in its stage), pre-activation "
        f"ResNet-{INIT_DEPTH[session.scale]} at initialisation, stage by stage (1/block: -1): BN {shown['BatchNorm']} "
        f"(median {median['BatchNorm']:.2f}); no normalization {shown['no normalization']} (median "
        f"{median['no normalization']:.2f}); SkipInit's and Fixup's branches: largest variance {zero:.1g}"
    )
    shrinks = {v: m <= -DOWNSCALING for v, m in median.items()}
    if shrinks["BatchNorm"] and not shrinks["no normalization"]:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if shrinks["BatchNorm"] else Verdict.NOT_REPRODUCED
    summary = (
        f"At initialisation, Var(branch) / Var(skip) falls like block^{median['BatchNorm']:.2f} along a stage with "
        f"BatchNorm (De and Smith: block^-1) and like block^{median['no normalization']:.2f} without (medians over "
        "the stages)."
    )
    return Finding(text, verdict, summary)


def skipinit_trains_deep(session: Session) -> Finding:
    deep = deep_runs(session)
    unnormalized = {lr: deep[("no normalization", lr)] for lr in DEEP_RATES}
    none_fails = all(r.steps_to(TARGET) is None for records in unnormalized.values() for r in records)
    skip = speed_in_examples(deep[("SkipInit", START)])
    skip_trains = len(skip.reached) == len(skip.steps)
    ended = "; ".join(f"lr {lr:g}: {', '.join(r.status for r in rs)}" for lr, rs in unnormalized.items())
    text = (
        f"ResNet-{DEEP[session.scale]} at batch {BATCHES[session.scale][0]}, momentum {MOMENTUM:g}, "
        f"{len(skip.steps)} seed(s): without normalization {ended}; SkipInit at lr {START:g}: examples to "
        f"{TARGET:.0%} {skip.text()}"
    )
    reached = [f"{lr:g}" for lr, rs in unnormalized.items() if any(r.steps_to(TARGET) is not None for r in rs)]
    where = f"reaches {TARGET:.0%} at lr {', '.join(reached)}" if reached else f"reaches {TARGET:.0%} at no rate tried"
    summary = (
        f"At depth {DEEP[session.scale]} the unnormalized ResNet {where}, and SkipInit reaches it in {skip.text()} "
        "examples (seed by seed)."
    )
    return Finding(text, graded([none_fails and skip_trains, none_fails or skip_trains]), summary)


def _undecided(found: Searched) -> str | None:
    """Why a network's speed cannot be compared: no rate trains, or its best lies at the grid's edge."""
    if found.best is None:
        return f"{found.variant} trains at no rate of the grid at batch {found.batch}"
    if not found.bracketed:
        return f"{found.variant}'s best rate at batch {found.batch}, {found.best:g}, lies at the grid's edge"
    return None


def _near(session: Session, variant: str, reference: str, at_reference: bool) -> Finding:
    """`variant` about as fast as `reference` at the smaller batch: each at its own best rate, or
    (`at_reference`) `variant` at the reference's best rate."""
    small = BATCHES[session.scale][0]
    ref, mine = searched(session, reference, small), searched(session, variant, small)
    why = _undecided(ref) or (None if at_reference else _undecided(mine))
    if why is not None:
        return Finding(why, Verdict.CANNOT_TELL, f"At batch {small} the comparison cannot be made here: {why}.")
    if at_reference:
        lr, speed = ref.best, speed_in_examples(records_at(session, variant, small, ref.best))
        where = f"at {reference}'s best rate {lr:g}"
    else:
        lr, speed = mine.best, mine.speed
        where = f"at its best rate {lr:g}"
    verdict = comparable(speed, ref.speed, NEAR)
    text = (
        f"examples to {TARGET:.0%} at batch {small}: {reference} at its best rate {ref.best:g} {ref.speed.text()}; "
        f"{variant} {where} {speed.text()}"
    )
    summary = (
        f"At batch {small}, {variant} reaches {TARGET:.0%} in {speed.text()} examples {where}, {reference} in "
        f"{ref.speed.text()}."
    )
    return Finding(text, verdict, summary)


def skipinit_small_batch(session: Session) -> Finding:
    return _near(session, "SkipInit", "BatchNorm", at_reference=False)


def fixup_same_rate(session: Session) -> Finding:
    return _near(session, "Fixup", "post-activation BatchNorm", at_reference=True)


@dataclass(frozen=True)
class Shortfall:
    """SkipInit's examples to the target over BatchNorm's at one batch size, each at its best rate:
    the medians' ratio, and its range over every pairing of one seed of each (a seed that never got
    there counts at its horizon: a censored SkipInit seed leaves the top open, a censored BatchNorm
    seed the bottom)."""

    median: float
    low: float
    high: float

    def text(self) -> str:
        low = "0" if self.low == 0 else f"{self.low:.3g}x"
        high = "unbounded" if self.high == np.inf else f"{self.high:.3g}x"
        return f"{self.median:.3g}x (seeds: {low} to {high})"


def shortfall(skip: Speed, bn: Speed) -> Shortfall:
    low = 0.0 if len(bn.reached) < len(bn.steps) else min(skip.lower()) / max(bn.steps)
    high = np.inf if len(skip.reached) < len(skip.steps) else max(skip.steps) / min(bn.lower())
    return Shortfall(skip.median() / bn.median(), low, high)


def large_batch(session: Session) -> Finding:
    small, large = BATCHES[session.scale]
    found = {(v, b): searched(session, v, b) for v in ("BatchNorm", "SkipInit") for b in (small, large)}
    why = next((w for f in found.values() if (w := _undecided(f)) is not None), None)
    largest = {v: found[(v, large)].largest for v in ("BatchNorm", "SkipInit")}
    rates = f"BatchNorm {_rate_text(largest['BatchNorm'])}, SkipInit {_rate_text(largest['SkipInit'])}"
    if why is not None:
        text = f"{why}; largest rate of the search at which seed 0 reaches {TARGET:.0%} at batch {large}: {rates}"
        return Finding(text, Verdict.CANNOT_TELL, f"The batch-size comparison cannot be made here: {why}.")
    short = {b: shortfall(found[("SkipInit", b)].speed, found[("BatchNorm", b)].speed) for b in (small, large)}
    text = (
        f"SkipInit's examples to {TARGET:.0%} over BatchNorm's, each at its best rate: {short[small].text()} at batch "
        f"{small}, {short[large].text()} at batch {large}; largest rate of the search at which seed 0 reaches it at "
        f"batch {large}: {rates}"
    )
    grows = True if short[large].low > short[small].high else False if short[large].high < short[small].low else None
    if grows is None or largest["BatchNorm"] is None:
        verdict = Verdict.CANNOT_TELL  # the seeds' ranges overlap: the shortfall's change is within their spread
    else:
        larger_rate = largest["SkipInit"] is None or largest["BatchNorm"] > largest["SkipInit"]
        verdict = graded([grows and larger_rate, grows or larger_rate])
    summary = (
        f"SkipInit needs {short[small].text()} BatchNorm's examples at batch {small} and {short[large].text()} at "
        f"batch {large}; at batch {large} the largest rate at which it reaches {TARGET:.0%} is "
        f"{_rate_text(largest['BatchNorm'])} for BatchNorm, {_rate_text(largest['SkipInit'])} for SkipInit."
    )
    return Finding(text, verdict, summary)


def _rate_text(lr: float | None) -> str:
    return "none" if lr is None else f"{lr:g}"


_SEARCH_RULE = (
    "each network at its best rate of a x2 grid searched until a slower rate lies on each side (seed 0; every seed "
    "at the best)"
)
_EDGE = "a network trains at no rate of the grid or its best rate lies at the grid's edge"
_EDGE_RULE = f"cannot tell if {_EDGE}"

CLAIMS = {
    "downscaled": Claim(
        "With BatchNorm, deep residual blocks start close to the identity: the branch shrinks relative to the skip "
        "path with depth",
        "De and Smith (2020): at initialisation BatchNorm on a pre-activation residual branch downscales it relative "
        "to its skip path by about the square root of the block's depth, so Var(branch) / Var(skip) falls like "
        "1 / block",
        "per stage of a pre-activation ResNet at initialisation, the slope of log Var(branch)/Var(skip) against "
        "log(the block's place in the stage), over the blocks with an identity shortcut: reproduced if BN's median "
        f"slope over the stages is at most -{DOWNSCALING:g} (half the 1/block law's exponent) while the unnormalized "
        "network's is not; partly if only BN's is; not reproduced otherwise",
        downscaled,
    ),
    "skipinit_trains_deep": Claim(
        "Deep unnormalized residual networks do not train; with SkipInit they do",
        "De and Smith (2020): without normalization a deep ResNet's signal explodes with depth and it does not "
        "train; SkipInit (a zero-initialised scalar on each branch) trains it",
        lambda scale: (
            f"a pre-activation ResNet-{DEEP[scale]}, batch {BATCHES[scale][0]}, momentum {MOMENTUM:g}, every seed: "
            f"reproduced if the unnormalized network reaches {TARGET:.0%} training accuracy at none of lr "
            f"{', '.join(f'{lr:g}' for lr in DEEP_RATES)} in any seed while SkipInit (lr {START:g}) does in every "
            "seed; partly if one of the two holds; not reproduced otherwise"
        ),
        skipinit_trains_deep,
    ),
    "skipinit_small_batch": Claim(
        "At a small batch, the identity bias without normalization (SkipInit) trains about as fast as BatchNorm",
        "De and Smith (2020): SkipInit trains deep ResNets without normalization, close to BatchNorm at small batch "
        "sizes",
        lambda scale: (
            f"pre-activation ResNet-{TRAIN_DEPTH} at batch {BATCHES[scale][0]}, {_SEARCH_RULE}, examples to "
            f"{TARGET:.0%} (a seed that never gets there counts at its horizon; where that bound cannot decide, "
            "cannot tell): " + comparable_rule(NEAR, "SkipInit", "BatchNorm") + f"; {_EDGE_RULE}"
        ),
        skipinit_small_batch,
    ),
    "large_batch": Claim(
        "At a large batch BatchNorm pulls ahead, because it trains at larger rates",
        "De and Smith (2020): BatchNorm's larger stable rates pay off only at large batch sizes, where the best "
        "rate is large",
        lambda scale: (
            f"pre-activation ResNet-{TRAIN_DEPTH} at batch {BATCHES[scale][0]} and {BATCHES[scale][1]} (rates scaled "
            f"with the batch, the same examples at both), {_SEARCH_RULE}: SkipInit's examples to the target over "
            "BatchNorm's grows with the batch if it does in every pairing of one seed of each (the lowest pairing at "
            "the larger batch above the highest at the smaller; a seed that never gets there counts at its horizon), "
            "and shrinks if the highest at the larger is below the lowest at the smaller; reproduced if it grows and, "
            "at the larger batch, the largest rate at which seed 0 reaches the target is larger for BatchNorm than "
            "for SkipInit; partly if one of the two holds; not reproduced if neither; cannot tell if the pairings "
            f"neither grow nor shrink, if BatchNorm reaches the target at no rate at the larger batch, or if {_EDGE}"
        ),
        large_batch,
    ),
    "fixup_same_rate": Claim(
        "A careful initialisation (Fixup) trains as fast as BatchNorm at the same rate",
        "Zhang et al. (2019): with Fixup, residual networks without normalization train as fast as with BatchNorm at "
        "the same rate (training speed; its best test accuracy needs extra regularization)",
        lambda scale: (
            f"post-activation ResNet-{TRAIN_DEPTH} (Fixup's blocks) at batch {BATCHES[scale][0]}, Fixup at "
            f"BatchNorm's best rate ({_SEARCH_RULE.replace('each network', 'BatchNorm')}), every seed, examples to "
            f"{TARGET:.0%} (a seed that never gets there counts at its horizon; where that bound cannot decide, "
            "cannot tell): "
            + comparable_rule(NEAR, "Fixup", "BatchNorm")
            + "; cannot tell also if BatchNorm trains at no rate of the grid or its best rate lies at the grid's edge"
        ),
        fixup_same_rate,
    ),
}

CHAPTER = Chapter("11_residual", "Residual networks and the identity", PART_TWO, reads, CLAIMS)
