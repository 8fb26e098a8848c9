"""Chapter 02, noisy BatchNorm (Algorithm 1, Figs. 2 and 8): BatchNorm with noise after it, the same
noise without BatchNorm, and the moments of a layer's inputs between two successive steps."""

from __future__ import annotations

import pandas as pd

from bnlib.book import plan
from bnlib.book.chapters.ch01_does_batchnorm_help import BN, FIG1, STD
from bnlib.book.claims import Claim, Finding, Verdict, graded
from bnlib.book.measures import final, finals, percent
from bnlib.book.plan import Read
from bnlib.config import NoiseParams
from bnlib.experiments import Experiment
from bnlib.probes.activations import successive_changes
from bnlib.records import Record, load_or_run

NOTEBOOK = "02_noisy_batchnorm"
TITLE = "Noisy BatchNorm"

NOISY, STD_NOISE = Experiment("vgg", "noisy_batch", 0.1), Experiment("vgg", "noise", 0.1)
FIG8_LAYERS = (2, 9, 13)
FIG8_RUNS = (STD, BN, NOISY)

CHANCE = 0.10
NEAR = 0.05  # "about as well": final training accuracy within this of BN's
BETTER = 0.10  # "better than the standard network": at least this far above it
NEAR_CHANCE = 0.05

# The widget's precomputed runs: multiples of the paper's noise, a quarter of the scale's VGG run
NOISE_GRID = (0.0, 1.0, 2.0, 4.0)


def scaled_noise(k: float) -> NoiseParams:
    """The paper's noise (Algorithm 1) made k times stronger: k = 0 is no noise, 1 the paper's."""
    paper = NoiseParams()
    return NoiseParams(
        n_mu=k * paper.n_mu, n_sigma=1 + k * (paper.n_sigma - 1), r_mu=k * paper.r_mu, r_sigma=k * paper.r_sigma
    )


def short_steps(scale: str) -> int:
    """The length of the noisy-BN widget's runs: a quarter of the scale's VGG run."""
    return plan.config(BN, scale).steps // 4


def noisy_experiment(noise: NoiseParams, scale: str, norm: str = "noisy_batch") -> Experiment:
    """A widget run: `short_steps` at lr 0.1 with these noise constants ("noise": on the standard network)."""
    return NOISY.but(norm=norm, noise=noise, steps=short_steps(scale), test_every=0)


def reads(scale: str) -> list[Read]:
    widget = [Read(noisy_experiment(scaled_noise(k), scale)) for k in NOISE_GRID[2:]]
    return [
        FIG1[STD],
        FIG1[BN],
        *(Read(run, (0,), ("activations",)) for run in FIG8_RUNS),
        Read(STD_NOISE),
        *widget,
    ]


def noisy_run(noise: NoiseParams, scale: str, norm: str = "noisy_batch") -> Record:
    """A widget run with the given noise. Where the book already has the run (the paper's noise, or
    none: noisy BN with zero noise is BN bit for bit), that full run serves: its first `short_steps`
    steps are the short run, since nothing before a step depends on how long the run will be."""
    book = {
        ("noisy_batch", NoiseParams()): NOISY,
        ("noisy_batch", scaled_noise(0)): BN,
        ("noise", NoiseParams()): STD_NOISE,
    }
    if (norm, noise) in book:
        return plan.get(book[(norm, noise)], scale)
    widget = noisy_experiment(noise, scale, norm)
    return load_or_run(plan.config(widget, scale), label=widget.name)


# ----------------------------------------------------------------------------- Fig. 8


def successive(run: Experiment, scale: str, layers: tuple[int, ...], site: str) -> pd.DataFrame:
    """|mu_{t+1} - mu_t| and |var_{t+1} - var_t| of every tracked unit of `layers`, for every probed
    pair of successive steps of the seed-0 run (Fig. 8a)."""
    frame = plan.get(run, scale).probe_frame("activations")
    return pd.concat([successive_changes(frame, layer, site).assign(layer=layer) for layer in layers])


def moment_change_table(scale: str, site: str) -> pd.DataFrame:
    """Fig. 8a summarised: per run and layer, the median and largest change of the mean and of the
    variance between two successive steps, over all tracked units and probed pairs."""
    rows = []
    for run in FIG8_RUNS:
        changes = successive(run, scale, FIG8_LAYERS, site)
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


