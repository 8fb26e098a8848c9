"""The training loop: results, divergence, probe-hook isolation and bit-identical resume."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bnlib import RunConfig
from bnlib.probes.hook import FunctionProbe
from bnlib.train import RunOptions, train

TINY_VGG = RunConfig(
    model="vgg", width=0.0625, batch_size=16, steps=12, log_every=2, test_every=6, train_per_class=20, test_per_class=10
)
TINY_DLN = RunConfig(model="dln", dln_depth=6, dln_dim=4, dln_samples=50, lr=3e-4, steps=20, log_every=5)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def test_vgg_run_records_metrics(cifar_tar):
    result = train(TINY_VGG.replace(norm="batch"))
    assert result.status == "finished" and result.steps_done == 12
    m = result.metrics
    assert m["train_loss"].shape == m["train_acc"].shape == (12,)
    assert m["test_step"].tolist() == [0, 6, 12]
    assert np.isfinite(m["train_loss"]).all() and ((0 <= m["test_acc"]) & (m["test_acc"] <= 1)).all()
    assert result.environment["data"]["kind"] == "image-tar"
    assert result.environment["torch"] == torch.__version__


def test_dln_learns_its_linear_map():
    result = train(TINY_DLN.replace(steps=200, log_every=20))
    loss = result.metrics["train_loss"]
    assert result.status == "finished" and loss[-1] < 1e-3 * loss[0]
    assert "train_acc" not in result.metrics and "test_acc" not in result.final


def test_divergence_stops_the_run_and_keeps_its_curve():
    result = train(TINY_DLN.replace(lr=10.0, steps=200, divergence_bound=1e6))
    assert result.status == "diverged"
    loss = result.metrics["train_loss"]
    assert 0 < result.steps_done < 200 and len(loss) == result.steps_done
    assert not np.isfinite(loss[-1]) or loss[-1] > 1e6
    assert np.isfinite(loss[:-1]).all() and (loss[:-1] <= 1e6).all()


def nasty_probe(ctx):
    """Moves every weight, updates BN running stats, leaves gradients and draws random numbers."""
    with torch.no_grad():
        for p in ctx.model.parameters():
            p.add_(torch.randn_like(p))
    loss = ctx.loss()
    loss.backward()
    ctx.model.eval()
    return {"loss": loss.detach(), "vector": torch.arange(3.0) * ctx.step}


@pytest.mark.parametrize("config", [TINY_VGG.replace(norm="noisy_batch", augment=True), TINY_DLN.replace(norm="batch")])
def test_probes_never_perturb_training(cifar_tar, config):
    plain = train(config)
    probed = train(config, [FunctionProbe("nasty", 2, nasty_probe)])
    assert_same_weights(plain.model_state, probed.model_state)
    for name, values in plain.metrics.items():
        np.testing.assert_array_equal(values, probed.metrics[name])
    out = probed.probes["nasty-every2"]
    assert out["step"].tolist() == list(range(0, config.steps, 2))
    assert out["vector"].shape == (len(out["step"]), 3) and out["vector"][-1, 1] == out["step"][-1]


def test_probe_runs_before_the_update_on_the_steps_batch():
    config = TINY_DLN.replace(steps=4, log_every=1)
    result = train(config, [FunctionProbe("loss", 1, lambda ctx: {"loss": ctx.loss().detach()})])
    seen = result.probes["loss-every1"]["loss"]
    np.testing.assert_allclose(seen, result.metrics["train_loss"], rtol=1e-6)


_CHILD = """
import json, sys, time
from pathlib import Path
from bnlib import RunConfig
from bnlib.probes.hook import FunctionProbe
from bnlib.train import RunOptions, train
config = RunConfig.from_dict(json.loads(sys.argv[1]))
slow = FunctionProbe("slow", 1, lambda ctx: (time.sleep(0.03), {})[1])
train(config, [slow], RunOptions(checkpoint_path=Path(sys.argv[2]), checkpoint_interval_s=0))
"""


def test_a_killed_run_resumes_bit_identical(cifar_tar, tmp_path):
    config = TINY_VGG.replace(norm="noisy_batch", augment=True, steps=60, test_every=10)
    checkpoint = tmp_path / "checkpoint.pt"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(config.to_dict()), str(checkpoint)])
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    time.sleep(random.uniform(0, 0.3))
    assert child.poll() is None, "the child finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    stopped_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < stopped_at < 60

    calls = []
    slow = FunctionProbe("slow", 1, lambda ctx: calls.append(ctx.step) or {})
    resumed = train(config, [slow], RunOptions(checkpoint_path=checkpoint, checkpoint_interval_s=0))
    assert calls[0] == stopped_at  # it resumed rather than restarted
    uninterrupted = train(config)
    assert_same_weights(uninterrupted.model_state, resumed.model_state)
    for name, values in uninterrupted.metrics.items():
        np.testing.assert_array_equal(values, resumed.metrics[name])


def test_a_checkpoint_of_another_config_is_ignored(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint.pt"
    train(TINY_DLN, options=RunOptions(checkpoint_path=checkpoint, checkpoint_interval_s=0))
    assert checkpoint.exists()
    other = train(TINY_DLN.replace(lr=1e-4), options=RunOptions(checkpoint_path=checkpoint))
    assert "belongs to another version or config; the run restarts from step 0" in capsys.readouterr().err
    assert_same_weights(other.model_state, train(TINY_DLN.replace(lr=1e-4)).model_state)


def test_progress_bar_can_be_silenced(capsys, monkeypatch):
    monkeypatch.setenv("BNLIB_PROGRESS", "1")
    train(TINY_DLN, options=RunOptions(progress=False))
    assert capsys.readouterr().err == ""
    train(TINY_DLN)
    assert "dln/none" in capsys.readouterr().err


def test_results_do_not_depend_on_the_path_of_the_checkpoint(tmp_path):
    a = train(TINY_DLN, options=RunOptions(checkpoint_path=Path(tmp_path / "a.pt"), checkpoint_interval_s=0))
    assert_same_weights(a.model_state, train(TINY_DLN).model_state)
