"""Normalization layers, chosen by name through one registry.

Every model builds each hidden block as `weighted(config, layer)` (the weight layer, reparametrized
for the normalizations that act on the weights) followed by `make_norm(name, num_features, dims,
config)` (the normalization of its output), so a new normalization is one `@register_norm`
function here and touches no call site. `dims` is 2 for conv feature maps (N, C, H, W) and 1 for
features (N, C).

The registry holds the paper's (BatchNorm, its noisy version and the noise alone, l1 / l2 /
l-infinity) and the ablation ladder's, each of which keeps or removes one ingredient of BatchNorm:
BatchNorm without the gradient through its statistics, centering only, scaling only, ghost batches,
LayerNorm, GroupNorm, centered weight normalization (scale invariance without normalizing
activations) and scaled weight standardization (the same invariance, and a start at He's scale).
Any mix of these ingredients is one normalization too, "composed" from a `bnlib.config.Recipe`
(`ComposedNorm`); a recipe that is one of the registered normalizations is that one (`named_norm`).
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


class Recipe(Protocol):
    """A composed normalization's ingredients (`bnlib.config.Recipe`, made with its field values)."""

    statistics: str
    center: bool
    scale: bool
    gradient: bool
    affine: bool
    noise: bool
    weights: str

    def __init__(self, **ingredients: object) -> None: ...


class NormSettings(Protocol):
    """What a normalization reads from the run's config (a `bnlib.config.RunConfig`): this module
    depends on no config type, so the config can check its normalization against `NORMS`."""

    norm: str
    recipe: Recipe
    bn_eps: float
    bn_momentum: float
    noise: Noise
    ghost_batch: int
    norm_groups: int
    width: float


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


# ----------------------------------------------------------------------------- the ablation ladder


class BatchStatistics(nn.Module):
    """BatchNorm with one of its ingredients removed: per unit over the batch (and H, W),
    y = gamma (x - m) / s + beta, with running averages of m and s for evaluation mode as in
    BatchNorm, where

    * "detached": m, s are the batch mean and standard deviation (sqrt(var + eps)), held as constants
      in the backward pass (no gradient through the statistics: Ioffe and Szegedy's section 2);
    * "center": m the batch mean, s = 1 (centering only: Salimans and Kingma's mean-only BatchNorm);
    * "scale": m = 0, s the batch standard deviation about the mean (scaling only, no centering).
    """

    def __init__(self, num_features: int, which: str, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if which not in ("detached", "center", "scale"):
            raise ValueError(f"which must be detached, center or scale, not {which!r}")
        self.which, self.eps, self.momentum = which, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        x = full_precision(x)
        if self.training:
            mean, var = x.mean(_reduce_dims(x)), x.var(_reduce_dims(x), unbiased=False)
            with torch.no_grad():
                count = x.numel() // x.shape[1]
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * count / max(count - 1, 1), self.momentum)
            if self.which == "detached":
                mean, var = mean.detach(), var.detach()
        else:
            mean, var = self.running_mean, self.running_var
        m = torch.zeros_like(mean) if self.which == "scale" else mean
        s = torch.ones_like(var) if self.which == "center" else (var + self.eps).sqrt()
        k = self.weight / s
        return torch.addcmul(_per_channel(self.bias - m * k, x), x, _per_channel(k, x))

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, which={self.which}, eps={self.eps}, momentum={self.momentum}"


class GhostBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training-mode statistics come from sub-batches ("ghost batches") of `ghost`
    examples (Hoffer, Hubara and Soudry, 2017): the batch is split in order, each part normalized by
    its own mean and variance; the running averages take the mean of the parts' statistics once per
    step. Evaluation mode is BatchNorm's. For (N, C) and (N, C, H, W) inputs."""

    def __init__(self, num_features: int, ghost: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.ghost = ghost

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"expected a 2D or 4D input, got {x.dim()}D")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        x = full_precision(x)
        n = x.shape[0]
        if n % self.ghost:  # a batch that does not split evenly (a probe's, an odd last batch): part by part
            parts = torch.split(x, self.ghost)
            return torch.cat([self._normalize(p.unsqueeze(0)).squeeze(0) for p in parts]).contiguous(
                memory_format=_layout(x)
            )
        return (
            self._normalize(x.reshape(n // self.ghost, self.ghost, *x.shape[1:]))
            .reshape(x.shape)
            .contiguous(memory_format=_layout(x))
        )

    def _normalize(self, parts: Tensor) -> Tensor:
        """Each part (the first dimension) normalized by its own statistics; the running averages
        take the mean of the parts' statistics."""
        dims = (1, *range(3, parts.dim()))  # per part: its examples (and H, W)
        mean, var = parts.mean(dims, keepdim=True), parts.var(dims, unbiased=False, keepdim=True)
        with torch.no_grad():
            count = parts[0].numel() // parts.shape[2]
            self.running_mean.lerp_(mean.reshape(len(parts), -1).mean(0), self.momentum)
            unbiased = var.reshape(len(parts), -1).mean(0) * count / max(count - 1, 1)
            self.running_var.lerp_(unbiased, self.momentum)
        shape = (1, 1, -1, *([1] * (parts.dim() - 3)))
        return (parts - mean) / (var + self.eps).sqrt() * self.weight.view(shape) + self.bias.view(shape)


def _layout(x: Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )


class CenteredWeights(nn.Module):
    """A weight layer (conv or linear) whose effective weights are centered and normalized per
    output unit, then scaled by a learnable gain (centered weight normalization: Huang et al.,
    2017; Salimans and Kingma, 2016): W_hat = g (W - mean(W)) / ||W - mean(W)||. The loss is
    invariant to the scale of W, as with BatchNorm, but no activation is normalized. `weight` is the
    raw W (the parameter SGD updates); the gain starts at the initial ||W - mean(W)|| per unit
    (`reset_gain`, after initialisation), so the network starts as the one without it, centered."""

    def __init__(self, layer: nn.Conv2d | nn.Linear):
        super().__init__()
        self.layer = layer
        self.gain = nn.Parameter(torch.ones(layer.weight.shape[0]))

    @property
    def weight(self) -> nn.Parameter:
        return self.layer.weight

    @property
    def bias(self) -> nn.Parameter | None:
        return self.layer.bias

    def effective_weight(self) -> Tensor:
        w = self.layer.weight
        centered = w - w.mean(dim=tuple(range(1, w.dim())), keepdim=True)
        norms = centered.flatten(1).norm(dim=1).clamp_min(1e-12)
        return centered * (self.gain / norms).view(-1, *([1] * (w.dim() - 1)))

    @torch.no_grad()
    def reset_gain(self) -> None:
        w = self.layer.weight
        self.gain.copy_((w - w.mean(dim=tuple(range(1, w.dim())), keepdim=True)).flatten(1).norm(dim=1))

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, self.effective_weight(), self.layer.bias)
        return nn.functional.linear(x, self.effective_weight(), self.layer.bias)


# Brock et al.'s gain for ReLU: He's sqrt(2), divided by the spread of a ReLU of a unit Gaussian
# about its own mean (1 - 1/pi is its variance times 2), so each layer's output starts at unit variance
RELU_GAIN = math.sqrt(2 / (1 - 1 / math.pi))


class ScaledStandardizedWeights(CenteredWeights):
    """Scaled weight standardization (Brock et al., 2021, NF-ResNets):
    W_hat = gain * RELU_GAIN * (W - mean(W)) / (std(W) sqrt(fan_in)), per output unit, the learnable
    gain starting at 1. Scale invariant as centered weight normalization is, but it starts at He's
    scale whatever W's initialisation, so the signal keeps its scale through the depth at the start
    (a Glorot start shrinks it layer by layer in the VGG)."""

    def effective_weight(self) -> Tensor:
        w = self.layer.weight
        fan_in = w[0].numel()
        centered = w - w.mean(dim=tuple(range(1, w.dim())), keepdim=True)
        std = centered.flatten(1).pow(2).mean(dim=1).sqrt().clamp_min(1e-12)
        scale = self.gain * RELU_GAIN / (std * math.sqrt(fan_in))
        return centered * scale.view(-1, *([1] * (w.dim() - 1)))

    @torch.no_grad()
    def reset_gain(self) -> None:
        self.gain.fill_(1.0)  # the start is He's scale, not the initialised weights' own


# The reparametrizations of a weight layer, by a recipe's `weights`
WEIGHT_NORMS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "centered": CenteredWeights,
    "scaled": ScaledStandardizedWeights,
}


