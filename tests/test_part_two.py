"""Part II's library: the ResNet family and the MLPs, the signal and weight-norm probes, the squared
loss, the rate of the weights and cut records, each against a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnlib import RunConfig, load_or_run
from bnlib.errors import ConfigError
from bnlib.models import build_model
from bnlib.models.resnet import ResNet
from bnlib.probes.signal import mean_cosine, one_step_spread, residual_variances, signal_propagation, stable_rank
from bnlib.probes.weights import WeightNormProbe, norm_growth
from bnlib.train import half_squared_error, sgd

# ----------------------------------------------------------------------------- the ResNet family


def resnet(
    residual: str = "plain", norm: str = "batch", depth: int = 20, width: float = 0.25, block: str = "post"
) -> ResNet:
    torch.manual_seed(0)
    config = RunConfig(
        model="resnet", resnet_depth=depth, width=width, norm=norm, residual=residual, resnet_block=block
    )
    return build_model(config)


@pytest.mark.parametrize("depth,block", [(8, "post"), (20, "post"), (32, "post"), (20, "pre")])
def test_resnet_layers_are_numbered_in_forward_order(depth, block):
    model = resnet(depth=depth, block=block)
    assert model.num_layers == depth  # the stem, 2 convolutions per block, the classifier: 6n + 2
    assert len(model.residual_blocks()) == (depth - 2) // 2  # n blocks in each of 3 stages
    seen: list[nn.Module] = []
    weighted = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(m)) for m in weighted]
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    for h in handles:
        h.remove()
    projections = [b.projection for b in model.residual_blocks() if getattr(b, "projection", None) is not None]
    assert [m for m in seen if m not in projections] == [model.layer(k) for k in range(1, depth + 1)]
    assert len(projections) == (2 if block == "pre" else 0)  # the pre-activation blocks' 1 x 1 shortcuts
    assert isinstance(model.layer(depth), nn.Linear) and isinstance(model.norm(2), nn.BatchNorm2d)


def test_pre_activation_skipinit_starts_as_its_shortcut_with_a_zero_classifier():
    model = resnet("skipinit", norm="none", block="pre").train()
    h = model.stem(torch.randn(8, 3, 32, 32))  # a convolution's output: of either sign
    for block in model.residual_blocks():
        out = block(h)
        assert torch.equal(out, block.shortcut(h))  # x + 0 * branch: no ReLU after the sum
        if block.projection is None:
            assert torch.equal(out, h)  # the identity, negative values included
        else:
            assert block.projection.bias is not None  # biased, as DeepMind's SkipInit convolutions
        h = out
    assert torch.count_nonzero(model.head.layer.weight) == 0


def test_pre_activation_batchnorm_downscales_the_branch_with_depth():
    table = residual_variances(resnet(depth=56, block="pre"), torch.randn(32, 3, 32, 32))
    last_stage = table["ratio"].iloc[-8:].to_numpy()  # 9 blocks per stage; after the projection, x + branch
    assert last_stage[-1] < last_stage[0] / 3


def test_resnet_stages_halve_the_resolution_and_double_the_channels():
    model = resnet(width=1.0)
    x = torch.randn(2, 3, 32, 32)
    h = model.stem(x)
    shapes = []
    for block in model.residual_blocks():
        h = block(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes[0] == (16, 32, 32) and shapes[3] == (32, 16, 16) and shapes[-1] == (64, 8, 8)


def test_skipinit_starts_as_the_identity_on_every_block():
    model = resnet("skipinit", norm="none").train()
    h = model.stem(torch.randn(8, 3, 32, 32))  # after a ReLU: non-negative
    for block in model.residual_blocks():
        out = block(h)
        assert torch.equal(out, block.shortcut(h))  # ReLU(0 + shortcut) of a non-negative input
        if block.shortcut.stride == 1 and not block.shortcut.extra:
            assert torch.equal(out, h)
        h = out


def test_fixup_branches_and_classifier_output_zero_at_initialisation():
    model = resnet("fixup", norm="none")
    h = model.stem(torch.randn(8, 3, 32, 32))
    for block in model.residual_blocks():
        assert torch.count_nonzero(block.branch(h)) == 0
        h = block(h)
    assert torch.count_nonzero(model(torch.randn(8, 3, 32, 32))) == 0
    first = model.residual_blocks()[0].first.layer.weight
    fan_out = first.shape[0] * first.shape[2] * first.shape[3]
    expected = math.sqrt(2 / fan_out) / math.sqrt(len(model.residual_blocks()))  # He, scaled by L^(-1/2)
    assert first.std().item() == pytest.approx(expected, rel=0.15)


def test_residual_variances_of_the_variants():
    x = torch.randn(32, 3, 32, 32)
    for residual in ("skipinit", "fixup"):
        table = residual_variances(resnet(residual, norm="none"), x)
        assert (table["branch variance"] == 0).all() and (table["ratio"] == 0).all()
    bn = residual_variances(resnet(depth=56), x)
    assert bn["ratio"].iloc[-1] < bn["ratio"].iloc[0] / 4  # BatchNorm's branches shrink against the skip path


def test_resnet_config_is_checked():
    with pytest.raises(ConfigError, match="resnet_depth must be 6n \\+ 2"):
        RunConfig(model="resnet", resnet_depth=21)
    with pytest.raises(ConfigError, match="replaces the normalization; use norm 'none'"):
        RunConfig(model="resnet", residual="skipinit", norm="batch")
    with pytest.raises(ConfigError, match="Fixup's recipe is for post-activation blocks; use resnet_block 'post'"):
        RunConfig(model="resnet", residual="fixup", norm="none", resnet_block="pre")


# ----------------------------------------------------------------------------- MLPs


def test_mlp_layers_and_initialisation():
    torch.manual_seed(0)
    model = build_model(RunConfig(model="mlp", mlp_depth=4, mlp_width=512, norm="batch"))
    assert model.num_layers == 5 and model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert model.layer(2).weight.std().item() == pytest.approx(math.sqrt(2 / 512), rel=0.05)  # He-normal
    bound = 1 / math.sqrt(512)  # the classifier: torch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert model.layer(5).weight.abs().max().item() <= bound
    assert isinstance(model.norm(1), nn.BatchNorm1d) and isinstance(model.norm(5), nn.Identity)


# ----------------------------------------------------------------------------- the signal probes


def test_stable_rank_and_mean_cosine_known_answers():
    rank_one = torch.outer(torch.arange(1.0, 6.0), torch.tensor([1.0, 2.0, -1.0]))
    assert stable_rank(rank_one) == pytest.approx(1.0)
    assert mean_cosine(rank_one) == pytest.approx(1.0)
    assert stable_rank(torch.eye(4)) == pytest.approx(4.0)
    assert mean_cosine(torch.eye(4)) == pytest.approx(0.0)
    assert stable_rank(torch.diag(torch.tensor([2.0, 1.0]))) == pytest.approx(1.25)  # (4 + 1) / 4


def test_signal_propagation_measures_each_layer_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = build_model(RunConfig(model="mlp", mlp_depth=3, mlp_width=64, norm="batch")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    table = signal_propagation(model, x, y, F.cross_entropy)
    assert list(table["layer"]) == [1, 2, 3, 4]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # running stats too
    assert all(p.grad is None for p in model.parameters())
    # BatchNorm's output, through a ReLU, has per-unit mean^2 / variance of a rectified N(0, 1)
    hidden = table[table["layer"] < 4]
    rectified = (1 / (2 * math.pi)) / (0.5 - 1 / (2 * math.pi))
    ratio = hidden["channel mean^2"] / hidden["channel variance"]
    assert np.allclose(ratio, rectified, rtol=0.35)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert table["gradient norm"].iloc[0] == pytest.approx(model.layer(1).weight.grad.norm().item(), rel=1e-5)


def test_one_step_spread_is_one_at_rate_zero_and_moves_nothing():
    torch.manual_seed(0)
    model = build_model(RunConfig(model="mlp", mlp_depth=3, mlp_width=32))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    still = one_step_spread(model, batch, torch.randn(8, 3, 32, 32), F.cross_entropy, lr=0.0)
    assert np.allclose(still["ratio"], 1.0)
    moved = one_step_spread(model, batch, torch.randn(8, 3, 32, 32), F.cross_entropy, lr=10.0)
    assert not np.allclose(moved["ratio"], 1.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- scale invariance


def test_weight_norms_follow_plain_sgd_and_scale_invariance(cifar_tar):
    rows = {}
    for norm in ("batch", "none"):
        config = RunConfig(norm=norm, width=0.0625, train_per_class=20, test_per_class=10, steps=8, lr=0.1)
        record = load_or_run(config, [WeightNormProbe(every=4)])
        growth = norm_growth(record.probe_frame("weight-norms"), lr=0.1)
        assert list(growth["step"].unique()) == [0, 4]  # pairs (0, 1) and (4, 5)
        # what plain SGD gives any network, to the rounding of float32 weights
        rounding = 1e-6 * growth["weight norm"] ** 2
        assert ((growth["growth"] - growth["SGD gives"]).abs() <= rounding).all()
        rows[norm] = growth
    bn = rows["batch"][rows["batch"]["layer"] < 14]  # every layer but the classifier feeds a BatchNorm
    relative = (bn["growth"] - bn["invariance predicts"]).abs() / bn["invariance predicts"]
    assert relative.max() < 1e-2 and bn["cos(W, g)"].abs().max() < 1e-3
    std = rows["none"]
    assert ((std["growth"] - std["invariance predicts"]).abs() / std["invariance predicts"]).median() > 0.1


def test_the_rate_of_the_weights_has_a_group_of_its_own():
    config = RunConfig(norm="batch", width=0.0625, lr=0.1, weight_lr=10.0)
    model = build_model(config)
    groups = sgd(model, config).param_groups
    hidden = {id(model.layer(k).weight) for k in range(1, model.num_layers)}
    assert groups[0]["lr"] == 10.0 and {id(p) for p in groups[0]["params"]} == hidden
    assert groups[1]["lr"] == 0.1 and id(model.layer(model.num_layers).weight) in {id(p) for p in groups[1]["params"]}
    same = RunConfig(lr=0.1, weight_lr=0.1)  # the same run as without weight_lr: the same key
    assert same == RunConfig(lr=0.1) and same.digest() == RunConfig(lr=0.1).digest()


# ----------------------------------------------------------------------------- the squared loss, cut records


def test_half_squared_error_against_one_hot_labels():
    out, y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]), torch.tensor([0, 1])
    # example 1: 0; example 2: (0 - 1)^2 + 2^2 = 5; half of it, averaged: 1.25
    assert half_squared_error(out, y).item() == pytest.approx(1.25)
    with pytest.raises(ConfigError, match="the DLN's loss is its summed squared error"):
        RunConfig(model="dln", loss="mse")


def test_a_cut_record_is_the_shorter_run(cifar_tar):
    base = RunConfig(norm="batch", width=0.0625, train_per_class=20, test_per_class=10, test_every=4, lr=0.1)
    probe = WeightNormProbe(every=4)
    long, short = (load_or_run(base.replace(steps=s), [probe]) for s in (12, 8))
    cut = long.truncated(8)
    assert cut.config == short.config and cut.final == pytest.approx(short.final)
    for name in short.metrics:
        np.testing.assert_array_equal(cut.metrics[name], short.metrics[name])
    key = short.probe_key(probe)
    for name, values in short.probes[key].items():
        np.testing.assert_array_equal(cut.probes[key][name], values)
    with pytest.raises(ValueError, match="no test accuracy at step 6"):
        long.truncated(6)