def median_change(run: Experiment, scale: str, layer: int, site: str) -> float:
    """The median over units and successive pairs of |mu_{t+1} - mu_t| at one layer."""
    return float(successive(run, scale, (layer,), site)["abs_change_mean"].median())


# ----------------------------------------------------------------------------- the claims

NOISY_READ = Read(NOISY)
FIG2 = (FIG1[STD], FIG1[BN], NOISY_READ, Read(STD_NOISE))


def trains_like_batchnorm(scale: str) -> Finding:
    bn, noisy, std = (final(read, scale, "train_acc")[0] for read in (FIG1[BN], NOISY_READ, FIG1[STD]))
    text = (
        f"training accuracy after {plan.config(BN, scale).steps:,} steps: "
        f"BN {percent(FIG1[BN], scale, 'train_acc')}, noisy BN {percent(NOISY_READ, scale, 'train_acc')}, "
        f"standard {percent(FIG1[STD], scale, 'train_acc')}"
    )
    close, above = abs(noisy - bn) <= NEAR, noisy - std >= BETTER
    if close and above:
        verdict = Verdict.REPRODUCED
    else:
        verdict = Verdict.PARTLY if above else Verdict.NOT_REPRODUCED
    summary = (
        f"Noisy BatchNorm ends at {noisy:.0%} training accuracy, against {bn:.0%} for BatchNorm and {std:.0%} for "
        "the standard network."
    )
    return Finding(text, verdict, summary)


def unstable_moments(scale: str) -> Finding:
    parts, checks = [], []
    for layer in FIG8_LAYERS:
        noisy, bn, std = (median_change(run, scale, layer, "input") for run in (NOISY, BN, STD))
        checks.append(noisy > std)
        parts.append(f"#{layer} noisy BN {noisy:.2g}, BN {bn:.2g}, standard {std:.2g}")
    text = "median |mu_{t+1} - mu_t| of the layer's inputs between two successive steps: " + "; ".join(parts)
    layers = ", ".join(f"#{k}" for k in FIG8_LAYERS)
    summary = (
        f"Between two successive steps the mean of its layer inputs moves more than the standard network's at "
        f"{sum(checks)} of the {len(checks)} layers shown ({layers})."
    )
    return Finding(text, graded(checks), summary)


def noise_without_batchnorm(scale: str) -> Finding:
    read = FIG2[-1]
    accuracy = finals(read, scale, "train_acc")
    text = f"standard + noise: training accuracy {percent(read, scale, 'train_acc')}"
    stuck = max(accuracy) <= CHANCE + NEAR_CHANCE
    summary = f"The same noise on the standard network leaves it at {max(accuracy):.0%} training accuracy."
    return Finding(text, Verdict.REPRODUCED if stuck else Verdict.NOT_REPRODUCED, summary)


CLAIMS = {
    "trains_like_batchnorm": Claim(
        "BatchNorm with noise after it trains about as well as BatchNorm, and better than the standard network",
        '"the performance difference between models with BatchNorm layers, and noisy BatchNorm layers is almost '
        'non-existent"; both much better than standard (Section 2.1, Fig. 2)',
        f"reproduced if noisy BN's final training accuracy is within {NEAR * 100:.0f} points of BN's and at least "
        f"{BETTER * 100:.0f} points above the standard network's; partly if only the second holds; not reproduced "
        "otherwise",
        trains_like_batchnorm,
    ),
    "unstable_moments": Claim(
        "With the noise, layer inputs are less stable than in the standard network",
        "noisy BN's moments change by up to ~1 between two successive steps, BN's ~0, the standard's ~0.1 (read off "
        'Fig. 8 by eye); "qualitatively less stable distributions than even the standard" network (Section 2.1)',
        f"at the inputs of layers {', '.join(f'#{k}' for k in FIG8_LAYERS)}: reproduced if noisy BN's median change "
        "of the mean between two successive steps exceeds the standard network's at every layer; partly at some; "
        "not reproduced at none",
        unstable_moments,
    ),
    "noise_without_batchnorm": Claim(
        "The same noise without BatchNorm prevents training",
        '"adding the same amount of noise to the activations of the standard (non-BatchNorm) network prevents it from '
        'training entirely" (Section 2.1, no figure)',
        f"reproduced if the standard network with the noise stays within {NEAR_CHANCE * 100:.0f} points of chance "
        f"({CHANCE:.0%}); not reproduced otherwise",
        noise_without_batchnorm,
    ),
}
