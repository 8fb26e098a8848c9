"""The session: the one value every measurement receives. It says at which scale a page measures,
which chapter it is (or the whole book), the parameters cell's requests for fewer seeds or steps,
and where a book build shares its findings between pages. The entry points make it (a page's
`bnlib.book.start`, the command line, the build); nothing below them reads a global or an
environment variable, and every cache is keyed on it, so a page whose parameters cell asks for one
seed never shows findings measured for three.

What a session loads is exactly what its chapters declare (`Page.reads`): `get(run, seed)` loads
the record (training it if missing) with the probes of the session's chapters, under the names the
chapters read them by. A reader who opens one chapter trains only its runs and probes; the book
build (`whole`) trains every run once with the union of every chapter's probes, so that a run used
by two chapters trains once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from bnlib import published
from bnlib.book import plan
from bnlib.book.plan import Read
from bnlib.config import RunConfig
from bnlib.errors import ConfigError, warn
from bnlib.experiments import Experiment, check_scale
from bnlib.probes.hook import Probe, probe_key
from bnlib.records import SCHEMA_VERSION, Record, data_fingerprint, load_or_run, stored_record
from bnlib.storage import cache_dir, load_frame, save_frame
from bnlib.sweeps import Job
from bnlib.train import RunOptions


class Page(Protocol):
    """What the session needs of a chapter: its notebook's name and the runs it reads."""

    notebook: str

    def reads(self, session: Session) -> list[Read]: ...


