"""The published run store (bnlib.published, bnlib.book.store): records published once and read
back without data through every entry point (load_or_run, the CLI, a chapter's plan), never
replaced, fetched over HTTP as Colab does, verified by retraining, and the book's evidence per page."""

from __future__ import annotations

import errno
import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_same_arrays, run_cli

import bnlib
import bnlib.storage
from bnlib import published
from bnlib.book import contents, provenance, store
from bnlib.book.session import measurements_read, refresh
from bnlib.errors import BnlibError, CacheError
from bnlib.probes import ActivationProbe
from bnlib.records import load_or_run, record_state, stored_record
from bnlib.sweeps import Job
from bnlib.train import RunOptions

VGG = bnlib.experiment("vgg-bn-lr0.1", scale="smoke")
DLN = bnlib.experiment("dln-bn-lr1e-6", scale="smoke")
PROBES = [ActivationProbe((2, 3), every=3)]


@pytest.fixture(autouse=True)
def fresh_reads():
    """The reads that depend on what is stored are read again in every test."""
    refresh()
    yield
    refresh()


SMOKE_BOOK = contents.session("smoke", whole=True)  # as the commands read and train the book


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, bnlib.Record, bnlib.Record]:
    """The smoke VGG (with a probe) and DLN trained once for this module on fake data, and published
    into a store: (data, store, vgg, dln)."""
    from conftest import fake_cifar, write_image_tar

    root = tmp_path_factory.mktemp("published")
    data = write_image_tar(root / "cifar.tar.gz", fake_cifar())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BNLIB_CACHE", str(root / "cache"))
        env.setenv("BNLIB_DATA", str(data))
        env.setenv("BNLIB_STORE", str(root / "no-store"))
        vgg, dln = load_or_run(VGG, PROBES), load_or_run(DLN)
        for record in (vgg, dln):
            assert published.publish_run(record.path, record.path.name, False, root / "store")
        published.add_data_copy(vgg.environment["data"], root / "store")
    return data, root / "store", vgg, dln


@pytest.fixture
def published_store(trained, tmp_path, monkeypatch) -> tuple[Path, bnlib.Record, bnlib.Record]:
    """A copy of the module's store, a fresh cache and no data set: (store, vgg, dln)."""
    _, original, vgg, dln = trained
    shelf = tmp_path / "store"
    shutil.copytree(original, shelf)
    monkeypatch.setenv("BNLIB_STORE", str(shelf))
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.delenv("BNLIB_DATA", raising=False)
    return shelf, vgg, dln


@pytest.fixture
def module_data(trained, monkeypatch) -> Path:
    """The module's fake data set, as BNLIB_DATA."""
    monkeypatch.setenv("BNLIB_DATA", str(trained[0]))
    return trained[0]


def test_a_published_record_reads_back_whole_without_data(published_store, tmp_path):
    shelf, vgg, dln = published_store
    for original, probes in ((vgg, PROBES), (dln, [])):
        again = load_or_run(original.config, probes)
        assert again.origin == "published" and not again.trained and shelf in again.path.parents
        assert original.config == again.config
        assert_same_arrays(original, again)
    assert not (tmp_path / "fresh-cache" / "data").exists()  # nothing decoded, nothing downloaded
    assert record_state(VGG) == "published (in the run store)"
    assert stored_record(VGG, RunOptions(published=False)) is None  # the reader's own cache holds none


def test_the_store_compresses_and_keeps_weights_only_where_asked(published_store, tmp_path):
    shelf, vgg, _ = published_store
    folder = shelf / "runs" / vgg.path.name
    assert not (folder / "model.pt").exists()
    assert sum(f.stat().st_size for f in folder.glob("*.npz")) < sum(f.stat().st_size for f in vgg.path.glob("*.npz"))
    with pytest.raises(BnlibError, match="keeps no weights"):
        load_or_run(VGG, PROBES).model()
    kept = tmp_path / "with-weights"
    assert published.publish_run(vgg.path, vgg.path.name, True, kept)
    assert (kept / "runs" / vgg.path.name / "model.pt").exists()


def test_what_is_published_stays_published(published_store):
    shelf, vgg, _ = published_store
    before = (shelf / "runs" / vgg.path.name / "record.json").read_bytes()
    assert not published.publish_run(vgg.path, vgg.path.name, True, shelf)  # never replaced by the same
    assert (shelf / "runs" / vgg.path.name / "record.json").read_bytes() == before


