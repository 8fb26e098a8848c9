"""The book's run store: train what the book reads, publish it, verify it by retraining.

    python -m bnlib.book train [--chapter 07]      # into your cache, on your data and machine
    python -m bnlib.book publish [--chapter 07]    # your cache's records into the repository's store/
    python -m bnlib.book verify --sample 3         # retrain stored runs and compare them

The book's evidence is its published store (`bnlib.published`, `store/` in the repository):
every run the cpu-scale book reads, trained once, with the union of the probes its chapters read,
and the tables its pages compute from data beyond the runs. Building the book renders it.

* `train` trains what the book (or one chapter) reads into the reader's cache, whatever the store
  holds, announcing the runs and the time they will take on this device first. It resumes: runs
  already in the cache are kept, a run stopped midway resumes from its checkpoint. `--missing`
  trains only what the store lacks (filling the store in several sittings, then `publish`).
* `publish` copies the cache's records of what the book reads into the store (compressed; the
  weights only of the runs whose weights a page loads), with the tables the pages computed from data.
  It never removes or replaces a published record.
* `verify` retrains published runs, whole or their first steps, and compares them with the store:
  bit-identical where torch and the CPU match the record's, otherwise within `CURVE_TOLERANCE` on the
  training curves. It needs the copy of the data the records name (the deep linear network, which
  needs none, always runs).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bnlib import published
from bnlib.book import plan
from bnlib.book.chapter import Chapter
from bnlib.book.session import Session, refresh
from bnlib.errors import BnlibError, ConfigError
from bnlib.probes.hook import probe_key
from bnlib.records import Record, data_fingerprint, published_record, runs_dir, stored_record
from bnlib.storage import cache_dir
from bnlib.sweeps import Job
from bnlib.train import SPEED_WINDOW, RunOptions, train

# Runs retrained on another torch or CPU cannot be bit-identical (the order of float sums differs);
# they agree when their training curves, averaged over the speed window, stay this close.
CURVE_TOLERANCE = 0.05  # training loss (nats) and accuracy, each averaged over SPEED_WINDOW steps
THREADS = 1  # the book's runs train on one thread each (bnlib.sweep): a record that does not say, retrains so


def refuse_missing(session: Session, chapters: tuple[Chapter, ...] | None, who: str) -> None:
    """Fail, naming one, if runs the chapters read (None: every chapter) are in neither the published
    store nor the reader's cache: for the commands that render and never train."""
    if todo := session.missing(chapters):
        raise BnlibError(
            f"{len(todo)} runs {who} are in neither the published store nor your cache (e.g. {todo[0].name}); "
            "train them with `python -m bnlib.book train`"
        )


# ----------------------------------------------------------------------------- train


def train_book(
    session: Session, chapters: tuple[Chapter, ...] | None = None, workers: int | None = None, missing: bool = False
) -> int:
    """Train what the chapters read into the reader's cache (published records do not count; with
    `missing`, they do: only what the store lacks trains, to be published after), in rounds (a
    chapter reads more seeds where seed 0 reached its target), announcing each round's runs and
    their time on this device first. Returns how many runs were trained."""
    from bnlib.sweeps import ray_closed_after, sweep

    workers = workers or os.cpu_count() or 1
    trained = 0
    with ray_closed_after():
        while todo := session.but(published=missing).missing(chapters):
            print(plan.announce(session.scale, todo, workers=min(workers, len(todo)), who="This"), flush=True)
            sweep(todo, workers=workers, options=RunOptions(published=False)).raise_if_failed("the book's runs")
            trained += len(todo)
            refresh()
    print(
        f"Every run {'the book reads' if chapters is None else 'these chapters read'} is in your cache ({runs_dir()})."
    )
    return trained


# ----------------------------------------------------------------------------- publish


@dataclass(frozen=True)
class Published:
    runs: int  # newly published
    tables: int
    missing: list[str]  # runs the chapters read that the cache does not hold yet
    store: Path


def publish(session: Session, chapters: tuple[Chapter, ...] | None = None, store: Path | None = None) -> Published:
    """Copy the cache's records of what the chapters read into the store (`store`, else the one
    bnlib reads: $BNLIB_STORE, else the checkout's), with the tables the pages computed from data at
    this scale; what is published already stays as it is. The cache's records are found by the
    reader's copy of CIFAR-10 (BNLIB_DATA), as when they trained."""
    store = store or published.store_dir() or published.CHECKOUT_STORE
    keep = session.with_weights()
    added, seen = 0, set()
    while True:  # in rounds, as the reads that depend on stored runs change with what is published
        refresh()
        new = False
        for job in session.jobs(chapters):
            if job.config in seen:
                continue
            record = stored_record(job.config, RunOptions(published=False))
            if record is None or any(probe_key(p) not in record.probes for p in job.probes):
                continue
            seen.add(job.config)
            new = True
            if record.config.on_cifar:
                published.add_data_copy(record.environment["data"], store)
            key = record.path.name
            added += published.publish_run(record.path, key, job.config in keep, store)
        if not new:
            break
    refresh()
    missing = [job.name for job in session.jobs(chapters) if job.config not in seen]
    tables = 0
    for path in sorted((cache_dir() / "measurements" / session.scale).glob("*.npz")):
        tables += published.publish_measurement(path, path.stem, store)
    return Published(added, tables, missing, store)


