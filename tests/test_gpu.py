"""The GPU path: float32 means float32 (TF32 off), bf16 only on request, probes in float32 either way,
and a training run on CUDA is the same computation as on the CPU. The CUDA tests run where CUDA is
present and are skipped elsewhere; the first test runs everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnlib import RunConfig, load_or_run
from bnlib.device import autocast, configure
from bnlib.errors import ConfigError
from bnlib.probes import LandscapeProbe
from bnlib.probes.hook import FunctionProbe
from bnlib.train import RunOptions, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SMOKE_VGG = RunConfig(
    width=0.0625, norm="batch", batch_size=16, steps=6, log_every=2, test_every=3, train_per_class=20, test_per_class=10
)


def test_bf16_needs_a_gpu(cifar_tar):
    with pytest.raises(ConfigError, match="precision 'bf16' needs a CUDA device"):
        train(SMOKE_VGG.replace(precision="bf16"), options=RunOptions(device="cpu"))
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        SMOKE_VGG.replace(precision="fp8")


@cuda
def test_float32_on_cuda_turns_tf32_off():
    configure(torch.device("cuda"))
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    with autocast(torch.device("cuda"), "float32"):
        assert not torch.is_autocast_enabled()
    with autocast(torch.device("cuda"), "bf16"):
        assert torch.is_autocast_enabled()


@cuda
def test_a_cuda_run_is_the_cpu_run_up_to_rounding(cifar_tar):
    on_cpu = train(SMOKE_VGG, options=RunOptions(device="cpu"))
    on_gpu = train(SMOKE_VGG, options=RunOptions(device="cuda"))
    np.testing.assert_allclose(on_gpu.metrics["train_loss"], on_cpu.metrics["train_loss"], rtol=1e-3)
    assert "cuda" in on_gpu.environment["device"]


@cuda
def test_probes_measure_in_float32_even_when_training_in_bf16(cifar_tar):
    dtypes = []
    probe = FunctionProbe("dtype", 2, lambda ctx: dtypes.append(ctx.loss().dtype) or {})
    result = train(SMOKE_VGG.replace(precision="bf16"), [probe, LandscapeProbe(every=3)], RunOptions(device="cuda"))
    assert result.status == "finished" and set(dtypes) == {torch.float32}


@cuda
def test_records_say_which_precision_trained_them(cifar_tar):
    record = load_or_run(SMOKE_VGG.replace(precision="bf16"), options=RunOptions(device="cuda"))
    assert record.config.precision == "bf16" and "cuda" in record.environment["device"]
