"""The quantities of the paper's Section 4, for one BatchNorm layer, computed both ways.

Notation (book/protocol.md, "Section 4"): a batch of m outputs y_j of unit j enters BN; y_hat = (y - mu) / sigma with
the biased batch variance; z = gamma y_hat + beta; g = dL/dz_j is the gradient the layers above
send back; grad_y = dL_hat/dy_j is what reaches y through BN. For a conv layer a unit is a channel
and m = batch x H x W. Each function returns the two sides of a statement, computed independently:
the left side by autograd through torch's own batch_norm, the right side from the formula. With
BN's eps -> 0 the identities are exact (torch insists on eps > 0, so "exact" here is eps = 1e-30,
zero to double-precision rounding); a trained network's eps = 1e-5 perturbs them by about
eps / sigma^2.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlib.device import full_precision
from bnlib.models import NumberedNet
from bnlib.probes.activations import chosen_units
from bnlib.probes.hook import ProbeContext, preserved_state

EXACT_EPS = 1e-30


def normalized(y: Tensor, eps: float = EXACT_EPS) -> tuple[Tensor, Tensor]:
    """(y_hat, sigma) per column of a (m, units) batch, with the biased variance."""
    sigma = torch.sqrt(y.var(0, unbiased=False) + eps)
    return (y - y.mean(0)) / sigma, sigma


def grad_through_bn(y: Tensor, gamma: Tensor, g: Tensor, eps: float = EXACT_EPS) -> Tensor:
    """dL_hat/dy for upstream gradient g = dL/dz, by autograd through F.batch_norm (training mode)."""
    y = y.detach().requires_grad_(True)
    z = F.batch_norm(y, None, None, gamma.detach(), torch.zeros_like(gamma), training=True, eps=eps)
    return torch.autograd.grad(z, y, grad_outputs=g)[0]


def theorem_4_1(y: Tensor, gamma: Tensor, g: Tensor, eps: float = EXACT_EPS) -> dict[str, Tensor]:
    """Theorem 4.1 per unit: lhs = ||grad_y||^2 against the right side with the 1/m coefficient its
    proof gives (an equality) and with the printed 1/sqrt(m) (false in general)."""
    m = y.shape[0]
    y_hat, sigma = normalized(y, eps)
    lhs = grad_through_bn(y, gamma, g, eps).square().sum(0)
    g_sq, mean_term, proj = g.square().sum(0), g.sum(0).square() / m, (g * y_hat).sum(0).square()
    factor = gamma.square() / sigma.square()
    return {
        "lhs": lhs,
        "rhs_1_over_m": factor * (g_sq - mean_term - proj / m),
        "rhs_printed": factor * (g_sq - mean_term - proj / math.sqrt(m)),
        "gamma_sq_over_sigma_sq": factor,
    }


def bn_unit(
    y: Tensor, gamma: Tensor, beta: Tensor, downstream: Callable[[Tensor], Tensor], eps: float = EXACT_EPS
) -> dict[str, Tensor]:
    """Everything Section 4 says about one BN unit (y of shape (m,)) with a smooth `downstream`
    loss L(z) above it: z = BN(y), g = dL/dz, v = d L_hat/dy (L_hat(y) = L(BN(y))), the Hessians
    H = d^2 L/dz^2 at z and A = d^2 L_hat/dy^2 at y (m x m), y_hat and sigma."""

    def bn(t: Tensor) -> Tensor:
        return F.batch_norm(t[:, None], None, None, gamma[None], beta[None], training=True, eps=eps)[:, 0]

    y = y.detach()
    z = bn(y).detach()
    with warnings.catch_warnings():
        # forward-mode AD's first use loads torch's jvp decompositions, which warn that
        # torch.jit.script (used inside torch) is deprecated: torch's business, not ours
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
        hessian_z = torch.func.hessian(downstream)(z)
        hessian_y = torch.func.hessian(lambda t: downstream(bn(t)))(y)
    y_hat, sigma = normalized(y[:, None], eps)
    return {
        "z": z,
        "g": torch.func.grad(downstream)(z),
        "v": torch.func.grad(lambda t: downstream(bn(t)))(y),
        "H": hessian_z,
        "A": hessian_y,
        "y_hat": y_hat[:, 0],
        "sigma": sigma[0],
    }


def theorem_4_2(
    y: Tensor, gamma: Tensor, beta: Tensor, downstream: Callable[[Tensor], Tensor], eps: float = EXACT_EPS
) -> dict[str, Tensor]:
    """Theorem 4.2 for one unit, with v = grad_y L_hat, g = dL/dz and H = d^2 L/dz^2 at z.

    * first display, `rhs` (its proof's eq. 50, an equality):
      v^T (d^2 L_hat / dy^2) v = gamma^2/sigma^2 v^T H v - gamma/(m sigma^2) <g, y_hat> ||v||^2;
    * second display, `rhs_second`, claimed "if H preserves the relative norms of g and v":
      v^T (d^2 L_hat / dy^2) v <= gamma^2/sigma^2 (g^T H g - 1/(m gamma) <g, y_hat> ||v||^2).
      Its proof replaces v^T H v by g^T H g, which is what makes it hold: true when
      v^T H v <= g^T H g.

    Also returns <g, y_hat>, v^T H v and g^T H g, whose signs are the theorem's hypotheses."""
    unit = bn_unit(y, gamma, beta, downstream, eps)
    m, g, v, sigma = y.shape[0], unit["g"], unit["v"], unit["sigma"]
    lhs = v @ unit["A"] @ v
    v_h_v, g_h_g = v @ unit["H"] @ v, g @ unit["H"] @ g
    g_dot_y_hat = torch.dot(g, unit["y_hat"])
    separation = g_dot_y_hat * v.square().sum() / (m * gamma)  # kappa: what BN subtracts, over gamma^2/sigma^2
    scale = gamma**2 / sigma**2
    return {
        "lhs": lhs,
        "rhs": scale * (v_h_v - separation),
        "rhs_second": scale * (g_h_g - separation),
        "g_dot_y_hat": g_dot_y_hat,
        "v_H_v": v_h_v,
        "g_H_g": g_h_g,
        "kappa": separation,
    }


def max_quadratic_form(v: Tensor, a: Tensor, lam: float) -> float:
    """The maximum over inputs X with spectral norm <= lam of (XX^T v)^T A (XX^T v), the quadratic form
    of Theorem C.1, exactly. S = XX^T ranges over the PSD matrices with eigenvalues at most lam^2 (for
    as many input dimensions as batch elements), and Sv then ranges over the ball of centre lam^2 v / 2
    and radius lam^2 ||v|| / 2: S - lam^2 I / 2 is any symmetric matrix of norm at most lam^2 / 2, and
    such a matrix maps v to any vector of norm at most lam^2 ||v|| / 2 (a scaled reflection). So the
    maximum is a trust-region problem: the largest value of w^T A w over that ball (`_trust_region`)."""
    centre = lam**2 * v / 2
    radius = lam**2 * float(v.norm()) / 2
    return _trust_region(a, centre, radius)


def _trust_region(a: Tensor, centre: Tensor, radius: float) -> float:
    """max of w^T A w over ||w - centre|| <= radius. With w = centre + z this is the trust-region
    problem min z^T M z + 2 b^T z (M = -A, b = -A centre) over ||z|| <= radius, solved exactly from
    M's eigendecomposition: the minimiser is z = -(M + mu I)^-1 b with mu >= max(0, -lambda_min(M))
    and either mu = 0 inside the ball or ||z|| = radius (found by bisection on mu, where ||z(mu)|| is
    decreasing); in the "hard case" (b orthogonal to M's lowest eigenvectors) the step is completed
    along them to reach the boundary."""
    d, q = torch.linalg.eigh(-a)
    b = q.T @ (-a @ centre)
    lowest = float(d[0])
    base = float(centre @ a @ centre)
    if radius == 0:
        return base

    def step(mu: float) -> Tensor:
        return -b / (d + mu)

    if lowest > 0 and float(step(0.0).norm()) <= radius:
        z = step(0.0)
    else:
        floor = max(0.0, -lowest)
        on_lowest = (d - lowest).abs() <= 1e-12 * max(1.0, float(d.abs().max()))
        flat = b[on_lowest].abs().max() <= 1e-12 * max(1.0, float(b.abs().max()))
        partial = torch.where(on_lowest, torch.zeros_like(b), -b / (d + floor).where(~on_lowest, torch.ones_like(d)))
        if lowest <= 0 and flat and float(partial.norm()) <= radius:  # the hard case
            extra = (radius**2 - float(partial @ partial)) ** 0.5
            z = partial + extra * on_lowest.to(b.dtype) / float(on_lowest.sum()) ** 0.5
        else:
            low, high = floor, floor + float(b.norm()) / radius + 1.0
            while float(step(high).norm()) > radius:
                high *= 2
            for _ in range(200):
                middle = (low + high) / 2
                if middle in (low, high):
                    break
                low, high = (middle, high) if float(step(middle).norm()) > radius else (low, middle)
            z = step(high)
    minimum = float(z @ (d * z)) + 2 * float(b @ z)
    return base - minimum


def theorem_c_1(
    y: Tensor,
    gamma: Tensor,
    beta: Tensor,
    downstream: Callable[[Tensor], Tensor],
    lam: float,
    eps: float = EXACT_EPS,
) -> dict[str, float]:
    """Theorem C.1 (appendix C) for one unit, with the gradients and Hessians with respect to y held
    fixed as X varies: max over ||X|| <= lam of grad_W L_hat^T (d^2 L_hat/dW^2) grad_W L_hat is below
    gamma^2/sigma^2 [max over X of the same for the standard network - lam^4 kappa], kappa Theorem
    4.2's separation. Both maxima are exact (`max_quadratic_form`), so every unit is decided: "holds"
    if the left side is below the right, "violated" otherwise."""
    unit = bn_unit(y, gamma, beta, downstream, eps)
    m = y.shape[0]
    lhs = max_quadratic_form(unit["v"], unit["A"], lam)
    kappa = float(torch.dot(unit["g"], unit["y_hat"]) * unit["v"].square().sum() / (m * gamma))
    rhs = float(gamma**2 / unit["sigma"] ** 2) * (max_quadratic_form(unit["g"], unit["H"], lam) - lam**4 * kappa)
    return {"lhs": lhs, "rhs": rhs, "kappa": kappa, "verdict": "holds" if lhs < rhs else "violated"}


def observation_4_3(y: Tensor) -> Tensor:
    """Observation 4.3: with gamma = sigma_j and beta = mu_j, BN returns its input. Returns
    max |BN(y) - y| (zero up to rounding)."""
    sigma, mu = y.std(0, unbiased=False), y.mean(0)
    z = F.batch_norm(y, None, None, sigma, mu, training=True, eps=EXACT_EPS)
    return (z - y).abs().max()


def worst_input_gradient(a: Tensor, lam: float, n_random: int = 200, seed: int = 0) -> dict[str, float]:
    """Theorem 4.4's maximisation, gradients held fixed: over inputs X (m x d, here d = m) with
    spectral norm <= lam, the squared weight gradient ||X^T a||^2 for a fixed gradient a = dL/dy.
    Returns the bound lam^2 ||a||^2 (the proof's eq. 16), the value at the rank-one X = lam a u^T / ||a||
    that attains it, and the largest value over `n_random` random X scaled to spectral norm lam."""
    m = a.shape[0]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_random, m, m, generator=gen, dtype=a.dtype)  # one batch, not n_random calls
    spectral = torch.linalg.eigvalsh(x.mT @ x)[:, -1].sqrt()  # = matrix_norm(x, ord=2), several times faster
    x = lam * x / spectral[:, None, None]
    largest = float((x.transpose(1, 2) @ a).square().sum(1).max())
    u = torch.zeros(m, dtype=a.dtype)
    u[0] = 1.0
    rank_one = lam * torch.outer(a / a.norm(), u)
    return {
        "bound": lam**2 * float(a.square().sum()),
        "rank_one": float((rank_one.T @ a).square().sum()),
        "largest_random": largest,
    }


