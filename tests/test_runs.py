"""The book's run plan: every run carries the probes its chapters read, and the noisy-BN widget's
grid reuses the book's runs where it can."""

import pytest

from bnlib import load_or_run
from bnlib.book import plan
from bnlib.book.plan import make_probe
from bnlib.config import NoiseParams
from bnlib.probes.hook import probe_key


def test_the_plan_gives_seed_zero_its_probes_and_other_seeds_none():
    kinds = {probe_key(p).split("-")[0] for p in plan.probes_for("vgg-bn-lr0.1", "cpu")}
    assert kinds == {"activations", "ics", "landscape", "hessian", "bn"}
    assert plan.probes_for("vgg-bn-lr0.1", "cpu", seed=1) == []
    assert plan.probes_for("vgg-stdnoise-lr0.1", "cpu") == []
    assert {p.every for p in plan.probes_for("dln-bn-lr1e-6", "paper")} == {100, 50, 10, 1000}
    assert {p.every for p in plan.probes_for("dln-bn-lr1e-6", "cpu")} == {50, 500}  # 2,500 steps: ~50 points
    assert {p.every for p in plan.probes_for("vgg-bn-lr0.1", "cpu")} == {20, 250}


def test_unknown_probe_kind_names_the_choices():
    with pytest.raises(ValueError, match="choose from activations"):
        make_probe("curvature", "vgg", "cpu")


def test_scaled_noise():
    assert plan.scaled_noise(1) == NoiseParams()
    assert plan.scaled_noise(0) == NoiseParams(n_mu=0, n_sigma=1, r_mu=0, r_sigma=0)
    assert plan.scaled_noise(2).n_sigma == pytest.approx(1.5)


def test_a_short_run_is_the_start_of_the_long_one(cifar_tar):
    # the widget's grid shows the first steps of the book's runs for k = 0 and 1
    full = plan.noisy_run(plan.scaled_noise(1), "smoke")
    assert full.label == "vgg-noisybn-lr0.1" and plan.noisy_run(plan.scaled_noise(0), "smoke").label == "vgg-bn-lr0.1"
    config = full.config.replace(steps=plan.short_steps("smoke"), test_every=0)
    short = load_or_run(config)
    n = plan.short_steps("smoke")
    assert short.config.steps == n
    assert (short.metrics["train_loss"] == full.metrics["train_loss"][:n]).all()


@pytest.mark.parametrize("scale", ["smoke", "cpu", "paper"])
def test_probes_follow_the_scale_schedule_on_the_papers_layers(scale):
    from bnlib.probes import LandscapeProbe

    kinds = ("activations", "ics", "landscape", "landscape-random", "hessian")
    for model, ics_layers in (("vgg", (5, 10)), ("dln", (9, 17))):
        probes = [make_probe(kind, model, scale) for kind in kinds]
        by_kind = {type(p).__name__: p for p in probes}
        assert by_kind["ICSProbe"].layers == ics_layers
        assert by_kind["ICSProbe"].every == plan.probe_every(scale, model)["ics"]
        assert {p.direction for p in probes if isinstance(p, LandscapeProbe)} == {"gradient", "random"}
        assert len({probe_key(p) for p in probes}) == len(probes)
