"""Normalization layers, chosen by name through one registry.

Every model calls `make_norm(name, num_features, dims, config)` after each hidden weight layer, so
a new normalization (LayerNorm, GroupNorm, ...) is one `@register_norm` function here and touches
no call site. `dims` is 2 for conv feature maps (N, C, H, W) and 1 for features (N, C).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

from bnlib.device import full_precision


class Noise(Protocol):
    """The four constants of Algorithm 1 (`bnlib.config.NoiseParams`)."""

    n_mu: float
    n_sigma: float
    r_mu: float
    r_sigma: float


class NormSettings(Protocol):
    """What a normalization reads from the run's config (a `bnlib.config.RunConfig`): this module
    depends on no config type, so the config can check its normalization against `NORMS`."""

    bn_eps: float
    bn_momentum: float
    noise: Noise


NormFactory = Callable[[int, int, NormSettings], nn.Module]
NORMS: dict[str, NormFactory] = {}


def register_norm(name: str) -> Callable[[NormFactory], NormFactory]:
    """Decorator: make a normalization available to every model under `name`."""

    def add(factory: NormFactory) -> NormFactory:
        NORMS[name] = factory
        return factory

    return add


def make_norm(name: str, num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return NORMS[name](num_features, dims, config)


def _reduce_dims(x: Tensor) -> tuple[int, ...]:
    """Batch dimensions of a (N, C) or (N, C, H, W) tensor: H and W count as batch (paper A.2.1)."""
    return (0, *range(2, x.dim()))


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    return v.view(1, -1, *([1] * (x.dim() - 2)))


def _draw(sample: Callable[..., Tensor], like: Tensor) -> Tensor:
    """i.i.d. draws (torch.rand or torch.randn) shaped and laid out like `like`: written into a plain
    buffer in memory order, which is several times faster than filling a channels_last tensor, and
    the same distribution (every element is an independent draw)."""
    if like.is_contiguous() or like.is_contiguous(memory_format=torch.channels_last):
        return sample(like.numel(), device=like.device).as_strided(like.shape, like.stride())
    return sample(like.shape, device=like.device)


class NoiseInjection(nn.Module):
    """The noise of the paper's Algorithm 1, applied to already-normalized activations.

    For each unit (channel) j the distribution's parameters are redrawn every forward pass,
    mu_j ~ U(-n_mu, n_mu) and sigma_j ~ U(1, n_sigma); then each element i of unit j (batch, H, W)
    gets m ~ U(mu_j - r_mu, mu_j + r_mu) and s ~ N(sigma_j, r_sigma), and a <- s a + m.
    Active in training mode only; the identity in eval mode. Draws from torch's global generator,
    which the training loop seeds, checkpoints and restores around probes.
    """

    def __init__(self, noise: Noise):
        super().__init__()
        self.noise = noise

    def forward(self, a: Tensor) -> Tensor:
        """Algorithm 1 on normalized activations of shape (N, C) or (N, C, H, W)."""
        if not self.training:
            return a
        p = self.noise
        a = full_precision(a)  # under bf16 autocast too: the noise's resolution is float32's
        channels = a.shape[1]
        mu = torch.rand(channels, device=a.device).mul_(2 * p.n_mu).sub_(p.n_mu)  # U(-n_mu, n_mu)
        sigma = torch.rand(channels, device=a.device).mul_(p.n_sigma - 1).add_(1)  # U(1, n_sigma)
        m = torch.add(_per_channel(mu - p.r_mu, a), _draw(torch.rand, a), alpha=2 * p.r_mu)  # U(mu -+ r_mu)
        s = torch.add(_per_channel(sigma, a), _draw(torch.randn, a), alpha=p.r_sigma)  # N(sigma, r_sigma)
        return torch.addcmul(m, s, a)  # s a + m

    def extra_repr(self) -> str:
        return str(self.noise)


class LpNorm(nn.Module):
    """Section 3.3's l_p normalization: subtract the batch mean, divide by the l_p average of the
    *uncentred* activations, then a learnable affine (gamma, beta) as in BatchNorm.

    Per unit over the N batch elements (batch x H x W for conv):
    s_1 = mean|x| + eps,  s_2 = sqrt(mean x^2 + eps),  s_inf = max|x| + eps.
    Like BatchNorm it keeps running averages of the mean and of s_p for evaluation mode.
    """

    def __init__(self, num_features: int, p: float, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if p not in (1, 2, math.inf):
            raise ValueError(f"p must be 1, 2 or inf (got {p})")
        self.p, self.eps, self.momentum = p, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_scale", torch.ones(num_features))

    def scale(self, x: Tensor) -> Tensor:
        """s_p(x) per channel, computed on the uncentred activations (one pass each)."""
        dims = _reduce_dims(x)
        count = x.numel() // x.shape[1]
        if self.p == 1:
            return torch.linalg.vector_norm(x, 1, dims) / count + self.eps  # mean |x| + eps
        if self.p == 2:
            return (torch.linalg.vector_norm(x, 2, dims).square() / count + self.eps).sqrt()  # sqrt(mean x^2 + eps)
        return torch.linalg.vector_norm(x, math.inf, dims) + self.eps  # max |x| + eps

    def forward(self, x: Tensor) -> Tensor:
        x = full_precision(x)  # bf16 under autocast: the statistics in float32
        if self.training:
            mean, scale = x.mean(_reduce_dims(x)), self.scale(x)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_scale.lerp_(scale, self.momentum)
        else:
            mean, scale = self.running_mean, self.running_scale
        # gamma (x - mean) / s_p + beta, computed as x k + c per channel: one pass over the activations
        k = self.weight / scale
        return torch.addcmul(_per_channel(self.bias - mean * k, x), x, _per_channel(k, x))

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, p={self.p}, eps={self.eps}, momentum={self.momentum}"


def _batch_norm(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return cls(num_features, eps=config.bn_eps, momentum=config.bn_momentum)


@register_norm("none")
def _none(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return nn.Identity()


@register_norm("batch")
def _batch(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return _batch_norm(num_features, dims, config)


@register_norm("noisy_batch")
def _noisy_batch(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    # Noise after BN's affine and before the non-linearity (book/protocol.md, "Noisy BatchNorm").
    return nn.Sequential(_batch_norm(num_features, dims, config), NoiseInjection(config.noise))


@register_norm("noise")
def _noise_only(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    # The paper's control (p. 4): the same noise on the standard network, with no normalization.
    return NoiseInjection(config.noise)


for _name, _p in (("l1", 1), ("l2", 2), ("linf", math.inf)):

    def _lp(num_features: int, dims: int, config: NormSettings, p: float = _p) -> nn.Module:
        return LpNorm(num_features, p, eps=config.bn_eps, momentum=config.bn_momentum)

    register_norm(_name)(_lp)
