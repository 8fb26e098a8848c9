"""The runs the book reads, each with every probe any chapter needs from it.

A run record holds the probes it was trained with, and asking for a probe a record lacks retrains
the run (bnlib.records). So the chapters never choose probes themselves: they call `get(name,
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
"""

from __future__ import annotations

from bnlib.config import NoiseParams
from bnlib.experiments import EXPERIMENTS, experiment
from bnlib.hooks import Probe, probe_key
from bnlib.probes.schedule import make_probe
from bnlib.records import Record, load_or_run

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
