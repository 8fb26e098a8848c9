"""Probes against known answers: a quadratic loss, a 2-layer linear network, hand computations."""

import numpy as np
import pytest
import torch
from torch import nn

from bnlib import RunConfig
from bnlib.models import build_model
from bnlib.probes import (
    ActivationGradientProbe,
    ActivationProbe,
    BatchLoss,
    HessianProbe,
    ICSProbe,
    LandscapeProbe,
    activation_stats,
    drifts,
    freeze_batch_statistics,
    ics,
    landscape,
    random_direction,
    successive_changes,
    top_eigenvalues,
)
from bnlib.probes.hook import FunctionProbe, ProbeContext, due, probe_key
from bnlib.records import load_or_run
from bnlib.train import RunOptions, summed_squared_error, train


@pytest.fixture(autouse=True)
def float64():
    """Known answers to 1e-10, not to float32 rounding."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


class Quadratic(nn.Module):
    """L(w) = 1/2 w^T H w: the model returns w; the loss function applies H."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w


def quadratic(n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    eigenvalues = torch.tensor([5.0, 3.0, 1.0, 0.5, -2.0, -7.0])[:n]  # the most negative is largest in size
    h = q @ torch.diag(eigenvalues) @ q.T
    model = Quadratic(torch.randn(n, generator=g))
    loss = BatchLoss(model, torch.zeros(1), torch.zeros(1), lambda out, _: 0.5 * out @ h @ out)
    return model, loss, h, eigenvalues


def test_landscape_on_a_quadratic_matches_the_closed_form():
    model, loss, h, _ = quadratic()
    w = model.w.detach()
    g = h @ w
    etas = [0.01, 0.1, 0.3, 1.0]
    out = landscape(loss, etas)
    for i, eta in enumerate(etas):
        expected = 0.5 * w @ h @ w - eta * g @ g + eta**2 * g @ h @ g / 2
        assert out["loss"][i] == pytest.approx(expected.item(), rel=1e-10)
        assert out["grad_diff"][i] == pytest.approx(eta * (h @ g).norm().item(), rel=1e-10)
    np.testing.assert_allclose(out["beta"], ((h @ g).norm() / g.norm()).item(), rtol=1e-10)
    assert out["beta_max"] == pytest.approx(out["beta"].max())
    assert out["loss_min"] <= out["loss_max"] and out["grad_norm"] == pytest.approx(g.norm().item())


def test_landscape_along_a_random_direction_of_equal_norm():
    model, loss, h, _ = quadratic()
    g = h @ model.w.detach()
    d = random_direction({"w": g}, seed=3)
    assert d["w"].norm().item() == pytest.approx(g.norm().item())
    out = landscape(loss, [0.2], direction=d)
    np.testing.assert_allclose(out["beta"], ((h @ d["w"]).norm() / d["w"].norm()).item(), rtol=1e-10)


def test_top_eigenvalues_of_a_quadratic():
    _, loss, _, _ = quadratic()
    np.testing.assert_allclose(top_eigenvalues(loss, k=2, iters=20), [5.0, 3.0], rtol=1e-8)


def two_layer_linear():
    torch.manual_seed(0)
    config = RunConfig(model="dln", dln_depth=2, dln_dim=3, dln_samples=8, lr=0.01)
    model = build_model(config)
    x, y = torch.randn(8, 3), torch.randn(8, 3)
    return config, model, x, y


def test_ics_on_a_two_layer_linear_network_matches_hand_computation():
    config, model, x, y = two_layer_linear()
    w1, w2 = model.layer(1).weight.detach(), model.layer(2).weight.detach()
    residual = x @ w1.T @ w2.T - y  # L = sum ||W2 W1 x - y||^2
    g1, g2 = 2 * w2.T @ residual.T @ x, 2 * residual.T @ (x @ w1.T)
    w1_next = w1 - config.lr * g1
    residual_next = x @ w1_next.T @ w2.T - y
    g2_moved = 2 * residual_next.T @ (x @ w1_next.T)

    ctx = ProbeContext(model, x, y, 0, config, summed_squared_error)
    grad = ctx.gradient()
    torch.testing.assert_close(grad[model.weight_name(2)], g2)
    out = ics(BatchLoss.from_context(ctx), model, [1, 2], grad, ctx.next_params(grad))
    assert out["l2_diff"][0] == 0 and out["cosine"][0] == pytest.approx(1.0)  # layer 1 has no predecessors
    assert out["l2_diff"][1] == pytest.approx((g2 - g2_moved).norm().item(), rel=1e-10)
    cosine = (g2 * g2_moved).sum() / (g2.norm() * g2_moved.norm())
    assert out["cosine"][1] == pytest.approx(cosine.item(), rel=1e-10)


def test_activation_gradients_on_a_two_layer_linear_network_match_hand_computation():
    config, model, x, y = two_layer_linear()
    w1, w2 = model.layer(1).weight.detach(), model.layer(2).weight.detach()
    residual = x @ w1.T @ w2.T - y  # L = sum ||W2 W1 x - y||^2: dL/dy2 = 2 r, dL/dy1 = 2 r W2
    out = ActivationGradientProbe(1)(ProbeContext(model, x, y, 0, config, summed_squared_error))
    expected = [(2 * residual @ w2).norm().item(), (2 * residual).norm().item()]
    np.testing.assert_allclose(out["norms"], expected, rtol=1e-10)
    assert out["total"] == pytest.approx(np.hypot(*expected), rel=1e-10)


def test_a_probe_with_a_dense_start_runs_at_both_strides():
    probe = LandscapeProbe(50, early=(300, 5))
    assert [s for s in range(400) if due(probe, s)] == [*range(0, 300, 5), 300, 350]
    assert probe_key(probe) != probe_key(LandscapeProbe(50))  # a record says which schedule it was probed on
    assert [s for s in range(120) if due(ActivationGradientProbe(50), s)] == [0, 50, 100]


def test_next_params_is_what_the_optimizer_applies():
    torch.set_default_dtype(torch.float32)
    config = RunConfig(
        model="dln",
        dln_depth=4,
        dln_dim=3,
        dln_samples=20,
        lr=1e-3,
        steps=3,
        momentum=0.9,
        weight_decay=0.1,
        norm="batch",
    )
    seen = {}
    probe = FunctionProbe("next", 1, lambda ctx: seen.__setitem__(ctx.step, ctx.next_params()) or {})
    finals = [train(config.replace(steps=s), [probe]).model_state for s in (1, 2, 3)]
    for step in (1, 2):  # the prediction made at step s is the weights after s + 1 steps
        for name, value in seen[step].items():
            torch.testing.assert_close(value, finals[step][name], rtol=0, atol=1e-7)


def test_activation_stats_are_those_of_the_layer():
    torch.manual_seed(0)
    model = build_model(RunConfig(width=0.125, norm="batch")).train()
    x = torch.randn(16, 3, 32, 32)
    captured = {}
    handles = [
        model.block(3).register_forward_pre_hook(lambda m, a: captured.update(input=a[0])),
        model.norm(3).register_forward_hook(lambda m, i, o: captured.update(norm_in=i[0], norm_out=o)),
    ]
    out = activation_stats(model, x, [3], n_units=4)
    model(x)
    for h in handles:
        h.remove()
    # what enters layer #3 is layer #2's output after its ReLU and the max-pool: never negative
    assert captured["input"].shape[1] == model.layer(3).weight.shape[1] and (captured["input"] >= 0).all()
    for site, tensor in captured.items():
        units = out[f"L3.{site}.units"]
        assert len(units) == 4 and len(set(units.tolist())) == 4
        values = tensor[:, units].transpose(0, 1).reshape(4, -1).detach().numpy()
        np.testing.assert_allclose(
            out[f"L3.{site}.quantiles"], np.quantile(values, out["quantile_levels"], axis=1).T, rtol=1e-6, atol=1e-9
        )
        np.testing.assert_allclose(out[f"L3.{site}.mean"], values.mean(1), atol=1e-9)
    np.testing.assert_allclose(out["L3.norm_out.mean"], 0, atol=1e-6)  # BN output: beta = 0, gamma = 1
    np.testing.assert_allclose(out["L3.norm_out.var"], 1, atol=1e-3)


def test_pairs_of_successive_steps_and_drifts_match_hand_computation():
    torch.set_default_dtype(torch.float32)
    config = RunConfig(model="dln", dln_depth=6, dln_dim=4, dln_samples=40, lr=1e-4, steps=9, log_every=3, norm="batch")
    probe = ActivationProbe((2,), every=4, n_units=3, pairs=True)
    record = load_or_run(config, [probe])
    frame = record.probe_frame(probe)
    assert sorted(set(frame["step"])) == [0, 1, 4, 5, 8]  # t and t + 1, every 4 steps (9 steps: no 9)
    mean = record.probe_table(probe, "L2.input.mean")
    changes = successive_changes(frame, 2, "input")
    assert sorted(set(changes["step"])) == [0, 4]  # step 8 has no successor in the run
    first = changes[changes["step"] == 4].sort_values("unit")["abs_change_mean"].to_numpy()
    np.testing.assert_allclose(first, np.abs(mean.loc[5] - mean.loc[4]).to_numpy(), rtol=1e-6)
    moved = drifts(frame, 2, "input")
    var = record.probe_table(probe, "L2.input.var")
    last = moved[moved["step"] == 8].sort_values("unit")
    np.testing.assert_allclose(last["drift_mean"], (mean.loc[8] - mean.loc[0]).to_numpy(), rtol=1e-6)
    sd = np.sqrt(var.to_numpy())
    typical = np.median(sd, axis=0)  # the spread over the probed steps, per unit
    np.testing.assert_allclose(last["relative_drift_sd"], np.abs(sd[-1] - sd[0]) / typical, rtol=1e-5)
    later = drifts(frame, 2, "input", start=4)  # from the end of a transient: steps 4, 5, 8
    assert sorted(set(later["step"])) == [4, 5, 8]
    np.testing.assert_allclose(
        later[later["step"] == 8].sort_values("unit")["drift_mean"], (mean.loc[8] - mean.loc[4]).to_numpy(), rtol=1e-6
    )


def test_hessian_with_frozen_statistics():
    torch.manual_seed(0)
    config = RunConfig(model="dln", dln_depth=3, dln_dim=3, dln_samples=30, lr=1e-3, norm="batch")
    model = build_model(config).train()
    x, y = torch.randn(30, 3), torch.randn(30, 3)
    batch = BatchLoss(model, x, y, summed_squared_error)
    frozen = freeze_batch_statistics(BatchLoss(model, x, y, summed_squared_error))
    assert frozen(frozen.params).item() == pytest.approx(batch(batch.params).item(), rel=1e-9)
    assert top_eigenvalues(frozen, iters=40)[0] != pytest.approx(top_eigenvalues(batch, iters=40)[0], rel=1e-3)
    plain = build_model(config.replace(norm="none")).train()
    a = top_eigenvalues(BatchLoss(plain, x, y, summed_squared_error), iters=40)
    b = top_eigenvalues(freeze_batch_statistics(BatchLoss(plain, x, y, summed_squared_error)), iters=40)
    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_every_probe_on_leaves_training_bit_identical(cifar_tar):
    torch.set_default_dtype(torch.float32)
    config = RunConfig(
        width=0.0625,
        norm="noisy_batch",
        batch_size=16,
        steps=6,
        log_every=2,
        test_every=3,
        train_per_class=20,
        test_per_class=10,
        momentum=0.9,
    )
    probes = [
        ActivationProbe((2, 9, 13), every=2),
        ICSProbe((5, 10), every=3),
        LandscapeProbe(every=3),
        LandscapeProbe(every=3, direction="random"),
        HessianProbe(every=5, iters=3),
        HessianProbe(every=5, iters=3, frozen_bn=True),
    ]
    plain, probed = train(config), train(config, probes)
    for name, value in plain.model_state.items():
        assert torch.equal(value, probed.model_state[name]), name
    np.testing.assert_array_equal(plain.metrics["train_loss"], probed.metrics["train_loss"])
    assert set(probed.probes) == {probe_key(p) for p in probes}


def test_probe_records_load_as_tidy_frames():
    torch.set_default_dtype(torch.float32)
    config = RunConfig(
        model="dln", dln_depth=25, dln_dim=10, dln_samples=50, lr=1e-5, steps=8, log_every=2, norm="batch"
    )
    probes = [ActivationProbe((1, 11, 24), every=2), ICSProbe((9, 17), every=4), LandscapeProbe(every=4)]
    record = load_or_run(config, probes, RunOptions())
    ics_frame = record.probe_frame(probes[1])
    cos = ics_frame[ics_frame["quantity"] == "cosine"]
    assert cos["step"].tolist() == [0, 0, 4, 4] and cos["index"].tolist() == [0, 1, 0, 1]
    land = record.probe_frame(probes[2])
    assert len(land[land["quantity"] == "beta"]) == 2 * 8  # two probed steps, the DLN's 8 step sizes
    moved = drifts(record.probe_frame(probes[0]), 11, "norm_in")
    assert {"step", "unit", "drift_mean", "drift_var", "relative_drift_mean", "relative_drift_sd"} <= set(moved.columns)
    assert (moved[moved["step"] == 0]["drift_mean"] == 0).all()


# ----------------------------------------------------------------------------- Part II's additions


def test_spectrum_gives_the_gradients_share_in_the_top_directions():
    from bnlib.probes.hessian import spectrum

    model, loss, h, eigenvalues = quadratic()
    gradient = h @ model.w.detach()  # the quadratic's own gradient at w
    vectors = torch.linalg.eigh(h).eigenvectors[:, torch.argsort(torch.linalg.eigh(h).eigenvalues, descending=True)]
    found = spectrum(loss, iters=20, top=2, gradient=gradient)
    np.testing.assert_allclose(found["ritz"], torch.sort(eigenvalues, descending=True).values, rtol=1e-8)
    share = float((vectors[:, :2].T @ gradient).square().sum() / gradient.square().sum())
    assert found["grad_mass"] == pytest.approx(share, rel=1e-8)


def test_the_tangent_view_removes_each_normalized_layers_own_direction():
    from bnlib.probes.hessian import _view

    torch.manual_seed(0)
    model = build_model(RunConfig(norm="batch", width=0.0625))
    loss = BatchLoss(model, torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), nn.functional.cross_entropy)
    sizes = [p.numel() for p in loss.params.values()]
    project = _view("tangent", model, loss, sizes)
    names, starts = list(loss.params), np.cumsum([0, *sizes[:-1]])
    v = torch.randn(sum(sizes))
    projected = project(v)
    torch.testing.assert_close(project(projected), projected)  # a projection
    for k in range(1, model.num_layers):  # every BatchNorm-fed layer: nothing left along its weights
        i = names.index(model.weight_name(k))
        part, w = projected[starts[i] : starts[i] + sizes[i]], loss.params[names[i]].flatten()
        assert abs(float(part @ w)) < 1e-10 * float(part.norm() * w.norm())
    classifier = names.index(model.weight_name(model.num_layers))
    span = slice(starts[classifier], starts[classifier] + sizes[classifier])
    torch.testing.assert_close(projected[span], v[span])  # the classifier feeds no normalization: untouched


