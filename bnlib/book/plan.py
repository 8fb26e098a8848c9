"""The run plan: the runs the chapters read, with which seeds and probes, and the session that
says which chapter this process runs. Generic machinery only: what each chapter reads is written in
its own module (`bnlib.book.chapters`, each chapter's `reads(scale)`).

A run record holds the probes it was trained with, and asking for a probe a record lacks trains
the run again with it (`bnlib.records`). So chapters never choose probes at the point of use: they
declare them in `reads`, and `get(run, scale, seed)` loads (or trains) the run with the probes of
the session:

* **A reader who opens one chapter** (Colab, Jupyter) trains only the runs and probes that chapter
  reads. Records keep every probe they were ever given, so a run trained by two chapters afterwards
  serves both.
* **The book build** (`python -m bnlib.book`, which sets $BNLIB_BOOK=all) and the pages that read
  every chapter (the results page) train every run once, with the union of the probes all chapters
  read from it (`jobs`).
* **Fewer seeds or steps**: a chapter's parameters cell can ask for them (`use`); the tables then
  say so. At the paper scale a chapter prints what it will train and an estimate of the time on
  this device before it trains anything (`announce`).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import torch

from bnlib import published
from bnlib.config import RunConfig
from bnlib.errors import ConfigError, warn
from bnlib.experiments import Experiment, check_scale
from bnlib.probes import ActivationProbe, HessianProbe, ICSProbe, LandscapeProbe
from bnlib.probes.hook import Probe, probe_key
from bnlib.probes.landscape import DLN_EXTENDED_ETAS, VGG_EXTENDED_ETAS
from bnlib.probes.theory import BNScaleProbe
from bnlib.probes.weights import WeightNormProbe
from bnlib.records import SCHEMA_VERSION, Record, data_fingerprint, load_or_run, stored_record
from bnlib.storage import cache_dir, load_frame, save_frame
from bnlib.sweeps import Job
from bnlib.train import RunOptions

ENV_BOOK = "BNLIB_BOOK"  # "all": the book build, every run with every probe any chapter reads
# Set by the book build for the pages it executes, never by hand: a fresh folder for that one build,
# where the pages share the findings they measured (bnlib.book.claims); the build deletes it after.
ENV_FINDINGS = "BNLIB_BOOK_FINDINGS"


@dataclass(frozen=True)
class Read:
    """One experiment a chapter reads: the seeds it reads, and the probes those seeds' records must
    carry (probe kinds of `PROBE_KINDS`, or probes). `optional` runs train only when asked for;
    `weights`: the page loads the run's final weights, so the published store keeps them."""

    run: Experiment
    seeds: tuple[int, ...] = (0,)
    probes: tuple[str | Probe, ...] = ()
    optional: bool = False
    weights: bool = False


# ----------------------------------------------------------------------------- the session


@dataclass(frozen=True)
class Session:
    """What this process runs: the chapter (a module of `bnlib.book.chapters`; None for every
    chapter, as the results page and the book build), the parameters cell's requests for fewer
    seeds or steps, and whether this is the book build (every run with every chapter's probes)."""

    chapter: ModuleType | None = None
    seeds: int | None = None
    steps: int | None = None
    book: bool = False


_session = Session(book=os.environ.get(ENV_BOOK) == "all")


def session() -> Session:
    return _session


