"""The book's run plan: which runs each chapter reads, with which seeds, and what each run
measures (which probes, on which of the paper's layers, how often at each scale).

A run record holds the probes it was trained with, and asking for a probe a record lacks trains
the run again with it (`bnlib.records`). So chapters never choose probes themselves: they call
`get(name, scale)`, and this module says, per chapter, what each of its runs must measure (`READS`).

**Who pays for what.** A reader who opens one chapter (Colab, Jupyter) trains only the runs and
probes that chapter shows. The book build (`python -m bnlib.book`, which sets $BNLIB_BOOK=all)
trains every run once, with the union of the probes all chapters read from it. The trade-off: a
reader who opens two chapters that read different probes of one run trains that run twice (once
per chapter), where the build trains it once; in exchange no reader pays for landscape or Hessian
probes a chapter never shows. Records keep every probe they were ever given, so a run trained by
two chapters afterwards serves both, and the results page.

**Fewer seeds or steps.** A chapter's parameters cell can ask for fewer seeds or steps (`use`);
the tables then say so. At the paper scale the chapter prints what it will train and an estimate
of the time on this device before it trains anything (`announce`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch

from bnlib.config import NoiseParams, RunConfig
from bnlib.errors import ConfigError
from bnlib.experiments import EXPERIMENTS, check_scale, experiment
from bnlib.probes import ActivationProbe, HessianProbe, ICSProbe, LandscapeProbe
from bnlib.probes.hook import Probe, probe_key
from bnlib.probes.landscape import DLN_EXTENDED_ETAS, VGG_EXTENDED_ETAS
from bnlib.probes.theory import BNScaleProbe
from bnlib.probes.weights import WeightNormProbe
from bnlib.records import Record, load_or_run, stored_record

ENV_BOOK = "BNLIB_BOOK"  # "all": the book build, every run with every probe any chapter reads

# ----------------------------------------------------------------------------- what each chapter reads

_FIG1 = ("vgg-std-lr0.1", "vgg-bn-lr0.1", "vgg-std-lr0.5", "vgg-bn-lr0.5")
_LANDSCAPE = ("landscape", "landscape-random", "landscape-extended", "hessian")
_LP_VGG = ("vgg-l1-lr0.1", "vgg-l2-lr0.1", "vgg-linf-lr0.1")
_LP_DLN = ("dln-l1-lr1e-6", "dln-l2-lr1e-6", "dln-linf-lr1e-6")

# chapter -> {experiment: probe kinds its seed-0 run must carry for that chapter}
READS: dict[str, dict[str, tuple[str, ...]]] = {
    "01_does_batchnorm_help": {
        "vgg-std-lr0.1": ("activations",),
        "vgg-bn-lr0.1": ("activations",),
        "vgg-std-lr0.5": (),
        "vgg-bn-lr0.5": (),
        "vgg-std-aug-lr0.1": (),
        "vgg-bn-aug-lr0.1": (),
    },
    "02_noisy_batchnorm": {
        "vgg-std-lr0.1": ("activations",),
        "vgg-bn-lr0.1": ("activations",),
        "vgg-noisybn-lr0.1": ("activations",),
        "vgg-stdnoise-lr0.1": (),
    },
    "03_internal_covariate_shift": {
        **{name: ("ics",) for name in ("vgg-std-lr0.1", "vgg-bn-lr0.1", "vgg-std-lr0.01", "vgg-bn-lr0.01")},
        **{name: ("ics", "activations") for name in ("dln-std-lr1e-6", "dln-bn-lr1e-6")},
        **{name: ("ics",) for name in ("dln-std-lr1e-7", "dln-bn-lr1e-7")},
    },
    "04_landscape": {
        **{name: _LANDSCAPE for name in ("vgg-std-lr0.1", "vgg-bn-lr0.1", "dln-std-lr1e-6", "dln-bn-lr1e-6")},
        **{name: ("landscape", "hessian") for name in ("vgg-bn-lr0.5", "dln-bn-lr1e-7")},
    },
    "05_other_normalizations": {
        **{name: ("activations", "landscape") for name in ("vgg-std-lr0.1", "vgg-bn-lr0.1", *_LP_VGG)},
        **{name: ("landscape",) for name in ("dln-std-lr1e-6", "dln-bn-lr1e-6", *_LP_DLN)},
    },
    "06_theory": {"vgg-bn-lr0.1": ("bn-scale",)},
    # Part II reads some of Part I's runs too (and trains its own, `BEYOND`)
    "07_learning_rates": {name: () for name in ("vgg-std-lr0.01", "vgg-bn-lr0.01", *_FIG1)},
    "08_scale_invariance": {name: ("weight-norms",) for name in ("vgg-std-lr0.1", "vgg-bn-lr0.1")},
    "09_curvature": {"vgg-std-lr0.1": ("hessian",), "vgg-bn-lr0.1": ("hessian", "hessian-frozen")},
    "10_initialisation": {},
    "11_residual": {},
}
# Part II's chapters -> the module (in bnlib.book.beyond) whose `jobs(scale)` are the runs of its own
BEYOND = {
    "07_learning_rates": "lr_range",
    "08_scale_invariance": "scale_invariance",
    "09_curvature": "curvature",
    "10_initialisation": "initialisation",
    "11_residual": "residual",
}
PART_ONE = (
    "01_does_batchnorm_help",
    "02_noisy_batchnorm",
    "03_internal_covariate_shift",
    "04_landscape",
    "05_other_normalizations",
    "06_theory",
)
OPTIONAL = ("vgg-std-aug-lr0.1", "vgg-bn-aug-lr0.1")  # Fig. 1's augmented runs: only on request

# Fig. 1 compares these with 3 seeds (mean and spread); every other experiment runs seed 0.
MULTI_SEED = _FIG1
# The chapters that read those seeds (their accuracy tables); the others read seed 0 only
READS_EVERY_SEED = ("01_does_batchnorm_help", "02_noisy_batchnorm", "05_other_normalizations")


def chapter_runs(chapter: str) -> dict[str, tuple[str, ...]]:
    if chapter not in READS:
        raise ConfigError(f"unknown chapter {chapter!r}; the plan knows {', '.join(READS)}")
    return READS[chapter]


def union() -> dict[str, tuple[str, ...]]:
    """Every run the book reads, with every probe kind any chapter reads from it."""
    kinds: dict[str, list[str]] = {}
    for runs in READS.values():
        for name, probes in runs.items():
            kinds.setdefault(name, [])
            kinds[name] += [p for p in probes if p not in kinds[name]]
    return {name: tuple(sorted(p)) for name, p in kinds.items()}


# ----------------------------------------------------------------------------- what the reader asked for


@dataclass
class Session:
    """What this process runs: the chapter (None: every chapter, as the book build and the results
    page do) and the parameters cell's requests for fewer seeds or steps."""

    chapter: str | None = None
    seeds: int | None = None
    steps: int | None = None
    announced: set[str] = field(default_factory=set)


