"""The paper's deep linear network (DLN): a product of square matrices fit to a linear map."""

from __future__ import annotations

from torch import Tensor, nn

from bnlib.config import RunConfig
from bnlib.models.numbered import Block, NumberedNet
from bnlib.norms import make_norm, weighted

# The layers the paper's figures show: activations at #1, #11, #24 (Fig. 9); internal covariate
# shift at #9 and #17 (Fig. 3b).
PAPER_ACTIVATION_LAYERS = (1, 11, 24)
PAPER_ICS_LAYERS = (9, 17)


class DeepLinearNet(NumberedNet):
    """k square d x d linear layers without biases or non-linearities (the paper: 25 of 10 x 10).

    The normalization sits after each hidden layer #1..#k-1 and not after the output layer #k,
    our reading of the unstated placement (book/protocol.md, "The deep linear network"),
    matching Fig. 9's layers #1, #11, #24.
    """

    def __init__(self, depth: int, dim: int, config: RunConfig):
        super().__init__()
        hidden = [
            Block(
                weighted(config, nn.Linear(dim, dim, bias=False)),
                make_norm(config.norm, dim, 1, config),
                nn.Identity(),
            )
            for _ in range(depth - 1)
        ]
        self.hidden = nn.Sequential(*hidden)
        self.out = Block(nn.Linear(dim, dim, bias=False), nn.Identity(), nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(x))
