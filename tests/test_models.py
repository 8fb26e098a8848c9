"""Layer numbering, shapes and initialisation of the paper's two networks."""

import math

import pytest
import torch
from torch import nn

from bnlib import RunConfig
from bnlib.models import VGG_CONFIGS, DeepLinearNet, build_model
from bnlib.norms import LpNorm, NoiseInjection


@pytest.mark.parametrize("depth,convs", [(11, 8), (13, 10), (16, 13), (19, 16)])
def test_vgg_layers_are_numbered_as_in_the_paper(depth, convs):
    model = build_model(RunConfig(vgg_depth=depth, width=0.125, norm="batch"))
    assert model.num_layers == convs + 1  # the conv layers, then the linear head
    channels = [c for c in VGG_CONFIGS[depth] if c != "M"]
    for k in range(1, convs + 1):
        assert isinstance(model.layer(k), nn.Conv2d)
        assert model.layer(k).out_channels == round(channels[k - 1] * 0.125)
        assert isinstance(model.norm(k), nn.BatchNorm2d)
    assert isinstance(model.layer(convs + 1), nn.Linear)
    assert isinstance(model.norm(convs + 1), nn.Identity)  # no normalization after the head
    for k in (0, convs + 2):
        with pytest.raises(IndexError, match=f"layers #1..#{convs + 1}"):
            model.layer(k)


def test_vgg16_numbering_follows_the_forward_order():
    # Layer #k must be the k-th weight layer the input goes through.
    model = build_model(RunConfig(width=0.0625))
    seen: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(m)) for m in model.modules() if hasattr(m, "weight")]
    model(torch.randn(2, 3, 32, 32))
    for h in handles:
        h.remove()
    assert seen == [model.layer(k) for k in range(1, 15)]


def test_vgg_forward_shape_and_norm_choices():
    x = torch.randn(4, 3, 32, 32)
    for norm, kind in [("none", nn.Identity), ("l1", LpNorm), ("noise", NoiseInjection)]:
        model = build_model(RunConfig(width=0.0625, norm=norm))
        assert model(x).shape == (4, 10)
        assert isinstance(model.norm(3), kind)
    noisy = build_model(RunConfig(width=0.0625, norm="noisy_batch"))
    assert isinstance(noisy.norm(3)[0], nn.BatchNorm2d) and isinstance(noisy.norm(3)[1], NoiseInjection)


def test_width_multiplier_scales_channels():
    model = build_model(RunConfig(width=0.5))
    assert [model.layer(k).out_channels for k in (1, 3, 5, 8, 11)] == [32, 64, 128, 256, 256]


def test_dln_has_25_square_layers_with_norm_after_each_hidden_one():
    model = build_model(RunConfig(model="dln", norm="batch", lr=1e-6))
    assert isinstance(model, DeepLinearNet) and model.num_layers == 25
    for k in range(1, 26):
        assert model.layer(k).weight.shape == (10, 10) and model.layer(k).bias is None
    assert all(isinstance(model.norm(k), nn.BatchNorm1d) for k in range(1, 25))
    assert isinstance(model.norm(25), nn.Identity)
    assert model(torch.randn(7, 10)).shape == (7, 10)


def test_standard_dln_is_the_product_of_its_matrices():
    model = build_model(RunConfig(model="dln", lr=1e-6, dln_depth=4, dln_dim=3))
    x = torch.randn(5, 3)
    product = torch.eye(3)
    for k in range(1, 5):
        product = model.layer(k).weight @ product
    torch.testing.assert_close(model(x), x @ product.T)


def test_glorot_uniform_initialisation():
    torch.manual_seed(0)
    model = build_model(RunConfig(width=1.0))
    conv = model.layer(8)  # 256 -> 512 channels, 3 x 3
    fan_in, fan_out = 256 * 9, 512 * 9
    bound = math.sqrt(6 / (fan_in + fan_out))
    w = conv.weight.detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert abs(w.var().item() - bound**2 / 3) < 0.02 * bound**2 / 3
    assert torch.count_nonzero(conv.bias) == 0


def test_same_seed_same_initial_weights():
    def weights():
        torch.manual_seed(3)
        return build_model(RunConfig(width=0.0625)).state_dict()

    a, b = weights(), weights()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_pre_activation_resnet_with_few_channels_trains_in_channels_last():
    """Its projections subsample, then apply a stride-1 1 x 1 convolution: the strided convolution of
    the same numbers, without oneDNN's strided 1 x 1 backward, which corrupts memory on channels_last
    batches of fewer than 8 channels on some CPUs (a crash here, without the subsampling)."""
    torch.manual_seed(0)
    config = RunConfig(model="resnet", norm="batch", resnet_block="pre", width=0.125)  # 2, 4, 8 channels
    model = build_model(config).to(memory_format=torch.channels_last)
    x = torch.randn(16, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        model(x).sum().backward()
    block = next(b for b in model.modules() if getattr(b, "projection", None) is not None and b.stride == 2)
    activated = torch.randn(4, block.projection.in_channels, 8, 8, dtype=torch.float64)
    projection = block.projection.double()
    strided = nn.functional.conv2d(activated, projection.weight, projection.bias, stride=2)
    torch.testing.assert_close(block._shortcut(activated, activated), strided, rtol=0, atol=1e-12)
