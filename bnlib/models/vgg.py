"""VGG for 32x32 CIFAR-10 images, with a pluggable normalization after every conv layer."""

from __future__ import annotations

from torch import Tensor, nn

from bnlib.config import RunConfig
from bnlib.models.numbered import Block, NumberedNet
from bnlib.norms import make_norm, weighted

# Channel counts per conv layer, "M" = 2x2 max-pool. Depth = conv layers + 3 in the ImageNet VGG;
# for CIFAR the usual variant (also ours) replaces the three-layer classifier by one linear layer.
VGG_CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# The layers the paper's figures show: activations at #2, #9, #13 (Figs. 2 and 8) and #3, #11
# (Fig. 1c); internal covariate shift at #5 and #10 (Fig. 3a).
PAPER_ACTIVATION_LAYERS = (2, 3, 9, 11, 13)
PAPER_ICS_LAYERS = (5, 10)


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
            conv = weighted(config, nn.Conv2d(channels, out, kernel_size=3, padding=1))
            layers.append(Block(conv, make_norm(config.norm, out, 2, config), nn.ReLU()))
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = Block(nn.Linear(channels, num_classes), nn.Identity(), nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))
