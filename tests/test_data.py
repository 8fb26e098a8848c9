"""The three CIFAR-10 sources, the decoded cache, batch serving, augmentation and DLN data."""

import os
import stat
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_cifar_python, write_image_folder, write_image_tar

import bnlib.data as data
from bnlib.data import BatchSampler, ImageSplit, balanced_subset, dln_data, load_cifar10, resolve_location
from bnlib.errors import DataError


def assert_same(loaded: data.Cifar10, arrays: dict) -> None:
    for name, expected in arrays.items():
        np.testing.assert_array_equal(getattr(loaded, name), expected)


def test_canonical_python_folder(tmp_path, cifar_arrays):
    folder = write_cifar_python(tmp_path / "cifar-10-batches-py", cifar_arrays)
    for location in (folder, tmp_path):  # the batches folder itself, or the folder holding it
        loaded = load_cifar10(location)
        assert_same(loaded, cifar_arrays)
        assert loaded.source["kind"] == "cifar-python" and loaded.source["path"] == str(folder.resolve())


def test_image_folder_tree_and_its_parent(tmp_path, cifar_arrays):
    root = write_image_folder(tmp_path / "cifar10-png", cifar_arrays)
    for location in (root, tmp_path):
        loaded = load_cifar10(location)
        assert_same(loaded, cifar_arrays)
        assert loaded.source["kind"] == "image-folder"


def test_image_tarball_via_environment_variable(cifar_tar, cifar_arrays):
    loaded = load_cifar10()
    assert_same(loaded, cifar_arrays)
    assert loaded.source["kind"] == "image-tar"
    assert loaded.source["n_train"] == 200 and len(loaded.source["fingerprint"]) == 16
    np.testing.assert_allclose(loaded.mean, cifar_arrays["train_x"].reshape(-1, 3).mean(0) / 255, atol=1e-5)


def test_torchvision_download_is_the_default(tmp_path, cifar_arrays, monkeypatch):
    calls = []

    def fake_download(url, root, filename, md5):
        calls.append((url, filename, md5))
        write_cifar_python(Path(root) / "cifar-10-batches-py", cifar_arrays)

    from torchvision.datasets import utils

    monkeypatch.setattr(utils, "download_and_extract_archive", fake_download)
    loaded = load_cifar10()
    assert_same(loaded, cifar_arrays)
    assert loaded.source["kind"] == "torchvision"
    assert calls and calls[0][1] == "cifar-10-python.tar.gz"
    load_cifar10()
    assert len(calls) == 1  # downloaded once


def test_offline_without_data_lists_the_ways(monkeypatch):
    from torchvision.datasets import utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(utils, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as info:
        load_cifar10()
    message = str(info.value)
    assert "\n" not in message
    assert "(a)" in message and "(b) " in message and "(c) " in message and "BNLIB_DATA" in message


def test_decoded_once_then_cached(cifar_tar, cifar_arrays, monkeypatch, isolated_cache):
    load_cifar10()
    assert len(list((isolated_cache / "data").glob("cifar10-*.npz"))) == 1

    def no_decoding(path):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "_read_image_tar", no_decoding)
    assert_same(load_cifar10(), cifar_arrays)


def test_a_changed_archive_replaces_its_old_decoded_copy(cifar_tar, cifar_arrays, isolated_cache, tmp_path):
    other = write_image_tar(tmp_path / "other.tar.gz", cifar_arrays)  # kept: a different path
    load_cifar10(other)
    load_cifar10()
    decoded = isolated_cache / "data"
    before = {p.name for p in decoded.glob("cifar10-*")}
    assert len(before) == 4  # two copies, each its arrays and its sidecar
    changed = {k: v.copy() for k, v in cifar_arrays.items()}
    changed["train_x"][0] = 255 - changed["train_x"][0]
    write_image_tar(cifar_tar, changed)  # the same path, new content
    load_cifar10()
    after = {p.name for p in decoded.glob("cifar10-*")}
    assert len(after) == 4 and len(after - before) == 2  # the old copy of this path is gone, the other stays
    assert_same(load_cifar10(other), cifar_arrays)


def test_damaged_cache_is_rebuilt(cifar_tar, cifar_arrays, isolated_cache):
    load_cifar10()
    (cache_file,) = (isolated_cache / "data").glob("cifar10-*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:1000])
    assert_same(load_cifar10(), cifar_arrays)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", "not a .tar.gz"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no CIFAR-10 in a known layout"),
        (lambda p: (p / "bad.tar.gz").write_bytes(b"x" + os.urandom(2000)) and p / "bad.tar.gz", "not a tar archive"),
        (lambda p: (p / "text.tar.gz").write_text("just text\n") and p / "text.tar.gz", "starts with b'just text"),
    ],
)
def test_bad_locations_fail_with_one_line_and_write_nothing(tmp_path, make, match, isolated_cache):
    with pytest.raises(DataError, match=match) as info:
        load_cifar10(make(tmp_path))
    assert "\n" not in str(info.value)
    assert not isolated_cache.exists()