def test_ranks_known_answers():
    from bnlib.probes.signal import effective_rank, numerical_rank

    basis = torch.linalg.qr(torch.randn(20, 20))[0]
    three = torch.randn(50, 3) @ basis[:3]  # 50 examples spanning 3 directions
    assert numerical_rank(three) == 3
    equal = torch.cat([basis[:4] * 5, -basis[:4] * 5])  # centered, four equal singular values
    assert effective_rank(equal) == pytest.approx(4.0, rel=1e-9)
    same_direction = torch.outer(torch.randn(30), basis[0]) + 7.0  # one direction plus a common mean
    assert effective_rank(same_direction) == pytest.approx(1.0, rel=1e-6)


def test_the_weight_probe_measures_the_angle_each_step_turns_the_weights():
    from bnlib.probes.weights import WeightNormProbe

    config = RunConfig(model="dln", norm="batch", dln_depth=4, dln_dim=5, dln_samples=20, lr=1e-3, steps=3, log_every=1)
    result = train(config, [WeightNormProbe(every=1)])
    data = next(iter(result.probes.values()))
    torch.manual_seed(0)
    model = build_model(config)
    first = model.layer(1).weight.detach().flatten()
    # the angle at step 0 is the one between the initial weights and those after the first step
    after = train(config.replace(steps=1)).model_state
    moved = next(v for k, v in after.items() if k.endswith("weight")).flatten()
    expected = float(torch.arccos(torch.clamp(first @ moved / (first.norm() * moved.norm()), -1, 1)))
    assert data["angular_update"][0][0] == pytest.approx(expected, rel=1e-5, abs=1e-9)