def weighted(config: NormSettings, layer: nn.Module) -> nn.Module:
    """The weight layer of a block under the config's normalization: reparametrized where it
    normalizes the weights (its recipe's `weights`, `recipe_of`), as it is otherwise."""
    recipe = recipe_of(config)
    return layer if recipe is None or recipe.weights == "plain" else WEIGHT_NORMS[recipe.weights](layer)


def _groups(num_features: int, config: NormSettings) -> int:
    """GroupNorm's groups: `norm_groups` at full width, scaled with the width as the channels are
    (so each group holds as many channels as in the full network), and dividing the channels."""
    return math.gcd(num_features, max(1, round(config.norm_groups * config.width)))


@register_norm("batch_detached")
def _batch_detached(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return BatchStatistics(num_features, "detached", eps=config.bn_eps, momentum=config.bn_momentum)


@register_norm("batch_center")
def _batch_center(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return BatchStatistics(num_features, "center", eps=config.bn_eps, momentum=config.bn_momentum)


@register_norm("batch_scale")
def _batch_scale(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return BatchStatistics(num_features, "scale", eps=config.bn_eps, momentum=config.bn_momentum)


@register_norm("ghost")
def _ghost(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return GhostBatchNorm(num_features, config.ghost_batch, eps=config.bn_eps, momentum=config.bn_momentum)


@register_norm("layer")
def _layer(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    # Over each example's units (and H, W), with BatchNorm's per-unit affine: GroupNorm with one group.
    return nn.GroupNorm(1, num_features, eps=config.bn_eps)


@register_norm("group")
def _group(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return nn.GroupNorm(_groups(num_features, config), num_features, eps=config.bn_eps)


@register_norm("weight_std")
@register_norm("scaled_ws")
def _weight_std(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return nn.Identity()  # the weights are normalized instead (`weighted`)


# ----------------------------------------------------------------------------- composed from a recipe


class ComposedNorm(nn.Module):
    """The normalization of a `bnlib.config.Recipe`, for the normalization lab: the statistics over
    the batch, ghost batches, each example or each example's groups of units; y = (x - m) / s with
    m the mean (0 without centering) and s = sqrt(var + eps) about the mean (1 without scaling),
    the statistics held constant in the backward pass without `gradient`; then the affine
    gamma y + beta, then the paper's noise. Batch and ghost statistics keep BatchNorm's running
    averages for evaluation mode; an example's own statistics are used in both modes.

    Each registered normalization that is such a mix computes the same function as this module with
    its recipe (`NAMED_RECIPES`; tested), and a config stores that normalization's name instead."""

    def __init__(self, num_features: int, recipe: Recipe, config: NormSettings):
        super().__init__()
        self.recipe, self.eps, self.momentum = recipe, config.bn_eps, config.bn_momentum
        self.ghost = config.ghost_batch
        self.groups = 1 if recipe.statistics == "example" else _groups(num_features, config)
        if recipe.affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        if recipe.statistics in ("batch", "ghost"):
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
        self.noise = NoiseInjection(config.noise) if recipe.noise else None

    def forward(self, x: Tensor) -> Tensor:
        x = full_precision(x)
        r = self.recipe
        if r.statistics in ("example", "groups"):
            y = self._per_example(x)
        elif r.statistics == "batch" or (r.statistics == "ghost" and not self.training):
            y = self._over_batch(x)
        elif r.statistics == "ghost":  # parts of `ghost` examples (the last one shorter, if it must be)
            y = torch.cat([self._over_batch(part) for part in torch.split(x, self.ghost)])
            self._track(x)  # the running averages take the mean of the parts' statistics
        else:
            y = x
        if r.affine:
            y = torch.addcmul(_per_channel(self.bias, y), y, _per_channel(self.weight, y))
        return y if self.noise is None else self.noise(y)

    def _normalized(self, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        if not self.recipe.gradient:
            mean, var = mean.detach(), var.detach()
        centered = x - mean if self.recipe.center else x
        return centered / (var + self.eps).sqrt() if self.recipe.scale else centered

    def _over_batch(self, x: Tensor) -> Tensor:
        """Each unit over the examples of `x` (and H, W); the running averages in evaluation mode."""
        if not self.training:
            return self._normalized(x, _per_channel(self.running_mean, x), _per_channel(self.running_var, x))
        dims = _reduce_dims(x)
        var, mean = torch.var_mean(x, dims, unbiased=False, keepdim=True)  # one pass
        if self.recipe.statistics == "batch":
            self._update(mean.flatten(), var.flatten(), x.numel() // x.shape[1])
        return self._normalized(x, mean, var)

    @torch.no_grad()
    def _track(self, x: Tensor) -> None:
        """Ghost batches' running averages: the mean over the parts of each part's statistics."""
        parts = torch.split(x, self.ghost)
        stats = [(p.mean(_reduce_dims(p)), p.var(_reduce_dims(p), unbiased=False)) for p in parts]
        count = parts[0].numel() // x.shape[1]
        self._update(torch.stack([m for m, _ in stats]).mean(0), torch.stack([v for _, v in stats]).mean(0), count)

    @torch.no_grad()
    def _update(self, mean: Tensor, var: Tensor, count: int) -> None:
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(var * count / max(count - 1, 1), self.momentum)

    def _per_example(self, x: Tensor) -> Tensor:
        """Each example over its groups of units (one group: all of them), in both modes."""
        if self.groups == 1:  # over all of an example's units: no reshape, which would copy a channels_last batch
            var, mean = torch.var_mean(x, tuple(range(1, x.dim())), unbiased=False, keepdim=True)
            return self._normalized(x, mean, var)
        parts = x.reshape(x.shape[0], self.groups, -1)
        var, mean = torch.var_mean(parts, 2, unbiased=False, keepdim=True)
        return self._normalized(parts, mean, var).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.recipe}, eps={self.eps}, momentum={self.momentum}"


@register_norm("composed")
def _composed(num_features: int, dims: int, config: NormSettings) -> nn.Module:
    return ComposedNorm(num_features, config.recipe, config)


# The registered normalizations that are mixes of the recipe's ingredients, by name: the ingredients
# of each that differ from a recipe's defaults, BatchNorm's (the ghost batch's size and GroupNorm's
# groups are the config's own fields, as for the named ones)
NAMED_RECIPES: dict[str, dict[str, object]] = {
    "none": dict(statistics="none", affine=False),
    "batch": {},
    "noisy_batch": dict(noise=True),
    "noise": dict(statistics="none", affine=False, noise=True),
    "batch_detached": dict(gradient=False),
    "batch_center": dict(scale=False),
    "batch_scale": dict(center=False),
    "ghost": dict(statistics="ghost"),
    "layer": dict(statistics="example"),
    "group": dict(statistics="groups"),
    "weight_std": dict(statistics="none", affine=False, weights="centered"),
    "scaled_ws": dict(statistics="none", affine=False, weights="scaled"),
}


def named_norm(recipe: Recipe) -> str | None:
    """The registered normalization a recipe is (None: none of them)."""
    return next((name for name, named in NAMED_RECIPES.items() if type(recipe)(**named) == recipe), None)


def recipe_of(config: NormSettings) -> Recipe | None:
    """The recipe of the config's normalization (None: not a mix of the recipe's ingredients, as
    the l_p normalizations)."""
    if config.norm == "composed":
        return config.recipe
    named = NAMED_RECIPES.get(config.norm)
    return None if named is None else type(config.recipe)(**named)