def theorem_4_4(y: Tensor, gamma: Tensor, g: Tensor, lam: float, eps: float = EXACT_EPS) -> dict[str, Tensor]:
    """Theorem 4.4 per unit, with the gradients with respect to y held fixed as the input X varies
    (the assumption its proof makes). With ||X|| <= lam, grad_W = X^T grad_y, whose largest squared
    norm is lam^2 ||grad_y||^2 (`worst_input_gradient`), so g = lam^2 ||dL/dz||^2 and
    g_hat = lam^2 ||grad_y L_hat||^2. Returns g_hat (`lhs`), the dimensionally consistent right side
    rhs = gamma^2/sigma^2 (g - lam^2 m mu_g^2 - lam^2/m <g, y_hat>^2), an equality (Theorem 4.1's 1/m
    form times lam^2: a corollary), and the right side as printed,
    gamma^2/sigma^2 (g^2 - m mu_g^2 - lam^2 <g, y_hat>^2), whose terms have different units."""
    m = y.shape[0]
    y_hat, sigma = normalized(y, eps)
    g_hat = lam**2 * grad_through_bn(y, gamma, g, eps).square().sum(0)
    g_plain = lam**2 * g.square().sum(0)
    mu_g = g.mean(0)
    projection = (g * y_hat).sum(0).square()
    scale = gamma.square() / sigma.square()
    return {
        "lhs": g_hat,
        "rhs": scale * (g_plain - lam**2 * m * mu_g.square() - lam**2 / m * projection),
        "rhs_printed": scale * (g_plain.square() - m * mu_g.square() - lam**2 * projection),
        "g": g_plain,
    }


