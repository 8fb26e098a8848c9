"""The networks, their layers numbered as in the paper's figures (`bnlib.models.numbered`).

`build_model(config)` gives the network a `RunConfig` describes: the paper's two, Glorot-initialised,
VGG for CIFAR-10 (`bnlib.models.vgg`) and the deep linear network (`bnlib.models.dln`); and, for the
book's second part, He-initialised, CIFAR ResNets with BatchNorm, without, with SkipInit or Fixup
(`bnlib.models.resnet`) and deep ReLU MLPs (`bnlib.models.mlp`).
"""

from __future__ import annotations

from torch import nn

from bnlib.config import RunConfig
from bnlib.models.dln import DeepLinearNet
from bnlib.models.mlp import MLP, init_mlp
from bnlib.models.numbered import Block, NumberedNet
from bnlib.models.resnet import ResNet, init_resnet
from bnlib.models.vgg import VGG, VGG_CONFIGS


def init_glorot(model: nn.Module) -> None:
    """The paper's "standard Glorot initialization": Glorot-uniform weights (TensorFlow's default,
    which the paper's figures suggest it used), zero biases, and gamma = 1, beta = 0 in norms."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_model(config: RunConfig) -> NumberedNet:
    """The network a config describes, initialised from torch's current random state."""
    if config.model == "resnet":
        resnet = ResNet(config.resnet_depth, config.width, config)
        init_resnet(resnet, config.residual)
        return resnet
    if config.model == "mlp":
        mlp = MLP(config.mlp_depth, config.mlp_width, config)
        init_mlp(mlp)
        return mlp
    if config.model == "vgg":
        model: NumberedNet = VGG(config.vgg_depth, config.width, config)
    else:
        model = DeepLinearNet(config.dln_depth, config.dln_dim, config)
    init_glorot(model)
    return model


__all__ = [
    "MLP",
    "VGG",
    "VGG_CONFIGS",
    "Block",
    "DeepLinearNet",
    "NumberedNet",
    "ResNet",
    "build_model",
    "init_glorot",
]
