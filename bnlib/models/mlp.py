"""Deep ReLU networks of fully connected layers on flattened CIFAR-10 images, for the questions of
initialisation: signal propagation, rank collapse and gradient explosion with depth.

`depth` hidden layers of `width` units (#1..#depth), each followed by the normalization and a
ReLU, then a linear classifier (#depth+1). The hidden layers get He-normal weights (the variance
that keeps a ReLU network's activations from shrinking with depth without normalization), the
classifier torch's default initialisation (as in the ResNet), all biases zero.
"""

from __future__ import annotations

import itertools
import math

from torch import Tensor, nn

from bnlib.config import RunConfig
from bnlib.models.numbered import Block, NumberedNet
from bnlib.norms import make_norm, weighted


class MLP(NumberedNet):
    """Flatten, `depth` x (linear -> norm -> ReLU), linear classifier."""

    def __init__(self, depth: int, width: int, config: RunConfig, inputs: int = 3 * 32 * 32, num_classes: int = 10):
        super().__init__()
        sizes = [inputs] + [width] * depth
        self.hidden = nn.Sequential(
            *[
                Block(weighted(config, nn.Linear(a, b)), make_norm(config.norm, b, 1, config), nn.ReLU())
                for a, b in itertools.pairwise(sizes)
            ]
        )
        self.head = Block(nn.Linear(width, num_classes), nn.Identity(), nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.hidden(x.flatten(1)))


def init_mlp(model: MLP) -> None:
    for block in model.hidden:
        nn.init.kaiming_normal_(block.layer.weight, nonlinearity="relu")
        nn.init.zeros_(block.layer.bias)
    nn.init.kaiming_uniform_(model.head.layer.weight, a=math.sqrt(5))  # torch's default for Linear
    nn.init.zeros_(model.head.layer.bias)
