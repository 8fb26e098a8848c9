"""The book's run plan: each chapter pays for what it reads, the book build for the union of it all,
fewer seeds or steps on request, the cost announced first; the noisy-BN widget's grid reuses the
book's runs where it can."""

import pytest

from bnlib import load_or_run
from bnlib.book import plan
from bnlib.book.plan import make_probe
from bnlib.config import NoiseParams
from bnlib.errors import ConfigError
from bnlib.probes.hook import probe_key


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    monkeypatch.delenv(plan.ENV_BOOK, raising=False)
    plan.use(None)
    yield
    plan.use(None)


def kinds(name: str, scale: str = "cpu") -> set[str]:
    return {probe_key(p).split("-")[0] for p in plan.probes_for(name, scale)}


def test_a_chapter_pays_only_for_what_it_reads():
    plan.use("03_internal_covariate_shift")
    assert kinds("vgg-bn-lr0.1") == {"ics"}
    plan.use("01_does_batchnorm_help")
    assert kinds("vgg-bn-lr0.1") == {"activations"}
    with pytest.raises(ConfigError, match="does not read 'dln-bn-lr1e-6'"):
        plan.probes_for("dln-bn-lr1e-6", "cpu")


def test_the_book_build_trains_every_run_once_with_the_union(monkeypatch):
    plan.use("01_does_batchnorm_help")
    monkeypatch.setenv(plan.ENV_BOOK, "all")  # what `python -m bnlib.book` sets
    assert kinds("vgg-bn-lr0.1") == {"activations", "ics", "landscape", "hessian", "bn", "weight"}
    jobs = plan.jobs("cpu")
    configs = [job.config for job in jobs]
    assert len(set(configs)) == len(configs)  # every run once
    every_chapter = set().union(*(set(runs) for runs in plan.READS.values())) - set(plan.OPTIONAL)
    assert {job.label.split()[0] for job in jobs if " seed " in job.label} == every_chapter
    for chapter in plan.BEYOND:  # and Part II's own runs
        assert {job.config for job in plan.chapter_jobs(chapter, "cpu")} <= set(configs)
    assert sum("widget" in job.label for job in jobs) == 2  # the noisy-BN widget's two extra noise levels
    assert jobs[0].config.norm == "noisy_batch" and jobs[-1].config.model in ("dln", "mlp")  # longest first
    hessian = [p for p in next(j for j in jobs if j.label == "vgg-bn-lr0.1 seed 0").probes if "hessian" in p.name]
    assert sorted(p.frozen_bn for p in hessian) == [False, True]  # chapters 04 and 09 share one run


def test_a_chapter_trains_only_the_seeds_it_reads():
    def seeds(chapter: str) -> set[int]:
        return {job.config.seed for job in plan.chapter_jobs(chapter, "cpu") if job.label.startswith("vgg-bn-lr0.1 ")}

    for chapter in plan.READS_EVERY_SEED:  # their accuracy tables: mean and spread over Fig. 1's seeds
        assert seeds(chapter) == {0, 1, 2}
    assert seeds("03_internal_covariate_shift") == seeds("04_landscape") == seeds("06_theory") == {0}
    assert {job.config.seed for job in plan.chapter_jobs(None, "cpu")} == {0, 1, 2}  # the build: every seed


def test_a_part_two_chapter_reads_part_one_runs_of_seed_0_only():
    from bnlib.book.beyond import lr_range

    plan.use("07_learning_rates")
    jobs = plan.chapter_jobs("07_learning_rates", "cpu")
    named = [job for job in jobs if " seed " in job.label]
    assert {job.config.seed for job in named} == {0} and all(not job.probes for job in named)
    own = [job for job in jobs if " seed " not in job.label]
    assert len(own) == 2 * (len(lr_range.RATES) - len(lr_range.SHARED))  # the shared rates are cut, not run
    assert {job.config.steps for job in own} == {lr_range.sweep_steps("cpu")} == {1000}


def test_seeds_and_strides():
    assert plan.probes_for("vgg-bn-lr0.1", "cpu", seed=1) == []
    assert plan.seeds("vgg-bn-lr0.1") == (0, 1, 2) and plan.seeds("vgg-l1-lr0.1") == (0,)
    assert {p.every for p in plan.probes_for("dln-bn-lr1e-6", "paper")} == {100, 50, 10, 1000}
    assert {p.every for p in plan.probes_for("vgg-bn-lr0.1", "cpu")} == {50, 250, 500}


def test_fewer_seeds_and_steps_on_request():
    plan.use("01_does_batchnorm_help", seeds=1, steps=40)
    assert plan.seeds("vgg-bn-lr0.1") == (0,) and plan.config("vgg-bn-lr0.1", "cpu").steps == 40
    assert plan.reduced() == "at most 1 seed per experiment; at most 40 steps per run"
    plan.use("01_does_batchnorm_help", steps=10**6)  # more than the scale's: the scale's
    assert plan.config("vgg-bn-lr0.1", "smoke").steps == 12
    with pytest.raises(ConfigError, match="seeds must be a positive integer"):
        plan.use("01_does_batchnorm_help", seeds=0)


def test_the_cost_is_announced_before_training(cifar_tar, monkeypatch):
    plan.use("02_noisy_batchnorm")
    text = plan.announce("smoke")
    assert text.startswith("This chapter will train 8 runs at the smoke scale:")
    assert "vgg-noisybn-lr0.1 seed 0: 12 steps, activations" in text and "minutes" not in text
    with monkeypatch.context() as m:  # the paper scale's arithmetic, on smoke-sized runs timed at 0.5 s a step
        m.setattr(plan, "step_seconds", lambda config, probes, steps=3: 0.5)
        m.setattr(plan, "config", lambda name, scale, seed=0: plan.experiment(name, "smoke", seed=seed))
        paper = plan.announce("paper")
    assert "about 0 min" in paper and "Estimated total on this device: about 1 minutes" in paper
    plan.get("vgg-stdnoise-lr0.1", "smoke")
    assert "vgg-stdnoise-lr0.1" not in plan.announce("smoke")  # stored runs cost nothing


def test_step_seconds_is_a_timing_of_this_device(cifar_tar):
    config = plan.experiment("vgg-bn-lr0.1", "smoke")
    seconds = plan.step_seconds(config, [make_probe("landscape", "vgg", "smoke")])
    assert 0 < seconds < 5


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
