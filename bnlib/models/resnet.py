"""Residual networks for CIFAR-10 (He et al., 2016), in four variants: with BatchNorm, without
normalization, with SkipInit (De and Smith, 2020) and with Fixup (Zhang, Dauphin and Ma, 2019),
and in two block designs.

The ResNet-(6n+2) of the CIFAR experiments: a 3 x 3 stem convolution, three stages of n residual
blocks (16, 32 and 64 channels times `width`, the first block of stages 2 and 3 halving the
resolution), global average pooling and a linear classifier. The numbered weight layers are the
3 x 3 convolutions and the classifier: #1 the stem, #2 and #3 the first block's branch, ..., #6n+2
the classifier (a projection shortcut, below, is not numbered).

The blocks (`RunConfig.resnet_block`):
* "post", He et al.'s original: x -> ReLU(branch(x) + shortcut(x)), the branch two 3 x 3
  convolutions, each followed by the normalization, the first also by a ReLU; the shortcut has no
  parameters (option A: subsample, then pad the new channels with zeros). Fixup's recipe is written
  for these blocks, and its CIFAR code builds them so.
* "pre", the pre-activation block (He et al., 2016b), which De and Smith's SkipInit is built on
  (DeepMind's `skipinit_resnet.py`): x -> shortcut(x) + branch(x), the branch normalization, ReLU,
  convolution, normalization, ReLU, convolution; where the shape changes, the shortcut is a 1 x 1
  convolution (stride 2) of the block's pre-activated input, elsewhere the identity. The network
  ends with the normalization and a ReLU before the pooling. The skip path is a pure identity, so
  the variance of the signal grows along it with depth (De and Smith's argument).

The variants:
* "plain" with a normalization (e.g. BatchNorm): the standard BN ResNet.
* "plain" without one: the same network with nothing in the normalization's place.
* "skipinit": no normalization; each branch's output is multiplied by a learnable scalar alpha
  initialised to 0, so at initialisation every block is its shortcut.
* "fixup": no normalization; scalar biases before each convolution and activation of a branch, a scalar
  multiplier on each branch, the branch's last convolution and the classifier initialised to zero
  and its first convolution scaled down by (number of blocks)^(-1/2); every branch outputs zero
  at initialisation.

Initialisation (`init_resnet`): He-normal convolutions (fan out), as is usual for ResNets; biases
zero; the classifier torch's default, but zero for SkipInit (DeepMind's SkipInit ResNet) and Fixup
(its recipe). The convolutions of the unnormalized and SkipInit networks carry biases (DeepMind's
SkipInit does); BatchNorm's own shift makes them redundant there, and Fixup has its scalar biases
instead. Where DeepMind's SkipInit ResNet differs from ours: it is the ImageNet ResNet-50 (bottleneck
blocks of 1 x 1, 3 x 3, 1 x 1 convolutions, a 7 x 7 stem and max pooling, stochastic depth, dropout)
with Haiku's fan-in initialisation; ours has the CIFAR ResNet's two 3 x 3 convolutions per block, as
the CIFAR networks of De and Smith's experiments do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlib.config import RunConfig
from bnlib.models.numbered import Block, NumberedNet
from bnlib.norms import make_norm


class ScalarBias(nn.Module):
    """Adds one learnable scalar (Fixup's biases), initialised to 0."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias


class ScalarAffine(nn.Module):
    """Multiplies by one learnable scalar (initialised to 1), then adds one (initialised to 0):
    Fixup's scale and last bias on each branch."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.bias


class Shortcut(nn.Module):
    """He et al.'s option A: the identity, or subsample by `stride` and pad the new channels with zeros."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, channels_out - channels_in

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def _conv(channels_in: int, channels_out: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, kernel_size=3, stride=stride, padding=1, bias=bias)


def _biased(config: RunConfig) -> bool:
    """Whether the body's convolutions carry biases: without normalization and without Fixup's
    scalar biases (the unnormalized network and SkipInit, as DeepMind's SkipInit has them); a
    normalization's own shift (BatchNorm's beta) makes them redundant."""
    return config.norm == "none" and config.residual in ("plain", "skipinit")


class ResidualBlock(nn.Module):
    """x -> ReLU(branch(x) + shortcut(x)); the branch holds two numbered blocks, and starts as
    the variant says."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, config: RunConfig):
        super().__init__()
        self.residual = config.residual
        fixup = self.residual == "fixup"
        first_norm = ScalarBias() if fixup else make_norm(config.norm, channels_out, 2, config)
        second_norm = ScalarAffine() if fixup else make_norm(config.norm, channels_out, 2, config)
        bias = _biased(config)
        self.first = Block(_conv(channels_in, channels_out, stride, bias), first_norm, nn.ReLU())
        self.second = Block(_conv(channels_out, channels_out, bias=bias), second_norm, nn.Identity())
        self.shortcut = Shortcut(channels_in, channels_out, stride)
        if self.residual == "skipinit":
            self.alpha = nn.Parameter(torch.zeros(()))
        if fixup:
            self.shift_in, self.shift_mid = ScalarBias(), ScalarBias()

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch (what the block adds to its shortcut)."""
        if self.residual == "fixup":
            return self.second(self.shift_mid(self.first(self.shift_in(x))))
        out = self.second(self.first(x))
        return out * self.alpha if self.residual == "skipinit" else out

    def forward(self, x: Tensor) -> Tensor:
        # Fixup's downsampling shortcut sees the branch's first scalar bias too (x + bias1a)
        skip = (
            self.shortcut(x + self.shift_in.bias)
            if self.residual == "fixup" and self.shortcut.stride > 1
            else self.shortcut(x)
        )
        return F.relu(self.branch(x) + skip)


class PreActivationBlock(nn.Module):
    """x -> shortcut(x) + branch(x), the branch normalization, ReLU, then two numbered blocks (the
    second without normalization or activation); see the module's docstring."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, config: RunConfig):
        super().__init__()
        self.residual = config.residual
        bias = _biased(config)
        self.pre = nn.Sequential(make_norm(config.norm, channels_in, 2, config), nn.ReLU())
        mid_norm = make_norm(config.norm, channels_out, 2, config)
        self.first = Block(_conv(channels_in, channels_out, stride, bias), mid_norm, nn.ReLU())
        self.second = Block(_conv(channels_out, channels_out, bias=bias), nn.Identity(), nn.Identity())
        reshapes = stride > 1 or channels_in != channels_out
        # The 1 x 1 projection with stride `stride`, as a stride-1 convolution of the subsampled input:
        # the same numbers (bit for bit, measured), but oneDNN's strided 1 x 1 backward corrupts memory
        # on channels_last batches of fewer than 8 channels on some CPUs (torch 2.14, AVX2 without AVX-512)
        self.stride = stride
        self.projection = nn.Conv2d(channels_in, channels_out, 1, bias=bias) if reshapes else None
        if self.residual == "skipinit":
            self.alpha = nn.Parameter(torch.zeros(()))

    def _branch(self, activated: Tensor) -> Tensor:
        out = self.second(self.first(activated))
        return out * self.alpha if self.residual == "skipinit" else out

    def _shortcut(self, x: Tensor, activated: Tensor) -> Tensor:
        return x if self.projection is None else self.projection(activated[:, :, :: self.stride, :: self.stride])

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch (what the block adds to its shortcut)."""
        return self._branch(self.pre(x))

    def shortcut(self, x: Tensor) -> Tensor:
        """The skip path: the identity, or the projection of the pre-activated input."""
        return self._shortcut(x, self.pre(x))

    def forward(self, x: Tensor) -> Tensor:
        activated = self.pre(x)  # once: its batch statistics are the branch's and the projection's
        return self._branch(activated) + self._shortcut(x, activated)


class ResNet(NumberedNet):
    """ResNet-(6n+2) for 32 x 32 CIFAR images; see the module's docstring for its layers and variants."""

    def __init__(self, depth: int, width: float, config: RunConfig, num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has 6n + 2 layers (20, 32, 56, 110), not {depth}")
        n = (depth - 2) // 6
        channels = [max(1, round(c * width)) for c in (16, 32, 64)]
        fixup, pre = config.residual == "fixup", config.resnet_block == "pre"
        stem_conv = _conv(3, channels[0], bias=_biased(config))
        if pre:  # the first block normalizes and activates the stem's output
            self.stem = Block(stem_conv, nn.Identity(), nn.Identity())
        else:
            stem_norm = ScalarBias() if fixup else make_norm(config.norm, channels[0], 2, config)
            self.stem = Block(stem_conv, stem_norm, nn.ReLU())
        kind = PreActivationBlock if pre else ResidualBlock
        blocks, previous = [], channels[0]
        for stage, c in enumerate(channels):
            for i in range(n):
                blocks.append(kind(previous, c, 2 if stage > 0 and i == 0 else 1, config))
                previous = c
        self.stages = nn.Sequential(*blocks)
        self.final = nn.Sequential(make_norm(config.norm, previous, 2, config), nn.ReLU()) if pre else nn.Identity()
        self.head_shift = ScalarBias() if fixup else nn.Identity()
        self.head = Block(nn.Linear(previous, num_classes), nn.Identity(), nn.Identity())

    def residual_blocks(self) -> list[ResidualBlock | PreActivationBlock]:
        return list(self.stages)

    def forward(self, x: Tensor) -> Tensor:
        x = self.final(self.stages(self.stem(x)))
        return self.head(self.head_shift(x.mean((2, 3))))


def init_resnet(model: ResNet, residual: str) -> None:
    """He-normal convolutions and a default classifier; Fixup's rescaling and zeros, and SkipInit's
    zero classifier, on top."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if residual == "fixup":
        blocks = model.residual_blocks()
        for block in blocks:
            block.first.layer.weight.data.mul_(len(blocks) ** -0.5)  # L^(-1/(2m-2)) with m = 2 layers per branch
            nn.init.zeros_(block.second.layer.weight)
    if residual in ("fixup", "skipinit"):  # both sources start the classifier at zero
        nn.init.zeros_(model.head.layer.weight)
    else:
        nn.init.kaiming_uniform_(model.head.layer.weight, a=math.sqrt(5))  # torch's default Linear init
    nn.init.zeros_(model.head.layer.bias)