def test_a_run_trained_again_with_a_new_probe_joins_its_published_record(
    published_store, module_data, tmp_path, monkeypatch
):
    shelf, vgg, _ = published_store
    new = [ActivationProbe((4,), every=3)]
    again = load_or_run(VGG, new)  # the same run trained again in the cache, with a probe a chapter added
    other = tmp_path / "other"  # the same, but a run that trained differently: refused
    shutil.copytree(again.path, other)
    arrays = bnlib.storage.load_npz(other / "metrics.npz")
    np.savez(other / "metrics.npz", **(arrays | {"train_loss": arrays["train_loss"] + 1}))
    with pytest.raises(CacheError, match="not the same run"):
        published.publish_run(other, vgg.path.name, False, shelf)
    assert published.publish_run(again.path, vgg.path.name, False, shelf)
    assert not published.publish_run(vgg.path, vgg.path.name, False, shelf)  # nothing new: nothing written
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "a-reader"))
    monkeypatch.delenv("BNLIB_DATA")
    refresh()
    record = load_or_run(VGG, [*PROBES, *new])  # the published probes stay beside the new one
    assert record.origin == "published" and not record.trained
    for original in (vgg, again):
        for key, arrays in original.probes.items():
            for name, values in arrays.items():
                np.testing.assert_array_equal(record.probes[key][name], values)


def test_a_missing_probe_trains_the_run_in_the_cache(published_store, module_data):
    more = [*PROBES, ActivationProbe((4,), every=3)]
    record = load_or_run(VGG, more)  # the published record lacks a probe: trained here, into the cache
    assert record.trained and record.origin == "cache"
    assert load_or_run(VGG, more).origin == "cache"  # the reader's own comes first from now on


def test_training_your_own_ignores_the_store(published_store, module_data):
    _, vgg, _ = published_store
    mine = load_or_run(VGG, PROBES, RunOptions(published=False))
    assert mine.trained and mine.origin == "cache"
    assert_same_arrays(vgg, mine)  # the same data, the same machine: the same run, bit for bit


def test_the_cli_shows_a_published_run_without_data(published_store, capsys):
    code, out, err = run_cli(capsys, "show", "vgg-bn-lr0.1", "--scale", "smoke")
    assert code == 0 and "published" in out, out + err


def test_a_store_and_cache_that_cannot_be_written_serve_a_published_run(published_store, capsys, monkeypatch):
    """The book's evidence installed read-only: `run` loads it, with no data set and nothing written."""

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(bnlib.storage.tempfile, "mkstemp", refuse)  # root may write anywhere: simulate
    shelf = published_store[0]
    before = sorted(shelf.rglob("*"))
    code, out, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")
    assert code == 0 and "loaded from the published store (trained earlier)" in out, out + err
    assert sorted(shelf.rglob("*")) == before and not (shelf.parent / "fresh-cache").exists()


def test_a_damaged_published_file_is_named(published_store):
    shelf, vgg, _ = published_store
    (shelf / "runs" / vgg.path.name / "metrics.npz").write_bytes(b"garbage")
    assert "damaged" in record_state(VGG)


# ----------------------------------------------------------------------------- Colab: fetched over HTTP


@pytest.fixture
def served(published_store):
    """The published store served over HTTP on 127.0.0.1, as the repository serves it to Colab."""
    shelf = published_store[0]
    handler = functools.partial(QuietHandler, directory=str(shelf))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", published_store
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_colab_fetches_published_runs_as_it_reads_them(served, tmp_path, monkeypatch):
    url, (_, vgg, dln) = served
    local = tmp_path / "colab-store"
    monkeypatch.setenv("BNLIB_STORE", str(local))
    monkeypatch.setenv("BNLIB_STORE_URL", url)
    monkeypatch.setattr(published, "_absent", set())
    for original, probes in ((vgg, PROBES), (dln, [])):
        again = load_or_run(original.config, probes)  # fetched, checked, read: nothing trains
        assert again.origin == "published" and not again.trained and local in again.path.parents
        assert original.config == again.config
        assert_same_arrays(original, again)
    assert stored_record(VGG.replace(lr=0.3)) is None  # a run the store lacks: none, and no error


def test_a_fetched_file_that_fails_its_checksum_is_refused(served, tmp_path, monkeypatch):
    url, (shelf, vgg, _) = served
    (shelf / "runs" / vgg.path.name / "metrics.npz").write_bytes(b"not the published file")
    monkeypatch.setenv("BNLIB_STORE", str(tmp_path / "colab-store"))
    monkeypatch.setenv("BNLIB_STORE_URL", url)
    with pytest.raises(BnlibError, match="does not match its record's checksum"):
        stored_record(VGG)


def test_an_unreachable_store_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BNLIB_STORE", str(tmp_path / "colab-store"))
    monkeypatch.setenv("BNLIB_STORE_URL", "http://127.0.0.1:9/store")  # the discard port: nothing listens
    with pytest.raises(BnlibError, match=r"fetching http://127.0.0.1:9/store/store.json failed"):
        stored_record(VGG)


# ----------------------------------------------------------------------------- tables computed from data