_session = Session()


def use(chapter: str | None = None, seeds: int | None = None, steps: int | None = None) -> None:
    """Set this process's chapter and its requests for fewer seeds or steps (None: the book's)."""
    if chapter is not None:
        chapter_runs(chapter)
    for name, value in (("seeds", seeds), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer or None, not {value!r}")
    _session.chapter, _session.seeds, _session.steps = chapter, seeds, steps


def reduced() -> str:
    """How this process departs from the book's protocol ('' if it does not), for the tables."""
    parts = []
    if _session.seeds is not None:
        parts.append(f"at most {_session.seeds} seed{'s' if _session.seeds > 1 else ''} per experiment")
    if _session.steps is not None:
        parts.append(f"at most {_session.steps:,} steps per run")
    return "; ".join(parts)


def seeds(name: str) -> tuple[int, ...]:
    """The seeds the book runs an experiment with (three for Fig. 1's comparisons), or fewer."""
    book = (0, 1, 2) if name in MULTI_SEED else (0,)
    return book[: _session.seeds] if _session.seeds else book


def config(name: str, scale: str, seed: int = 0) -> RunConfig:
    """The config of the book's run of `name` (with the parameters cell's fewer steps, if any)."""
    return capped(experiment(name, scale, seed=seed))


def capped(cfg: RunConfig) -> RunConfig:
    """`cfg` with at most the steps the parameters cell asked for (if it asked)."""
    if _session.steps is not None and _session.steps < cfg.steps:
        return cfg.replace(steps=_session.steps)
    return cfg


# ----------------------------------------------------------------------------- probes: strides and layers

# How often each probe runs. The paper probes the landscape at every step (its appendix A.2.2) and
# draws the other curves from about 150 points over 15,000 steps (Figs. 3 and 8, by eye). At the
# cpu scale the strides give about 50 points per run (the DLN trains longer, so its strides are
# longer); at the paper scale, the landscape every 10th step gives 1,500 points per run.
PROBE_EVERY: dict[str, dict[str, dict[str, int]]] = {
    "paper": {
        "vgg": {"activations": 100, "ics": 50, "landscape": 10, "landscape-extended": 100, "hessian": 1000},
        "dln": {"activations": 100, "ics": 50, "landscape": 10, "landscape-extended": 100, "hessian": 1000},
    },
    "cpu": {
        "vgg": {"activations": 50, "ics": 50, "landscape": 50, "landscape-extended": 250, "hessian": 500},
        "dln": {"activations": 50, "ics": 50, "landscape": 50, "landscape-extended": 250, "hessian": 500},
    },
    "smoke": {
        "vgg": {"activations": 3, "ics": 3, "landscape": 3, "landscape-extended": 6, "hessian": 6},
        "dln": {"activations": 3, "ics": 3, "landscape": 3, "landscape-extended": 6, "hessian": 6},
    },
}


def probe_every(scale: str, model: str) -> dict[str, int]:
    """How often each probe runs for a model at a scale (the bn-scale probe follows activations)."""
    every = PROBE_EVERY[check_scale(scale)][model]
    return every | {
        "landscape-random": every["landscape"],
        "bn-scale": every["activations"],
        "weight-norms": every["activations"],
        "hessian-frozen": every["hessian"],
    }


# The layers the paper's figures show.
ACTIVATION_LAYERS = {"vgg": (2, 3, 9, 11, 13), "dln": (1, 11, 24)}
ICS_LAYERS = {"vgg": (5, 10), "dln": (9, 17)}
EXTENDED_ETAS = {"vgg": VGG_EXTENDED_ETAS, "dln": DLN_EXTENDED_ETAS}

PROBE_KINDS = (
    "activations",
    "ics",
    "landscape",
    "landscape-random",
    "landscape-extended",
    "hessian",
    "hessian-frozen",
    "bn-scale",
    "weight-norms",
)
HESSIAN_TOP = 3  # eigenvalues kept by the Hessian probes (Lanczos, 20 Hessian-vector products)


def make_probe(kind: str, model: str, scale: str) -> Probe:
    """A probe of one kind (PROBE_KINDS) on the paper's layers at the scale's stride."""
    every = probe_every(scale, model)
    make = {
        "activations": lambda: ActivationProbe(ACTIVATION_LAYERS[model], every["activations"], pairs=True),
        "ics": lambda: ICSProbe(ICS_LAYERS[model], every["ics"]),
        "landscape": lambda: LandscapeProbe(every["landscape"]),
        "landscape-random": lambda: LandscapeProbe(every["landscape"], direction="random"),
        "landscape-extended": lambda: LandscapeProbe(every["landscape-extended"], etas=EXTENDED_ETAS[model]),
        "hessian": lambda: HessianProbe(every["hessian"], k=HESSIAN_TOP),
        "hessian-frozen": lambda: HessianProbe(every["hessian"], k=HESSIAN_TOP, frozen_bn=True),
        "bn-scale": lambda: BNScaleProbe(every["bn-scale"]),
        "weight-norms": lambda: WeightNormProbe(every["weight-norms"]),
    }
    if kind not in make:
        raise ValueError(f"unknown probe kind {kind!r}; choose from {', '.join(PROBE_KINDS)}")
    return make[kind]()


def _kinds(name: str) -> tuple[str, ...]:
    book_build = os.environ.get(ENV_BOOK) == "all"
    runs = union() if book_build or _session.chapter is None else chapter_runs(_session.chapter)
    if name not in runs:
        raise ConfigError(f"chapter {_session.chapter} does not read {name!r}; declare it in bnlib.book.plan.READS")
    return runs[name]


def probes_for(name: str, scale: str, seed: int = 0) -> list[Probe]:
    """The probes the run of `name` carries for this process's chapter (none for seeds other than 0)."""
    if seed != 0:
        return []
    return [make_probe(kind, EXPERIMENTS[name][0], scale) for kind in _kinds(name)]


def get(name: str, scale: str, seed: int = 0) -> Record:
    """The book's run of a named experiment, trained if missing, with its probes. The returned
    record's probes are those of the plan only, under their kinds: `record.probe_table("ics", ...)`,
    `record.probe_table("landscape-extended", ...)` (a stored record may hold others too)."""
    kinds = _kinds(name) if seed == 0 else ()
    probes = probes_for(name, scale, seed)
    record = load_or_run(config(name, scale, seed), probes, label=name)
    record.probes = {kind: record.probes[probe_key(probe)] for kind, probe in zip(kinds, probes, strict=True)}
    return record


def records(jobs: list) -> list[Record]:
    """The records of a chapter's own runs (Part II), the missing ones trained first as one sweep
    (`bnlib.sweep`: across this machine's cores when Ray is installed, else one after another)."""
    from bnlib.sweeps import sweep

    todo = [job for job in jobs if untrained(job)]
    if len(todo) > 1:  # one run trains here, without starting Ray
        sweep(todo).raise_if_failed("the chapter's runs")
    return [load_or_run(job.config, job.probes, label=job.label) for job in jobs]


def stored(name: str, scale: str, seed: int = 0) -> Record | None:
    """The book's run of `name` if it is stored (never trains): for optional runs."""
    return stored_record(config(name, scale, seed))


# ----------------------------------------------------------------------------- the jobs: what trains

# Relative cost of a training step (VGG by normalization, one thread; benchmarks/throughput.py), for
# the build's sweep, which starts the longest runs first so that the last ones to finish are short.
_STEP_COST = {"none": 1.0, "batch": 1.7, "noisy_batch": 3.2, "noise": 2.8, "l1": 1.7, "l2": 2.2, "linf": 2.3}
_MODEL_COST = {"vgg": 1.0, "resnet": 1.5, "mlp": 0.1, "dln": 0.1}


def _named_jobs(runs: dict[str, tuple[str, ...]], scale: str, first_seed_only: bool = False) -> list:
    """The jobs of named runs (Part I's experiments), with their probes for this process's chapter."""
    from bnlib.sweeps import Job

    return [
        Job(config(name, scale, seed), tuple(probes_for(name, scale, seed)), f"{name} seed {seed}")
        for name in EXPERIMENTS
        if name in runs and name not in OPTIONAL
        for seed in (seeds(name)[:1] if first_seed_only else seeds(name))
    ]


def _own_jobs(chapter: str, scale: str) -> list:
    """The runs a Part II chapter trains for itself (its module's `jobs`)."""
    import importlib

    if chapter not in BEYOND:
        return []
    return importlib.import_module(f"bnlib.book.beyond.{BEYOND[chapter]}").jobs(scale)


def _merged(jobs: list) -> list:
    """One job per config, carrying every probe any of its duplicates asked for."""
    from bnlib.sweeps import Job

    by_config: dict[RunConfig, Job] = {}
    for job in jobs:
        seen = by_config.get(job.config)
        if seen is None:
            by_config[job.config] = job
        else:
            probes = {probe_key(p): p for p in (*seen.probes, *job.probes)}
            by_config[job.config] = Job(job.config, tuple(probes.values()), seen.label)
    return list(by_config.values())


def chapter_jobs(chapter: str | None, scale: str) -> list:
    """What a chapter trains (None: every chapter): its named runs with the probes it reads, and
    Part II's own runs."""
    chapters = list(READS) if chapter is None else [chapter]
    runs = union() if chapter is None or os.environ.get(ENV_BOOK) == "all" else chapter_runs(chapter)
    named = _named_jobs(runs, scale, first_seed_only=chapter is not None and chapter not in READS_EVERY_SEED)
    named = [job for job in named if chapter is None or job.label.split()[0] in READS[chapter]]
    return _merged(named + [job for c in chapters for job in _own_jobs(c, scale)])


def _cost(job) -> float:
    c = job.config
    per_step = _MODEL_COST[c.model] * (_STEP_COST.get(c.norm, 1.0) if c.model in ("vgg", "resnet") else 1.0)
    return c.steps * per_step * (1 + 0.4 * bool(job.probes))


def jobs(scale: str, chapters: tuple[str, ...] | None = None) -> list:
    """Every run the given chapters read (None: the whole book) at this scale, with every probe any
    chapter reads from it, and the noisy-BN widget's precomputed runs: what the book build trains up
    front, longest first."""
    from bnlib.sweeps import Job

    previous = _session.chapter
    use(None, _session.seeds, _session.steps)
    try:
        todo = chapter_jobs(None, scale)
        if chapters is not None:
            wanted = {job.config for c in chapters for job in chapter_jobs(c, scale)}
            todo = [job for job in todo if job.config in wanted]
        if chapters is None or "02_noisy_batchnorm" in chapters:
            todo += [
                Job(noisy_config(scaled_noise(k), scale), (), f"noisy BN widget, noise x{k:g}") for k in NOISE_GRID[2:]
            ]
    finally:
        use(previous, _session.seeds, _session.steps)
    return sorted(todo, key=_cost, reverse=True)


# ----------------------------------------------------------------------------- cost before commitment


def missing(scale: str) -> list:
    """The jobs this process's chapter (all chapters, if none) would train: not stored yet, or
    stored without a probe the chapter reads."""
    return [job for job in chapter_jobs(_session.chapter, scale) if untrained(job)]


def untrained(job) -> bool:
    """Whether a job's record is missing, or lacks one of its probes."""
    record = stored_record(job.config)
    return record is None or any(probe_key(p) not in record.probes for p in job.probes)


def step_seconds(cfg: RunConfig, probes: list[Probe], steps: int = 3) -> float:
    """Seconds per training step of `cfg` on this device, with the probes' cost spread over their
    strides, from a short timing: `steps` steps after two warm-up steps, and one call of each probe."""
    from bnlib.train import Run, RunOptions

    run = Run(cfg, probes, RunOptions(progress=False))
    for _ in range(2):
        run.train_step(*run.task.next_batch())
    _sync(run.device)
    started = time.perf_counter()
    for _ in range(steps):
        run.train_step(*run.task.next_batch())
    _sync(run.device)
    seconds = (time.perf_counter() - started) / steps
    for probe in probes:
        started = time.perf_counter()
        run.train_step(*run.task.next_batch(), probes=[probe])
        _sync(run.device)
        seconds += max(0.0, time.perf_counter() - started - seconds) / probe.every
    return seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def announce(scale: str) -> str:
    """What this chapter will train (runs, steps, probes), and at the paper scale how long it will
    take on this device, measured from a short timing of each kind of run. '' if nothing is missing."""
    todo = missing(scale)
    if not todo:
        return ""
    lines = [f"This chapter will train {len(todo)} run{'s' if len(todo) > 1 else ''} at the {scale} scale:"]
    total = 0.0
    timed: dict[tuple, float] = {}
    for job in todo:
        cfg = job.config
        kinds = ", ".join(sorted({probe_key(p).split("-")[0] for p in job.probes})) or "no probes"
        line = f"  {job.name}: {cfg.steps:,} steps, {kinds}"
        if scale == "paper":
            key = (cfg.replace(seed=0), tuple(map(probe_key, job.probes)))
            if key not in timed:
                timed[key] = step_seconds(cfg, list(job.probes))
            total += timed[key] * cfg.steps
            line += f", about {timed[key] * cfg.steps / 60:.0f} min"
        lines.append(line)
    if scale == "paper":
        lines.append(f"Estimated total on this device: about {total / 60:.0f} minutes (from a short timing of each).")
        lines.append("For fewer seeds or steps set `seeds` or `steps` in the parameters cell and run it again.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the noisy-BN widget's runs


def scaled_noise(k: float) -> NoiseParams:
    """The paper's noise (Algorithm 1) made k times stronger: k = 0 is no noise, 1 the paper's."""
    paper = NoiseParams()
    return NoiseParams(
        n_mu=k * paper.n_mu, n_sigma=1 + k * (paper.n_sigma - 1), r_mu=k * paper.r_mu, r_sigma=k * paper.r_sigma
    )


def short_steps(scale: str) -> int:
    """The length of the noisy-BN widget's runs: a quarter of the scale's VGG run."""
    return config("vgg-bn-lr0.1", scale).steps // 4


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
    return load_or_run(noisy_config(noise, scale, norm), label=norm)


def noisy_config(noise: NoiseParams, scale: str, norm: str = "noisy_batch") -> RunConfig:
    """The config of a noisy-BN widget run: `short_steps` at lr 0.1 with these noise constants."""
    return config("vgg-noisybn-lr0.1", scale).replace(norm=norm, noise=noise, steps=short_steps(scale), test_every=0)


NOISE_GRID = (0.0, 1.0, 2.0, 4.0)  # multiples of the paper's noise precomputed for the static page
