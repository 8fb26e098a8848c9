"""Normalization layers against torch's BatchNorm and hand computations."""

import math

import pytest
import torch
from torch import nn

from bnlib import NoiseParams, RunConfig
from bnlib.errors import ConfigError
from bnlib.norms import NORMS, LpNorm, NoiseInjection, make_norm

ZERO_NOISE = NoiseParams(n_mu=0.0, n_sigma=1.0, r_mu=0.0, r_sigma=0.0)


@pytest.mark.parametrize("dims,shape", [(1, (32, 6)), (2, (8, 6, 5, 5))])
def test_noisy_bn_with_zero_noise_equals_torch_batchnorm(dims, shape):
    config = RunConfig(norm="noisy_batch", noise=ZERO_NOISE)
    noisy = make_norm("noisy_batch", 6, dims, config)
    reference = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(6)
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in (noisy[0], reference):
            layer.weight.copy_(torch.linspace(0.5, 2, 6))
            layer.bias.copy_(torch.linspace(-1, 1, 6))
    x = torch.randn(shape) * 3 + 1
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, out2 = noisy(x1), reference(x2)
    assert torch.equal(out1, out2)
    out1.square().sum().backward()
    out2.square().sum().backward()
    assert torch.equal(x1.grad, x2.grad)
    assert torch.equal(noisy[0].running_var, reference.running_var)


def test_noise_per_unit_parameters_follow_algorithm_1():
    # With r_mu = r_sigma = 0 the noise is a <- sigma_j a + mu_j per unit, sigma_j ~ U(1, n_sigma),
    # mu_j ~ U(-n_mu, n_mu), redrawn at every forward pass.
    noise = NoiseInjection(NoiseParams(n_mu=0.5, n_sigma=1.25, r_mu=0.0, r_sigma=0.0)).train()
    a = torch.randn(64, 200, 3, 3)
    out = noise(a)
    sigma = (out[1] - out[0]) / (a[1] - a[0])  # per unit, constant over batch and H, W
    mu = out[0] - sigma * a[0]
    sigma_j, mu_j = sigma[:, 0, 0], mu[:, 0, 0]
    torch.testing.assert_close(sigma, sigma_j[:, None, None].expand_as(sigma), atol=1e-4, rtol=1e-4)
    assert sigma_j.min() >= 1 - 1e-5 and sigma_j.max() <= 1.25 + 1e-5
    assert mu_j.abs().max() <= 0.5 + 1e-5 and mu_j.std() > 0.2  # U(-0.5, 0.5) has std 0.29
    assert not torch.allclose(noise(a), out)  # redrawn each step


def test_noise_per_element_spread_matches_r_constants():
    p = NoiseParams(n_mu=0.0, n_sigma=1.0, r_mu=0.3, r_sigma=0.2)
    out = NoiseInjection(p).train()(torch.ones(4000, 8))
    # a = 1: out = s + m, s ~ N(1, 0.2), m ~ U(-0.3, 0.3): mean 1, variance 0.2^2 + 0.3^2 / 3
    torch.testing.assert_close(out.mean(0), torch.ones(8), atol=0.03, rtol=0)
    torch.testing.assert_close(out.var(0), torch.full((8,), 0.04 + 0.03), atol=0.01, rtol=0)


def test_noise_is_off_in_eval_mode():
    noise = NoiseInjection(NoiseParams()).eval()
    a = torch.randn(10, 4)
    assert torch.equal(noise(a), a)


def test_lp_norms_match_hand_computation():
    x = torch.tensor([[1.0], [-2.0], [3.0], [-4.0]])  # one unit, a batch of 4; mean -0.5
    expected_scale = {1: 2.5, 2: math.sqrt(7.5), math.inf: 4.0}  # computed on the uncentred x
    for p, s in expected_scale.items():
        layer = LpNorm(1, p, eps=0.0)
        out = layer(x)
        torch.testing.assert_close(out, (x + 0.5) / s)
        torch.testing.assert_close(layer.running_mean, torch.tensor([0.1 * -0.5]))


def test_lp_norm_treats_height_and_width_as_batch():
    x = torch.randn(3, 2, 4, 4)
    layer = LpNorm(2, 1, eps=0.0)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, 3.0]))
        layer.bias.copy_(torch.tensor([0.5, -1.0]))
    out = layer(x)
    for c in range(2):
        v = x[:, c]
        expected = (v - v.mean()) / v.abs().mean() * layer.weight[c] + layer.bias[c]
        torch.testing.assert_close(out[:, c], expected)


def test_lp_norm_eval_uses_running_statistics():
    layer = LpNorm(1, 2, eps=0.0, momentum=1.0)
    x = torch.tensor([[2.0], [4.0]])
    layer(x)  # momentum 1: running stats become this batch's
    layer.eval()
    y = torch.tensor([[10.0]])
    torch.testing.assert_close(layer(y), (y - 3.0) / math.sqrt(10.0))


@pytest.mark.parametrize("name", list(NORMS))
@pytest.mark.parametrize("dims,shape", [(1, (16, 5)), (2, (4, 5, 3, 3))])
def test_every_registered_norm_keeps_shape(name, dims, shape):
    layer = make_norm(name, 5, dims, RunConfig(norm=name))
    assert layer(torch.randn(shape)).shape == shape


def test_unknown_norm_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown normalization 'instance'"):
        RunConfig(norm="instance")


def test_noise_on_a_channels_last_batch_keeps_its_layout_and_distribution():
    p = NoiseParams(n_mu=0.0, n_sigma=1.0, r_mu=0.3, r_sigma=0.2)
    a = torch.ones(500, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    out = NoiseInjection(p).train()(a)
    assert out.is_contiguous(memory_format=torch.channels_last)  # the next convolution stays fast
    per_channel = out.transpose(0, 1).reshape(8, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.ones(8), atol=0.02, rtol=0)
    torch.testing.assert_close(per_channel.var(1), torch.full((8,), 0.04 + 0.03), atol=0.006, rtol=0)
    assert per_channel.min() > 1 - 0.3 - 6 * 0.2  # m stays within r_mu of its centre


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_lp_norm_equals_the_formula_in_value_and_gradient(p):
    torch.manual_seed(0)
    x = (torch.randn(6, 3, 4, 4, dtype=torch.float64) * 2 + 0.5).contiguous(memory_format=torch.channels_last)
    layer = LpNorm(3, p).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
        layer.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    dims = (0, 2, 3)
    scale = {
        1: lambda t: t.abs().mean(dims) + 1e-5,
        2: lambda t: (t.square().mean(dims) + 1e-5).sqrt(),
        math.inf: lambda t: t.abs().amax(dims) + 1e-5,
    }[p]

    def formula(t):  # gamma (t - mean) / s_p + beta, as the paper's Section 3.3 reads
        view = (1, -1, 1, 1)
        return (t - t.mean(dims).view(view)) / scale(t).view(view) * layer.weight.view(view) + layer.bias.view(view)

    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, out2 = layer(x1), formula(x2)
    torch.testing.assert_close(out1, out2, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out2)
    (out1 * weights).sum().backward()
    (out2 * weights).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)
