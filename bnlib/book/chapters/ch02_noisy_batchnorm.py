"""Chapter 02, noisy BatchNorm (Algorithm 1, Figs. 2 and 8): BatchNorm with noise after it, the same
noise without BatchNorm, and the moments of a layer's inputs between two successive steps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnlib import records as run_records
from bnlib.book import plotting
from bnlib.book.chapter import PART_ONE, Chapter
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import TARGET, fast, records, speeds
from bnlib.book.plan import Read
from bnlib.book.runs import BN, FIG1, STD
from bnlib.book.session import Session
from bnlib.config import NoiseParams
from bnlib.experiments import Experiment
from bnlib.probes.activations import drifts, successive_changes
from bnlib.records import Record, load_or_run

NOISY = Experiment("vgg", "noisy_batch", 0.1)
# The noise without BatchNorm stops at the speed target: a seed that reaches it has already decided
# "prevents training" (and the ladder of chapter 12 reads the same runs).
STD_NOISE = fast(Experiment("vgg", "noise", 0.1))
SEEDS = (0, 1, 2)  # noisy BatchNorm, like the standard and BN networks it is compared with, to the end in each
FIG8_LAYERS = (2, 9, 13)
FIG8_RUNS = (STD, BN, NOISY)
SITE = "norm_out"  # the pre-activation, after the noise (where the paper's Figs. 2 and 8 are taken)

CHANCE = 0.10
# Fig. 2 compares whole training curves, so the rule does: the gap between two networks' training
# accuracy at the same step, its mean over the steps both ran (the area between the curves).
NEAR_GAP = 0.05  # "almost non-existent": noisy BN at most 5 points behind BN (Fig. 2: a few points, by eye)
AHEAD = 0.10  # "better": at least 10 points ahead of the standard network (the book's own threshold;
# in Fig. 2 the standard network trails both by tens of points until about 7-10k of 15k steps, by eye)
LESS_STABLE = 2.0  # "less stable": its pre-activations' mean moves at least twice as much between two steps
NEAR_CHANCE = 0.05

# The widget's precomputed runs: multiples of the paper's noise, a quarter of the scale's VGG run
NOISE_GRID = (0.0, 1.0, 2.0, 4.0)


def scaled_noise(k: float) -> NoiseParams:
    """The paper's noise (Algorithm 1) made k times stronger: k = 0 is no noise, 1 the paper's."""
    paper = NoiseParams()
    return NoiseParams(
        n_mu=k * paper.n_mu, n_sigma=1 + k * (paper.n_sigma - 1), r_mu=k * paper.r_mu, r_sigma=k * paper.r_sigma
    )


def short_steps(session: Session) -> int:
    """The length of the noisy-BN widget's runs: a quarter of the scale's VGG run."""
    return session.config(BN).steps // 4


def noisy_experiment(noise: NoiseParams, session: Session, norm: str = "noisy_batch") -> Experiment:
    """A widget run: `short_steps` at lr 0.1 with these noise constants ("noise": on the standard network)."""
    return NOISY.but(norm=norm, noise=noise, steps=short_steps(session), test_every=0)


def reads(session: Session) -> list[Read]:
    widget = [Read(noisy_experiment(scaled_noise(k), session)) for k in NOISE_GRID[2:]]
    probed = [Read(run, SEEDS, ("activations",)) for run in (STD, BN, NOISY)]
    return [FIG1[STD], FIG1[BN], *probed, Read(STD_NOISE, SEEDS), *widget]


def noisy_run(noise: NoiseParams, session: Session, norm: str = "noisy_batch") -> Record:
    """A widget run with the given noise. Where the book already has the run (the paper's noise, or
    none: noisy BN with zero noise is BN bit for bit), that full run serves: its first `short_steps`
    steps are the short run, since nothing before a step depends on how long the run will be."""
    book = {
        ("noisy_batch", NoiseParams()): NOISY,
        ("noisy_batch", scaled_noise(0)): BN,
        ("noise", NoiseParams()): STD_NOISE,
    }
    if (norm, noise) in book:
        return session.get(book[(norm, noise)])
    widget = noisy_experiment(noise, session, norm)
    return load_or_run(session.config(widget), label=widget.name)


# ----------------------------------------------------------------------------- Fig. 8


def successive(
    run: Experiment, session: Session, layers: tuple[int, ...], site: str = SITE, seed: int = 0
) -> pd.DataFrame:
    """|mu_{t+1} - mu_t| and |var_{t+1} - var_t| of every tracked unit of `layers`, for every probed
    pair of successive steps of one seed's run (Fig. 8a)."""
    frame = session.get(run, seed).probe_frame("activations")
    return pd.concat([successive_changes(frame, layer, site).assign(layer=layer) for layer in layers])


