"""The book's run plan: which runs the chapters read, with which seeds, and what each run measures
(which probes, on which of the paper's layers, how often at each scale).

A run record holds the probes it was trained with, and asking for a probe a record lacks retrains
the run (`bnlib.records`). So the chapters never choose probes themselves: they call `get(name,
scale)`, and this module says once, for every named experiment, what its seed-0 run measures.
Each run then trains once per scale, whichever chapter asks first. Other seeds carry no probes
(Fig. 1's spread over seeds needs training curves only).

| experiment | probes | read by |
|---|---|---|
| vgg-std/bn-lr0.1 | all (+ BN scale) | Figs. 1-4, 8, 11, Section 4 |
| vgg-bn-lr0.5 | landscape, Hessian | 2/lr test at a second lr |
| vgg-std/bn-lr0.01 | ICS | Fig. 3 |
| vgg-noisybn-lr0.1 | activations | Figs. 2, 8 |
| vgg-l1/l2/linf-lr0.1 | activations, landscape | Figs. 5, 6, 12 |
| dln-std/bn-lr1e-6 | all | Figs. 3, 9, 10, 11 |
| dln-std/bn-lr1e-7 | ICS (+ landscape, Hessian with BN) | Fig. 3, 2/lr test |
| dln-l1/l2/linf-lr1e-6 | activations, landscape | Figs. 5, 13 |

## How often each probe runs

The paper probes the landscape at every step (its appendix A.2.2) and draws the other curves from
about 150 points over 15,000 steps (Figs. 3 and 8, by eye). Our strides:

| probe | paper | cpu | smoke |
|---|---|---|---|
| activations (Figs. 1c, 2, 6, 8, 9) | 100 | 20 | 3 |
| ICS, Definition 2.1 (Fig. 3) | 50 | 20 | 3 |
| landscape along the gradient / a random direction (Figs. 4, 10-13) | 10 | 20 | 3 |
| top Hessian eigenvalue | 1,000 | 250 | 6 |
| BN scale gamma^2 / sigma^2 (Section 4) | 100 | 20 | 3 |

At the cpu scale the DLN trains 2,500 steps, 2.5 times VGG's 1,000, so its strides are 2.5 times
longer (50, 50, 50, 500): about 50 points per run for both models, which keeps the book in budget.

At the paper scale, landscape every 10th step gives 1,500 points per run (the paper's curves show
hundreds), at five times less cost than every step. At the cpu scale a landscape probe costs about
four training steps (benchmarks/probes.py), so a stride of 20 adds about 20% to a run that
carries one, which keeps the whole book within its budget (book/scales.md).
"""

from __future__ import annotations

from bnlib.config import NoiseParams
from bnlib.experiments import EXPERIMENTS, check_scale, experiment
from bnlib.probes import ActivationProbe, HessianProbe, ICSProbe, LandscapeProbe
from bnlib.probes.hook import Probe, probe_key
from bnlib.probes.theory import BNScaleProbe
from bnlib.records import Record, load_or_run

# ----------------------------------------------------------------------------- seeds

# Fig. 1 compares these with 3 seeds (mean and spread); every other experiment runs seed 0.
MULTI_SEED = ("vgg-std-lr0.1", "vgg-bn-lr0.1", "vgg-std-lr0.5", "vgg-bn-lr0.5")


def seeds(name: str) -> tuple[int, ...]:
    """The seeds the book runs an experiment with (three for Fig. 1's comparisons)."""
    return (0, 1, 2) if name in MULTI_SEED else (0,)


def book_runs(include_optional: bool = False) -> list[tuple[str, int]]:
    """(experiment, seed) of every training run the book makes. Augmented runs are optional."""
    return [
        (name, seed) for name in EXPERIMENTS if include_optional or not EXPERIMENTS[name][3] for seed in seeds(name)
    ]


# ----------------------------------------------------------------------------- probes: strides and layers

PROBE_EVERY: dict[str, dict[str, int]] = {
    "paper": {"activations": 100, "ics": 50, "landscape": 10, "hessian": 1000},
    "cpu": {"activations": 20, "ics": 20, "landscape": 20, "hessian": 250},
    "smoke": {"activations": 3, "ics": 3, "landscape": 3, "hessian": 6},
}

# The cpu-scale DLN runs 2.5x VGG's steps: the same number of points per run.
_DLN_EVERY = {"cpu": {"activations": 50, "ics": 50, "landscape": 50, "hessian": 500}}


def probe_every(scale: str, model: str) -> dict[str, int]:
    """How often each probe runs for a model at a scale (the bn-scale probe follows activations)."""
    every = _DLN_EVERY.get(check_scale(scale), PROBE_EVERY[scale]) if model == "dln" else PROBE_EVERY[scale]
    return every | {"bn-scale": every["activations"]}