def lemma_4_5(w0: Tensor, w_star: Tensor) -> dict[str, Tensor]:
    """Lemma 4.5: with k = <W*, W0> / ||W*||^2, k W* is closer to W0:
    ||W0 - k W*||^2 = ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2 (an equality). k W* is an
    optimum of the BN network because BN is scale invariant, provided gamma and beta are re-set as in
    Observation 4.3, which sits uneasily with Section 4 treating them as constants."""
    w0, w_star = w0.flatten().double(), w_star.flatten().double()
    sq = w_star.square().sum()
    k = torch.dot(w_star, w0) / sq
    return {
        "k": k,
        "lhs": (w0 - k * w_star).square().sum(),
        "rhs": (w0 - w_star).square().sum() - (sq - torch.dot(w_star, w0)).square() / sq,
        "plain_distance": (w0 - w_star).square().sum(),
    }


def bn_layers(model: NumberedNet) -> list[int]:
    """The numbers of the layers followed by torch BatchNorm."""
    return [k for k in range(1, model.num_layers + 1) if isinstance(model.norm(k), nn.modules.batchnorm._BatchNorm)]


def bn_layer_terms(
    model: NumberedNet,
    layers: Sequence[int],
    x: Tensor,
    target: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> dict[int, dict[str, Tensor]]:
    """For each BatchNorm layer in `layers`: the batch y entering BN as (m, units), the gradient
    g = dL/dz leaving it, gamma, beta and eps, from one forward and backward pass in training mode
    (the model is left exactly as it was)."""
    saved: dict[tuple[int, str], Tensor] = {}

    def keep(layer: int):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            saved[(layer, "y")] = inputs[0].detach()
            output.register_hook(lambda grad: saved.__setitem__((layer, "g"), grad.detach()))

        return hook

    for k in layers:
        if not isinstance(model.norm(k), nn.modules.batchnorm._BatchNorm):
            raise TypeError(f"layer #{k} is followed by {type(model.norm(k)).__name__}, not BatchNorm")
    handles = [model.norm(k).register_forward_hook(keep(k)) for k in layers]
    try:
        with preserved_state(model):  # weights, BN statistics, gradients and random state stay put
            loss_fn(model(x), target).backward()
    finally:
        for h in handles:
            h.remove()
    return {
        k: {
            "y": _columns(saved[(k, "y")]),
            "g": _columns(saved[(k, "g")]),
            "gamma": model.norm(k).weight.detach(),
            "beta": model.norm(k).bias.detach(),
            "eps": torch.tensor(model.norm(k).eps),
        }
        for k in layers
    }


def _columns(t: Tensor) -> Tensor:
    """(m, units): a unit's values over the batch (and H, W for a conv layer) in a column."""
    return full_precision(t).transpose(0, 1).reshape(t.shape[1], -1).T


def downstream_curvature(
    model: NumberedNet,
    layer: int,
    units: Sequence[int],
    x: Tensor,
    target: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> dict[str, Tensor]:
    """Theorem 4.2's hypotheses for some units of a BN layer: g_j^T H_jj g_j, the curvature of the
    loss (through every layer above, their BN included) with respect to the BN output z_j along
    its own gradient g_j = dL/dz_j, and <g_j, y_hat_j>. The theorem's reading needs H_jj >= 0 and
    <g_j, y_hat_j> > 0. One forward pass and one double-backward pass per unit."""
    leaf: dict[str, Tensor] = {}

    def swap(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        leaf["y"] = inputs[0].detach()
        leaf["z"] = output.detach().requires_grad_(True)
        return leaf["z"]

    handle = model.norm(layer).register_forward_hook(swap)
    try:
        with preserved_state(model):
            z_grad = torch.autograd.grad(loss_fn(model(x), target), leaf["z"], create_graph=True)[0]
            curvature = []
            for j in units:
                v = torch.zeros_like(z_grad)
                v[:, j] = z_grad[:, j].detach()
                hv = torch.autograd.grad(z_grad, leaf["z"], grad_outputs=v, retain_graph=True)[0]
                curvature.append((hv[:, j] * v[:, j]).sum())
    finally:
        handle.remove()
    norm = model.norm(layer)
    y_hat, _ = normalized(_columns(leaf["y"]), norm.eps)
    g = _columns(z_grad.detach())
    units_t = torch.as_tensor(list(units))
    return {
        "g_H_g": full_precision(torch.stack(curvature)),
        "g_dot_y_hat": (g[:, units_t] * y_hat[:, units_t]).sum(0),
    }


@dataclass
class BNScaleProbe:
    """Section 4's scale factor gamma_j^2 / sigma_j^2 (sigma_j the unit's batch standard deviation,
    eps included, as BN divides by it) and <g_j, y_hat_j> for every unit of every BatchNorm layer,
    every `every` steps, on the step's batch. The bounds of Theorems 4.1, 4.2 and 4.4 shrink the
    gradient only where gamma^2 / sigma^2 < 1."""

    every: int
    name: str = "bn-scale"

    def __call__(self, ctx: ProbeContext) -> dict[str, np.ndarray]:
        layers = bn_layers(ctx.model)
        with ctx.same_noise():
            terms = bn_layer_terms(ctx.model, layers, ctx.x, ctx.y, ctx.loss_fn)
        out: dict[str, np.ndarray] = {}
        for k, t in terms.items():
            y_hat, sigma = normalized(t["y"], float(t["eps"]))
            out[f"L{k}.gamma_sq_over_sigma_sq"] = (t["gamma"].float().square() / sigma.square()).cpu().numpy()
            out[f"L{k}.g_dot_y_hat"] = (t["g"] * y_hat).sum(0).cpu().numpy()
        return out


# ----------------------------------------------------------------------------- checked numerically
#
# Each statement over many random units (`random_instances`: a batch y of m values with a chosen
# batch standard deviation sigma, a gain gamma, and an upstream gradient g with a non-zero mean, so
# every term of the bounds matters), and on a network's own units. Chapter 06 reads these tables.


def random_instances(
    m: int, n: int, seed: int, gamma: float | None = None, sigma: float | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """n random units as the columns of (m, n) float64 tensors y and g, and gamma (n,). gamma and
    the batch standard deviation of y are drawn at random (gamma in [0.1, 3.1], sigma in [0, 5])
    unless given."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(m, n, generator=gen, dtype=torch.float64)
    y = (y - y.mean(0)) / y.std(0, unbiased=False)
    spread = torch.full((n,), float(sigma), dtype=torch.float64) if sigma else torch.rand(n, generator=gen) * 5
    y = y * spread + torch.randn(n, generator=gen, dtype=torch.float64)
    gains = torch.full((n,), float(gamma), dtype=torch.float64) if gamma else torch.rand(n, generator=gen) * 3 + 0.1
    g = torch.randn(m, n, generator=gen, dtype=torch.float64) + torch.randn(n, generator=gen, dtype=torch.float64)
    return y, gains.double(), g


def smooth_downstream(z: Tensor) -> Tensor:
    """A smooth, non-convex stand-in for the layers above a BN unit: L(z) for a batch z of shape (m,)."""
    weights = torch.linspace(-1, 2, len(z), dtype=z.dtype)
    return (torch.sin(1.3 * z) * weights).sum() + 0.2 * (z * weights).sum() ** 2 + (z**4).sum() / 10


def theorem_4_1_sweep(
    ms: Sequence[int], n: int = 200, seed: int = 0, gamma: float | None = None, sigma: float | None = None
) -> pd.DataFrame:
    """Theorem 4.1 on n random units per batch size m: ||grad_y L_hat||^2 against the right side
    with the proof's 1/m and the printed 1/sqrt(m); also ||dL/dz||^2, what the layer would get
    without BN."""
    parts = []
    for m in ms:
        y, gains, g = random_instances(m, n, seed + m, gamma, sigma)
        out = theorem_4_1(y, gains, g)
        parts.append(
            pd.DataFrame(
                {
                    "m": m,
                    "lhs": out["lhs"].numpy(),
                    "rhs_1_over_m": out["rhs_1_over_m"].numpy(),
                    "rhs_printed": out["rhs_printed"].numpy(),
                    "plain": g.square().sum(0).numpy(),
                    "gamma_sq_over_sigma_sq": out["gamma_sq_over_sigma_sq"].numpy(),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    # the size of the bound's terms (for m = 2 both sides are 0 up to rounding)
    size = (table["gamma_sq_over_sigma_sq"] * table["plain"]).clip(lower=1e-300)
    return table.assign(
        relative_error_1_over_m=(table["lhs"] - table["rhs_1_over_m"]).abs() / size,
        printed_violated=table["lhs"] > table["rhs_printed"] + 1e-9 * size,
    )


def theorem_4_1_counterexample() -> dict[str, float]:
    """The smallest counterexample to the printed Theorem 4.1: m = 2, y = (0, 1), g = (0, 1),
    gamma = 1. BN maps any two distinct values to (-1, 1), so the gradient reaching y is 0, while
    the printed right side is 4 (1 - 1/2 - 1/sqrt 2) < 0."""
    y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    g = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    out = theorem_4_1(y, torch.ones(1, dtype=torch.float64), g)
    return {k: float(v[0]) for k, v in out.items()}


def theorem_4_2_sweep(ms: Sequence[int], n: int = 25, seed: int = 0) -> pd.DataFrame:
    """Theorem 4.2 on n random units per batch size, with `smooth_downstream` as the loss above:
    the first display's two sides (its proof's eq. 50, an identity), the second display's right side,
    and the quantities of its hypotheses."""
    rows = []
    for m in ms:
        y, gains, _ = random_instances(m, n, seed + m)
        for j in range(n):
            out = theorem_4_2(y[:, j], gains[j], torch.tensor(0.3, dtype=torch.float64), smooth_downstream)
            rows.append({"m": m, **{k: float(v) for k, v in out.items()}})
    table = pd.DataFrame(rows)
    size = table[["lhs", "rhs"]].abs().max(axis=1).clip(lower=1e-300)
    return table.assign(
        relative_error=(table["lhs"] - table["rhs"]).abs() / size,
        second_holds=table["lhs"] <= table["rhs_second"] + 1e-9 * size,
        proof_step_holds=table["v_H_v"] <= table["g_H_g"],
    )


GRADIENT_SCALES = (1e-3, 1.0, 1e3)  # Theorem 4.4's printed form is checked with gradients of these sizes


def theorem_4_4_sweep(
    ms: Sequence[int], lam: float = 2.5, n: int = 200, seed: int = 0, scales: Sequence[float] = GRADIENT_SCALES
) -> pd.DataFrame:
    """Theorem 4.4 on n random units per batch size and per size of the upstream gradient (g times
    each of `scales`): g_hat against the consistent right side (an equality) and the printed one,
    whose terms scale differently with the gradient (a squared norm squared against squared norms)."""
    parts = []
    for m in ms:
        y, gains, g = random_instances(m, n, seed + m)
        for factor in scales:
            out = theorem_4_4(y, gains, g * factor, lam)
            size = gains.square() / y.var(0, unbiased=False) * out["g"]  # gamma^2/sigma^2 g: the terms' size
            parts.append(
                pd.DataFrame(
                    {
                        "m": m,
                        "gradient scale": factor,
                        "lhs": out["lhs"].numpy(),
                        "rhs": out["rhs"].numpy(),
                        "rhs_printed": out["rhs_printed"].numpy(),
                        "size": size.numpy(),
                    }
                )
            )
    table = pd.concat(parts, ignore_index=True)
    size = table["size"].clip(lower=1e-300)
    return table.assign(
        relative_error=(table["lhs"] - table["rhs"]).abs() / size,
        printed_violated=table["lhs"] > table["rhs_printed"] + 1e-9 * size,
    )


def worst_input_sweep(ms: Sequence[int], lam: float = 2.5, n: int = 20, seed: int = 0) -> pd.DataFrame:
    """Theorem 4.4's maximisation over inputs with spectral norm <= lam, gradients held fixed, for n
    random gradients per batch size: the bound lam^2 ||a||^2, the rank-one input that attains it,
    and the largest value over random inputs."""
    rows = []
    for m in ms:
        gradients = torch.randn(n, m, generator=torch.Generator().manual_seed(seed + m), dtype=torch.float64)
        rows += [{"m": m, **worst_input_gradient(a, lam, seed=seed + j)} for j, a in enumerate(gradients)]
    return pd.DataFrame(rows)


def theorem_c_1_sweep(ms: Sequence[int], lam: float = 2.5, n: int = 10, seed: int = 0) -> pd.DataFrame:
    """Theorem C.1 on n random units per batch size (`bnlib.probes.theorem_c_1`): both sides
    (each an exact maximum over the inputs), whether the statement holds or is violated, and
    whether the unit meets Theorem 4.2's hypothesis, whose conditions C.1 assumes (`hypothesis`:
    v^T H v <= g^T H g, the book's reading of "H preserves the relative norms of g and grad L_hat")."""
    rows = []
    for m in ms:
        y, gains, _ = random_instances(m, n, seed + m)
        beta = torch.tensor(0.3, dtype=torch.float64)
        for j in range(n):
            step = theorem_4_2(y[:, j], gains[j], beta, smooth_downstream)
            hypothesis = bool(step["v_H_v"] <= step["g_H_g"])
            rows.append(
                {
                    "m": m,
                    "hypothesis": hypothesis,
                    **theorem_c_1(y[:, j], gains[j], beta, smooth_downstream, lam),
                }
            )
    return pd.DataFrame(rows)


def observation_4_3_sweep(ms: Sequence[int], n: int = 50, seed: int = 0) -> pd.DataFrame:
    """Observation 4.3: max |BN(y) - y| with gamma = sigma, beta = mu, per batch size."""
    return pd.DataFrame(
        [{"m": m, "max_abs_difference": float(observation_4_3(random_instances(m, n, seed + m)[0]))} for m in ms]
    )


def lemma_4_5_sweep(dims: Sequence[int], n: int = 50, seed: int = 0) -> pd.DataFrame:
    """Lemma 4.5 on n random pairs (W0, W*) per size d x d with <W0, W*> > 0: the distance to the
    BN optimum k W* against the lemma's right side, and the plain distance to W*."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for d in dims:
        while sum(r["d"] == d for r in rows) < n:
            w0, w_star = torch.randn(d, d, generator=gen), torch.randn(d, d, generator=gen)
            if torch.sum(w0 * w_star) <= 0:
                continue
            rows.append({"d": d, **{k: float(v) for k, v in lemma_4_5(w0, w_star).items()}})
    table = pd.DataFrame(rows)
    return table.assign(relative_error=(table["lhs"] - table["rhs"]).abs() / table["lhs"].abs())


def hypotheses_on_network(model: NumberedNet, x: Tensor, y: Tensor, loss_fn, n_units: int = 2) -> pd.DataFrame:
    """Theorem 4.2's hypotheses on a network's BN layers, for `n_units` units per layer (the same
    units the activation probe tracks): g^T H_jj g >= 0 (convex along the gradient) and
    <g, y_hat> > 0, on one batch."""
    rows = []
    for k in bn_layers(model):
        units = chosen_units(model, k, n_units).tolist()
        out = downstream_curvature(model, k, units, x, y, loss_fn)
        for j, unit in enumerate(units):
            rows.append(
                {"layer": k, "unit": unit, "g_H_g": float(out["g_H_g"][j]), "g_dot_y_hat": float(out["g_dot_y_hat"][j])}
            )
    return pd.DataFrame(rows)


def theorem_4_1_on_network(model: NumberedNet, x: Tensor, y: Tensor, loss_fn) -> pd.DataFrame:
    """Theorem 4.1 (1/m form) on every unit of every BN layer of a network, with BN's own eps:
    both sides, and gamma^2 / sigma^2."""
    terms = bn_layer_terms(model, bn_layers(model), x, y, loss_fn)
    parts = []
    for k, t in terms.items():
        out = theorem_4_1(t["y"].double(), t["gamma"].double(), t["g"].double(), eps=float(t["eps"]))
        parts.append(pd.DataFrame({"layer": k, **{name: v.numpy() for name, v in out.items()}}))
    return pd.concat(parts, ignore_index=True)
