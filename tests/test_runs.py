"""The book's run plan: each chapter pays for what it reads, the book build for the union of it all,
fewer seeds or steps on request, the cost announced first; the noisy-BN widget's grid reuses the
book's runs where it can."""

import pytest

from bnlib import load_or_run
from bnlib.book import contents, plan
from bnlib.book.chapters import (
    ch01_does_batchnorm_help,
    ch02_noisy_batchnorm,
    ch03_internal_covariate_shift,
    ch04_landscape,
    ch06_theory,
    ch07_learning_rates,
    ch09_curvature,
)
from bnlib.book.plan import make_probe
from bnlib.book.runs import BN, STD, WHOLE_RUNS
from bnlib.book.session import Session
from bnlib.config import NoiseParams
from bnlib.errors import ConfigError
from bnlib.experiments import Experiment
from bnlib.probes.hook import probe_key


def page(chapter, scale: str = "cpu", **kwargs) -> Session:
    """The session of one chapter's page (`whole`: as the book build makes it)."""
    return contents.session(scale, chapter.CHAPTER, **kwargs)


def kinds(session: Session, run: Experiment, seed: int = 0) -> set[str]:
    return {probe_key(p).split("-")[0] for p in session.probes_for(run, seed).values()}


def test_a_chapter_pays_only_for_what_it_reads():
    assert kinds(page(ch03_internal_covariate_shift), BN) == {"ics"}
    assert kinds(page(ch01_does_batchnorm_help), BN) == {"activations"}
    with pytest.raises(ConfigError, match="chapter 01_does_batchnorm_help reads dln-bn-lr1e-6"):
        page(ch01_does_batchnorm_help).probes_for(ch04_landscape.DLN_BN)


def test_the_book_build_trains_every_run_once_with_the_union():
    session = page(ch01_does_batchnorm_help, whole=True)  # as `python -m bnlib.book` makes it
    assert kinds(session, BN) == {"activations", "activation", "ics", "landscape", "hessian", "bn", "weight"}
    jobs = session.jobs(contents.CHAPTERS)
    configs = [job.config for job in jobs]
    assert len(set(configs)) == len(configs)  # every run once
    every = [r for c in contents.CHAPTERS for r in c.reads(session) if not r.optional]
    read = {r.run.config("cpu", seed) for r in every for seed in r.seeds}
    assert set(configs) == read  # every chapter's every seed, and nothing else
    assert sum(job.config.steps == ch02_noisy_batchnorm.short_steps(session) for job in jobs) == 2  # the widget's
    assert jobs[-1].config.model in ("dln", "mlp")  # longest first
    bn = next(j for j in jobs if j.config == BN.config("cpu"))
    frozen = {p.frozen_bn for p in bn.probes if "hessian" in p.name}
    assert frozen == {False, True}  # chapters 04 and 09 (active), 09 (frozen)


def test_part_one_is_a_subset_trained_first():
    session = contents.session("cpu", whole=True)
    part_one = {job.config for job in session.jobs(contents.PART_ONE_CHAPTERS)}
    everything = {job.config for job in session.jobs()}
    assert part_one < everything and BN.config("cpu", seed=2) in part_one


def test_a_chapter_trains_only_the_seeds_it_reads():
    session = contents.session("cpu", whole=True)

    def seeds(chapter) -> set[int]:
        jobs = session.jobs((chapter.CHAPTER,))
        return {job.config.seed for job in jobs if job.config.replace(seed=0) == BN.config("cpu")}

    assert seeds(ch01_does_batchnorm_help) == seeds(ch02_noisy_batchnorm) == seeds(ch04_landscape) == {0, 1, 2}
    assert seeds(ch09_curvature) == {0, 1, 2}  # BatchNorm's Hessian spectra, in every seed
    assert seeds(ch06_theory) == {0}
    assert {job.config.seed for job in session.jobs()} == {0, 1, 2}


def test_a_part_two_chapter_reads_part_one_runs_and_its_own(monkeypatch):
    monkeypatch.setattr(Session, "stored", lambda session, run, seed=0: None)  # nothing trained yet: seed 0 first
    jobs = page(ch07_learning_rates).jobs()
    part_one = [job for job in jobs if job.config.target_acc is None]
    assert {job.config.lr for job in part_one} == set(WHOLE_RUNS)  # Part I's runs, read
    assert all(not job.probes for job in part_one)
    matched = ch07_learning_rates.MATCHED  # its final accuracy is read in every seed, from the start
    assert {job.config.seed for job in part_one if job.config.lr != matched} == {0}
    assert {job.config.seed for job in part_one if job.config.lr == matched} == {0, 1, 2}
    own = [job for job in jobs if job.config.target_acc is not None]  # the others stop at the speed target
    rates = ch07_learning_rates.RATES
    assert len(own) == 2 * (len(rates) - len(WHOLE_RUNS))
    assert {job.config.steps for job in own} == {BN.config("cpu").steps} and {j.config.seed for j in own} == {0}


