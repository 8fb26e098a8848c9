"""Section 4 of the paper, checked: the identities hold to rounding where the protocol says they
must, and the printed Theorem 4.1 fails (book/protocol.md, "Section 4")."""

import math

import pytest
import torch

from bnlib import RunConfig
from bnlib.book import section4
from bnlib.models import build_model
from bnlib.probes import theory
from bnlib.train import cross_entropy, summed_squared_error


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def random_bn_layer(m: int, units: int, seed: int):
    return section4.random_instances(m, units, seed)


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


@pytest.mark.parametrize("seed", range(4))
def test_theorem_4_2_identity(seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(16, generator=g) * 2 + 1
    gamma, beta = torch.tensor(1.7), torch.tensor(0.3)
    out = theory.theorem_4_2(y, gamma, beta, section4.smooth_downstream)
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
    terms = theory.bn_layer_terms(model, [5], x, labels, cross_entropy)[5]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing moved
    assert terms["y"].shape == (8 * 8 * 8, 32) and terms["g"].shape == terms["y"].shape
    out = theory.theorem_4_1(terms["y"].double(), terms["gamma"].double(), terms["g"].double(), eps=float(terms["eps"]))
    # eps = 1e-5 makes the identity approximate, to about eps / sigma^2
    torch.testing.assert_close(out["lhs"], out["rhs_1_over_m"], rtol=1e-3, atol=0)
    assert math.isfinite(out["gamma_sq_over_sigma_sq"].sum().item())


def test_the_sweeps_confirm_the_corrected_statements_and_refute_the_printed_one():
    t41 = section4.theorem_4_1_sweep([2, 16, 128], n=50)
    assert t41["relative_error_1_over_m"].max() < 1e-9
    assert t41["printed_violated"].mean() > 0.95
    assert section4.theorem_4_2_sweep([8], n=5)["relative_error"].max() < 1e-9
    assert section4.theorem_4_4_sweep([2, 32], n=50)["relative_error"].max() < 1e-9
    assert section4.observation_4_3_sweep([2, 64])["max_abs_difference"].max() < 1e-12
    lemma = section4.lemma_4_5_sweep([3, 10], n=10)
    assert lemma["relative_error"].max() < 1e-9 and (lemma["lhs"] <= lemma["plain_distance"] + 1e-12).all()
    assert (section4.scale_invariance([0.01, 7.0])["loss ratio"] - 1).abs().max() < 1e-9


def test_the_smallest_counterexample_by_hand():
    out = section4.theorem_4_1_counterexample()
    # y = (0, 1): sigma = 1/2, y_hat = (-1, 1); g = (0, 1): ||g||^2 = 1, <1, g>^2 / 2 = 1/2, <g, y_hat>^2 = 1
    assert out["gamma_sq_over_sigma_sq"] == pytest.approx(4.0)
    assert out["lhs"] == pytest.approx(0.0, abs=1e-20)
    assert out["rhs_1_over_m"] == pytest.approx(0.0, abs=1e-12)
    assert out["rhs_printed"] == pytest.approx(4 * (1 - 0.5 - 1 / math.sqrt(2)))


def test_random_instances_have_the_asked_gamma_and_sigma():
    y, gamma, g = section4.random_instances(16, 5, seed=0, gamma=0.7, sigma=2.5)
    torch.testing.assert_close(y.std(0, unbiased=False), torch.full((5,), 2.5))
    assert (gamma == 0.7).all() and g.shape == (16, 5)


def test_downstream_curvature_matches_the_hessian():
    model = build_model(RunConfig(model="dln", dln_depth=4, dln_dim=3, norm="batch", lr=1e-3)).train()
    x, target = torch.randn(6, 3), torch.randn(6, 3)
    out = theory.downstream_curvature(model, 2, [0, 2], x, target, summed_squared_error)

    def loss_of_z(z: torch.Tensor) -> torch.Tensor:  # the loss with layer 2's BN output replaced by z
        handle = model.norm(2).register_forward_hook(lambda module, inputs, output: z)
        try:
            return summed_squared_error(model(x), target)
        finally:
            handle.remove()

    seen = {}
    handle = model.norm(2).register_forward_hook(lambda module, inputs, output: seen.setdefault("z", output.detach()))
    model(x)
    handle.remove()
    z0 = seen["z"]
    z = z0.clone().requires_grad_(True)
    g = torch.autograd.grad(loss_of_z(z), z)[0]
    hessian = torch.autograd.functional.hessian(loss_of_z, z0)  # (6, 3, 6, 3)
    for i, j in enumerate([0, 2]):
        by_hand = g[:, j] @ hessian[:, j, :, j] @ g[:, j]
        torch.testing.assert_close(out["g_H_g"][i], by_hand, rtol=1e-9, atol=1e-12)


def test_bn_scale_probe_by_hand():
    from bnlib.probes.hook import ProbeContext

    torch.set_default_dtype(torch.float32)
    config = RunConfig(width=0.0625, norm="batch")
    model = build_model(config).train()
    with torch.no_grad():
        model.norm(3).weight.uniform_(0.5, 2.0)
    x, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    ctx = ProbeContext(model, x, labels, 0, config, cross_entropy)
    out = theory.BNScaleProbe(every=1)(ctx)
    assert set(out) == {f"L{k}.{q}" for k in range(1, 14) for q in ("gamma_sq_over_sigma_sq", "g_dot_y_hat")}
    seen = {}
    handle = model.norm(3).register_forward_hook(lambda m, inputs, output: seen.setdefault("y", inputs[0].detach()))
    model(x)
    handle.remove()
    var = seen["y"].var(dim=(0, 2, 3), unbiased=False)
    expected = model.norm(3).weight.detach() ** 2 / (var + model.norm(3).eps)
    torch.testing.assert_close(torch.as_tensor(out["L3.gamma_sq_over_sigma_sq"]), expected, rtol=1e-4, atol=0)