@dataclass(frozen=True)
class Session:
    """A page's session. `book`: every chapter (the table of contents, `bnlib.book.contents`);
    `chapter`: the page's own (None: a page that reads every chapter, as the results page);
    `whole`: load every run with every chapter's probes (the book build); `seeds`, `steps`: the
    parameters cell's requests for fewer (None: the book's); `findings`: the folder where a book
    build's pages share the findings they measured (None outside a build); `published`: where its
    runs come from, the reader's own cache and then the book's published store (True), or the
    reader's cache alone (False: what `python -m bnlib.book train` fills)."""

    scale: str
    book: tuple[Page, ...] = ()
    chapter: Page | None = None
    whole: bool = False
    seeds: int | None = None
    steps: int | None = None
    findings: Path | None = None
    published: bool = True

    def __post_init__(self) -> None:
        check_scale(self.scale)
        for name in ("seeds", "steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None, not {value!r}")

    def but(self, **changes: Any) -> Session:
        """This session with some fields changed (`chapter=`, `seeds=`, ...)."""
        return dataclasses.replace(self, **changes)

    def page(self, notebook: str) -> Page:
        """A chapter of the book by its notebook's name."""
        for chapter in self.book:
            if chapter.notebook == notebook:
                return chapter
        raise KeyError(f"no chapter {notebook!r} in this session's book")

    # ------------------------------------------------------------------------- fewer seeds or steps

    def reduced(self) -> str:
        """How this session departs from the book's protocol ('' if it does not), for the tables."""
        parts = []
        if self.seeds is not None:
            parts.append(f"at most {self.seeds} seed{'s' if self.seeds > 1 else ''} per experiment")
        if self.steps is not None:
            parts.append(f"at most {self.steps:,} steps per run")
        return "; ".join(parts)

    def seeds_of(self, read: Read) -> tuple[int, ...]:
        """The seeds a read asks for, or fewer if the parameters cell asked for fewer."""
        return self.limit(read.seeds)

    def limit(self, seeds: tuple[int, ...]) -> tuple[int, ...]:
        """The first of `seeds`, as many as the parameters cell allows (all of them if it set none)."""
        return seeds[: self.seeds] if self.seeds else seeds

    def config(self, run: Experiment, seed: int = 0) -> RunConfig:
        """The config of a run in this session (with the parameters cell's fewer steps, if any)."""
        cfg = run.config(self.scale, seed)
        if self.steps is not None and self.steps < cfg.steps:
            return cfg.replace(steps=self.steps)
        return cfg

    # ------------------------------------------------------------------------- the runs

    def reading(self) -> tuple[Page, ...]:
        """The chapters whose probes the records carry: the page's own, or every chapter's."""
        return self.book if self.chapter is None or self.whole else (self.chapter,)

    def probes_for(self, run: Experiment, seed: int = 0) -> dict[str, Probe]:
        """The probes the record of `run` carries in this session, by the name the chapters read them under."""
        wanted = _wanted(self)
        cfg = run.config(self.scale, seed)
        if cfg not in wanted:
            where = "no chapter" if self.chapter is None else f"chapter {self.chapter.notebook}"
            raise ConfigError(f"{where} reads {run.name} (seed {seed}); declare it in that chapter's reads")
        return wanted[cfg]

    def get(self, run: Experiment, seed: int = 0) -> Record:
        """A run the chapters read, trained if missing, with its probes, under the names the chapters
        read them by (`record.probe_table("ics", ...)`)."""
        probes = self.probes_for(run, seed)
        record = load_or_run(self.config(run, seed), list(probes.values()), self.options(), label=run.name)
        record.probes = {name: record.probes[probe_key(probe)] for name, probe in probes.items()}
        return record

    def stored(self, run: Experiment, seed: int = 0) -> Record | None:
        """A run's record if it is stored (never trains): for optional runs."""
        return stored_record(self.config(run, seed), self.options())

    def records(self, runs: list[Experiment | tuple[Experiment, int]]) -> list[Record]:
        """The records of several runs (seed 0, or (run, seed) pairs), the missing ones trained first as
        one sweep (`bnlib.sweep`: across this machine's cores when Ray is installed, else one after
        another). Reads that depend on what is stored (a chapter that runs more seeds where seed 0
        reached its target) are read again afterwards."""
        from bnlib.sweeps import sweep

        pairs = [item if isinstance(item, tuple) else (item, 0) for item in runs]
        todo = [job for job in (self.job(run, seed) for run, seed in pairs) if plan.untrained(job, self.published)]
        if len(todo) > 1:  # one run trains in this process, without starting Ray
            sweep(todo, options=self.options()).raise_if_failed("the chapter's runs")
        if todo:
            refresh()
        return [self.get(run, seed) for run, seed in pairs]

    def job(self, run: Experiment, seed: int = 0) -> Job:
        """The job that trains one seed of a run with this session's probes."""
        return plan.job(run, self.config(run, seed), self.probes_for(run, seed), seed)

    def jobs(self, chapters: tuple[Page, ...] | None = None) -> list[Job]:
        """Every run the given chapters read (None: the page's own; every chapter's for a page that
        reads them all), once, with this session's probes, longest first."""
        if chapters is None:
            chapters = self.book if self.chapter is None else (self.chapter,)
        todo: dict[RunConfig, Job] = {}
        for chapter in chapters:
            for read in chapter.reads(self):
                if read.optional:
                    continue
                for seed in self.seeds_of(read):
                    job = self.job(read.run, seed)
                    todo.setdefault(job.config, job)
        return plan.longest_first(list(todo.values()))

    def missing(self, chapters: tuple[Page, ...] | None = None) -> list[Job]:
        """The jobs the chapters (None: the page's) would train: not stored where this session reads
        its runs, or stored without a probe they read."""
        return [job for job in self.jobs(chapters) if plan.untrained(job, published=self.published)]

    def options(self) -> RunOptions:
        """How this session's runs are loaded and trained (`published`: where they come from)."""
        return RunOptions(published=self.published)

    def with_weights(self) -> set[RunConfig]:
        """The configs whose final weights a page loads (`Read.weights`): the store keeps theirs."""
        reads = [read for chapter in self.book for read in chapter.reads(self) if read.weights]
        return {read.run.config(self.scale, seed) for read in reads for seed in read.seeds}

    def announce(self) -> str:
        """What this page will train, and how long it will take here ('' if nothing)."""
        return plan.announce(self.scale, self.missing())

    # ------------------------------------------------------------------------- tables computed from data

    def measured(self, name: str, config: RunConfig, compute: Table, **params: Any) -> pd.DataFrame:
        """A table a page computes from data beyond its runs (a network at initialisation on its run's
        first batch, say), kept like a run: the reader's own (in the cache), else the published one
        (the run store, so that the page needs no data set), else computed by `compute` now, which
        needs the data, and kept in the cache. `name` and `params` say what is computed from
        `config`'s data; the copy of the data is part of the key, as for runs."""
        fingerprint = data_fingerprint(config, RunOptions(), decode=False)
        own = cache_dir() / "measurements" / self.scale
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


@functools.cache
def _wanted(session: Session) -> dict[RunConfig, dict[str, Probe]]:
    """Every config a session reads, with the probes its record must carry (by the name the chapters
    read them under): its chapter's, or every chapter's union."""
    wanted: dict[RunConfig, dict[str, Probe]] = {}
    for chapter in session.reading():
        for read in chapter.reads(session):
            for seed in read.seeds:
                probes = wanted.setdefault(read.run.config(session.scale, seed), {})
                probes |= {
                    plan.named(kind): plan.make_probe(kind, read.run.model, session.scale) for kind in read.probes
                }
    return wanted


def refresh() -> None:
    """Read the chapters' reads again: some depend on what is stored (a chapter that runs more seeds
    where seed 0 reached its target), so they change when runs finish."""
    _wanted.cache_clear()


# ----------------------------------------------------------------------------- tables computed from data


@dataclass(frozen=True)
class Measured:
    """A table a page computed from data beyond its runs, and where it came from."""

    name: str
    config: RunConfig
    origin: str  # "published" (the run store), "cache" (the reader's own), or "computed" (just now)
    path: Path


# What this process's pages read, for their evidence cell: a log of what happened, not a setting.
_measured: dict[Path, Measured] = {}

Table = Callable[[], pd.DataFrame]


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
