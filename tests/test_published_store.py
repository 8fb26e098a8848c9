"""The book's published run store (store/ in the repository) against the book as it is now: every
run a chapter reads has its record there (a config changed without retraining fails here, so the
store never goes stale silently), and a short prefix of a stored run of each model family retrains
to the same numbers (bit-identical on the torch and CPU that trained it)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from bnlib import published
from bnlib.book import contents, lab, ladder, store
from bnlib.book.contents import CHAPTERS
from bnlib.book.lab import Composition
from bnlib.book.session import Session, refresh
from bnlib.config import Recipe
from bnlib.data import load_cifar10
from bnlib.records import published_record
from bnlib.storage import exclusive

SCALE = "cpu"  # the published book's
PREFIX = 100  # steps retrained of each family's run
# The copy of CIFAR-10 the records were trained on, where CI and the developers' machines have it
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def checkout_store(monkeypatch):
    """The repository's store, read in the book's mode (every run with every chapter's probes)."""
    monkeypatch.setenv("BNLIB_STORE", str(published.CHECKOUT_STORE))
    refresh()
    yield
    refresh()


BOOK = contents.session(SCALE, whole=True)  # as the build and the commands read the store


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.notebook for c in CHAPTERS])
def test_the_store_holds_every_run_the_chapter_reads(chapter):
    missing = store.unpublished(BOOK, (chapter,))
    number = chapter.notebook.split("_")[0]
    assert not missing, (
        f"{len(missing)} runs chapter {number} reads have no published record (e.g. {missing[0].name}): train and "
        f"publish them (python -m bnlib.book train --chapter {number}; python -m bnlib.book publish --chapter {number})"
    )


def test_a_changed_learning_rate_leaves_the_store_stale_and_is_caught(monkeypatch):
    chapter = contents.chapter("06_theory")  # one of its published runs, alone, then at another learning rate
    dln = next(read for read in chapter.reads(BOOK) if read.run.model == "dln")
    alone = dataclasses.replace(chapter, reads=lambda session: [dln])
    assert store.unpublished(Session(SCALE, (alone,), whole=True), (alone,)) == []
    changed = dataclasses.replace(dln, run=dln.run.but(lr=dln.run.lr * 2))
    moved = dataclasses.replace(chapter, reads=lambda session: [changed])
    stale = store.unpublished(Session(SCALE, (moved,), whole=True), (moved,))
    assert [job.config.lr for job in stale] == [dln.run.lr * 2] * len(dln.seeds)


@pytest.fixture
def records_data(tmp_path_factory, monkeypatch) -> None:
    """The records' copy of CIFAR-10 as BNLIB_DATA, decoded once for the whole test session (one
    cache shared by the test processes): decoding its 60,000 JPEGs costs more than a prefix."""
    if not DATA.exists():
        pytest.skip(f"the records' copy of CIFAR-10 is not at {DATA}")
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session = session.parent
    monkeypatch.setenv("BNLIB_CACHE", str(session / "records-data"))
    monkeypatch.setenv("BNLIB_DATA", str(DATA))
    with exclusive(session / "records-data.lock"):  # the second process waits for the first's decoded copy
        load_cifar10(DATA)


def _prefix_cost(job) -> tuple:
    """Which run's prefix to retrain, in order: one without the paper's noise first (the noise drawn
    into every layer at every step amplifies a CPU's last-bit differences: on a CPU other than the
    record's, a noisy run's curves part by 0.2 within 100 steps, where a plain run's stay within
    the tolerance), then what the prefix costs: its probes, its batch, its depth (a ResNet's), its
    steps (a run shorter than the prefix), then its name, so the choice is fixed."""
    config = job.config
    noisy = config.norm in ("noisy_batch", "noise") or (config.norm == "composed" and config.recipe.noise)
    return noisy, len(job.probes), config.effective_batch_size, config.resnet_depth, config.steps, job.name


@pytest.mark.parametrize("family", ["vgg", "dln", "resnet", "mlp"])
def test_a_prefix_of_a_stored_run_retrains_to_its_record(family, request):
    if family != "dln":  # the deep linear network needs no data set
        request.getfixturevalue("records_data")
    jobs = [job for job in BOOK.jobs() if job.config.model == family and published_record(job.config)]
    assert jobs, f"the store holds no {family} run"
    job = min(jobs, key=_prefix_cost)  # the cheapest to retrain
    result = store.compare(job, steps=PREFIX)
    assert result.steps == min(PREFIX, int(published_record(job.config).final["steps"]))
    assert result.outcome in ("bit-identical", "within tolerance"), result


def _refuse_to_train(*args, **kwargs):
    raise AssertionError("the lab trained a run it should have read from the store")


@pytest.mark.parametrize(
    "key,recipe",
    [("batchnorm", Recipe()), ("detached", Recipe(gradient=False)), ("layer", Recipe(statistics="example"))],
)
def test_a_rung_composed_in_the_lab_is_its_published_record_bit_for_bit(key, recipe, monkeypatch, tmp_path):
    """BatchNorm and two other rungs, composed from their ingredients at their best rates: the lab
    says which rung each is, trains nothing, and gives the ladder's published records, bit for bit."""
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path))  # an empty cache: nothing of the reader's own
    monkeypatch.setattr("bnlib.records.train", _refuse_to_train)
    step, horizon = ladder.rung(key), ladder.trained(BOOK).horizon
    lr = ladder.rate(step, BOOK)
    composition = Composition(recipe, lr=lr)
    assert composition.rung(BOOK, horizon) == step
    assert lab.missing(composition, BOOK, horizon) == []
    assert lab.announce(composition, BOOK, horizon) == ""  # no cost: nothing trains
    found = lab.records(composition, BOOK, horizon)
    published_ones = ladder.trained(BOOK).records[key][lr]
    assert len(found) == len(published_ones) == len(ladder.SEEDS)
    for record, seed in zip(found, ladder.SEEDS, strict=True):
        assert record.origin == "published" and record.config.seed == seed
        for other in (published_ones[seed], published_record(record.config)):
            assert record.config == other.config and record.path == other.path and record.status == other.status
            assert record.metrics.keys() == other.metrics.keys() and record.final == other.final
            for name, values in record.metrics.items():
                assert values.dtype == other.metrics[name].dtype and np.array_equal(values, other.metrics[name])
