"""How a signal travels through a network's numbered layers: the quantities of the explanations of
BatchNorm that look at initialisation (Daneshmand et al., 2020; Yang et al., 2019; Brock, De and
Smith, 2021; De and Smith, 2020) and at a single large step (Bjorck et al., 2018).

All are plain functions of a model and a batch, in the model's training mode (batch statistics),
with the model left exactly as it was:

* `signal_propagation`: per numbered layer, the numerical rank (Daneshmand et al.'s measure), the
  centered effective rank, the stable rank and the mean pairwise cosine of the batch's
  representations (rank collapse), the average squared channel mean and channel variance (Brock
  et al.'s signal propagation plots), and the norm of the loss's gradient with respect to the
  layer's weights (gradient explosion);
* `residual_variances`: per residual block, the variance of its branch against its shortcut's;
* `one_step_spread`: per numbered layer, the spread of its outputs after one SGD step at a given
  learning rate, relative to before.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pandas as pd
import torch
from torch import Tensor

from bnlib.models import NumberedNet
from bnlib.probes.hook import preserved_state


def block_outputs(model: NumberedNet, x: Tensor, site: str = "output") -> dict[int, Tensor]:
    """Every numbered block's output on the batch x, by layer number: after its activation
    ("output"), or its weight layer's, before any normalization ("norm_in")."""
    if site not in ("output", "norm_in"):
        raise ValueError(f"site must be output or norm_in, not {site!r}")
    captured: dict[int, Tensor] = {}
    hooks = [
        (block if site == "output" else block.layer).register_forward_hook(
            lambda m, inputs, output, k=k: captured.__setitem__(k, output.detach())
        )
        for k, block in enumerate(model.blocks(), 1)
    ]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def stable_rank(h: Tensor) -> float:
    """||H||_F^2 / ||H||_2^2 of the (batch, features) matrix of representations: the number of
    directions that carry most of it (1 when every example is represented along one direction)."""
    h = h.flatten(1).double()
    singular = torch.linalg.svdvals(h)
    return float(singular.square().sum() / singular[0].square()) if singular[0] > 0 else 0.0


def numerical_rank(h: Tensor) -> int:
    """The rank of the (batch, features) matrix of representations as Daneshmand et al. (2020)
    measure it: torch's matrix rank in float32, singular values below max(m, n) * eps * s_max
    counting as zero (a representation collapsed toward one direction has few above)."""
    h = h.flatten(1).float()
    return int(torch.linalg.matrix_rank(h / h.norm().clamp_min(1e-30)))


def effective_rank(h: Tensor) -> float:
    """The entropy-based effective rank (Roy and Vetterli, 2007) of the centered representations:
    exp of the entropy of the normalized singular values; it ignores the common mean that a ReLU
    adds, which alone makes uncentered representations look collinear."""
    h = h.flatten(1).double()
    singular = torch.linalg.svdvals(h - h.mean(0))
    p = singular / singular.sum().clamp_min(1e-300)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def mean_cosine(h: Tensor) -> float:
    """The mean cosine between the representations of two different examples of the batch."""
    h = h.flatten(1).double()
    unit = h / h.norm(dim=1, keepdim=True).clamp_min(1e-300)
    gram = unit @ unit.T
    n = len(h)
    return float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1)))


def _channel_moments(h: Tensor) -> tuple[float, float]:
    """Average over channels of (the channel's mean)^2 and of its variance, over batch (and H, W)."""
    dims = (0, *range(2, h.dim()))
    h = h.double()
    return float(h.mean(dims).square().mean()), float(h.var(dims, unbiased=False).mean())


def signal_propagation(
    model: NumberedNet, x: Tensor, y: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor]
) -> pd.DataFrame:
    """Per numbered layer: stable rank, mean pairwise cosine, squared channel mean and channel
    variance of its outputs on the batch, and the norm of the gradient of the loss with respect to
    its weights. One forward and one backward pass; the model is left as it was."""
    with preserved_state(model):
        outputs = block_outputs(model, x)
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        grads = {k: float(model.layer(k).weight.grad.norm()) for k in outputs}
    rows = []
    for k, h in outputs.items():
        mean_sq, var = _channel_moments(h)
        rows.append(
            {
                "layer": k,
                "rank": numerical_rank(h),
                "effective rank": effective_rank(h),
                "stable rank": stable_rank(h),
                "mean cosine": mean_cosine(h),
                "channel mean^2": mean_sq,
                "channel variance": var,
                "gradient norm": grads[k],
            }
        )
    return pd.DataFrame(rows)


def residual_variances(model, x: Tensor) -> pd.DataFrame:
    """Per residual block of a ResNet (`bnlib.models.resnet`): the variance of what the branch
    adds and of the shortcut it adds it to, over every element, on the batch x."""
    rows = []
    with preserved_state(model), torch.no_grad():
        h = model.stem(x)
        for i, block in enumerate(model.residual_blocks(), 1):
            branch, skip = block.branch(h), block.shortcut(h)
            rows.append({"block": i, "branch variance": float(branch.var()), "skip variance": float(skip.var())})
            h = block(h)
    table = pd.DataFrame(rows)
    return table.assign(ratio=table["branch variance"] / table["skip variance"])


def one_step_spread(
    model: NumberedNet,
    step_batch: tuple[Tensor, Tensor],
    eval_batch: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    lr: float,
    site: str = "output",
) -> pd.DataFrame:
    """Bjorck et al.'s diagnostic: per numbered layer, the standard deviation of its outputs at
    `site` (`block_outputs`) on `eval_batch` before and after one plain SGD step at `lr` on
    `step_batch`, and their ratio; and the share of the layer's units (channels) whose activation
    is zero for every example of `eval_batch` after the step ("dead share"). On a copy: the model
    itself does not move."""
    moved = copy.deepcopy(model).train()
    with torch.no_grad():
        before = {k: float(h.double().std()) for k, h in block_outputs(moved, eval_batch, site).items()}
    moved.zero_grad(set_to_none=True)
    loss_fn(moved(step_batch[0]), step_batch[1]).backward()
    with torch.no_grad():
        for p in moved.parameters():
            if p.grad is not None:
                p.sub_(lr * p.grad)
        after = {k: float(h.double().std()) for k, h in block_outputs(moved, eval_batch, site).items()}
        dead = {k: _dead_share(h) for k, h in block_outputs(moved, eval_batch).items()}
    return pd.DataFrame(
        [
            {
                "layer": k,
                "spread before": before[k],
                "spread after": after[k],
                "ratio": after[k] / before[k],
                "dead share": dead[k],
            }
            for k in before
        ]
    )


def _dead_share(h: Tensor) -> float:
    """The share of units (channels) of a layer's output that are zero for every example (and
    position) of the batch."""
    dims = (0, *range(2, h.dim()))
    return float((h.abs().amax(dim=dims) == 0).double().mean())