def use(chapter: ModuleType | None = None, seeds: int | None = None, steps: int | None = None) -> Session:
    """Set this process's chapter and its requests for fewer seeds or steps (None: the book's)."""
    global _session
    for name, value in (("seeds", seeds), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer or None, not {value!r}")
    _session = Session(chapter, seeds, steps, book=os.environ.get(ENV_BOOK) == "all")
    return _session


def reduced() -> str:
    """How this process departs from the book's protocol ('' if it does not), for the tables."""
    parts = []
    if _session.seeds is not None:
        parts.append(f"at most {_session.seeds} seed{'s' if _session.seeds > 1 else ''} per experiment")
    if _session.steps is not None:
        parts.append(f"at most {_session.steps:,} steps per run")
    return "; ".join(parts)


def seeds(read: Read) -> tuple[int, ...]:
    """The seeds a read asks for, or fewer if the parameters cell asked for fewer."""
    return limit(read.seeds)


def limit(seeds: tuple[int, ...]) -> tuple[int, ...]:
    """The first of `seeds`, as many as the parameters cell allows (all of them if it set none)."""
    return seeds[: _session.seeds] if _session.seeds else seeds


def capped(cfg: RunConfig) -> RunConfig:
    """`cfg` with at most the steps the parameters cell asked for (if it asked)."""
    if _session.steps is not None and _session.steps < cfg.steps:
        return cfg.replace(steps=_session.steps)
    return cfg


def config(run: Experiment, scale: str, seed: int = 0) -> RunConfig:
    """The config of a run in this session (with the parameters cell's fewer steps, if any)."""
    return capped(run.config(scale, seed))


# ----------------------------------------------------------------------------- probes: strides and layers

# How often each probe runs. The paper probes the landscape at every step (its appendix A.2.2) and
# draws the other curves from about 150 points over 15,000 steps (Figs. 3 and 8, by eye). At the
# cpu scale the strides give about 50 points per run (the DLN trains longer, so its strides are
# longer); at the paper scale, the landscape every 10th step gives 1,500 points per run.
PROBE_EVERY: dict[str, dict[str, int]] = {
    "paper": {"activations": 100, "ics": 50, "landscape": 10, "landscape-extended": 100, "hessian": 1000},
    "cpu": {"activations": 50, "ics": 50, "landscape": 50, "landscape-extended": 250, "hessian": 500},
    "smoke": {"activations": 3, "ics": 3, "landscape": 3, "landscape-extended": 6, "hessian": 6},
}


def probe_every(scale: str) -> dict[str, int]:
    """How often each probe kind runs at a scale (the bn-scale and weight-norm probes follow the
    activations, the random-direction landscape the landscape, the frozen Hessian the Hessian)."""
    every = PROBE_EVERY[check_scale(scale)]
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
HESSIAN_TOP = 3  # eigenvalues kept by the Hessian probes (Lanczos, 20 Hessian-vector products)

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


def make_probe(kind: str | Probe, model: str, scale: str) -> Probe:
    """A probe of one kind (PROBE_KINDS) on the paper's layers at the scale's stride (a probe is
    returned as it is)."""
    if not isinstance(kind, str):
        return kind
    every = probe_every(scale)
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


def named(kind: str | Probe) -> str:
    """How a chapter names a probe in a record it reads: its kind, or the probe's key."""
    return kind if isinstance(kind, str) else probe_key(kind)


# ----------------------------------------------------------------------------- what the chapters read


def _chapters(session: Session) -> tuple[ModuleType, ...]:
    from bnlib.book.chapters import CHAPTERS

    return CHAPTERS if session.chapter is None or session.book else (session.chapter,)


@functools.cache
def _wanted(scale: str, session: Session) -> dict[RunConfig, dict[str, Probe]]:
    """Every config this session reads at a scale, with the probes its record must carry (by the
    name the chapters read them under): one chapter's, or every chapter's union."""
    wanted: dict[RunConfig, dict[str, Probe]] = {}
    for chapter in _chapters(session):
        for read in chapter.reads(scale):
            for seed in read.seeds:
                probes = wanted.setdefault(read.run.config(scale, seed), {})
                probes |= {named(kind): make_probe(kind, read.run.model, scale) for kind in read.probes}
    return wanted


def probes_for(run: Experiment, scale: str, seed: int = 0) -> dict[str, Probe]:
    """The probes the record of `run` carries in this session, by the name the chapters read them under."""
    wanted = _wanted(scale, _session)
    cfg = run.config(scale, seed)
    if cfg not in wanted:
        where = "no chapter" if _session.chapter is None else f"chapter {_session.chapter.NOTEBOOK}"
        raise ConfigError(f"{where} reads {run.name} (seed {seed}); declare it in that chapter's `reads`")
    return wanted[cfg]


def get(run: Experiment, scale: str, seed: int = 0) -> Record:
    """A run the chapters read, trained if missing, with its probes. The record's probes are those
    of the plan, under the names the chapters read them by (`record.probe_table("ics", ...)`)."""
    probes = probes_for(run, scale, seed)
    record = load_or_run(config(run, scale, seed), list(probes.values()), label=run.name)
    record.probes = {name: record.probes[probe_key(probe)] for name, probe in probes.items()}
    return record


# ----------------------------------------------------------------------------- tables computed from data


@dataclass(frozen=True)
class Measured:
    """A table a page computed from data beyond its runs, and where it came from."""

    name: str
    config: RunConfig
    origin: str  # "published" (the run store), "cache" (the reader's own), or "computed" (just now)
    path: Path


_measured: dict[Path, Measured] = {}  # what this process's pages read, for their evidence


Table = Callable[[], pd.DataFrame]


def measured(name: str, config: RunConfig, scale: str, compute: Table, **params: Any) -> pd.DataFrame:
    """A table a page computes from data beyond its runs (a network at initialisation on its run's
    first batch, say), kept like a run: the reader's own (in the cache), else the published one (the
    run store, so that the page needs no data set), else computed by `compute` now, which needs the
    data, and kept in the cache. `name` and `params` say what is computed from `config`'s data; the
    copy of the data is part of the key, as for runs."""
    fingerprint = data_fingerprint(config, RunOptions(), decode=False)
    own = cache_dir() / "measurements" / scale
    if fingerprint is not None:
        path = own / f"{_measurement_key(name, config, fingerprint, params)}.npz"
        frame = _read_table(path)
        if frame is not None:
            return _note(name, config, "cache", path, frame)
    for fingerprint in published.copies_for(config.on_cifar):
        path = published.measurement_file(_measurement_key(name, config, fingerprint, params))
        frame = None if path is None else _read_table(path)
        if frame is not None:
            return _note(name, config, "published", path, frame)
    frame = compute()
    path = own / f"{_measurement_key(name, config, data_fingerprint(config, RunOptions()), params)}.npz"
    save_frame(path, frame)  # the fingerprint of the copy `compute` decoded
    return _note(name, config, "computed", path, frame)


def _measurement_key(name: str, config: RunConfig, fingerprint: str, params: dict[str, Any]) -> str:
    return config.digest(SCHEMA_VERSION, fingerprint, "measurement", name, params)


def _read_table(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return load_frame(path)
    except Exception as e:
        warn(f"the stored table {path} is damaged ({type(e).__name__}); it will be computed again")
        return None


def _note(name: str, config: RunConfig, origin: str, path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    _measured[path] = Measured(name, config, origin, path)
    return frame


def measurements_read() -> list[Measured]:
    """The tables this process's pages computed from data beyond their runs, in the order read."""
    return list(_measured.values())


def stored(run: Experiment, scale: str, seed: int = 0) -> Record | None:
    """A run's record if it is stored (never trains): for optional runs."""
    return stored_record(config(run, scale, seed))


def records(runs: list[Experiment | tuple[Experiment, int]], scale: str) -> list[Record]:
    """The records of several runs (seed 0, or (run, seed) pairs), the missing ones trained first as
    one sweep (`bnlib.sweep`: across this machine's cores when Ray is installed, else one after
    another). Reads that depend on what is stored (a chapter that runs more seeds where seed 0
    reached its target) are read again afterwards."""
    from bnlib.sweeps import sweep

    pairs = [item if isinstance(item, tuple) else (item, 0) for item in runs]
    todo = [job for job in (_job(run, scale, seed) for run, seed in pairs) if untrained(job)]
    if len(todo) > 1:  # one run trains in this process, without starting Ray
        sweep(todo).raise_if_failed("the chapter's runs")
    if todo:
        refresh()
    return [get(run, scale, seed) for run, seed in pairs]


def refresh() -> None:
    """Read the chapters' reads again: some depend on what is stored (a chapter that runs more seeds
    where seed 0 reached its target), so they change when runs finish."""
    _wanted.cache_clear()


# ----------------------------------------------------------------------------- the jobs: what trains

# Relative cost of a training step (VGG by normalization, one thread; benchmarks/throughput.py), for
# the build's sweep, which starts the longest runs first so that the last ones to finish are short.
_STEP_COST = {"none": 1.0, "batch": 1.7, "noisy_batch": 3.2, "noise": 2.8, "l1": 1.7, "l2": 2.2, "linf": 2.3}
_MODEL_COST = {"vgg": 1.0, "resnet": 1.5, "mlp": 0.1, "dln": 0.1}


def _job(run: Experiment, scale: str, seed: int) -> Job:
    probes = tuple(probes_for(run, scale, seed).values())
    return Job(config(run, scale, seed), probes, f"{run.name} seed {seed}")


def _cost(job: Job) -> float:
    c = job.config
    per_step = _MODEL_COST[c.model] * (_STEP_COST.get(c.norm, 1.0) if c.model in ("vgg", "resnet") else 1.0)
    return c.steps * per_step * (1 + 0.4 * bool(job.probes))


def jobs(scale: str, chapters: tuple[ModuleType, ...] | None = None) -> list[Job]:
    """Every run the given chapters read (None: every chapter) at this scale, once, with the probes
    of this session (the book build: every probe any chapter reads from it), longest first."""
    from bnlib.book.chapters import CHAPTERS

    todo: dict[RunConfig, Job] = {}
    for chapter in CHAPTERS if chapters is None else chapters:
        for read in chapter.reads(scale):
            if read.optional:
                continue
            for seed in seeds(read):
                job = _job(read.run, scale, seed)
                todo.setdefault(job.config, job)
    return sorted(todo.values(), key=_cost, reverse=True)


def untrained(job: Job, published: bool = True) -> bool:
    """Whether a job's record is missing, or lacks one of its probes (`published`: a published
    record counts; False: only the reader's own, in the cache)."""
    record = stored_record(job.config, RunOptions(published=published))
    return record is None or any(probe_key(p) not in record.probes for p in job.probes)


def with_weights(scale: str) -> set[RunConfig]:
    """The configs whose final weights a page loads (`Read.weights`): the store keeps theirs."""
    from bnlib.book.chapters import CHAPTERS

    reads = [read for chapter in CHAPTERS for read in chapter.reads(scale) if read.weights]
    return {read.run.config(scale, seed) for read in reads for seed in read.seeds}


def missing(scale: str) -> list[Job]:
    """The jobs this session's chapter (every chapter, if none) would train: not stored yet, or
    stored without a probe the chapter reads."""
    chapters = None if _session.chapter is None else (_session.chapter,)
    return [job for job in jobs(scale, chapters) if untrained(job)]


# ----------------------------------------------------------------------------- cost before commitment


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


def announce(scale: str, todo: list[Job] | None = None, workers: int = 1, who: str = "This chapter") -> str:
    """What will train (`todo`, by default what this session's chapter lacks): the runs, their steps
    and probes, and, except at the smoke scale, how long they will take on this device, measured
    from a short timing of each kind of run, on `workers` runs side by side. '' if nothing will."""
    todo = missing(scale) if todo is None else todo
    if not todo:
        return ""
    lines = [f"{who} will train {len(todo)} run{'s' if len(todo) > 1 else ''} at the {scale} scale:"]
    total = 0.0
    timed: dict[tuple, float] = {}
    for job in todo:
        cfg = job.config
        kinds = ", ".join(sorted({probe_key(p).split("-")[0] for p in job.probes})) or "no probes"
        stops = cfg.target_acc is not None or cfg.target_loss is not None  # it ends at its target, if sooner
        line = f"  {job.name}: {'up to ' if stops else ''}{cfg.steps:,} steps, {kinds}"
        if scale != "smoke":
            key = (cfg.replace(seed=0), tuple(map(probe_key, job.probes)))
            if key not in timed:
                timed[key] = step_seconds(cfg, list(job.probes))
            total += timed[key] * cfg.steps
            line += f", {'at most' if stops else 'about'} {_minutes(timed[key] * cfg.steps)}"
        lines.append(line)
    if scale != "smoke":
        side = f", {workers} runs side by side" if workers > 1 else ""
        lines.append(
            f"Estimated total on this device: at most {_minutes(total / workers)}{side} (from a short timing of "
            "each kind of run; runs that stop at their target take less)."
        )
    if who == "This chapter":
        lines.append("For fewer seeds or steps set `seeds` or `steps` in the parameters cell and run it again.")
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
