"""Section 4 of the paper, checked: the identities hold to rounding where the protocol says they
must, and the printed Theorem 4.1 fails (book/protocol.md, "Section 4")."""

import math

import pytest
import torch

from bnlib import RunConfig
from bnlib.book.chapters import ch06_theory
from bnlib.models import build_model
from bnlib.probes import theory
from bnlib.train import cross_entropy, summed_squared_error


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def random_bn_layer(m: int, units: int, seed: int):
    return theory.random_instances(m, units, seed)


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
    out = theory.theorem_4_2(y, gamma, beta, theory.smooth_downstream)
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
    t41 = theory.theorem_4_1_sweep([2, 16, 128], n=50)
    assert t41["relative_error_1_over_m"].max() < 1e-9
    assert t41["printed_violated"].mean() > 0.95
    assert theory.theorem_4_2_sweep([8], n=5)["relative_error"].max() < 1e-9
    assert theory.theorem_4_4_sweep([2, 32], n=50)["relative_error"].max() < 1e-9
    assert theory.observation_4_3_sweep([2, 64])["max_abs_difference"].max() < 1e-12
    lemma = theory.lemma_4_5_sweep([3, 10], n=10)
    assert lemma["relative_error"].max() < 1e-9 and (lemma["lhs"] <= lemma["plain_distance"] + 1e-12).all()
    assert (ch06_theory.scale_invariance([0.01, 7.0])["loss ratio"] - 1).abs().max() < 1e-9


def test_the_smallest_counterexample_by_hand():
    out = theory.theorem_4_1_counterexample()
    # y = (0, 1): sigma = 1/2, y_hat = (-1, 1); g = (0, 1): ||g||^2 = 1, <1, g>^2 / 2 = 1/2, <g, y_hat>^2 = 1
    assert out["gamma_sq_over_sigma_sq"] == pytest.approx(4.0)
    assert out["lhs"] == pytest.approx(0.0, abs=1e-20)
    assert out["rhs_1_over_m"] == pytest.approx(0.0, abs=1e-12)
    assert out["rhs_printed"] == pytest.approx(4 * (1 - 0.5 - 1 / math.sqrt(2)))


def test_random_instances_have_the_asked_gamma_and_sigma():
    y, gamma, g = theory.random_instances(16, 5, seed=0, gamma=0.7, sigma=2.5)
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


def test_theorem_4_2_second_display_is_the_first_with_g_in_place_of_v():
    y, gamma, _ = random_bn_layer(12, 3, seed=5)
    out = theory.theorem_4_2(y[:, 0], gamma[0], torch.tensor(0.3), theory.smooth_downstream)
    scale = gamma[0] ** 2 / y[:, 0].var(unbiased=False)
    # the two right sides differ by gamma^2/sigma^2 (g^T H g - v^T H v), nothing else
    expected = out["rhs"] + scale * (out["g_H_g"] - out["v_H_v"])
    torch.testing.assert_close(out["rhs_second"], expected, rtol=1e-6, atol=1e-9)
    table = theory.theorem_4_2_sweep([8, 16], n=10)
    assert (table["second_holds"] | ~table["proof_step_holds"]).all()  # where the proof's step holds, so does it


def test_the_worst_input_is_rank_one_and_nothing_beats_it():
    a = torch.randn(8, generator=torch.Generator().manual_seed(1))
    out = theory.worst_input_gradient(a, lam=2.5, n_random=100)
    assert out["bound"] == pytest.approx(6.25 * a.square().sum().item())
    assert out["rank_one"] == pytest.approx(out["bound"]) and out["largest_random"] <= out["bound"]


def test_max_quadratic_form_on_known_answers():
    # A positive definite, v its top eigenvector: lam^4 ||v||^2 lambda_max, at S = lam^2 I
    a = torch.diag(torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64))
    assert theory.max_quadratic_form(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), a, lam=2.0) == pytest.approx(
        48
    )
    # A negative definite: the best input is X = 0, value 0
    assert theory.max_quadratic_form(torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), -a, lam=2.0) == pytest.approx(
        0
    )
    # the hard case: A = I, every direction alike; Sv reaches lam^2 ||v|| at most
    v = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert theory.max_quadratic_form(v, torch.eye(2, dtype=torch.float64), lam=1.0) == pytest.approx(25)


def test_max_quadratic_form_beats_every_input_and_is_attained():
    # no admissible S gives more, and projected gradient ascent over the set of Sv (a ball) reaches it
    gen = torch.Generator().manual_seed(7)
    for _ in range(10):
        m = int(torch.randint(2, 7, (1,), generator=gen))
        v = torch.randn(m, dtype=torch.float64, generator=gen)
        a = torch.randn(m, m, dtype=torch.float64, generator=gen)
        a, lam = (a + a.T) / 2, 1.5
        exact = theory.max_quadratic_form(v, a, lam)
        q, _ = torch.linalg.qr(torch.randn(200, m, m, dtype=torch.float64, generator=gen))
        s = q @ torch.diag_embed(torch.rand(200, m, dtype=torch.float64, generator=gen) * lam**2) @ q.transpose(1, 2)
        w = s @ v
        assert float(torch.einsum("ij,jk,ik->i", w, a, w).max()) <= exact + 1e-9 * max(1.0, abs(exact))
        centre, radius = lam**2 * v / 2, lam**2 * float(v.norm()) / 2
        w = centre + torch.randn(40, m, dtype=torch.float64, generator=gen)
        step = 0.2 / float(torch.linalg.eigvalsh(a).abs().max())
        for _ in range(2000):
            d = w + step * 2 * (w @ a) - centre
            w = centre + d * torch.clamp(radius / d.norm(dim=1, keepdim=True), max=1.0)
        assert float(torch.einsum("ij,jk,ik->i", w, a, w).max()) == pytest.approx(exact, rel=1e-9, abs=1e-9)


def test_theorem_c_1_decides_every_unit():
    table = theory.theorem_c_1_sweep([4, 8], n=4)
    assert set(table["verdict"]) <= {"holds", "violated"}
    assert ((table["verdict"] == "holds") == (table["lhs"] < table["rhs"])).all()


def test_printed_theorem_4_4_depends_on_the_units_of_the_gradient():
    table = theory.theorem_4_4_sweep([16], n=50, scales=(1e-3, 1e3))
    share = table.groupby("gradient scale")["printed_violated"].mean()
    assert share[1e-3] > 0.9 and share[1e3] < 0.1  # g_j^2 outgrows the other terms as the gradient grows
    assert table["relative_error"].max() < 1e-9  # while the consistent form is an equality at every scale