# The layers the paper's figures show.
ACTIVATION_LAYERS = {"vgg": (2, 3, 9, 11, 13), "dln": (1, 11, 24)}
ICS_LAYERS = {"vgg": (5, 10), "dln": (9, 17)}


PROBE_KINDS = ("activations", "ics", "landscape", "landscape-random", "hessian", "bn-scale")


def make_probe(kind: str, model: str, scale: str) -> Probe:
    """A probe of one kind (PROBE_KINDS) on the paper's layers at the scale's stride."""
    every = probe_every(scale, model)
    make = {
        "activations": lambda: ActivationProbe(ACTIVATION_LAYERS[model], every["activations"]),
        "ics": lambda: ICSProbe(ICS_LAYERS[model], every["ics"]),
        "landscape": lambda: LandscapeProbe(every["landscape"]),
        "landscape-random": lambda: LandscapeProbe(every["landscape"], direction="random"),
        "hessian": lambda: HessianProbe(every["hessian"]),
        "bn-scale": lambda: BNScaleProbe(every["bn-scale"]),
    }
    if kind not in make:
        raise ValueError(f"unknown probe kind {kind!r}; choose from {', '.join(PROBE_KINDS)}")
    return make[kind]()


# ----------------------------------------------------------------------------- the plan

ALL = ("activations", "ics", "landscape", "landscape-random", "hessian")
_PLAN: dict[str, tuple[str, ...]] = {
    "vgg-std-lr0.1": ALL,
    "vgg-bn-lr0.1": (*ALL, "bn-scale"),
    "vgg-bn-lr0.5": ("landscape", "hessian"),
    "vgg-std-lr0.01": ("ics",),
    "vgg-bn-lr0.01": ("ics",),
    "vgg-noisybn-lr0.1": ("activations",),
    **{f"vgg-{n}-lr0.1": ("activations", "landscape") for n in ("l1", "l2", "linf")},
    "dln-std-lr1e-6": ALL,
    "dln-bn-lr1e-6": ALL,
    "dln-std-lr1e-7": ("ics",),
    "dln-bn-lr1e-7": ("ics", "landscape", "hessian"),
    **{f"dln-{n}-lr1e-6": ("activations", "landscape") for n in ("l1", "l2", "linf")},
}


def probes_for(name: str, scale: str, seed: int = 0) -> list[Probe]:
    """The probes the book's run of `name` carries at this scale (none for seeds other than 0)."""
    if seed != 0:
        return []
    return [make_probe(kind, EXPERIMENTS[name][0], scale) for kind in _PLAN.get(name, ())]


def get(name: str, scale: str, seed: int = 0) -> Record:
    """The book's run of a named experiment, trained if missing, with its probes. Only the plan's
    probes are kept in the returned record (a stored record may also hold outputs of other probes,
    e.g. at other strides), so a probe kind names one output: `record.probe_table("ics", ...)`."""
    probes = probes_for(name, scale, seed)
    record = load_or_run(experiment(name, scale, seed=seed), probes, label=name)
    record.probes = {key: record.probes[key] for key in map(probe_key, probes)}
    return record


# ----------------------------------------------------------------------------- the noisy-BN widget's runs


def scaled_noise(k: float) -> NoiseParams:
    """The paper's noise (Algorithm 1) made k times stronger: k = 0 is no noise, 1 the paper's."""
    paper = NoiseParams()
    return NoiseParams(
        n_mu=k * paper.n_mu, n_sigma=1 + k * (paper.n_sigma - 1), r_mu=k * paper.r_mu, r_sigma=k * paper.r_sigma
    )


def short_steps(scale: str) -> int:
    """The length of the noisy-BN widget's runs: a quarter of the scale's VGG run."""
    return experiment("vgg-bn-lr0.1", scale).steps // 4


def noisy_run(noise: NoiseParams, scale: str, norm: str = "noisy_batch") -> Record:
    """A VGG run at lr 0.1 with the given noise constants, `short_steps` long (the noisy-BN
    chapter's widget); norm "noise" puts the same noise on the standard network. Where the book
    already has the run (the paper's noise, or none: noisy BN with zero noise is BN bit for bit),
    that full run serves: its first `short_steps` steps are the short run, since nothing before a
    step depends on how long the run will be."""
    book = {
        ("noisy_batch", NoiseParams()): "vgg-noisybn-lr0.1",
        ("noisy_batch", scaled_noise(0)): "vgg-bn-lr0.1",
        ("noise", NoiseParams()): "vgg-stdnoise-lr0.1",
    }
    if (norm, noise) in book:
        return get(book[(norm, noise)], scale)
    config = experiment("vgg-noisybn-lr0.1", scale, norm=norm, noise=noise, steps=short_steps(scale), test_every=0)
    return load_or_run(config, label=norm)


NOISE_GRID = (0.0, 1.0, 2.0, 4.0)  # multiples of the paper's noise precomputed for the static page
