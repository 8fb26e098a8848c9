"""The ablation ladder's pieces, each against a hand computation (and torch's own layer where torch
has one): BatchNorm without the gradient through its statistics, centering only, scaling only,
ghost batches, LayerNorm and GroupNorm, centered weight normalization; and the training features
the ladder's substitutes use (warm-up, clipping, LSUV, fixed weight norms) and the runs that stop
when their answer is known (a target reached, a network dead)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnlib import RunConfig, experiment, load_or_run
from bnlib.models import build_model, init_lsuv
from bnlib.norms import (
    RELU_GAIN,
    BatchStatistics,
    CenteredWeights,
    GhostBatchNorm,
    ScaledStandardizedWeights,
    make_norm,
)
from bnlib.records import Record
from bnlib.train import RunOptions, dead_layer, set_rate, sgd, train

EPS = 1e-5


def batch(shape=(8, 3, 4, 4), seed=0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(*shape, dtype=torch.float64) * 3 + 1


def affine(layer: nn.Module) -> nn.Module:
    """Give a normalization a non-trivial gamma and beta."""
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(0.5, 2.0, layer.weight.numel(), dtype=layer.weight.dtype))
        layer.bias.copy_(torch.linspace(-1.0, 1.0, layer.bias.numel(), dtype=layer.bias.dtype))
    return layer


def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = (0, 2, 3)
    return x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)


def per_channel(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1)


# ----------------------------------------------------------------------------- normalizations


def test_detached_batchnorm_is_batchnorm_forward_without_the_statistics_gradient():
    x = batch().requires_grad_()
    layer = affine(BatchStatistics(3, "detached").double())
    reference = F.batch_norm(x, None, None, layer.weight, layer.bias, training=True, eps=EPS)
    out = layer(x)
    torch.testing.assert_close(out, reference)
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, upstream)
    _, var = stats(x.detach())
    torch.testing.assert_close(grad, upstream * per_channel(layer.weight) / (var + EPS).sqrt())  # statistics constant
    (bn_grad,) = torch.autograd.grad(reference, x, upstream)
    assert not torch.allclose(grad, bn_grad)  # BatchNorm's own gradient is not that


def test_centering_only_and_scaling_only_by_hand():
    x = batch()
    mean, var = stats(x)
    center = affine(BatchStatistics(3, "center").double())
    torch.testing.assert_close(center(x), per_channel(center.weight) * (x - mean) + per_channel(center.bias))
    scale = affine(BatchStatistics(3, "scale").double())
    torch.testing.assert_close(scale(x), per_channel(scale.weight) * x / (var + EPS).sqrt() + per_channel(scale.bias))
    torch.testing.assert_close(scale(7 * x), scale(x), atol=1e-5, rtol=1e-5)  # scale invariant, as BatchNorm is


def test_ladder_norms_keep_running_statistics_for_evaluation():
    x = batch()
    layer = BatchStatistics(3, "scale").double()
    layer(x)
    mean, var = stats(x)
    n = x.numel() // 3
    torch.testing.assert_close(layer.running_mean, 0.1 * mean.flatten())
    torch.testing.assert_close(layer.running_var, 0.9 + 0.1 * var.flatten() * n / (n - 1))
    layer.eval()
    torch.testing.assert_close(layer(x), per_channel(layer.weight) * x / (per_channel(layer.running_var) + EPS).sqrt())


def test_ghost_batches_of_the_whole_batch_are_batchnorm():
    x = batch()
    ghost, reference = affine(GhostBatchNorm(3, ghost=8).double()), affine(nn.BatchNorm2d(3).double())
    torch.testing.assert_close(ghost(x), reference(x))
    torch.testing.assert_close(ghost.running_mean, reference.running_mean)
    torch.testing.assert_close(ghost.running_var, reference.running_var)


def test_ghost_batches_normalize_each_part_by_its_own_statistics():
    x = batch((12, 3, 4, 4))
    ghost = affine(GhostBatchNorm(3, ghost=4).double())
    parts = [F.batch_norm(p, None, None, ghost.weight, ghost.bias, training=True, eps=EPS) for p in x.split(4)]
    torch.testing.assert_close(ghost(x), torch.cat(parts))
    uneven = x[:10]  # a batch that does not split evenly: the last part is smaller
    parts = [F.batch_norm(p, None, None, ghost.weight, ghost.bias, training=True, eps=EPS) for p in uneven.split(4)]
    torch.testing.assert_close(ghost(uneven), torch.cat(parts))


def test_layer_and_group_norm_are_torchs():
    x = batch()
    config = RunConfig(width=0.125)
    layer = affine(make_norm("layer", 3, 2, config).double())
    by_hand = (x - x.mean((1, 2, 3), keepdim=True)) / (x.var((1, 2, 3), unbiased=False, keepdim=True) + EPS).sqrt()
    torch.testing.assert_close(layer(x), per_channel(layer.weight) * by_hand + per_channel(layer.bias))
    plain = nn.LayerNorm(x.shape[1:], eps=EPS).double()  # torch's LayerNorm at its initial (identity) affine
    torch.testing.assert_close(make_norm("layer", 3, 2, config).double()(x), plain(x))
    group = make_norm("group", 8, 2, config)
    assert group.num_groups == 4  # 32 groups at full width, times the width 1/8
    y = batch((4, 8, 3, 3))
    torch.testing.assert_close(group.double()(y), F.group_norm(y, 4, eps=EPS))


def test_centered_weight_normalization():
    torch.manual_seed(0)
    layer = CenteredWeights(nn.Conv2d(3, 5, 3, padding=1).double())
    layer.reset_gain()
    w = layer.weight
    centered = w - w.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(layer.effective_weight(), centered)  # it starts as the centered weights
    x = batch()
    before = layer(x)
    with torch.no_grad():
        layer.weight.mul_(9.0)
    torch.testing.assert_close(layer(x), before)  # the loss cannot see the weights' scale
    out = layer(x).square().sum()
    (grad,) = torch.autograd.grad(out, layer.weight)
    w = layer.weight.detach()
    assert abs(float((grad * w).sum())) < 1e-8 * float(grad.norm() * w.norm())  # the gradient is orthogonal to W


def test_weight_standardized_vgg_normalizes_no_activation():
    model = build_model(RunConfig(norm="weight_std", width=0.0625))
    assert all(isinstance(model.layer(k), CenteredWeights) for k in range(1, model.num_layers))
    assert not any(isinstance(m, nn.BatchNorm2d | nn.GroupNorm) for m in model.modules())


def test_scaled_weight_standardization_starts_at_he_scale_and_ignores_the_weights_scale():
    torch.manual_seed(0)
    layer = ScaledStandardizedWeights(nn.Conv2d(3, 5, 3, padding=1).double())
    layer.reset_gain()
    w = layer.effective_weight().flatten(1)
    torch.testing.assert_close(w.mean(1), torch.zeros(5, dtype=torch.double))
    fan_in = 3 * 3 * 3
    std = w.pow(2).mean(1).sqrt()
    torch.testing.assert_close(std, torch.full((5,), RELU_GAIN / fan_in**0.5, dtype=torch.double))
    x = batch()
    before = layer(x)
    with torch.no_grad():
        layer.weight.mul_(0.01)
    torch.testing.assert_close(layer(x), before)


def _spread_at(model: nn.Module, k: int, x: torch.Tensor) -> float:
    seen = []
    hook = model.layer(k).register_forward_hook(lambda m, i, o: seen.append(float(o.std())))
    with torch.no_grad():
        model(x)
    hook.remove()
    return seen[0]


def test_he_start_and_scaled_standardization_keep_the_signal_that_glorot_loses():
    """Measured before training: the VGG's pre-activation spread at layer #13 against #1. Glorot's
    start shrinks it layer by layer (by about 1.5x each); He's and scaled weight standardization's
    keep it within a factor of a few."""
    x = torch.randn(64, 3, 32, 32)
    kept = {}
    for name, config in {
        "glorot": RunConfig(width=0.125),
        "he": RunConfig(width=0.125, init="he"),
        "scaled_ws": RunConfig(width=0.125, norm="scaled_ws"),
    }.items():
        torch.manual_seed(0)
        model = build_model(config)
        kept[name] = _spread_at(model, 13, x) / _spread_at(model, 1, x)
    assert kept["glorot"] < 0.01
    assert 0.1 < kept["he"] < 10 and 0.1 < kept["scaled_ws"] < 10


# ----------------------------------------------------------------------------- training features


def test_warm_up_raises_the_rate_linearly():
    config = RunConfig(lr=0.3, warmup_steps=10)
    optimizer = sgd(build_model(config.replace(width=0.0625)), config)
    rates = []
    for step in range(12):
        set_rate(optimizer, config, step)
        rates.append(optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(rates, [0.3 * min(1, (t + 1) / 10) for t in range(12)])


def test_clipping_bounds_the_step():
    config = RunConfig(model="dln", lr=1e-3, steps=1, dln_depth=4, dln_samples=50, clip_norm=0.5)
    free = RunConfig(model="dln", lr=1e-3, steps=1, dln_depth=4, dln_samples=50)
    moved = {}
    for name, cfg in (("clipped", config), ("free", free)):
        torch.manual_seed(0)
        start = build_model(cfg).state_dict()
        result = train(cfg)
        moved[name] = torch.sqrt(sum((result.model_state[k] - start[k]).square().sum() for k in start))
    assert float(moved["clipped"]) == pytest.approx(1e-3 * 0.5, rel=1e-4)  # lr x the clipped norm
    assert float(moved["free"]) > float(moved["clipped"])


def test_lsuv_gives_every_layer_unit_output_variance():
    torch.manual_seed(0)
    model = build_model(RunConfig(model="mlp", mlp_depth=4, mlp_width=32))
    x = torch.randn(256, 3, 32, 32)
    init_lsuv(model, x)
    outputs = {}
    hooks = [
        model.layer(k).register_forward_hook(lambda m, i, out, k=k: outputs.__setitem__(k, out))
        for k in range(1, model.num_layers + 1)
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    for k, out in outputs.items():
        assert float(out.var()) == pytest.approx(1.0, rel=1e-3), k


def test_fixed_weight_norms_stay_at_their_initial_norms():
    config = RunConfig(model="dln", lr=1e-5, steps=20, dln_depth=5, dln_samples=50, fixed_weight_norm=True)
    torch.manual_seed(0)
    start = build_model(config)
    end = build_model(config)
    end.load_state_dict(train(config).model_state)
    for k in range(1, start.num_layers):  # the hidden layers; the classifier is free
        assert end.layer(k).weight.norm().item() == pytest.approx(start.layer(k).weight.norm().item(), rel=1e-5)
        assert not torch.equal(end.layer(k).weight, start.layer(k).weight)  # they moved, on the sphere


def test_a_run_that_reaches_its_target_stops_and_is_the_start_of_the_full_run(cifar_tar):
    full = load_or_run(experiment("vgg-bn-lr0.1", "smoke", steps=60, test_every=0))
    reached = full.steps_to(0.11)
    assert reached is not None
    stopped = load_or_run(experiment("vgg-bn-lr0.1", "smoke", steps=60, test_every=0, target_acc=0.11))
    assert stopped.status == "reached" and stopped.steps_to(0.11) == reached
    n = len(stopped.metrics["step"])
    assert reached < n < 60
    np.testing.assert_array_equal(stopped.metrics["train_loss"], full.metrics["train_loss"][:n])


def test_a_dead_network_is_found_and_stops(cifar_tar, monkeypatch):
    import bnlib.train as training

    real = training.build_model

    def dead_at_birth(config):  # every unit of layer #1 off for every input: nothing can revive it
        model = real(config)
        with torch.no_grad():
            model.layer(1).weight.zero_()
            model.layer(1).bias.fill_(-1.0)
        return model

    monkeypatch.setattr(training, "build_model", dead_at_birth)
    config = RunConfig(
        model="mlp", mlp_depth=3, mlp_width=16, train_per_class=20, test_per_class=10, steps=400, log_every=3
    )
    assert config.stop_dead  # an unnormalized MLP can die
    record = load_or_run(config, options=RunOptions(progress=False))
    assert isinstance(record, Record) and record.status == "dead" and record.final["steps"] < 400
    assert dead_layer(dead_at_birth(config), training._make_task(config, torch.device("cpu"), RunOptions()).train) == 1


def test_normalized_networks_are_never_declared_dead():
    assert not RunConfig(norm="batch").stop_dead and not RunConfig(norm="none", momentum=0.9).stop_dead
    assert RunConfig(norm="none").stop_dead and RunConfig(norm="layer").stop_dead