def moment_change_table(session: Session, site: str = SITE) -> pd.DataFrame:
    """Fig. 8a summarised: per run and layer, the median and largest change of the mean and of the
    variance between two successive steps, over all tracked units and probed pairs of seed 0."""
    rows = []
    for run in FIG8_RUNS:
        changes = successive(run, session, FIG8_LAYERS, site)
        for layer, part in changes.groupby("layer"):
            rows.append(
                {
                    "experiment": run.name,
                    "layer": int(layer),
                    "median |change of mean|": part["abs_change_mean"].median(),
                    "largest |change of mean|": part["abs_change_mean"].max(),
                    "median |change of variance|": part["abs_change_var"].median(),
                    "largest |change of variance|": part["abs_change_var"].max(),
                }
            )
    return pd.DataFrame(rows)


def median_changes(run: Experiment, session: Session, layer: int) -> list[float]:
    """Per seed, the median over units and successive pairs of |mu_{t+1} - mu_t| at one layer."""
    seeds = session.seeds_of(Read(run, SEEDS))
    return [float(successive(run, session, (layer,), seed=s)["abs_change_mean"].median()) for s in seeds]


def accuracy_gap(ahead: list[Record], behind: list[Record]) -> tuple[float, list[float]]:
    """How far one network's training accuracy (`Record.smoothed`, the mean over its seeds) is ahead
    of another's at the same step: the mean over the steps both ran, and the same seed by seed
    (seed i against seed i), for the seeds' spread."""

    def gap(a: list[Record], b: list[Record]) -> float:
        steps = min(len(r.smoothed()) for r in (*a, *b))
        mean = [np.mean([r.smoothed()[:steps] for r in runs], axis=0) for runs in (a, b)]
        gaps = mean[0] - mean[1]
        gaps = gaps[np.isfinite(gaps)]  # the first steps have no smoothed accuracy yet
        return float(gaps.mean()) if len(gaps) else np.nan

    return gap(ahead, behind), [gap([a], [b]) for a, b in zip(ahead, behind, strict=True)]


# ----------------------------------------------------------------------------- the figures


def figure_2(session: Session) -> plt.Figure:
    """Fig. 2 (left): training and test accuracy at lr 0.1 of the standard network, BN, noisy BN and
    the noise alone, every seed."""
    runs = [session.get(read.run, seed) for read in FIG2 for seed in session.seeds_of(read)]
    curves = plotting.smooth(run_records.frame(runs), window=25)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    plotting.curves(curves, "train_acc", ax=axes[0])
    plotting.curves(curves, "test_acc", ax=axes[1])
    axes[0].set(title="training accuracy, lr 0.1", ylabel="accuracy")
    axes[1].set_title("test accuracy, lr 0.1")
    return fig


def _seed_zero(session: Session) -> dict[str, Record]:
    """Seed 0 of the standard network, BN and noisy BN, by normalization."""
    return {run.norm: session.get(run) for run in FIG8_RUNS}


def figure_2_right(session: Session, layers=FIG8_LAYERS, unit: int = 0, site: str = SITE) -> plt.Figure:
    """Fig. 2 (right): one unit's distribution over training, per layer and network (seed 0)."""
    fig, axes = plt.subplots(len(layers), 3, figsize=(11, 2.6 * len(layers)), squeeze=False)
    for row, layer in enumerate(layers):
        for col, (norm, record) in enumerate(_seed_zero(session).items()):
            plotting.unit_ridge(record, layer, unit, site, ax=axes[row, col])
            axes[row, col].set_title(f"{plotting.label(norm)}, layer #{layer}", fontsize="small")
    fig.tight_layout()
    return fig


