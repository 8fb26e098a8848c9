"""Reliability, round three, through the entry points a user takes: Ctrl-C and SIGTERM end a run, a
sweep or the book build with one line and exit status 130 after saving every run in flight (which
then resumes bit-identical); a sweep that asks Ray for more CPUs than it has is refused at once; a
full disk while checkpointing, a damaged archive and a read-only cache are each said in one line."""

from __future__ import annotations

import errno
import glob
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import assert_same_arrays, count_steps, run_cli

import bnlib.data
import bnlib.storage
from bnlib import experiment, load_or_run
from bnlib.interrupts import EXIT_STATUS, Interrupted
from bnlib.probes.hook import FunctionProbe

STEPS = 200  # long enough at the smoke scale that a signal lands mid-run


def start(*args: str) -> subprocess.Popen:
    """A command in a session of its own, as a terminal runs it: os.killpg is Ctrl-C."""
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_at_a_terminal,
    )


def _at_a_terminal() -> None:
    """SIGINT as a terminal's foreground command has it (a test session started in the background
    inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def sigint_handled():
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal or a kernel, for the test."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def after_checkpoints(child: subprocess.Popen, cache: Path, count: int = 1, timeout: float = 300) -> None:
    """Wait until `count` runs have written a checkpoint (the command is well into training)."""
    deadline = time.monotonic() + timeout
    while len(glob.glob(str(cache / "runs" / "*" / "checkpoint.pt"))) < count:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(0.5)


def ended_in_one_line(child: subprocess.Popen) -> str:
    """The interrupted command's stderr's last line, after checking its exit status and that no
    traceback was printed."""
    _, err = child.communicate(timeout=120)
    assert child.returncode == EXIT_STATUS, err
    assert "Traceback" not in err and "SIGTERM received" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("bnlib: interrupted") and last.endswith("resume with the same command"), err
    return last


def checkpoint_steps(cache: Path) -> list[int]:
    return [int(torch.load(p, weights_only=True)["step"]) for p in sorted((cache / "runs").glob("*/checkpoint.pt"))]


@pytest.fixture
def every_step(monkeypatch):
    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "3600")  # the checkpoint the tests find is the interrupt's own


# ----------------------------------------------------------------------------- Ctrl-C and SIGTERM


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_cli_run_saves_its_checkpoint_and_resumes_bit_identical(
    signum, cifar_tar, isolated_cache, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "0")  # a first checkpoint at the first log point, to wait for
    args = ("run", "vgg-bn-lr0.1", "--scale", "smoke", "--steps", str(STEPS), "--quiet")
    child = start("-m", "bnlib", *args)
    after_checkpoints(child, isolated_cache)
    os.killpg(child.pid, signum)
    said = ended_in_one_line(child)
    (stopped,) = checkpoint_steps(isolated_cache)
    assert f"stopped at step {stopped} of {STEPS}, its checkpoint saved" in said
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "trained:" in out, err
    resumed = load_or_run(experiment("vgg-bn-lr0.1", "smoke", steps=STEPS))
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "uninterrupted"))
    assert_same_arrays(resumed, load_or_run(resumed.config))


def test_load_or_run_stops_between_two_steps_and_resumes_bit_identical(
    cifar_tar, isolated_cache, tmp_path, monkeypatch, every_step, sigint_handled
):
    """A notebook's Ctrl-C: the run raises Interrupted (a KeyboardInterrupt) once its checkpoint
    holds the step it was in, never half of one."""
    config = experiment("vgg-noisybn-lr0.1", "smoke", steps=60)

    def interrupt_at_17(ctx):
        if ctx.step == 17 and not (tmp_path / "sent").exists():
            (tmp_path / "sent").touch()
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step: after the backward pass
        return {"norm": ctx.model.layer(1).weight.norm()}

    probe = FunctionProbe("norm", 1, interrupt_at_17)
    with pytest.raises(Interrupted, match="stopped at step 18 of 60, its checkpoint saved"):
        load_or_run(config, [probe])
    assert checkpoint_steps(isolated_cache) == [18]
    resumed = load_or_run(config, [probe])
    assert resumed.trained
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path / "uninterrupted"))
    assert_same_arrays(resumed, load_or_run(config, [probe]))


_NOTEBOOK_RUN = """
import os
open({pid!r}, "w").write(str(os.getpid()))
from bnlib import experiment, load_or_run
record = load_or_run(experiment("vgg-bn-lr0.1", "smoke", steps={steps}))
"""


def test_a_notebook_interrupted_keeps_its_checkpoint(cifar_tar, isolated_cache, tmp_path, monkeypatch):
    """Jupyter's interrupt button (SIGINT to the kernel): the cell fails with Interrupted, the run's
    checkpoint holds the step it stopped at, and the run resumes there."""
    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "0")
    pid = tmp_path / "kernel.pid"
    page = tmp_path / "interrupted.ipynb"
    cell = _NOTEBOOK_RUN.format(pid=str(pid), steps=STEPS)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), page)
    code = (
        "import nbformat; from bnlib.book.build import run_notebook; "
        f"run_notebook(nbformat.read({str(page)!r}, 4), {str(tmp_path)!r}, 60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    after_checkpoints(child, isolated_cache)
    os.kill(int(pid.read_text()), signal.SIGINT)
    _, err = child.communicate(timeout=120)
    err = re.sub(r"\x1b\[[0-9;]*m", "", err)  # the cell's traceback, in colours
    assert child.returncode != 0 and "Interrupted: vgg/batch lr=0.1 seed=0 stopped at step" in err, err
    (stopped,) = checkpoint_steps(isolated_cache)
    steps = count_steps(monkeypatch)
    resumed = load_or_run(experiment("vgg-bn-lr0.1", "smoke", steps=STEPS))
    assert resumed.trained and steps[0] == stopped > 0


def test_a_sweep_interrupted_saves_every_run_in_flight(cifar_tar, isolated_cache, every_step):
    child = start(
        "-m", "bnlib", "sweep", "vgg-bn-lr0.1", "--scale", "smoke", "--steps", str(5 * STEPS),
        "--seeds", "0,1,2", "--workers", "2", "--quiet",
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list((isolated_cache / "runs").glob("*.lock")):  # the workers have started their runs
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    time.sleep(5)  # into training
    child.send_signal(signal.SIGTERM)  # a scheduler's timeout: the driver alone
    said = ended_in_one_line(child)
    assert "the sweep's 2 runs in flight saved their checkpoints" in said
    steps = checkpoint_steps(isolated_cache)
    assert len(steps) == 2 and all(0 < s < 5 * STEPS for s in steps), steps


def test_the_book_build_interrupted_during_training(cifar_tar, isolated_cache, monkeypatch):
    """Once its sweep is training (a run has checkpointed), Ctrl-C ends the build in one line; that
    the runs in flight save their checkpoints on the signal is the sweep's test above."""
    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "0")
    child = start("-m", "bnlib.book", "--scale", "smoke")
    after_checkpoints(child, isolated_cache)
    os.killpg(child.pid, signal.SIGINT)  # Ctrl-C at the terminal: the whole foreground group
    assert "runs in flight saved their checkpoints" in ended_in_one_line(child)
    assert checkpoint_steps(isolated_cache)


