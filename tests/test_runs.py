"""The book's run plan: each chapter pays for what it reads, the book build for the union of it all,
fewer seeds or steps on request, the cost announced first; the noisy-BN widget's grid reuses the
book's runs where it can."""

import pytest

from bnlib import load_or_run
from bnlib.book import plan
from bnlib.book.chapters import (
    CHAPTERS,
    PART_ONE,
    ch01_does_batchnorm_help,
    ch02_noisy_batchnorm,
    ch03_internal_covariate_shift,
    ch04_landscape,
    ch06_theory,
    ch07_learning_rates,
    ch09_curvature,
)
from bnlib.book.chapters.ch01_does_batchnorm_help import BN, STD
from bnlib.book.plan import make_probe
from bnlib.config import NoiseParams
from bnlib.errors import ConfigError
from bnlib.experiments import Experiment
from bnlib.probes.hook import probe_key


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    monkeypatch.delenv(plan.ENV_BOOK, raising=False)
    plan.use(None)
    yield
    plan.use(None)


def kinds(run: Experiment, scale: str = "cpu", seed: int = 0) -> set[str]:
    return {probe_key(p).split("-")[0] for p in plan.probes_for(run, scale, seed).values()}


def test_a_chapter_pays_only_for_what_it_reads():
    plan.use(ch03_internal_covariate_shift)
    assert kinds(BN) == {"ics"}
    plan.use(ch01_does_batchnorm_help)
    assert kinds(BN) == {"activations"}
    with pytest.raises(ConfigError, match="chapter 01_does_batchnorm_help reads dln-bn-lr1e-6"):
        plan.probes_for(ch04_landscape.DLN_BN, "cpu")


def test_the_book_build_trains_every_run_once_with_the_union(monkeypatch):
    monkeypatch.setenv(plan.ENV_BOOK, "all")  # what `python -m bnlib.book` sets
    plan.use(ch01_does_batchnorm_help)
    assert kinds(BN) == {"activations", "ics", "landscape", "hessian", "bn", "weight"}
    jobs = plan.jobs("cpu")
    configs = [job.config for job in jobs]
    assert len(set(configs)) == len(configs)  # every run once
    read = {r.run.config("cpu", seed) for c in CHAPTERS for r in c.reads("cpu") if not r.optional for seed in r.seeds}
    assert set(configs) == read  # every chapter's every seed, and nothing else
    assert sum(job.config.steps == ch02_noisy_batchnorm.short_steps("cpu") for job in jobs) == 2  # the widget's
    assert jobs[-1].config.model in ("dln", "mlp")  # longest first
    bn = next(j for j in jobs if j.config == BN.config("cpu"))
    frozen = {p.frozen_bn for p in bn.probes if "hessian" in p.name}
    assert frozen == {False, True}  # chapters 04 and 09 (active), 09 (frozen)


def test_part_one_is_a_subset_trained_first():
    part_one = {job.config for job in plan.jobs("cpu", PART_ONE)}
    everything = {job.config for job in plan.jobs("cpu")}
    assert part_one < everything and BN.config("cpu", seed=2) in part_one


def test_a_chapter_trains_only_the_seeds_it_reads():
    def seeds(chapter) -> set[int]:
        jobs = plan.jobs("cpu", (chapter,))
        return {job.config.seed for job in jobs if job.config.replace(seed=0) == BN.config("cpu")}

    assert seeds(ch01_does_batchnorm_help) == seeds(ch02_noisy_batchnorm) == seeds(ch04_landscape) == {0, 1, 2}
    assert seeds(ch06_theory) == seeds(ch09_curvature) == {0}
    assert {job.config.seed for job in plan.jobs("cpu")} == {0, 1, 2}


def test_a_part_two_chapter_reads_part_one_runs_and_its_own(monkeypatch):
    plan.use(ch07_learning_rates)
    monkeypatch.setattr(plan, "stored", lambda run, scale, seed=0: None)  # nothing trained yet: seed 0 first
    jobs = plan.jobs("cpu", (ch07_learning_rates,))
    part_one = [job for job in jobs if job.config.target_acc is None]
    assert {job.config.lr for job in part_one} == set(ch07_learning_rates.PART_ONE)  # Part I's runs, read
    assert {job.config.seed for job in part_one} == {0} and all(not job.probes for job in part_one)
    own = [job for job in jobs if job.config.target_acc is not None]  # the others stop at the speed target
    rates = ch07_learning_rates.RATES
    assert len(own) == 2 * (len(rates) - len(ch07_learning_rates.PART_ONE))
    assert {job.config.steps for job in own} == {BN.config("cpu").steps} and {j.config.seed for j in own} == {0}


def test_seeds_and_strides():
    plan.use(ch03_internal_covariate_shift)
    assert plan.probes_for(BN, "cpu", seed=1).keys() == {"ics"}
    plan.use(ch01_does_batchnorm_help)
    assert plan.seeds(ch01_does_batchnorm_help.FIG1[BN]) == (0, 1, 2)
    plan.use(ch04_landscape)
    assert {p.every for p in plan.probes_for(ch04_landscape.DLN_BN, "paper").values()} == {10, 100, 1000}
    assert {p.every for p in plan.probes_for(BN, "cpu").values()} == {50, 250, 500}


