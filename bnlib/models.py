"""The two networks of the paper: VGG for CIFAR-10 and the deep linear network (DLN).

Both are `NumberedNet`s: their weight layers are numbered 1..L exactly as in the paper's figures
("layer #k" is the k-th weight layer), and `net.layer(k)`, `net.norm(k)` and `net.block(k)` give
access to them. Each numbered block is weight layer -> normalization -> activation.
"""

from __future__ import annotations

from torch import Tensor, nn

from bnlib.config import RunConfig
from bnlib.norms import make_norm

# Channel counts per conv layer, "M" = 2x2 max-pool. Depth = conv layers + 3 in the ImageNet VGG;
# for CIFAR the usual variant (also ours) replaces the three-layer classifier by one linear layer.
VGG_CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class Block(nn.Module):
    """One numbered layer: weight layer, then normalization, then activation."""

    def __init__(self, layer: nn.Module, norm: nn.Module, act: nn.Module):
        super().__init__()
        self.layer, self.norm, self.act = layer, norm, act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.layer(x)))


class NumberedNet(nn.Module):
    """A network whose weight layers are numbered 1..num_layers as in the paper's figures."""

    def blocks(self) -> list[Block]:
        """The numbered blocks in order; blocks()[k - 1] holds layer #k."""
        return [m for m in self.modules() if isinstance(m, Block)]

    @property
    def num_layers(self) -> int:
        return len(self.blocks())

    def block(self, k: int) -> Block:
        blocks = self.blocks()
        if not 1 <= k <= len(blocks):
            raise IndexError(f"layer #{k} does not exist: this network has layers #1..#{len(blocks)}")
        return blocks[k - 1]

    def layer(self, k: int) -> nn.Module:
        """The k-th weight layer (conv or linear); its `.weight` is W_k of Definition 2.1."""
        return self.block(k).layer

    def norm(self, k: int) -> nn.Module:
        """The normalization after layer #k (nn.Identity where there is none)."""
        return self.block(k).norm

    def weight_name(self, k: int) -> str:
        """The parameter name of layer #k's weight, W_k (a key of `named_parameters()`)."""
        weight = self.layer(k).weight
        return next(name for name, p in self.named_parameters() if p is weight)

    def layer_of_parameter(self) -> dict[str, int]:
        """Parameter name -> the number of the block it belongs to (weights, biases, gamma, beta)."""
        number = {id(p): k for k, block in enumerate(self.blocks(), 1) for p in block.parameters()}
        return {name: number[id(p)] for name, p in self.named_parameters()}


class VGG(NumberedNet):
    """VGG for 32x32 CIFAR images: 3x3 convs (padding 1) -> norm -> ReLU, max-pools, a linear head.

    VGG-16 has 13 conv layers (#1..#13) and the head (#14), the numbering of the paper's figures.
    """

    def __init__(self, depth: int, width: float, config: RunConfig, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG_CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(1, round(int(item) * width))
            conv = nn.Conv2d(channels, out, kernel_size=3, padding=1)
            layers.append(Block(conv, make_norm(config.norm, out, 2, config), nn.ReLU()))
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = Block(nn.Linear(channels, num_classes), nn.Identity(), nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


class DeepLinearNet(NumberedNet):
    """k square d x d linear layers without biases or non-linearities (the paper: 25 of 10 x 10).

    The normalization sits after each hidden layer #1..#k-1 and not after the output layer #k,
    our reading of the unstated placement (protocol 2.2), matching Fig. 9's layers #1, #11, #24.
    """

    def __init__(self, depth: int, dim: int, config: RunConfig):
        super().__init__()
        hidden = [
            Block(nn.Linear(dim, dim, bias=False), make_norm(config.norm, dim, 1, config), nn.Identity())
            for _ in range(depth - 1)
        ]
        self.hidden = nn.Sequential(*hidden)
        self.out = Block(nn.Linear(dim, dim, bias=False), nn.Identity(), nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(x))


def init_glorot(model: nn.Module) -> None:
    """The paper's "standard Glorot initialization": Glorot-uniform weights (TensorFlow's default,
    which the paper's figures suggest it used), zero biases, and gamma = 1, beta = 0 in norms."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_model(config: RunConfig) -> NumberedNet:
    """The network a config describes, Glorot-initialised from torch's current random state."""
    if config.model == "vgg":
        model: NumberedNet = VGG(config.vgg_depth, config.width, config)
    else:
        model = DeepLinearNet(config.dln_depth, config.dln_dim, config)
    init_glorot(model)
    return model