_PAGES = """
import nbformat, os, sys
from pathlib import Path
from bnlib import interrupts
from bnlib.book.build import execute_pages
try:
    execute_pages([Path(sys.argv[1])], Path(sys.argv[2]), 60, dict(os.environ), {})
except KeyboardInterrupt as e:
    raise SystemExit(interrupts.say(e))
"""


def test_pages_being_executed_stop_with_the_build(tmp_path):
    page = tmp_path / "slow.ipynb"
    marker = tmp_path / "started"
    cell = f"import time, os; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), page)
    child = start("-c", _PAGES, str(page), str(tmp_path / "cache"))
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    kernel = int(marker.read_text())
    os.killpg(child.pid, signal.SIGINT)
    ended_in_one_line(child)
    deadline = time.monotonic() + 30
    while _alive(kernel):  # the page's kernel follows its process
        assert time.monotonic() < deadline, "the page's kernel outlived the build"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


# ----------------------------------------------------------------------------- a sweep that cannot start


@pytest.mark.parametrize("extra", [("--threads", str((os.cpu_count() or 1) + 1)), ("--workers", "1", "--threads", "2")])
def test_more_threads_than_ray_has_is_refused_at_once(extra, capsys, cifar_tar, isolated_cache, monkeypatch):
    decoded = []
    monkeypatch.setattr(bnlib.data, "_read_image_tar", lambda path: decoded.append(path))
    code, _, err = run_cli(capsys, "sweep", "vgg-bn-lr0.1", "--scale", "smoke", *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "or fewer" in err, err
    assert "each run asks for" in err and not decoded and not isolated_cache.exists()


# ----------------------------------------------------------------------------- a full disk while checkpointing


def test_a_full_disk_while_checkpointing_is_one_line_and_loses_nothing(capsys, cifar_tar, isolated_cache, monkeypatch):
    monkeypatch.setenv("BNLIB_CHECKPOINT_S", "0")
    real_save, real_usage = torch.save, bnlib.storage.shutil.disk_usage
    saves = []

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 3:  # the third checkpoint: the disk fills up half-way, as torch says it
            Path(f).write_bytes(b"\0" * 64)
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")
        return real_save(obj, f, *args, **kwargs)

    def usage(path):
        return real_usage(path)._replace(free=0) if len(saves) == 3 else real_usage(path)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(bnlib.storage.shutil, "disk_usage", usage)
    args = ("run", "vgg-bn-lr0.1", "--scale", "smoke", "--steps", "100", "--quiet")
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "could not write the checkpoint of vgg/batch lr=0.1 seed=0 in" in err and str(isolated_cache) in err
    assert "No space left on device; it needs about" in err and "resumes from its last checkpoint" in err
    (kept,) = checkpoint_steps(isolated_cache)  # the second checkpoint, whole
    monkeypatch.setattr(torch, "save", real_save)
    monkeypatch.setattr(bnlib.storage.shutil, "disk_usage", real_usage)
    steps = count_steps(monkeypatch)
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "trained:" in out and steps[0] == kept, err


# ----------------------------------------------------------------------------- a damaged archive


@pytest.mark.parametrize("damage", ["overwritten", "cut"])
def test_a_damaged_archive_is_named_as_damaged_before_the_plan(damage, capsys, cifar_tar, isolated_cache):
    data = bytearray(cifar_tar.read_bytes())
    if damage == "overwritten":
        middle = len(data) // 2
        data[middle : middle + 64] = os.urandom(64)
    else:
        data = data[: int(len(data) * 0.6)]
    cifar_tar.write_bytes(bytes(data))
    code, out, err = run_cli(capsys, "run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (out, err)
    assert f"the archive {cifar_tar} is damaged (" in err and err.strip().endswith("download it again")
    assert len(err) < 300 and not isolated_cache.exists()


# ----------------------------------------------------------------------------- a read-only cache


def test_a_read_only_cache_that_holds_the_record_serves_it(capsys, cifar_tar, isolated_cache, monkeypatch):
    args = ("run", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")
    assert run_cli(capsys, *args)[0] == 0

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(bnlib.storage.tempfile, "mkstemp", refuse)  # root may write anywhere: simulate
    before = sorted(p.relative_to(isolated_cache) for p in isolated_cache.rglob("*"))
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "loaded from the cache (trained earlier)" in out, err
    code, out, err = run_cli(capsys, "sweep", "vgg-bn-lr0.1", "--scale", "smoke", "--quiet")
    assert code == 0 and "stored" in out, err
    code, out, err = run_cli(capsys, *args, "--seed", "1")  # a new run needs a writable cache, and says where
    assert code == 2 and "point BNLIB_CACHE at a folder you can write to" in err
    assert sorted(p.relative_to(isolated_cache) for p in isolated_cache.rglob("*")) == before


# ----------------------------------------------------------------------------- small things


def test_the_book_command_says_bad_options_in_one_line(capsys):
    from bnlib.book.__main__ import main

    code, _, err = run_cli(capsys, "--scale", "nope", entry=main)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "invalid choice: 'nope'" in err, err
    assert "see python -m bnlib.book --help" in err


_WAITER = textwrap.dedent("""
    import sys, time
    from bnlib import experiment, load_or_run
    record = load_or_run(experiment("dln-bn-lr1e-6", "smoke", steps=3000))
    print("WAITED" if record.waited else "TRAINED" if record.trained else "LOADED")
""")


def test_a_run_trained_by_another_process_is_said_so(isolated_cache):
    children = [subprocess.Popen([sys.executable, "-c", _WAITER], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    said = sorted(child.communicate(timeout=300)[0].strip() for child in children)
    assert said == ["TRAINED", "WAITED"]
