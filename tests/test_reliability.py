"""What bnlib guarantees a user, tested through the entry points a user takes (load_or_run, the CLI,
a notebook): a killed run resumes bit-identical, one process trains a run while another waits,
cache and data problems stop before any work with one line, bad values are refused, records are
validated strict JSON, and the book's hang detector watches for progress, not for time."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from conftest import assert_same_arrays, count_steps, run_cli, write_image_tar

import bnlib.data
import bnlib.records as records
import bnlib.storage
import bnlib.train
from bnlib import RunConfig, experiment, load_or_run
from bnlib.errors import BnlibError, CacheError, ConfigError, DataError
from bnlib.probes.hook import FunctionProbe

ROOT = Path(__file__).resolve().parents[1]
SMOKE_STEPS = 100


def wait_for(pattern: str, root: Path, child: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
        assert child.poll() is None, f"the child ended (exit {child.returncode}) before {pattern} appeared"
        time.sleep(0.02)
    raise AssertionError(f"{pattern} did not appear under {root}")


def kill_at_random_moment(child: subprocess.Popen, cache: Path, pid: int | None = None) -> int:
    """SIGKILL a child (or the process `pid`) at a random moment after its first checkpoint; the
    step its last checkpoint holds."""
    checkpoint = wait_for("runs/*/checkpoint.pt", cache, child)
    time.sleep(random.uniform(0, 0.5))
    assert child.poll() is None, "the child finished before it could be killed"
    os.kill(pid or child.pid, signal.SIGKILL)
    child.wait()
    return int(torch.load(checkpoint, weights_only=True)["step"])


def assert_same_records(a, b) -> None:
    assert_same_arrays(a, b)
    weights_a = torch.load(a.path / "model.pt", weights_only=True)
    weights_b = torch.load(b.path / "model.pt", weights_only=True)
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def uninterrupted(config: RunConfig, probes, tmp_path: Path, monkeypatch):
    """The same run, never interrupted, in a cache of its own."""
    with monkeypatch.context() as m:
        m.setenv("BNLIB_CACHE", str(tmp_path / "uninterrupted"))
        return load_or_run(config, probes)


# ------------------------------------------------------------------ 1. a killed run resumes


_LOAD_OR_RUN_CHILD = """
import json, sys, time
from bnlib import RunConfig, load_or_run
from bnlib.probes.hook import FunctionProbe
slow = FunctionProbe("slow", 1, lambda ctx: (time.sleep(0.01), {"step": ctx.step})[1])
load_or_run(RunConfig.from_dict(json.loads(sys.argv[1])), [slow])
"""


def test_load_or_run_resumes_a_killed_run_bit_identical(cifar_tar, isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "0")
    config = experiment("vgg-noisybn-lr0.1", "smoke", steps=SMOKE_STEPS, augment=True)
    stops = []
    for _ in range(2):  # killed twice, at random moments
        child = subprocess.Popen([sys.executable, "-c", _LOAD_OR_RUN_CHILD, json.dumps(config.to_dict())])
        stops.append(kill_at_random_moment(child, isolated_cache))
    assert 0 < stops[0] <= stops[1] < SMOKE_STEPS
    slow = FunctionProbe("slow", 1, lambda ctx: {"step": ctx.step})
    steps = count_steps(monkeypatch)
    resumed = load_or_run(config, [slow])
    assert resumed.trained and steps[0] == stops[1] and len(steps) == SMOKE_STEPS - stops[1]
    assert not (resumed.path / "checkpoint.pt").exists()
    assert_same_records(resumed, uninterrupted(config, [slow], tmp_path, monkeypatch))


def test_the_cli_resumes_a_killed_run_bit_identical(cifar_tar, isolated_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "0")
    args = ["run", "vgg-bn-lr0.1", "--scale", "smoke", "--steps", str(SMOKE_STEPS), "--quiet"]
    child = subprocess.Popen([sys.executable, "-m", "bnlib", *args], stdout=subprocess.DEVNULL)
    stopped = kill_at_random_moment(child, isolated_cache)
    steps = count_steps(monkeypatch)
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "trained" in out and steps[0] == stopped and len(steps) == SMOKE_STEPS - stopped
    resumed = load_or_run(experiment("vgg-bn-lr0.1", "smoke", steps=SMOKE_STEPS))
    assert_same_records(resumed, uninterrupted(resumed.config, [], tmp_path, monkeypatch))


def test_a_notebook_resumes_a_killed_run(cifar_tar, isolated_cache, tmp_path, monkeypatch):
    from bnlib.book import build

    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "0")
    log, pid_file = tmp_path / "steps.log", tmp_path / "kernel.pid"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(f"import os; open({str(pid_file)!r}, 'w').write(str(os.getpid()))"),
            nbformat.v4.new_code_cell(
                textwrap.dedent(f"""
                import time
                from bnlib import experiment, load_or_run
                from bnlib.probes.hook import FunctionProbe
                def log(ctx):
                    with open({str(log)!r}, "a") as f:
                        f.write(f"{{ctx.step}}\\n")
                    time.sleep(0.01)
                    return {{}}
                config = experiment("vgg-bn-lr0.1", "smoke", steps={SMOKE_STEPS})
                record = load_or_run(config, [FunctionProbe("log", 1, log)])
                """)
            ),
        ]
    )
    path = tmp_path / "resume.ipynb"
    nbformat.write(nb, path)
    code = (
        "import nbformat; from bnlib.book.build import run_notebook; "
        f"run_notebook(nbformat.read({str(path)!r}, 4), {str(tmp_path)!r}, 60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    wait_for("kernel.pid", tmp_path, child)
    stopped = kill_at_random_moment(child, isolated_cache, pid=int(pid_file.read_text()))
    first_session = len(log.read_text().split())
    build.run_notebook(nbformat.read(path, 4), tmp_path, 60)
    second_session = [int(s) for s in log.read_text().split()[first_session:]]
    assert second_session[0] == stopped and second_session[-1] == SMOKE_STEPS - 1


# ------------------------------------------------------------------ 2. one writer per run


def test_two_cli_processes_train_a_run_once(cifar_tar, isolated_cache):
    args = [sys.executable, "-m", "bnlib", "run", "vgg-bn-lr0.1", "--scale", "smoke", "--steps", "200", "--quiet"]
    children = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    said = sorted("trained:" in out for out, _ in outputs)
    assert said == [False, True], outputs  # one trained it, the other loaded its record
    waited = [err for out, err in outputs if "trained:" not in out]
    assert "waiting for its record" in waited[0]
    assert len(list((isolated_cache / "runs").glob("*/record.json"))) == 1


_TWO_WRITERS = """
import json, sys
from bnlib import RunConfig, load_or_run
record = load_or_run(RunConfig.from_dict(json.loads(sys.argv[1])))
print("TRAINED" if record.trained else "LOADED")
"""


def test_two_load_or_run_processes_train_a_run_once(isolated_cache):
    config = RunConfig(model="dln", norm="batch", lr=1e-6, steps=3000, dln_depth=10, dln_samples=200)
    args = [sys.executable, "-c", _TWO_WRITERS, json.dumps(config.to_dict())]
    children = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    said = sorted(child.communicate(timeout=300)[0].strip() for child in children)
    assert said == ["LOADED", "TRAINED"]


# ------------------------------------------------------------------ 3. cache problems, first and in one line


def test_a_cache_that_is_a_file(capsys, cifar_tar, tmp_path, monkeypatch):
    plain = tmp_path / "not-a-folder"
    plain.write_text("x")
    monkeypatch.setenv("BNLIB_CACHE", str(plain / "bnlib"))
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")
    assert code == 2 and "which is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(CacheError, match="not a folder"):
        load_or_run(experiment("dln-bn-lr1e-6", "smoke"))
    assert plain.read_text() == "x"


def test_a_read_only_cache(capsys, cifar_tar, isolated_cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(bnlib.storage.tempfile, "mkstemp", refuse)  # root may write anywhere: simulate
    decoded = []
    monkeypatch.setattr(bnlib.data, "_read_image_tar", lambda path: decoded.append(path))
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")
    assert code == 2 and "does not let you create files (permissions)" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(CacheError, match="cannot be written"):
        load_or_run(experiment("vgg-bn-lr0.1", "smoke"))
    assert not decoded and not isolated_cache.exists()  # found before decoding, nothing written


def test_a_full_disk_is_found_before_any_work(capsys, cifar_tar, isolated_cache, monkeypatch):
    real = bnlib.storage.shutil.disk_usage
    monkeypatch.setattr(bnlib.storage.shutil, "disk_usage", lambda p: real(p)._replace(free=2 << 20))
    decoded = []
    monkeypatch.setattr(bnlib.data, "_read_image_tar", lambda path: decoded.append(path))
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")
    assert code == 2 and "has 2 MB free and this needs about" in err and len(err.strip().splitlines()) == 1
    assert not decoded and not isolated_cache.exists()


def test_a_failed_write_of_the_decoded_data_does_not_stop_the_run(cifar_tar, isolated_cache, monkeypatch, capsys):
    def full(path, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bnlib.data, "save_npz", full)
    record = load_or_run(experiment("vgg-bn-lr0.1", "smoke"))
    assert record.status == "finished"
    assert "bnlib: warning: could not keep the decoded copy in" in capsys.readouterr().err


def test_a_failed_record_write_leaves_the_checkpoint_to_resume_from(isolated_cache, monkeypatch):
    config = RunConfig(model="dln", norm="batch", lr=1e-6, steps=40, dln_depth=6, dln_samples=50)
    real = records.save_npz

    def full(path, arrays):
        if path.name.startswith("probe-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, arrays)

    monkeypatch.setattr(records, "save_npz", full)
    probe = FunctionProbe("norm", 10, lambda ctx: {"norm": ctx.model.layer(1).weight.norm()})
    with pytest.raises(CacheError, match=r"No space left on device.*resumes from there"):
        load_or_run(config, [probe])
    folder = next((isolated_cache / "runs").glob("*/"))
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]  # no half record
    monkeypatch.setattr(records, "save_npz", real)
    steps = count_steps(monkeypatch)
    assert load_or_run(config, [probe]).trained and steps == []  # resumed at its last step


# ------------------------------------------------------------------ 4. types and finiteness


@pytest.mark.parametrize(
    "args,message",
    [
        (["--lr", "inf"], "learning rate must be a finite number (got inf)"),
        (["--lr", "nan"], "learning rate must be a finite number (got nan)"),
        (["--lr", "1e308"], "learning rate must be positive and at most 1e+06 (got 1e+308)"),
        (["--seed", "2**70"], "invalid int value: '2**70'"),
        (["--seed", str(2**70)], "seed must be an integer from 0 to 4,294,967,295"),
        (["--seed", "-1"], "seed must be an integer from 0"),
        (["--steps", "1.5"], "invalid int value: '1.5'"),
    ],
)
def test_bad_values_on_the_command_line(capsys, isolated_cache, args, message):
    code, _, err = run_cli(capsys, "run", "dln-bn-lr1e-6", "--scale", "smoke", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not isolated_cache.exists()


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: experiment("vgg-bn-lr0.1", "smoke", lr="0.1"), "learning rate must be a number, not '0.1'"),
        (lambda: experiment("vgg-bn-lr0.1", "smoke", steps="10"), "steps must be an integer, not '10'"),
        (lambda: RunConfig(lr=None), "learning rate must be a number, not None"),
        (lambda: RunConfig(lr=float("inf")), "learning rate must be a finite number"),
        (lambda: experiment("vgg-bn-lr0.1", "smoke", learning_rate=0.1), "unknown RunConfig field(s) learning_rate"),
        (lambda: RunConfig(steps=1.5), "steps must be an integer, not 1.5"),
        (lambda: RunConfig(momentum=float("nan")), "momentum must be a finite number"),
        (lambda: RunConfig(seed="0"), "seed must be an integer, not '0'"),
        (lambda: RunConfig(seed=True), "seed must be an integer, not True"),
        (lambda: RunConfig(augment="yes"), "augment must be True or False"),
        (lambda: RunConfig().replace(noise={"n_sigma": 0.5}), "n_sigma"),
        (lambda: load_or_run("vgg-bn-lr0.1"), "load_or_run needs a RunConfig, not str"),
        (lambda: load_or_run(RunConfig(), probes="ics"), "probes must be a list of probes"),
    ],
)
def test_bad_values_through_the_api(isolated_cache, make, message):
    with pytest.raises(ConfigError) as error:
        make()
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not isolated_cache.exists()


def test_equal_configs_have_equal_keys():
    assert RunConfig(lr=1, width=1) == RunConfig(lr=1.0, width=1.0)
    assert RunConfig(lr=1).digest() == RunConfig(lr=1.0).digest()
    assert RunConfig(steps=np.int64(5)).digest() == RunConfig(steps=5).digest()
    assert isinstance(RunConfig(steps=np.int64(5)).steps, int)


# ------------------------------------------------------------------ 5. data inputs


def test_a_data_path_that_is_neither_file_nor_folder(capsys, isolated_cache):
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--data", "/dev/null")
    assert code == 2 and "is neither a file nor a folder" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(DataError, match="neither a file nor a folder"):
        load_or_run(experiment("vgg-bn-lr0.1", "smoke"), options=bnlib.train.RunOptions(data="/dev/null"))
    assert not isolated_cache.exists()


def test_an_unreadable_file_in_an_image_folder(capsys, isolated_cache, tmp_path, monkeypatch, cifar_arrays):
    from conftest import write_image_folder

    folder = write_image_folder(tmp_path / "images", cifar_arrays)
    locked = folder / "train" / "cat" / "0060.png"
    real = os.access
    monkeypatch.setattr(bnlib.data.os, "access", lambda p, mode: Path(p) != locked and real(p, mode))
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--data", str(folder))
    assert code == 2 and f"cannot read {locked} (permissions)" in err and len(err.strip().splitlines()) == 1
    assert not isolated_cache.exists()


def test_a_corrupt_image_is_named_with_its_class_folder(capsys, isolated_cache, tmp_path, cifar_arrays):
    from conftest import write_image_folder

    folder = write_image_folder(tmp_path / "images", cifar_arrays)
    (folder / "test" / "truck" / "0095.png").write_bytes(b"not an image")
    code, _, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--data", str(folder), "--quiet")
    assert code == 2 and "cannot decode test/truck/0095.png" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ 6. records


def test_a_garbled_record_is_recomputed(isolated_cache, capsys):
    config = RunConfig(model="dln", norm="batch", lr=1e-6, steps=20, dln_depth=6, dln_samples=50)
    record = load_or_run(config)
    meta = json.loads((record.path / "record.json").read_text())
    (record.path / "record.json").write_text(json.dumps(meta | {"status": "finished!!"}))
    capsys.readouterr()
    again = load_or_run(config)
    err = capsys.readouterr().err
    assert again.trained and again.status == "finished"
    assert err.startswith(
        f"bnlib: warning: run record {record.path} is damaged (record.json's status 'finished!!' is none of"
    )
    assert err.endswith("it will be recomputed\n") and err.count("\n") == 1  # one plain line


def test_diverged_records_are_strict_json(isolated_cache):
    record = load_or_run(RunConfig(model="dln", lr=10.0, steps=100, dln_depth=6, dln_samples=50))
    assert record.diverged
    text = (record.path / "record.json").read_text()

    def strict(name):
        raise ValueError(f"non-standard JSON: {name}")

    meta = json.loads(text, parse_constant=strict)  # no bare NaN or Infinity
    assert {"__float__": "nan"} in meta["final"].values() or {"__float__": "inf"} in meta["final"].values()
    assert not np.isfinite(records.load_record(record.path).final["train_loss"])


def test_a_damaged_data_cache_is_rebuilt_with_a_word(cifar_tar, isolated_cache, capsys):
    bnlib.data.load_cifar10()
    cached = next((isolated_cache / "data").glob("*.npz"))
    cached.write_bytes(cached.read_bytes()[:100])
    capsys.readouterr()
    bnlib.data.load_cifar10()
    assert capsys.readouterr().err == f"bnlib: warning: decoded copy {cached} is damaged; decoding again\n"


def _no_decoding(*args):
    raise AssertionError("the data set was decoded")


def test_show_reads_without_decoding(capsys, cifar_tar, isolated_cache, monkeypatch):
    code, out, _ = run_cli(capsys, "show", "vgg-bn-lr0.1", "--scale", "smoke")
    assert code == 0 and "not run yet" in out and not isolated_cache.exists()
    assert run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")[0] == 0
    monkeypatch.setattr(bnlib.data, "_read_image_tar", _no_decoding)
    monkeypatch.setattr(bnlib.data, "load_npz", _no_decoding)
    code, out, _ = run_cli(capsys, "show", "vgg-bn-lr0.1", "--scale", "smoke")
    assert code == 0 and '"status": "finished"' in out


def test_an_archive_touched_or_copied_again_keeps_its_runs(capsys, cifar_tar, cifar_arrays, monkeypatch):
    """The decoded copy of an archive is found by its content: the same archive with a new time (a
    copy made again, a remounted folder) keeps its decoded copy and its runs; other content at the
    same path, with the same time, is decoded afresh."""
    assert run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")[0] == 0
    first = bnlib.data.known_source()
    stat = cifar_tar.stat()
    os.utime(cifar_tar, ns=(stat.st_atime_ns + 10**9, stat.st_mtime_ns + 10**9))
    with monkeypatch.context() as m:
        m.setattr(bnlib.data, "_read_image_tar", _no_decoding)
        code, out, _ = run_cli(capsys, "show", "vgg-bn-lr0.1", "--scale", "smoke")
        assert code == 0 and '"status": "finished"' in out
        assert not load_or_run(experiment("vgg-bn-lr0.1", "smoke")).trained
    other = {k: v[::-1].copy() for k, v in cifar_arrays.items()}  # the same images in another order
    stat = cifar_tar.stat()
    write_image_tar(cifar_tar, other)
    os.utime(cifar_tar, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert bnlib.data.known_source() is None  # never decoded: no run of it can be stored
    assert bnlib.data.load_cifar10().source["fingerprint"] != first["fingerprint"]


# ------------------------------------------------------------------ 7. the book's hang detector


def run_cells(tmp_path: Path, *sources: str, hang_after_s: float) -> float:
    from bnlib.book import build

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    return build.run_notebook(nb, tmp_path, hang_after_s)


def test_a_cell_without_progress_is_a_hang(tmp_path):
    started = time.monotonic()
    with pytest.raises(BnlibError, match=r"made no progress .* for 3 s and was interrupted: a hang"):
        run_cells(tmp_path, "import time\ntime.sleep(600)", hang_after_s=3)
    assert time.monotonic() - started < 60


def test_a_long_cell_that_works_is_no_hang(tmp_path):
    busy = "import time\nend = time.time() + 4\nwhile time.time() < end: sum(range(1000))"
    talking = "import time\nfor i in range(8):\n    print(i, flush=True)\n    time.sleep(0.5)"
    assert run_cells(tmp_path, busy, talking, hang_after_s=1.5) > 8  # each cell longer than the limit
