"""Section 4 of the paper, checked: the identities hold to rounding where the protocol says they
must, and the printed Theorem 4.1 fails (protocol 6)."""

import math

import pytest
import torch

from bnlib import RunConfig
from bnlib.models import build_model
from bnlib.probes import theory
from bnlib.train import cross_entropy, summed_squared_error


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def random_bn_layer(m: int, units: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(m, units, generator=g) * torch.rand(units, generator=g) * 5 + torch.randn(units, generator=g)
    gamma = torch.rand(units, generator=g) * 3 + 0.1
    upstream = torch.randn(m, units, generator=g) + torch.randn(units, generator=g)  # a non-zero mean too
    return y, gamma, upstream


@pytest.mark.parametrize("m", [2, 16, 128])
def test_theorem_4_1_holds_with_equality_in_its_1_over_m_form(m):
    y, gamma, upstream = random_bn_layer(m, 40, seed=m)
    out = theory.theorem_4_1(y, gamma, upstream)
    scale = (out["gamma_sq_over_sigma_sq"] * upstream.square().sum(0)).max().item()  # m = 2: both sides are 0
    torch.testing.assert_close(out["lhs"], out["rhs_1_over_m"], rtol=1e-9, atol=1e-12 * scale)


def test_printed_theorem_4_1_fails():
    y, gamma, upstream = random_bn_layer(16, 40, seed=0)
    out = theory.theorem_4_1(y, gamma, upstream)
    violated = out["lhs"] > out["rhs_printed"] * (1 + 1e-9) + 1e-12
    assert violated.sum() >= 35  # the printed bound fails wherever <g, y_hat> != 0
    j = int(torch.argmax(out["lhs"] - out["rhs_printed"]))
    assert out["rhs_printed"][j] < out["lhs"][j]  # an explicit counterexample


def smooth_loss(z: torch.Tensor) -> torch.Tensor:
    weights = torch.linspace(-1, 2, len(z))
    return (torch.sin(1.3 * z) * weights).sum() + 0.2 * (z * weights).sum() ** 2 + (z**4).sum() / 10


@pytest.mark.parametrize("seed", range(4))
def test_theorem_4_2_identity(seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(16, generator=g) * 2 + 1
    gamma, beta = torch.tensor(1.7), torch.tensor(0.3)
    out = theory.theorem_4_2(y, gamma, beta, smooth_loss)
    torch.testing.assert_close(out["lhs"], out["rhs"], rtol=1e-9, atol=1e-12)


def test_observation_4_3_bn_can_return_its_input():
    y, _, _ = random_bn_layer(32, 10, seed=1)
    assert theory.observation_4_3(y) < 1e-12


def test_theorem_4_4_consistent_form_is_an_equality():
    y, gamma, upstream = random_bn_layer(16, 20, seed=2)
    out = theory.theorem_4_4(y, gamma, upstream, lam=2.5)
    torch.testing.assert_close(out["lhs"], out["rhs"], rtol=1e-9, atol=1e-12)
    # and its premise: the worst case of ||X^T a||^2 over ||X|| <= lam is lam^2 ||a||^2
    a = torch.randn(16)
    x = 2.5 * torch.outer(a / a.norm(), torch.eye(5)[0])  # spectral norm 2.5
    assert torch.linalg.matrix_norm(x, ord=2) == pytest.approx(2.5)
    assert (x.T @ a).square().sum() == pytest.approx(2.5**2 * a.square().sum().item())


def test_lemma_4_5_identity():
    g = torch.Generator().manual_seed(3)
    w0, w_star = torch.randn(10, 10, generator=g), torch.randn(10, 10, generator=g) + 0.3
    out = theory.lemma_4_5(w0, w_star)
    assert out["lhs"].item() == pytest.approx(out["rhs"].item(), rel=1e-12)
    assert out["lhs"] <= out["plain_distance"]


def test_lemma_4_5_rests_on_scale_invariance():
    torch.manual_seed(0)
    model = build_model(RunConfig(model="dln", dln_depth=4, dln_dim=5, norm="batch", bn_eps=1e-30, lr=1e-3)).train()
    x, y = torch.randn(40, 5), torch.randn(40, 5)
    before = summed_squared_error(model(x), y)
    with torch.no_grad():
        model.layer(1).weight.mul_(3.7)  # k W for k > 0: the BN network's loss does not change
    torch.testing.assert_close(summed_squared_error(model(x), y), before, rtol=1e-12, atol=0)


def test_theorem_4_1_on_a_trained_style_vgg_layer():
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    model = build_model(RunConfig(width=0.125, norm="batch")).train()
    x, labels = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    terms = theory.bn_layer_terms(model, 5, x, labels, cross_entropy)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing moved
    assert terms["y"].shape == (8 * 8 * 8, 32) and terms["g"].shape == terms["y"].shape
    out = theory.theorem_4_1(terms["y"].double(), terms["gamma"].double(), terms["g"].double(), eps=float(terms["eps"]))
    # eps = 1e-5 makes the identity approximate, to about eps / sigma^2
    torch.testing.assert_close(out["lhs"], out["rhs_1_over_m"], rtol=1e-3, atol=0)
    assert math.isfinite(out["gamma_sq_over_sigma_sq"].sum().item())
