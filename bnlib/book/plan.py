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
}
OPTIONAL = ("vgg-std-aug-lr0.1", "vgg-bn-aug-lr0.1")  # Fig. 1's augmented runs: only on request

# Fig. 1 compares these with 3 seeds (mean and spread); every other experiment runs seed 0.
MULTI_SEED = _FIG1


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
    cfg = experiment(name, scale, seed=seed)
    if _session.steps is not None and _session.steps < cfg.steps:
        cfg = cfg.replace(steps=_session.steps)
    return cfg


def book_runs(include_optional: bool = False) -> list[tuple[str, int]]:
    """(experiment, seed) of every training run the book makes. Augmented runs are optional."""
    return [
        (name, seed)
        for name in EXPERIMENTS
        if name in union() and (include_optional or name not in OPTIONAL)
        for seed in seeds(name)
    ]


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
    return every | {"landscape-random": every["landscape"], "bn-scale": every["activations"]}


# The layers the paper's figures show.
ACTIVATION_LAYERS = {"vgg": (2, 3, 9, 11, 13), "dln": (1, 11, 24)}
ICS_LAYERS = {"vgg": (5, 10), "dln": (9, 17)}
EXTENDED_ETAS = {"vgg": VGG_EXTENDED_ETAS, "dln": DLN_EXTENDED_ETAS}

PROBE_KINDS = ("activations", "ics", "landscape", "landscape-random", "landscape-extended", "hessian", "bn-scale")


def make_probe(kind: str, model: str, scale: str) -> Probe:
    """A probe of one kind (PROBE_KINDS) on the paper's layers at the scale's stride."""
    every = probe_every(scale, model)
    make = {
        "activations": lambda: ActivationProbe(ACTIVATION_LAYERS[model], every["activations"], pairs=True),
        "ics": lambda: ICSProbe(ICS_LAYERS[model], every["ics"]),
        "landscape": lambda: LandscapeProbe(every["landscape"]),
        "landscape-random": lambda: LandscapeProbe(every["landscape"], direction="random"),
        "landscape-extended": lambda: LandscapeProbe(every["landscape-extended"], etas=EXTENDED_ETAS[model]),
        "hessian": lambda: HessianProbe(every["hessian"]),
        "bn-scale": lambda: BNScaleProbe(every["bn-scale"]),
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


def stored(name: str, scale: str, seed: int = 0) -> Record | None:
    """The book's run of `name` if it is stored (never trains): for optional runs."""
    return stored_record(config(name, scale, seed))


# ----------------------------------------------------------------------------- the book build's sweep

# Relative cost of a training step by normalization (VGG, one thread; benchmarks/throughput.py):
# the sweep starts the longest runs first, so that the last ones to finish are short.
_STEP_COST = {"none": 1.0, "batch": 1.7, "noisy_batch": 3.2, "noise": 2.8, "l1": 1.7, "l2": 2.2, "linf": 2.3}


def jobs(scale: str) -> list:
    """Every run the book reads at this scale, with every probe any chapter reads from it (and the
    noisy-BN widget's precomputed runs), longest first: what the book build trains up front."""
    from bnlib.sweeps import Job

    previous = _session.chapter
    use(None, _session.seeds, _session.steps)
    try:
        todo = [
            Job(config(name, scale, seed), tuple(probes_for(name, scale, seed)), f"{name} seed {seed}")
            for name, seed in book_runs()
        ]
        todo += [
            Job(noisy_config(scaled_noise(k), scale), (), f"noisy BN widget, noise x{k:g}") for k in NOISE_GRID[2:]
        ]
    finally:
        use(previous, _session.seeds, _session.steps)

    def cost(job) -> float:
        c = job.config
        per_step = _STEP_COST[c.norm] if c.model == "vgg" else 0.1
        return c.steps * per_step * (1 + 0.4 * bool(job.probes))

    return sorted(todo, key=cost, reverse=True)


# ----------------------------------------------------------------------------- cost before commitment


def missing(scale: str) -> list[tuple[str, int, list[Probe]]]:
    """The (experiment, seed, probes) this process's chapter would train, not yet stored."""
    runs = union() if _session.chapter is None else chapter_runs(_session.chapter)
    todo = []
    for name in runs:
        if name in OPTIONAL:
            continue
        for seed in seeds(name):
            probes = probes_for(name, scale, seed)
            record = stored(name, scale, seed)
            if record is None or any(probe_key(p) not in record.probes for p in probes):
                todo.append((name, seed, probes))
    return todo


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
    for name, seed, probes in todo:
        cfg = config(name, scale, seed)
        kinds = ", ".join(sorted({probe_key(p).split("-")[0] for p in probes})) or "no probes"
        line = f"  {name} seed {seed}: {cfg.steps:,} steps, {kinds}"
        if scale == "paper":
            key = (cfg.replace(seed=0), tuple(map(probe_key, probes)))
            if key not in timed:
                timed[key] = step_seconds(cfg, probes)
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
