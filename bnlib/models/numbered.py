"""Networks whose weight layers are numbered 1..L as in the paper's figures.

"Layer #k" is the k-th weight layer (conv or linear) at every scale and width, so every figure of
the paper has its counterpart. Each numbered block is weight layer -> normalization -> activation.
"""

from __future__ import annotations

from torch import Tensor, nn


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