def test_seeds_and_strides():
    assert page(ch03_internal_covariate_shift).probes_for(BN, seed=1).keys() == {"ics"}
    assert page(ch01_does_batchnorm_help).seeds_of(ch01_does_batchnorm_help.FIG1[BN]) == (0, 1, 2)
    landscape = page(ch04_landscape, "paper").probes_for(ch04_landscape.DLN_BN)
    assert {p.every for p in landscape.values()} == {10, 100, 1000}
    vgg = page(ch04_landscape).probes_for(BN)
    assert {p.every for p in vgg.values()} == {50, 500}
    assert {getattr(p, "early", None) for k, p in vgg.items() if k != "hessian"} == {plan.DENSE_START["cpu"]}


def test_fewer_seeds_and_steps_on_request():
    session = page(ch01_does_batchnorm_help, seeds=1, steps=40)
    assert session.seeds_of(ch01_does_batchnorm_help.FIG1[BN]) == (0,) and session.config(BN).steps == 40
    assert session.reduced() == "at most 1 seed per experiment; at most 40 steps per run"
    assert page(ch01_does_batchnorm_help, "smoke", steps=10**6).config(BN).steps == 12  # more: the scale's
    with pytest.raises(ConfigError, match="seeds must be a positive integer"):
        page(ch01_does_batchnorm_help, seeds=0)


def test_a_session_with_fewer_seeds_measures_its_own_findings():
    # the findings are keyed on the whole session: asking for one seed never shows three seeds' findings
    assert page(ch01_does_batchnorm_help, seeds=1) != page(ch01_does_batchnorm_help)
    assert page(ch01_does_batchnorm_help, seeds=1) == page(ch01_does_batchnorm_help, seeds=1)


def test_the_cost_is_announced_before_training(cifar_tar, monkeypatch):
    text = page(ch02_noisy_batchnorm, "smoke").announce()
    assert text.startswith("This chapter will train 14 runs at the smoke scale:")
    assert "vgg-noisybn-lr0.1 seed 0: 12 steps, activations" in text and "minutes" not in text
    with monkeypatch.context() as m:  # the paper scale's arithmetic, on smoke-sized runs timed at 0.5 s a step
        m.setattr(plan, "step_seconds", lambda config, probes, steps=3: 0.5)
        m.setattr(Session, "config", lambda session, run, seed=0: run.config("smoke", seed))
        paper = page(ch02_noisy_batchnorm, "paper").announce()
    assert "about 6 s" in paper and "Estimated total on this device: at most 75 s" in paper  # 150 steps x 0.5 s
    assert "vgg-stdnoise-lr0.1 (target_acc=0.4) seed 1: up to 12 steps, no probes, at most 6 s" in paper
    page(ch02_noisy_batchnorm, "smoke").get(ch02_noisy_batchnorm.STD_NOISE)
    assert (
        "vgg-stdnoise-lr0.1 (target_acc=0.4) seed 0" not in page(ch02_noisy_batchnorm, "smoke").announce()
    )  # stored runs cost nothing


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
    full = chapter.noisy_run(chapter.scaled_noise(1), page(chapter, "smoke"))
    assert full.config == chapter.NOISY.config("smoke")
    assert chapter.noisy_run(chapter.scaled_noise(0), page(chapter, "smoke")).config == BN.config("smoke")
    n = chapter.short_steps(page(chapter, "smoke"))
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
    session = page(ch09_curvature)
    spectra = (
        ch09_curvature.spectrum_probes(session, frozen=False),
        ch09_curvature.spectrum_probes(session, frozen=True),
    )
    assert set(session.probes_for(BN)) == {plan.named(p) for probes in spectra for p in probes}
    assert set(session.probes_for(STD)) == {plan.named(p) for p in spectra[0]}
    eos = ch09_curvature.eos_run("batch", 0.01, session)
    assert eos.name.startswith("mlp-bn-lr0.01 (") and "loss=mse" in eos.name
    assert eos.config("cpu").batch_size == 1000