def test_a_table_computed_from_data_is_kept_and_published(cifar_tar, tmp_path, monkeypatch):
    calls = []

    def compute() -> pd.DataFrame:
        bnlib.train.first_batch(VGG)  # reads the data, as the chapters' tables do
        calls.append(1)
        return pd.DataFrame({"layer": [1, 2], "ratio": [0.5, 2.0], "network": ["a", "b"]})

    first = SMOKE_BOOK.measured("spread", VGG, compute, rates=(0.1, 1.0))
    again = SMOKE_BOOK.measured("spread", VGG, compute, rates=(0.1, 1.0))
    assert calls == [1] and first.equals(again)
    assert SMOKE_BOOK.measured("spread", VGG, compute, rates=(0.1,)) is not None and calls == [1, 1]
    shelf = tmp_path / "store"
    cached = sorted((bnlib.storage.cache_dir() / "measurements" / "smoke").glob("*.npz"))
    assert len(cached) == 2  # one table per set of parameters
    for path in cached:
        published.publish_measurement(path, path.stem, shelf)
    published.add_data_copy(bnlib.data.load_cifar10().source, shelf)
    monkeypatch.setenv("BNLIB_STORE", str(shelf))
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.delenv("BNLIB_DATA")
    read = SMOKE_BOOK.measured("spread", VGG, compute, rates=(0.1, 1.0))
    assert calls == [1, 1] and read.equals(first)  # from the store, without data
    assert measurements_read()[-1].origin == "published"


# ----------------------------------------------------------------------------- evidence


def test_each_page_names_its_evidence(published_store):
    _, vgg, dln = published_store
    runs = [("vgg-bn-lr0.1", 0, load_or_run(VGG, PROBES)), ("dln-bn-lr1e-6", 0, load_or_run(DLN))]
    text = provenance.summary(provenance.Evidence(runs, []))
    env = vgg.environment
    assert "2 from the book's published run store" in text
    for fact in (env["git_commit"], env["torch"], env["bnlib"], env["processor"], env["cpu_capability"]):
        assert str(fact) in text
    assert f"fingerprint {env['data']['fingerprint']}" in text  # a copy the project does not know by name
    assert f"{(vgg.wall_time_s + dln.wall_time_s) / 3600:.2f} hours of training" in text
    table = provenance.listing(provenance.Evidence(runs, []))
    assert list(table["from"]) == ["published", "published"] and table["record"].str.contains("runs/").all()


def test_a_known_data_copy_is_named():
    jpeg = next(iter(provenance.KNOWN_COPIES))
    assert "JPEG re-encoding" in provenance.data_copy({"fingerprint": jpeg, "kind": "image-tar"})
    assert "canonical CIFAR-10" in provenance.data_copy({"fingerprint": "0" * 16, "kind": "cifar-archive"})


# ----------------------------------------------------------------------------- verify


def test_verify_retrains_a_published_run_and_finds_it_bit_identical(published_store, module_data):
    for config, probes in ((VGG, PROBES), (DLN, [])):
        whole = store.compare(Job(config, tuple(probes), config.model))
        prefix = store.compare(Job(config, tuple(probes), config.model), steps=6)
        assert (whole.outcome, prefix.outcome) == ("bit-identical", "bit-identical"), (whole, prefix)
        assert whole.largest == 0 and prefix.steps == 6


def test_verify_says_when_the_data_copy_differs(published_store, tmp_path, monkeypatch):
    from conftest import fake_cifar, write_image_tar

    other = write_image_tar(tmp_path / "other.tar.gz", fake_cifar(seed=1))
    monkeypatch.setenv("BNLIB_DATA", str(other))
    result = store.compare(Job(VGG, tuple(PROBES), "vgg"), steps=6)
    assert result.outcome == "cannot compare" and "is not the one the record was trained on" in result.detail
    assert store.compare(Job(DLN, (), "dln"), steps=6).outcome == "bit-identical"  # needs no data set


def test_verify_finds_a_changed_run(published_store, module_data):
    shelf, vgg, _ = published_store
    folder = shelf / "runs" / vgg.path.name
    metrics = dict(np.load(folder / "metrics.npz"))
    metrics["train_loss"] = metrics["train_loss"] + 0.5  # a record that is not what its config trains
    np.savez_compressed(folder / "metrics.npz", **metrics)
    meta = bnlib.storage.read_json(folder / "record.json")
    meta["files"]["metrics.npz"] = bnlib.storage.file_sha256(folder / "metrics.npz")
    bnlib.storage.write_json(folder / "record.json", meta)
    result = store.compare(Job(VGG, tuple(PROBES), "vgg"))
    assert result.outcome == "differs" and result.largest == pytest.approx(0.5, rel=1e-3)


# ----------------------------------------------------------------------------- the commands


