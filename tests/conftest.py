"""Shared fixtures: an isolated cache, tiny fake CIFAR-10 copies in every supported format, and the
run cache every execution of the chapters shares."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes share the machine's cores: one thread each, here and in the processes the
    # tests start (set before torch is imported; more threads than cores make torch spin and crawl).
    os.environ["OMP_NUM_THREADS"] = "1"

import html
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bnlib.data import CIFAR_CLASSES

N_TRAIN_PER_CLASS, N_TEST_PER_CLASS = 20, 10  # the smoke scale uses 20 and 10

# The test files that execute the chapters: each runs whole in one test process, where its module
# fixtures (the smoke book, the Colab pass) are made once; the two share one run cache (`book_env`).
BOOK_FILES = ("tests/test_book.py", "tests/test_colab_pages.py")


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """With pytest-xdist (pyproject's addopts: two processes): each book file as one unit of work,
    sent first (they are the longest), every other test on its own to whichever process is free."""
    from xdist.scheduler import LoadScopeScheduling

    class BookFilesWhole(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::")[0]
            return file if file in BOOK_FILES else nodeid

    return BookFilesWhole(config, log)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache, an empty run store (not the checkout's published one),
    no data location and no progress bars."""
    cache = tmp_path_factory.mktemp("cache") / "bnlib"
    monkeypatch.setenv("BNLIB_CACHE", str(cache))
    monkeypatch.setenv("BNLIB_STORE", str(tmp_path_factory.mktemp("store")))
    monkeypatch.setenv("BNLIB_STORE_URL", "")  # none: and whatever a test sets is undone after it
    monkeypatch.delenv("BNLIB_DATA", raising=False)
    monkeypatch.delenv("BNLIB_SCALE", raising=False)
    monkeypatch.setenv("BNLIB_PROGRESS", "0")
    return cache


def fake_cifar(seed: int = 0) -> dict[str, np.ndarray]:
    """Random 32x32 images whose mean colour depends on the class, so a network can learn them."""
    rng = np.random.default_rng(seed)

    def split(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(10), per_class)
        base = (labels[:, None, None, None] * 25).astype(np.int64)
        images = np.clip(base + rng.integers(-20, 20, (len(labels), 32, 32, 3)), 0, 255).astype(np.uint8)
        return images, labels.astype(np.int64)

    train_x, train_y = split(N_TRAIN_PER_CLASS)
    test_x, test_y = split(N_TEST_PER_CLASS)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def write_cifar_python(folder: Path, data: dict[str, np.ndarray]) -> Path:
    """The canonical python format. It is pickle by design; only this test fixture writes it."""
    folder.mkdir(parents=True)
    chunks = np.array_split(np.arange(len(data["train_y"])), 5)
    batches = {f"data_batch_{i + 1}": idx for i, idx in enumerate(chunks)}
    for name, idx in batches.items():
        _dump_batch(folder / name, data["train_x"][idx], data["train_y"][idx])
    _dump_batch(folder / "test_batch", data["test_x"], data["test_y"])
    return folder


def _dump_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    batch = {b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1), b"labels": labels.tolist()}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _image_files(data: dict[str, np.ndarray]) -> dict[str, bytes]:
    files = {}
    for split in ("train", "test"):
        for i, (image, label) in enumerate(zip(data[f"{split}_x"], data[f"{split}_y"], strict=True)):
            files[f"{split}/{CIFAR_CLASSES[label]}/{i:04d}.png"] = _png(image)
    return files


def write_image_folder(root: Path, data: dict[str, np.ndarray]) -> Path:
    for name, blob in _image_files(data).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(blob)
    return root


def write_image_tar(path: Path, data: dict[str, np.ndarray], prefix: str = "cifar10-png/") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in _image_files(data).items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture
def cifar_arrays() -> dict[str, np.ndarray]:
    return fake_cifar()


@pytest.fixture
def cifar_tar(tmp_path: Path, cifar_arrays: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake image-folder tarball, also set as BNLIB_DATA."""
    path = write_image_tar(tmp_path / "cifar.tar.gz", cifar_arrays)
    monkeypatch.setenv("BNLIB_DATA", str(path))
    return path


def run_cli(capsys, *args: str, entry=None) -> tuple[int, str, str]:
    """`python -m bnlib ARGS` (or another command's `entry`, its main) in this process: its exit
    status, stdout and stderr."""
    from bnlib.cli import main

    try:
        code = (entry or main)(list(args))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def count_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the step of every training step this process takes."""
    import bnlib.train

    steps: list[int] = []
    real = bnlib.train.Run.train_step

    def counted(self, *args, **kwargs):
        steps.append(self.step)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(bnlib.train.Run, "train_step", counted)
    return steps


def assert_same_arrays(a, b) -> None:
    """Two run records hold the same metrics and probe outputs, bit for bit."""
    assert a.status == b.status and a.final == b.final
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
    assert a.probes.keys() == b.probes.keys()
    for key in a.probes:
        for name in a.probes[key]:
            np.testing.assert_array_equal(a.probes[key][name], b.probes[key][name])


def command_line(pid: int) -> str:
    """A process's command line ('' once it has ended or is a zombie: it may end at any moment)."""
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


@pytest.fixture(scope="session")
def book_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Fake data, one run cache and one folder of findings shared by every test file that executes
    the chapters (the smoke book, and the pages with Colab's ipywidgets 7), as in a real build: each
    run trains once and each claim is measured once, by whichever file asks first; with two test
    processes, by either (one writer per run: the other waits for its record)."""
    from bnlib.book.template import ENV_FINDINGS

    own = tmp_path_factory.mktemp("book-data")
    data = write_image_tar(own / "cifar.tar.gz", fake_cifar())  # the same images in every process
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session = session.parent  # the test session's folder, above each process's own
    return {
        "BNLIB_DATA": str(data),
        "BNLIB_CACHE": str(session / "book-runs"),
        "BNLIB_STORE": str(session / "book-store"),  # empty: the smoke book trains its runs
        "BNLIB_SCALE": "smoke",
        # one folder of findings for both, as the pages of one build share theirs (Session.findings):
        # ipywidgets changes how a page shows its claims, not what they measure
        ENV_FINDINGS: str(session / "book-findings"),
    }


def claims_not_shown(shown: str, claims: list) -> list[str]:
    """The claims (bnlib.book.claims.Claim) whose words a page's HTML or outputs do not show."""
    return [claim.claim for claim in claims if html.escape(claim.claim) not in shown]
