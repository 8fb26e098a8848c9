"""Every option checked before any work, through the CLI and the Python API (one line, exit 2,
nothing written); a killed sweep that leaves no process running; repairs reported in one plain line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import command_line, run_cli

import bnlib
from bnlib import RunConfig, experiment, load_or_run
from bnlib.errors import CacheError, ConfigError
from bnlib.records import record_key, runs_dir
from bnlib.train import RunOptions

NO_GPU = not torch.cuda.is_available()


def one_line(text: str) -> bool:
    return text.count("\n") == 1 and text.endswith("\n")


# ----------------------------------------------------------------------------- options, on every entry point


@pytest.mark.parametrize(
    "args,message",
    [
        (["sweep", "vgg-bn-lr0.1", "--threads", "0"], "argument --threads: 0 is less than 1; give at least 1"),
        (["sweep", "vgg-bn-lr0.1", "--workers", "0"], "argument --workers: 0 is less than 1; give at least 1"),
        (["sweep", "vgg-bn-lr0.1", "--workers", "two"], "argument --workers: 'two' is not a whole number"),
        (["run", "vgg-bn-lr0.1", "--device", "tpu"], "unknown device 'tpu'; use cpu, or cuda on a machine with a GPU"),
        (["run", "vgg-bn-lr0.1", "--device", "mps"], "bnlib runs on cpu or cuda, not 'mps'"),
        pytest.param(
            ["run", "vgg-bn-lr0.1", "--device", "cuda"],
            "device 'cuda' was asked for but no GPU is visible here; use cpu",
            marks=pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU"),
        ),
    ],
)
def test_bad_options_on_the_command_line(capsys, cifar_tar, isolated_cache, args, message):
    code, out, err = run_cli(capsys, *args, "--scale", "smoke")
    assert code == 2 and message in err and one_line(err), err
    assert out == ""  # nothing printed before the check: not even the plan
    assert not isolated_cache.exists()  # nothing written: no decoded data, no runs, no lock


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: RunOptions(device="tpu"), "unknown device 'tpu'"),
        (lambda: RunOptions(threads=0), "threads must be at least 1, not 0"),
        (lambda: RunOptions(threads=1.5), "threads must be a whole number of CPU threads"),
        (lambda: RunOptions(progress="yes"), "progress must be True, False or None"),
        (lambda: bnlib.sweep([experiment("vgg-bn-lr0.1", "smoke")], threads=0), "threads must be a whole number"),
        (lambda: bnlib.sweep([experiment("vgg-bn-lr0.1", "smoke")], workers=0), "workers must be a whole number"),
        pytest.param(
            lambda: RunOptions(device="cuda"),
            "no GPU is visible here",
            marks=pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU"),
        ),
    ],
)
def test_bad_options_through_the_api(cifar_tar, isolated_cache, make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)
    assert not isolated_cache.exists()


def test_an_option_changed_after_it_was_made_is_checked_before_any_work(cifar_tar, isolated_cache):
    options = RunOptions()
    options.threads = 0
    with pytest.raises(ConfigError, match="threads must be at least 1"):
        load_or_run(experiment("vgg-bn-lr0.1", "smoke"), options=options)
    assert not isolated_cache.exists()


def test_a_cache_in_a_virtual_file_system(capsys, cifar_tar, monkeypatch):
    monkeypatch.setenv("BNLIB_CACHE", "/proc")
    code, out, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke")
    assert code == 2 and one_line(err) and out == ""
    assert "the cache /proc (BNLIB_CACHE) cannot be written: /proc is a virtual file system" in err
    with pytest.raises(CacheError, match="is a virtual file system"):
        load_or_run(experiment("vgg-bn-lr0.1", "smoke"))


def test_a_text_file_named_like_an_archive(capsys, tmp_path, isolated_cache):
    text = tmp_path / "cifar.tar.gz"
    text.write_text("these are my notes, not a data set\n")
    code, out, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--data", str(text))
    assert code == 2 and one_line(err) and out == ""
    assert f"data path {text} is not a tar archive (gzip, bzip2, xz or plain): it starts with b'these are my'" in err
    assert "ReadError" not in err and len(err) < 300
    assert not isolated_cache.exists()


def test_a_sweep_with_bad_data_says_so_before_ray_starts(tmp_path, isolated_cache):
    text = tmp_path / "cifar.tar.gz"
    text.write_text("not an archive\n")
    done = subprocess.run(
        [sys.executable, "-m", "bnlib", "sweep", "vgg-bn-lr0.1", "--scale", "smoke", "--data", str(text), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and one_line(done.stderr) and "is not a tar archive" in done.stderr
    assert "Token authentication" not in done.stderr and done.stdout == ""


def test_a_benchmark_with_bad_data_says_so_in_one_line(tmp_path, isolated_cache):
    """The benchmark scripts are an entry point too: bad input is bnlib's one line, not a traceback."""
    done = subprocess.run(
        [sys.executable, str(Path(bnlib.__file__).parents[1] / "benchmarks" / "regimes.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"BNLIB_DATA": str(tmp_path / "nowhere")},
    )
    assert done.returncode == 2 and one_line(done.stderr) and done.stderr.startswith("bnlib: error: data path")
    assert "Traceback" not in done.stderr and done.stdout == "" and not isolated_cache.exists()


# ----------------------------------------------------------------------------- repairs in one plain line

DLN = RunConfig(model="dln", norm="batch", lr=1e-6, steps=30, dln_depth=6, dln_samples=50)


def test_a_damaged_checkpoint_is_one_line_that_never_advises_unsafe_loading(capsys, isolated_cache):
    folder = runs_dir() / record_key(DLN)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"\x80\x02 half a checkpoint")
    record = load_or_run(DLN)
    err = capsys.readouterr().err
    assert record.status == "finished"
    assert err == f"bnlib: warning: checkpoint {folder / 'checkpoint.pt'} is damaged; the run restarts from step 0\n"
    assert "weights_only" not in err


def test_the_cli_reports_a_damaged_checkpoint_in_one_line(capsys, isolated_cache):
    config = experiment("dln-bn-lr1e-6", "smoke")
    folder = runs_dir() / record_key(config)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a zip")
    code, _, err = run_cli(capsys, "run", "dln-bn-lr1e-6", "--scale", "smoke", "--quiet")
    assert code == 0 and one_line(err) and "is damaged; the run restarts from step 0" in err


def test_show_says_a_damaged_record_is_damaged(capsys, isolated_cache):
    config = experiment("dln-bn-lr1e-6", "smoke")
    record = load_or_run(config)
    (record.path / "metrics.npz").write_bytes(b"garbage")
    code, out, err = run_cli(capsys, "show", "dln-bn-lr1e-6", "--scale", "smoke")
    assert code == 0 and err == ""
    assert out.splitlines()[-1] == (
        "damaged (metrics.npz does not match its checksum); it will be recomputed when it next runs"
    )
    assert "not run yet" not in out


# ----------------------------------------------------------------------------- a killed sweep

_API_SWEEP = """
import bnlib
configs = [bnlib.experiment("vgg-bn-lr0.1", "smoke", seed=s, steps=100_000) for s in (0, 1)]
bnlib.sweep(configs, progress=False)
"""


def _family(pid: int) -> dict[int, float]:
    """PID -> start time of every descendant of `pid` but bnlib's own watchdog."""
    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "bnlib.reaper" not in " ".join(child.cmdline()):
                found[child.pid] = child.create_time()
        except psutil.Error:
            continue
    return found


def _running(family: dict[int, float]) -> list[int]:
    alive = []
    for pid, started in family.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            continue
    return alive


@pytest.mark.parametrize("entry", ["cli", "api"])
def test_a_killed_sweep_leaves_no_process_running(cifar_tar, isolated_cache, entry):
    command = (
        [sys.executable, "-m", "bnlib", "sweep", "vgg-bn-lr0.1", "--scale", "smoke", "--steps", "100000",
         "--seeds", "0,1", "--quiet"]
        if entry == "cli"
        else [sys.executable, "-c", _API_SWEEP]
    )  # fmt: skip
    # a checkpoint a second, so that the workers are seen training soon after they start
    env = os.environ | {"BNLIB_CHECKPOINT_S": "1"}
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline, family = time.monotonic() + 120, {}
        while time.monotonic() < deadline:  # until Ray's workers are training the runs
            family = _family(driver.pid)
            names = " ".join(command_line(p) for p in _running(family))
            if "raylet" in names and list(Path(isolated_cache / "runs").glob("*/checkpoint.pt")):
                break
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            raise AssertionError("the sweep's workers never started")
        family = _family(driver.pid)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 30
        while _running(family) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [command[:80] for p in _running(family) if (command := command_line(p))]
        assert not left, f"{len(left)} of the {len(family)} processes the sweep started still run: {left}"
    finally:
        if driver.poll() is None:
            driver.kill()