def book_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`python -m bnlib.book ARGS` in this process: its exit status, stdout and stderr."""
    from bnlib.book.__main__ import main

    return run_cli(capsys, *args, entry=main)


def test_train_publish_and_verify_a_chapter_through_the_commands(cifar_tar, tmp_path, monkeypatch, capsys):
    from bnlib.book.chapters import ch06_theory

    monkeypatch.setenv("BNLIB_STORE", str(tmp_path / "store"))
    code, out, err = book_cli(capsys, "--scale", "smoke", "train", "--chapter", "06", "--workers", "1")
    assert code == 0 and "This will train 2 runs at the smoke scale" in out, out + err
    code, out, err = book_cli(capsys, "--scale", "smoke", "train", "--chapter", "06")
    assert code == 0 and "will train" not in out  # resumable: what is in the cache stays
    code, out, err = book_cli(capsys, "--scale", "smoke", "publish", "--chapter", "06")
    assert code == 0 and "published 2 new runs" in out, out + err
    code, out, _ = book_cli(capsys, "--scale", "smoke", "publish", "--chapter", "06")
    assert "published 0 new runs" in out  # what is published stays published
    code, out, err = book_cli(
        capsys, "--scale", "smoke", "results", "--chapter", "06", "--csv", str(tmp_path / "r.csv")
    )
    claims = pd.read_csv(tmp_path / "r.csv")
    assert code == 0 and list(claims["claim"]) == list(ch06_theory.CLAIMS), out + err
    assert all(f"| {ch06_theory.CHAPTER.notebook} | {key} |" in out for key in ch06_theory.CLAIMS), out
    code, out, err = book_cli(capsys, "--scale", "smoke", "verify", "--chapter", "06", "--steps", "6")
    assert code == 0 and out.count("bit-identical") == 2, out + err
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.delenv("BNLIB_DATA")
    assert store.unpublished(SMOKE_BOOK, (ch06_theory.CHAPTER,)) == []  # read back without the data set
    code, out, err = book_cli(capsys, "--scale", "smoke", "train", "--chapter", "06", "--missing")
    assert code == 0 and "will train" not in out  # the store holds them: nothing to train
    monkeypatch.setenv("BNLIB_DATA", str(cifar_tar))
    code, out, err = book_cli(capsys, "--scale", "smoke", "train", "--chapter", "06")
    assert code == 0 and "This will train 2 runs" in out, out + err  # your own, whatever the store holds
    assert store.unpublished(SMOKE_BOOK, (ch06_theory.CHAPTER,)) == []
    assert {r.origin for r in map(stored_record, [VGG, DLN])} == {"cache"}  # yours come first now


def test_the_commands_refuse_bad_input_in_one_line(capsys):
    for args, words in (
        (("train", "--chapter", "99"), "no chapter '99'"),
        (("train", "--workers", "0"), "--workers must be at least 1"),
        (("verify", "--steps", "0"), "--steps must be at least 1"),
        (("--scale", "smoke", "verify", "--run", "vgg-nothing"), "no published run is named vgg-nothing"),
        (("--scale", "smoke", "results", "--chapter", "06"), "2 runs these claims read are in neither"),
    ):
        code, out, err = book_cli(capsys, *args)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (args, out, err)


def test_a_page_executes_from_the_store_without_data(cifar_tar, tmp_path, monkeypatch):
    """Chapter 06 (its runs, a trained network's weights and tables computed from data) executed
    once with data, published, then executed again with a fresh cache, the store and no data set."""
    import nbformat

    from bnlib.book import build, template
    from bnlib.book.chapters import ch06_theory

    page = template.NOTEBOOKS / f"{ch06_theory.CHAPTER.notebook}.ipynb"
    monkeypatch.setenv("BNLIB_SCALE", "smoke")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    store.train_book(SMOKE_BOOK, (ch06_theory.CHAPTER,), workers=1)  # with every chapter's probes, as published
    build.run_notebook(nbformat.read(page, as_version=4), page.parent, hang_after_s=120)  # computes its tables
    published_now = store.publish(SMOKE_BOOK, (ch06_theory.CHAPTER,), tmp_path / "store")
    assert (published_now.runs, published_now.tables, published_now.missing) == (2, 2, [])
    monkeypatch.setenv("BNLIB_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.delenv("BNLIB_DATA")
    nb = nbformat.read(page, as_version=4)
    build.run_notebook(nb, page.parent, hang_after_s=120)
    last = nb.cells[-1].outputs[0]["data"]["text/html"]
    assert "This page reads 2 training runs: 2 from the book&#x27;s published run store" in last
    assert "2 published with the runs" in last  # its tables computed from data, read back
    assert not (tmp_path / "fresh-cache" / "data").exists()  # no data set was looked for