def figure_8(session: Session, which: str, unit: int = 0, site: str = SITE) -> plt.Figure:
    """Fig. 8: one unit's mean and variance per layer and network (seed 0), as the change between two
    successive steps (`which` "change", Fig. 8a) or the drift from its first probed value ("drift")."""
    fig, axes = plt.subplots(2, 3, figsize=(12, 5.6), sharex=True)
    seed_zero = _seed_zero(session)
    for col, layer in enumerate(FIG8_LAYERS):
        for norm, record in seed_zero.items():
            frame = record.probe_frame("activations")
            data = successive_changes(frame, layer, site) if which == "change" else drifts(frame, layer, site)
            mine = data[data["unit"] == unit]
            for row, moment in enumerate(("mean", "var")):
                column = f"abs_change_{moment}" if which == "change" else f"drift_{moment}"
                axes[row, col].plot(mine["step"], mine[column], color=plotting.NORM_COLORS[norm], lw=1)
                title = f"layer #{layer}: {'mean' if moment == 'mean' else 'variance'}"
                axes[row, col].set_title(title, fontsize="small")
    axes[1, 0].set_xlabel("step")
    fig.legend([plotting.label(n) for n in seed_zero], loc="upper center", ncol=3, fontsize="small")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def noise_figure(session: Session, label: str, record: Record) -> plt.Figure:
    """The widget's picture: the training accuracy of a run with some noise over the widget's steps,
    beside BatchNorm (dashed) and BatchNorm with the paper's noise (dotted)."""
    steps = short_steps(session)
    shown = {
        "BatchNorm": (noisy_run(scaled_noise(0), session), "--"),
        "paper's noise": (noisy_run(scaled_noise(1), session), ":"),
        label: (record, "-"),
    }
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for name, (one, style) in shown.items():
        acc = plotting.smooth(one.curves(), window=25)
        acc = acc[(acc["metric"] == "train_acc") & (acc["step"] < steps)]
        ax.plot(acc["step"], acc["value"], style, label=name, lw=1.5)
    ax.set(xlabel="step", ylabel="training accuracy", ylim=(0, 1))
    ax.legend(fontsize="small", loc="upper left")
    return fig


def noise_trial(session: Session, n_mu: float, n_sigma: float, r_mu: float, r_sigma: float, network: str) -> plt.Figure:
    """The widget's callback: train (or load) a short run with the reader's noise, and draw it."""
    noise = NoiseParams(n_mu=n_mu, n_sigma=n_sigma, r_mu=r_mu, r_sigma=r_sigma)
    record = noisy_run(noise, session, norm="noisy_batch" if network == "BatchNorm + noise" else "noise")
    return noise_figure(session, f"{network}, your noise", record)


# ----------------------------------------------------------------------------- the claims

FIG2 = (FIG1[STD], FIG1[BN], Read(NOISY), Read(STD_NOISE, SEEDS))


def trains_like_batchnorm(session: Session) -> Finding:
    noisy, bn, std = (records(read, session) for read in (Read(NOISY, SEEDS), FIG1[BN], FIG1[STD]))
    (behind, behind_seeds), (ahead, ahead_seeds) = accuracy_gap(bn, noisy), accuracy_gap(noisy, std)
    like, better = behind <= NEAR_GAP, ahead >= AHEAD
    steps = min(len(r.smoothed()) for r in (*noisy, *bn, *std))

    def spread(gaps: list[float]) -> str:
        return f"seeds {min(gaps) * 100:+.1f} to {max(gaps) * 100:+.1f}"

    text = (
        f"training accuracy at the same step, mean over the {steps:,} steps all ran ({len(noisy)} seed(s), means "
        f"over seeds): noisy BN {behind * 100:.1f} points behind BN ({spread(behind_seeds)}), "
        f"{ahead * 100:.1f} points ahead of the standard network ({spread(ahead_seeds)}); steps to {TARGET:.0%}: "
        f"noisy BN {speeds(noisy).text()}, BN {speeds(bn).text()}, standard {speeds(std).text()}"
    )
    verdict = graded([like, better])
    summary = (
        f"At the same step noisy BatchNorm's training accuracy is {behind * 100:.1f} points behind BatchNorm's and "
        f"{ahead * 100:.1f} points ahead of the standard network's (means over the {steps:,} steps)."
    )
    return Finding(text, verdict, summary)


