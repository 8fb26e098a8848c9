"""The book's run plan: every run carries the probes its chapters read, and the noisy-BN widget's
grid reuses the book's runs where it can."""

import pytest

from bnlib import load_or_run, runs
from bnlib.config import NoiseParams
from bnlib.hooks import probe_key
from bnlib.probes.schedule import make_probe


def test_the_plan_gives_seed_zero_its_probes_and_other_seeds_none():
    kinds = {probe_key(p).split("-")[0] for p in runs.probes_for("vgg-bn-lr0.1", "cpu")}
    assert kinds == {"activations", "ics", "landscape", "hessian", "bn"}
    assert runs.probes_for("vgg-bn-lr0.1", "cpu", seed=1) == []
    assert runs.probes_for("vgg-stdnoise-lr0.1", "cpu") == []
    assert {p.every for p in runs.probes_for("dln-bn-lr1e-6", "paper")} == {100, 50, 10, 1000}
    assert {p.every for p in runs.probes_for("dln-bn-lr1e-6", "cpu")} == {50, 500}  # 2,500 steps: ~50 points
    assert {p.every for p in runs.probes_for("vgg-bn-lr0.1", "cpu")} == {20, 250}


def test_unknown_probe_kind_names_the_choices():
    with pytest.raises(ValueError, match="choose from activations"):
        make_probe("curvature", "vgg", "cpu")


def test_scaled_noise():
    assert runs.scaled_noise(1) == NoiseParams()
    assert runs.scaled_noise(0) == NoiseParams(n_mu=0, n_sigma=1, r_mu=0, r_sigma=0)
    assert runs.scaled_noise(2).n_sigma == pytest.approx(1.5)


def test_a_short_run_is_the_start_of_the_long_one(cifar_tar):
    # the widget's grid shows the first steps of the book's runs for k = 0 and 1
    full = runs.noisy_run(runs.scaled_noise(1), "smoke")
    assert full.label == "vgg-noisybn-lr0.1" and runs.noisy_run(runs.scaled_noise(0), "smoke").label == "vgg-bn-lr0.1"
    config = full.config.replace(steps=runs.short_steps("smoke"), test_every=0)
    short = load_or_run(config)
    n = runs.short_steps("smoke")
    assert short.config.steps == n
    assert (short.metrics["train_loss"] == full.metrics["train_loss"][:n]).all()