def store_size(store: Path) -> tuple[int, int]:
    """(files, bytes) of a store on disk."""
    files = [p for p in store.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def unpublished(session: Session, chapters: tuple[Chapter, ...] | None = None) -> list[Job]:
    """The runs the chapters read (every chapter's, with the union of their probes) that the
    published store does not hold whole: a config changed without its run retrained and published."""
    refresh()
    return [job for job in session.jobs(chapters) if not _published_whole(job)]


def _published_whole(job: Job) -> bool:
    record = published_record(job.config)
    return record is not None and all(probe_key(p) in record.probes for p in job.probes)


# ----------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class Comparison:
    """One published run retrained and compared."""

    name: str
    steps: int  # steps retrained
    outcome: str  # "bit-identical", "within tolerance", "differs", "cannot compare"
    largest: float  # the largest absolute difference of any stored array (NaN when not compared)
    curves: float  # the largest difference of the averaged training curves
    detail: str


def verify(
    session: Session,
    chapters: tuple[Chapter, ...] | None = None,
    names: Sequence[str] = (),
    sample: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    data: str | None = None,
) -> list[Comparison]:
    """Retrain published runs (those `names` names, by the start of their label; a random `sample`;
    otherwise every run the chapters read) for their first `steps` steps (None: whole), and compare
    each with its record."""
    jobs = [job for job in session.jobs(chapters) if published_record(job.config) is not None]
    if names:
        jobs = [job for job in jobs if any(job.name.startswith(name) for name in names)]
        if not jobs:
            raise ConfigError(f"no published run is named {', '.join(names)}; `python -m bnlib list` names them")
    if sample is not None:
        jobs = random.Random(seed).sample(jobs, min(sample, len(jobs)))
    return [compare(job, steps, data) for job in jobs]


def compare(job: Job, steps: int | None = None, data: str | None = None) -> Comparison:
    """Retrain one published run (its first `steps` steps, or whole) on as many threads as it
    trained on, with its probes, and compare every array of its record at the steps both have."""
    stored = published_record(job.config)
    if stored is None:
        raise BnlibError(f"{job.name} has no published record to verify")
    threads = stored.environment.get("threads", THREADS)  # records before bnlib noted it: the book's sweeps
    options = RunOptions(data=data, threads=threads, progress=False, published=False)
    if job.config.on_cifar:
        mine = data_fingerprint(job.config, options)  # decodes the reader's copy
        theirs = stored.environment["data"]["fingerprint"]
        if mine != theirs:
            return Comparison(
                job.name, 0, "cannot compare", float("nan"), float("nan"),
                f"your copy of CIFAR-10 ({mine}) is not the one the record was trained on ({theirs}); "
                "point BNLIB_DATA at that copy to compare",
            )  # fmt: skip
    done = int(stored.final["steps"])
    n = done if steps is None else min(steps, done)
    config = job.config if n >= done else job.config.replace(steps=n)
    result = train(config, list(job.probes), options)
    fresh = Record(config, result.status, result.metrics, result.probes, result.final, 0.0, result.environment)
    largest, curves = _differences(stored, fresh, n)
    same_machine = all(
        stored.environment.get(k) == result.environment.get(k) for k in ("torch", "processor", "cpu_capability")
    )
    if largest == 0:
        outcome = "bit-identical"
    elif curves <= CURVE_TOLERANCE and not same_machine:
        outcome = "within tolerance"
    else:
        outcome = "differs"
    where = "the same torch and CPU" if same_machine else "another torch or CPU"
    detail = f"{where} as the record's (torch {stored.environment.get('torch')}, {stored.environment.get('processor')})"
    return Comparison(job.name, n, outcome, largest, curves, detail)


def _differences(stored: Record, fresh: Record, steps: int) -> tuple[float, float]:
    """The largest absolute difference of any array the two records share at the steps both ran
    before `steps`, and of their training curves averaged over SPEED_WINDOW steps."""
    largest = 0.0

    def note(a: np.ndarray, b: np.ndarray) -> None:
        nonlocal largest
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            largest = float("inf")
            return
        both_nan = np.isnan(a) & np.isnan(b)
        gap = np.where(both_nan, 0.0, np.abs(a - b))
        largest = max(largest, float(np.nanmax(gap, initial=0.0)) if not np.isnan(gap).any() else float("inf"))

    m, f = stored.metrics, fresh.metrics
    n = min(len(m["step"]), len(f["step"]), steps)
    for name in m:
        if name.startswith("test_") or name not in f:
            continue
        note(m[name][:n], f[name][:n])
    if "test_step" in m and "test_step" in f:
        shared = np.intersect1d(m["test_step"][m["test_step"] < n], f["test_step"])
        for name in ("test_acc", "test_loss"):
            if name in m and name in f:
                note(m[name][np.isin(m["test_step"], shared)], f[name][np.isin(f["test_step"], shared)])
    for key, arrays in stored.probes.items():
        if key not in fresh.probes:
            continue
        mine, theirs = arrays["step"] < n, np.isin(fresh.probes[key]["step"], arrays["step"][arrays["step"] < n])
        for name, values in arrays.items():
            note(values[mine], fresh.probes[key][name][theirs])
    curves = 0.0
    for name in ("train_loss", "train_acc"):
        if name in m and name in f:
            a = pd.Series(m[name][:n], dtype=float).rolling(SPEED_WINDOW, min_periods=1).mean()
            b = pd.Series(f[name][:n], dtype=float).rolling(SPEED_WINDOW, min_periods=1).mean()
            curves = max(curves, float(np.nanmax(np.abs(a - b), initial=0.0)))
    return largest, curves


def report(comparisons: list[Comparison]) -> str:
    """One line per run retrained: how it compared, then the run and against what."""
    lines = [f"{'outcome':17s} {'steps':>6s} {'largest diff':>12s} {'curves diff':>12s}  run"]
    for c in comparisons:
        lines.append(f"{c.outcome:17s} {c.steps:6d} {c.largest:12.3g} {c.curves:12.3g}  {c.name}: {c.detail}")
    return "\n".join(lines)