def unstable_moments(session: Session) -> Finding:
    parts, checks = [], []
    for layer in FIG8_LAYERS:
        noisy, std = median_changes(NOISY, session, layer), median_changes(STD, session, layer)
        ratio = float(np.median(noisy) / np.median(std))
        checks.append(ratio >= LESS_STABLE)
        parts.append(f"#{layer} noisy BN {np.median(noisy):.2g}, standard {np.median(std):.2g} (x{ratio:.3g})")
    text = (
        "median |mu_{t+1} - mu_t| of the pre-activations between two successive steps (medians over seeds): "
        + "; ".join(parts)
    )
    layers = ", ".join(f"#{k}" for k in FIG8_LAYERS)
    summary = (
        f"Between two successive steps the mean of its pre-activations moves at least {LESS_STABLE:g} times as much "
        f"as the standard network's at {sum(checks)} of the {len(checks)} layers shown ({layers})."
    )
    return Finding(text, graded(checks), summary)


def noise_without_batchnorm(session: Session) -> Finding:
    highest = [r.highest() for r in records(FIG2[-1], session)]
    text = f"standard + noise, {len(highest)} seed(s): highest training accuracy over the run " + ", ".join(
        f"{h:.0%}" for h in highest
    )
    text += f" (a run stops if it reaches {TARGET:.0%})"
    stuck = max(highest) <= CHANCE + NEAR_CHANCE
    summary = f"The same noise on the standard network keeps it at or below {max(highest):.0%} training accuracy."
    return Finding(text, Verdict.REPRODUCED if stuck else Verdict.NOT_REPRODUCED, summary)


CLAIMS = {
    "trains_like_batchnorm": Claim(
        "BatchNorm with noise after it trains about as well as BatchNorm, and better than the standard network",
        '"the performance difference between models with BatchNorm layers, and noisy BatchNorm layers is almost '
        'non-existent"; both much better than standard (Section 2.1); in Fig. 2 noisy BN trails BN by a few points '
        "of training accuracy through training (read by eye)",
        "the training accuracy of each network (the mean over its seeds) at the same step, two comparisons over "
        f"the steps all ran: as BN if noisy BN is at most {NEAR_GAP * 100:.0f} points behind BN on average over "
        f"them; better than the standard network if it is at least {AHEAD * 100:.0f} points ahead of it on average. "
        "Reproduced if both hold, partly if one does, not reproduced if neither",
        trains_like_batchnorm,
    ),
    "unstable_moments": Claim(
        "With the noise, layer inputs are less stable than in the standard network",
        "noisy BN's moments change by up to ~1 between two successive steps, BN's ~0, the standard's ~0.1 (read off "
        'Fig. 8 by eye); "qualitatively less stable distributions than even the standard" network (Section 2.1)',
        f"pre-activations (after the noise) of layers {', '.join(f'#{k}' for k in FIG8_LAYERS)}: reproduced if noisy "
        f"BN's median change of the mean between two successive steps is at least {LESS_STABLE:g} times the standard "
        "network's at every layer (medians over seeds); partly at some; not reproduced at none",
        unstable_moments,
    ),
    "noise_without_batchnorm": Claim(
        "The same noise without BatchNorm prevents training",
        '"adding the same amount of noise to the activations of the standard (non-BatchNorm) network prevents it from '
        'training entirely" (Section 2.1, no figure)',
        f"reproduced if the standard network with the noise never rises more than {NEAR_CHANCE * 100:.0f} points "
        f"above chance ({CHANCE:.0%}) in any seed; not reproduced otherwise",
        noise_without_batchnorm,
    ),
}

CHAPTER = Chapter("02_noisy_batchnorm", "Noisy BatchNorm", PART_ONE, reads, CLAIMS)