def test_fewer_seeds_and_steps_on_request():
    plan.use(ch01_does_batchnorm_help, seeds=1, steps=40)
    assert plan.seeds(ch01_does_batchnorm_help.FIG1[BN]) == (0,) and plan.config(BN, "cpu").steps == 40
    assert plan.reduced() == "at most 1 seed per experiment; at most 40 steps per run"
    plan.use(ch01_does_batchnorm_help, steps=10**6)  # more than the scale's: the scale's
    assert plan.config(BN, "smoke").steps == 12
    with pytest.raises(ConfigError, match="seeds must be a positive integer"):
        plan.use(ch01_does_batchnorm_help, seeds=0)


def test_the_cost_is_announced_before_training(cifar_tar, monkeypatch):
    plan.use(ch02_noisy_batchnorm)
    text = plan.announce("smoke")
    assert text.startswith("This chapter will train 14 runs at the smoke scale:")
    assert "vgg-noisybn-lr0.1 seed 0: 12 steps, activations" in text and "minutes" not in text
    with monkeypatch.context() as m:  # the paper scale's arithmetic, on smoke-sized runs timed at 0.5 s a step
        m.setattr(plan, "step_seconds", lambda config, probes, steps=3: 0.5)
        m.setattr(plan, "config", lambda run, scale, seed=0: run.config("smoke", seed))
        paper = plan.announce("paper")
    assert "about 6 s" in paper and "Estimated total on this device: at most 75 s" in paper  # 150 steps x 0.5 s
    assert "vgg-stdnoise-lr0.1 (target_acc=0.4) seed 1: up to 12 steps, no probes, at most 6 s" in paper
    plan.get(ch02_noisy_batchnorm.STD_NOISE, "smoke")
    assert "vgg-stdnoise-lr0.1 (target_acc=0.4) seed 0" not in plan.announce("smoke")  # stored runs cost nothing


def test_step_seconds_is_a_timing_of_this_device(cifar_tar):
    config = BN.config("smoke")
    seconds = plan.step_seconds(config, [make_probe("landscape", "vgg", "smoke")])
    assert 0 < seconds < 5


def test_unknown_probe_kind_names_the_choices():
    with pytest.raises(ValueError, match="choose from activations"):
        make_probe("curvature", "vgg", "cpu")


def test_scaled_noise():
    scaled = ch02_noisy_batchnorm.scaled_noise
    assert scaled(1) == NoiseParams()
    assert scaled(0) == NoiseParams(n_mu=0, n_sigma=1, r_mu=0, r_sigma=0)
    assert scaled(2).n_sigma == pytest.approx(1.5)


def test_a_short_run_is_the_start_of_the_long_one(cifar_tar):
    # the widget's grid shows the first steps of the book's runs for k = 0 and 1
    chapter = ch02_noisy_batchnorm
    plan.use(chapter)
    full = chapter.noisy_run(chapter.scaled_noise(1), "smoke")
    assert full.config == chapter.NOISY.config("smoke")
    assert chapter.noisy_run(chapter.scaled_noise(0), "smoke").config == BN.config("smoke")
    n = chapter.short_steps("smoke")
    short = load_or_run(full.config.replace(steps=n, test_every=0))
    assert short.config.steps == n
    assert (short.metrics["train_loss"] == full.metrics["train_loss"][:n]).all()


@pytest.mark.parametrize("scale", ["smoke", "cpu", "paper"])
def test_probes_follow_the_scale_schedule_on_the_papers_layers(scale):
    from bnlib.probes import LandscapeProbe

    probe_kinds = ("activations", "ics", "landscape", "landscape-random", "hessian")
    for model, ics_layers in (("vgg", (5, 10)), ("dln", (9, 17))):
        probes = [make_probe(kind, model, scale) for kind in probe_kinds]
        by_kind = {type(p).__name__: p for p in probes}
        assert by_kind["ICSProbe"].layers == ics_layers
        assert by_kind["ICSProbe"].every == plan.probe_every(scale)["ics"]
        assert {p.direction for p in probes if isinstance(p, LandscapeProbe)} == {"gradient", "random"}
        assert len({probe_key(p) for p in probes}) == len(probes)


def test_a_chapter_reads_through_the_plan_by_typed_runs():
    plan.use(ch09_curvature)
    spectra = ch09_curvature.spectrum_probes("cpu", frozen=False), ch09_curvature.spectrum_probes("cpu", frozen=True)
    assert set(plan.probes_for(BN, "cpu")) == {plan.named(p) for probes in spectra for p in probes}
    assert set(plan.probes_for(STD, "cpu")) == {plan.named(p) for p in spectra[0]}
    eos = ch09_curvature.eos_run("batch", 0.01, "cpu")
    assert eos.name.startswith("mlp-bn-lr0.01 (") and "loss=mse" in eos.name
    assert eos.config("cpu").batch_size == 1000
