"""The networks, their layers numbered as in the paper's figures (`bnlib.models.numbered`).

`build_model(config)` gives the network a `RunConfig` describes: the paper's two, Glorot-initialised,
VGG for CIFAR-10 (`bnlib.models.vgg`) and the deep linear network (`bnlib.models.dln`); and, for the
book's second part, He-initialised, CIFAR ResNets with BatchNorm, without, with SkipInit or Fixup
(`bnlib.models.resnet`) and deep ReLU MLPs (`bnlib.models.mlp`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bnlib.config import RunConfig
from bnlib.models.dln import DeepLinearNet
from bnlib.models.mlp import MLP, init_mlp
from bnlib.models.numbered import Block, NumberedNet
from bnlib.models.resnet import ResNet, init_resnet
from bnlib.models.vgg import VGG, VGG_CONFIGS
from bnlib.norms import CenteredWeights


def init_glorot(model: nn.Module) -> None:
    """The paper's "standard Glorot initialization": Glorot-uniform weights (TensorFlow's default,
    which the paper's figures suggest it used), zero biases, and gamma = 1, beta = 0 in norms."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_he(model: nn.Module) -> None:
    """He-normal weights (fan-in, gain sqrt(2) for ReLU: He et al., 2015) and zero biases: the start
    that keeps a ReLU network's signal at one scale through its depth."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the layer it watches has computed."""


@torch.no_grad()
def init_lsuv(model: NumberedNet, x: Tensor, tol: float = 0.02, max_iters: int = 10) -> None:
    """Layer-sequential unit variance (Mishkin and Matas, 2016), on top of the model's own
    initialisation: from the first numbered layer to the last, rescale the layer's weights until its
    output (before the normalization and activation) has variance 1 on the batch x, within `tol`.
    The model's mode is used as it is (training mode: batch statistics)."""
    seen: list[Tensor] = []

    def capture(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        seen.append(output)
        raise _Stop

    for k in range(1, model.num_layers + 1):
        layer = model.layer(k)
        hook = layer.register_forward_hook(capture)
        try:
            for _ in range(max_iters):
                seen.clear()
                try:
                    model(x)
                except _Stop:
                    pass
                variance = seen[0].double().var().item()
                if abs(variance - 1) < tol or variance == 0:
                    break
                layer.weight.mul_(variance**-0.5)
        finally:
            hook.remove()


def build_model(config: RunConfig) -> NumberedNet:
    """The network a config describes, initialised from torch's current random state."""
    if config.model == "resnet":
        model: NumberedNet = ResNet(config.resnet_depth, config.width, config)
        init_resnet(model, config.residual)
    elif config.model == "mlp":
        model = MLP(config.mlp_depth, config.mlp_width, config)
        init_mlp(model)
    else:
        model = (
            VGG(config.vgg_depth, config.width, config)
            if config.model == "vgg"
            else DeepLinearNet(config.dln_depth, config.dln_dim, config)
        )
        init_glorot(model)
    if config.init == "he":
        init_he(model)
    if config.init == "broken":  # every weight made positive (the biases are zero)
        with torch.no_grad():
            for k in range(1, model.num_layers + 1):
                model.layer(k).weight.abs_().mul_(2)
    for module in model.modules():  # normalized weights start as the initialised ones, centered
        if isinstance(module, CenteredWeights):
            module.reset_gain()
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
    "init_he",
    "init_lsuv",
]
