"""The command line: runs, lists, shows; bad input gives one line, a non-zero exit and no writes."""

import os

import pytest
from conftest import run_cli

import bnlib.data


def test_list_names_the_book_experiments(capsys):
    code, out, _ = run_cli(capsys, "list", "--scale", "cpu")
    assert code == 0
    assert "vgg-bn-lr0.1" in out and "dln-std-lr1e-7" in out and "vgg-noisybn-lr0.1" in out


def test_run_then_show(capsys, cifar_tar):
    code, out, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")
    assert code == 0, err
    record_line = [line for line in out.splitlines() if line.startswith("record: ")]
    assert record_line and os.path.exists(record_line[0].removeprefix("record: ") + "/record.json")
    assert "finished" in out and "test_acc=" in out
    code, out, _ = run_cli(capsys, "show", "vgg-bn-lr0.1", "--scale", "smoke")
    assert code == 0 and '"status": "finished"' in out


def test_run_with_seed_and_overrides(capsys):
    code, out, err = run_cli(
        capsys, "run", "dln-bn-lr1e-6", "--scale", "smoke", "--seed", "3", "--steps", "5", "--quiet"
    )
    assert code == 0, err
    assert "steps=5" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "vgg-bn-lr0.3", "--scale", "smoke"], "unknown experiment 'vgg-bn-lr0.3'"),
        (["run", "vgg-bn-lr0.1", "--norm", "grouped", "--scale", "smoke"], "unknown normalization 'grouped'"),
        (["run", "vgg-bn-lr0.1", "--scale", "huge"], "invalid choice: 'huge'"),
        (["run", "vgg-bn-lr0.1", "--lr", "0", "--scale", "smoke"], "learning rate must be positive"),
        (["run", "vgg-bn-lr0.1", "--lr", "-0.1", "--scale", "smoke"], "learning rate must be positive"),
        (["run", "vgg-bn-lr0.1", "--steps", "0", "--scale", "smoke"], "steps must be a positive integer"),
        (["run", "vgg-bn-lr0.1", "--steps", "-5", "--scale", "smoke"], "steps must be a positive integer"),
        (["run", "vgg-bn-lr0.1", "--data", "/no/such/place", "--scale", "smoke"], "does not exist"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments(capsys, isolated_cache, args, message):
    code, _, err = run_cli(capsys, *args)
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1
    assert not isolated_cache.exists()


def test_bad_scale_from_the_environment(capsys, isolated_cache, monkeypatch):
    monkeypatch.setenv("BNLIB_SCALE", "huge")
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1")
    assert code == 2 and "unknown scale 'huge'" in err and len(err.strip().splitlines()) == 1


def test_unreadable_data_path(capsys, isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(bnlib.data.os, "access", lambda path, mode: False)
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--data", str(tmp_path), "--scale", "smoke")
    assert code == 2 and "cannot be read" in err
    assert not isolated_cache.exists()


def test_malformed_tarball(capsys, isolated_cache, tmp_path):
    bad = tmp_path / "cifar.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + os.urandom(5000))  # a gzip header, then garbage
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--data", str(bad), "--scale", "smoke", "--quiet")
    assert code == 2 and "is damaged" in err and len(err.strip().splitlines()) == 1
    assert not isolated_cache.exists()