def test_truncated_tarball(tmp_path, cifar_arrays, isolated_cache):
    good = write_image_tar(tmp_path / "good.tar.gz", cifar_arrays)
    bad = tmp_path / "truncated.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"is damaged .*download it again"):
        load_cifar10(bad)
    assert not isolated_cache.exists()


def test_tarball_with_wrong_classes(tmp_path, cifar_arrays):
    few = {k: v[: len(v) // 2] for k, v in cifar_arrays.items()}  # only classes 0..4
    with pytest.raises(DataError, match="expected the same 10 class folders"):
        load_cifar10(write_image_tar(tmp_path / "few.tar.gz", few))


def test_unreadable_location(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    if os.access(folder, os.R_OK):  # root reads anything: simulate what an ordinary user sees
        monkeypatch.setattr(data.os, "access", lambda path, mode: False)
    try:
        with pytest.raises(DataError, match="cannot be read"):
            resolve_location(folder)
    finally:
        folder.chmod(stat.S_IRWXU)


def test_balanced_subset():
    labels = np.repeat(np.arange(10), 50)
    idx = balanced_subset(labels, 7, seed=1)
    assert np.bincount(labels[idx]).tolist() == [7] * 10
    np.testing.assert_array_equal(idx, balanced_subset(labels, 7, seed=1))
    assert not np.array_equal(idx, balanced_subset(labels, 7, seed=2))
    with pytest.raises(DataError, match="only 50"):
        balanced_subset(labels, 51, seed=0)


def _split(arrays: dict) -> ImageSplit:
    return ImageSplit(arrays["train_x"], arrays["train_y"], np.full(3, 0.5), np.full(3, 0.25), torch.device("cpu"))


def test_sampler_is_an_epoch_without_replacement_and_standardises(cifar_arrays):
    split = _split(cifar_arrays)
    sampler = BatchSampler(split, batch_size=20, seed=0)
    seen = []
    for _ in range(10):  # 200 examples = 10 batches of 20 = one epoch
        x, _ = sampler.next()
        assert x.shape == (20, 3, 32, 32) and x.dtype == torch.float32
        seen.append(sampler.order[sampler.cursor - 20 : sampler.cursor])
    assert sorted(torch.cat(seen).tolist()) == list(range(200))
    first = split.images[seen[0][0]].float()
    torch.testing.assert_close(split.standardise(split.images[seen[0][:1]])[0], (first / 255 - 0.5) / 0.25)


def test_sampler_is_deterministic_and_resumable(cifar_arrays):
    split = _split(cifar_arrays)
    a = BatchSampler(split, batch_size=16, seed=5, augment=True)
    b = BatchSampler(split, batch_size=16, seed=5, augment=True)
    for _ in range(5):
        a.next()
        b.next()
    state = a.state_dict()
    expected = [a.next() for _ in range(6)]
    c = BatchSampler(split, batch_size=16, seed=99, augment=True)
    c.load_state_dict(state)
    for (xa, ya), (xc, yc) in zip(expected, [c.next() for _ in range(6)], strict=True):
        assert torch.equal(xa, xc) and torch.equal(ya, yc)
    assert torch.equal(b.next()[0], expected[0][0])


def test_augmentation_is_a_padded_crop_with_optional_flip(cifar_arrays):
    split = _split(cifar_arrays)
    sampler = BatchSampler(split, batch_size=12, seed=0, augment=True)
    images = split.images[:12]
    out = sampler._crop_and_flip(images)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    shifts = set()
    for i in range(12):
        candidates = [
            (dy, dx, f)
            for dy in range(9)
            for dx in range(9)
            for f in (False, True)
            if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(padded[i, :, dy : dy + 32, dx : dx + 32]))
        ]
        assert candidates, f"image {i} is not a crop of the padded original"
        shifts.add(candidates[0])
    assert len(shifts) > 1


def test_dln_data_is_a_seeded_linear_map():
    x, y, a = dln_data(10, 1000, seed=0)
    assert x.shape == (1000, 10) and a.shape == (10, 10)
    torch.testing.assert_close(y, x @ a.T)
    assert abs(x.std().item() - 1) < 0.05 and abs(a.std().item() - 1) < 0.3
    assert torch.equal(dln_data(10, 1000, seed=0)[2], a) and not torch.equal(dln_data(10, 1000, seed=1)[2], a)
