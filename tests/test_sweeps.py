"""Sweeps on Ray, on this machine with 2 local workers: the same records as runs one after another, a
rerun trains nothing, a killed worker is retried and resumes, two sweeps never train a run twice,
and bad input stops in one line before anything runs."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import command_line, run_cli

import bnlib.storage
from bnlib import Job, RunConfig, sweep
from bnlib.cli import main as cli
from bnlib.errors import BnlibError, CacheError, ConfigError
from bnlib.records import PER_RUN, space_needed, stored_record
from bnlib.sweeps import Outcome, SweepResult, grid
from bnlib.train import RunOptions

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray with 2 CPUs for the module (the sweeps reuse it), shut down afterwards."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def smoke_grid(steps: int = 24) -> list[RunConfig]:
    return grid(["vgg-bn-lr0.1", "vgg-std-lr0.1"], "smoke", seeds=(0, 1), steps=steps)


def assert_same_runs(configs: list[RunConfig], cache_a: Path, cache_b: Path, monkeypatch) -> None:
    """The records of `configs` in two caches hold the same metrics and weights, array for array."""
    for config in configs:
        with monkeypatch.context() as m:
            m.setenv("BNLIB_CACHE", str(cache_a))
            a = stored_record(config)
            m.setenv("BNLIB_CACHE", str(cache_b))
            b = stored_record(config)
        assert a is not None and b is not None
        for name in a.metrics:
            np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
        wa, wb = (torch.load(r.path / "model.pt", weights_only=True) for r in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def sequential(configs: list[RunConfig], cache: Path, monkeypatch) -> None:
    """The same configs one after another, as sweep does without Ray (one thread each)."""
    with monkeypatch.context() as m:
        m.setenv("BNLIB_CACHE", str(cache))
        m.setitem(sys.modules, "ray", None)  # as if Ray were not installed
        result = sweep(configs, progress=False)
    assert result.backend == "sequential" and [o.state for o in result.outcomes] == ["trained"] * len(configs)


def test_a_sweep_makes_the_records_sequential_runs_make(cifar_tar, isolated_cache, tmp_path, monkeypatch):
    configs = smoke_grid()
    started = time.perf_counter()
    result = sweep(configs, workers=2, progress=False)
    on_ray = time.perf_counter() - started
    assert result.backend == "ray" and [o.state for o in result.outcomes] == ["trained"] * 4
    started = time.perf_counter()
    sequential(configs, tmp_path / "sequential", monkeypatch)
    print(f"4 smoke runs: {on_ray:.1f} s on 2 Ray workers, {time.perf_counter() - started:.1f} s one after another")
    assert_same_runs(configs, isolated_cache, tmp_path / "sequential", monkeypatch)
    again = sweep(configs, progress=False)  # a rerun trains nothing
    assert [o.state for o in again.outcomes] == ["stored"] * 4
    with monkeypatch.context() as m:  # and needs no Ray: a chapter whose runs are stored never starts one
        m.setitem(sys.modules, "ray", None)
        assert [o.state for o in sweep(configs, progress=False).outcomes] == ["stored"] * 4


def test_probes_travel_with_their_jobs_and_a_failure_does_not_stop_the_others(cifar_tar):
    from bnlib.probes import LandscapeProbe

    good = RunConfig(model="dln", norm="batch", lr=1e-6, steps=12, dln_depth=5, dln_samples=20)
    impossible = RunConfig(width=0.0625, train_per_class=20, test_per_class=10, batch_size=500, steps=4)  # > 200 images
    result = sweep([Job(good, (LandscapeProbe(every=4),), "dln"), impossible, good.replace(lr=50.0)], progress=False)
    states = [o.state for o in result.outcomes]
    assert states == ["trained", "failed", "trained"]
    assert "batch size 500 exceeds the 200 training examples" in result.outcomes[1].error
    assert result.outcomes[2].status == "diverged"  # a result, not a failure
    assert "failed: vgg-none-lr0.1-seed0: DataError: batch size 500" in result.summary()
    assert stored_record(good) is not None and len(stored_record(good).probes) == 1


_SWEEP = """
import json, sys
from bnlib import RunConfig, sweep
configs = [RunConfig.from_dict(c) for c in json.loads(sys.argv[1])]
result = sweep(configs, workers=int(sys.argv[2]), progress=False)
print(json.dumps([o.state for o in result.outcomes]))
"""


def ray_workers_running_a_job(driver: int) -> list[int]:
    """The Ray workers of the sweep started by process `driver` that are running a job (its own:
    another sweep may run beside it)."""
    import psutil

    return [p.pid for p in psutil.Process(driver).children(recursive=True) if "ray::run_job" in command_line(p.pid)]


def test_a_killed_worker_is_retried_and_its_run_resumes(cifar_tar, isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "0")
    configs = grid(["vgg-noisybn-lr0.1"], "smoke", seeds=(0, 1), steps=60)
    child = subprocess.Popen(
        [sys.executable, "-c", _SWEEP, json.dumps([c.to_dict() for c in configs]), "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while not list(isolated_cache.glob("runs/*/checkpoint.pt")) or not ray_workers_running_a_job(child.pid):
        assert time.monotonic() < deadline and child.poll() is None, "no worker got to a checkpoint"
        time.sleep(0.05)
    victim = ray_workers_running_a_job(child.pid)[0]
    os.kill(victim, signal.SIGKILL)
    out, _ = child.communicate(timeout=300)
    assert child.returncode == 0 and json.loads(out.strip().splitlines()[-1]) == ["trained", "trained"]
    sequential(configs, tmp_path / "sequential", monkeypatch)
    assert_same_runs(configs, isolated_cache, tmp_path / "sequential", monkeypatch)


def test_two_concurrent_sweeps_train_each_run_once(cifar_tar):
    configs = smoke_grid(steps=60)
    args = [sys.executable, "-c", _SWEEP, json.dumps([c.to_dict() for c in configs]), "1"]
    children = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    states = [json.loads(child.communicate(timeout=300)[0].strip().splitlines()[-1]) for child in children]
    trained = sum(s == "trained" for both in zip(*states, strict=True) for s in both)
    per_config = [sorted(both) for both in zip(*states, strict=True)]
    assert trained == len(configs) and all(s[1] == "trained" and s[0] in ("loaded", "stored") for s in per_config)


# ------------------------------------------------------------------ bad input, before anything runs


def test_an_empty_grid(isolated_cache):
    with pytest.raises(ConfigError, match="the sweep's grid is empty"):
        sweep([])
    assert not isolated_cache.exists()


def test_an_unknown_experiment_in_the_grid(capsys, isolated_cache):
    code, _, err = run_cli(capsys, "sweep", "vgg-bn-lr0.1", "vgg-bn-lr0.3", "--scale", "smoke")
    assert code == 2 and "unknown experiment 'vgg-bn-lr0.3'" in err and len(err.strip().splitlines()) == 1
    assert not isolated_cache.exists()


def test_an_unreachable_address(capsys, isolated_cache):
    started = time.monotonic()
    code, _, err = run_cli(capsys, "sweep", "dln-bn-lr1e-6", "--scale", "smoke", "--address", "127.0.0.1:9")
    assert code == 2 and "no Ray cluster answers at 127.0.0.1:9" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 30 and not isolated_cache.exists()


def test_a_cache_that_is_not_writable(capsys, cifar_tar, isolated_cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(bnlib.storage.tempfile, "mkstemp", refuse)  # root may write anywhere: simulate
    code, _, err = run_cli(capsys, "sweep", "vgg-bn-lr0.1", "--scale", "smoke")
    assert code == 2 and "does not let you create files (permissions)" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(CacheError):
        sweep(smoke_grid(), progress=False)
    assert not isolated_cache.exists()


def test_the_space_check_counts_the_data_once_and_stored_runs_not_at_all(capsys, cifar_tar, monkeypatch):
    configs = grid(["vgg-bn-lr0.1"], "smoke", seeds=range(6), steps=4)
    each_alone = sum(space_needed([config], RunOptions()) for config in configs)  # the data six times
    together = space_needed(configs, RunOptions())
    assert together < each_alone
    real = bnlib.storage.shutil.disk_usage
    free = {"bytes": together + (1 << 20)}  # enough for the sweep, not for the data counted per run
    monkeypatch.setattr(bnlib.storage.shutil, "disk_usage", lambda p: real(p)._replace(free=free["bytes"]))
    args = ("sweep", "vgg-bn-lr0.1", "--scale", "smoke", "--seeds", "0,1,2,3,4,5", "--steps", "4", "--quiet")
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and out.count(" trained ") == 6, err
    free["bytes"] = PER_RUN  # less than one run writes: a sweep of stored runs writes nothing
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and out.count(" stored ") == 6, err
    assert [o.state for o in sweep(configs, progress=False).outcomes] == ["stored"] * 6
    with pytest.raises(CacheError, match="has 0 MB free"):
        sweep(grid(["vgg-bn-lr0.1"], "smoke", seeds=(6,), steps=4), progress=False)


def test_without_ray_the_cli_says_how_to_install_it(capsys, monkeypatch, isolated_cache):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = run_cli(capsys, "sweep", "dln-bn-lr1e-6", "--scale", "smoke")
    assert code == 2 and "Ray is not installed; pip install 'bnlib[sweep]'" in err
    with pytest.raises(BnlibError, match="Ray is not installed"):
        sweep(smoke_grid(), require_ray=True)


def test_the_cli_runs_a_grid(capsys, cifar_tar):
    code = cli(["sweep", "dln-bn-lr1e-6", "--scale", "smoke", "--lr", "1e-6,1e-7", "--seeds", "0,1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "sweep of 4 runs" in out and out.count(" trained ") == 4


def test_a_failed_sweep_raises_one_line_naming_the_first_failure():
    config = RunConfig(model="dln", norm="batch", lr=1e-6, steps=3)
    ok, bad = Job(config, label="fine"), Job(config.replace(seed=1), label="broken")
    result = SweepResult([Outcome(ok, "trained"), Outcome(bad, "failed", error="ValueError: no")], 1.0, "sequential")
    with pytest.raises(BnlibError, match=r"^1 of the book's runs failed; the first: broken: ValueError: no$"):
        result.raise_if_failed("the book's runs")
    SweepResult([Outcome(ok, "trained")], 1.0, "sequential").raise_if_failed("the book's runs")  # nothing failed
