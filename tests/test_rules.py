"""Every rule of the book driven to each of its verdicts on synthetic inputs: records whose speed,
final numbers and probe outputs are set by hand (`synthetic.Store`), or, where a rule reads a
chapter's own measurement, that measurement's output set by hand. Each claim has one case shaped
like its source's own figure (the numbers the "paper says" column reads off it)."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
import synthetic
from synthetic import Store, activations, drifting, forget, ics, landscape, rising

from bnlib.book import contents, ladder, measures, plan
from bnlib.book.chapter import PART_ONE, Chapter
from bnlib.book.chapters import (
    ch01_does_batchnorm_help,
    ch02_noisy_batchnorm,
    ch03_internal_covariate_shift,
    ch04_landscape,
    ch05_other_normalizations,
    ch06_theory,
    ch07_learning_rates,
    ch08_scale_invariance,
    ch09_curvature,
    ch10_initialisation,
    ch11_residual,
    ch12_batchnorm_apart,
    ch13_why_batchnorm_works,
)
from bnlib.book.claims import ALPHA, Claim, Finding, Verdict, chance_tail
from bnlib.book.measures import Speed, comparable, faster
from bnlib.book.runs import WHOLE_RUNS, rate_run
from bnlib.book.session import Session
from bnlib.probes.hook import probe_key
from bnlib.train import SPEED_WINDOW

R, P, N, C, B = (
    Verdict.REPRODUCED,
    Verdict.PARTLY,
    Verdict.NOT_REPRODUCED,
    Verdict.CANNOT_TELL,
    Verdict.BY_CONSTRUCTION,
)


CPU = contents.session("cpu")
ACTIVATIONS = probe_key(plan.make_probe("activations", "vgg", "cpu"))  # the key of Part I's activation probe
MODULES = tuple(importlib.import_module(f"bnlib.book.chapters.ch{c.notebook}") for c in contents.CHAPTERS)


@pytest.fixture(autouse=True)
def fresh():
    forget(*MODULES)
    yield
    forget(*MODULES)


@pytest.fixture
def store(monkeypatch):
    return Store(monkeypatch)


def verdict(chapter, key: str, scale: str = "cpu") -> Verdict:
    return chapter.CHAPTER.finding(key, contents.session(scale)).verdict


# ----------------------------------------------------------------------------- speed (bnlib.book.measures)


@pytest.mark.parametrize(
    "fast,slow,expected",
    [
        ([200, 250, 240], [2000, 2100, 2800], R),
        ([900, 1000, 1100], [1500, 1600, 1700], P),  # sooner, not twice as soon in every pairing
        ([1500, 1600, 1700], [900, 1000, 1100], N),
        ([None, None], [None, None], C),  # neither gets there
        ([2000, 2000], [None, None], C),  # the slow one's horizon (3,000) cannot show a 2x gap
        ([200, None], [2000, 2000], N),  # a seed of the fast one never got there
        ([200, 240], [None, 2500], R),  # a censored slow seed counts at its bound
    ],
)
def test_faster(fast, slow, expected):
    assert faster(Speed(fast, 3000), Speed(slow, 3000), 2.0) == expected


@pytest.mark.parametrize(
    "speed,reference,expected",
    [
        ([200, 250], [200, 220, 240], R),
        ([200, 400, 250], [200, 220, 240], P),
        ([500, 600], [200, 220, 240], N),
        ([200], [None, None, 200], C),  # the reference mostly never gets there
        ([200, None, None], [200, 220, 240], N),  # censored seeds beyond the bound (330): slower whatever
    ],
)
def test_comparable(speed, reference, expected):
    assert comparable(Speed(speed, 3000), Speed(reference, 3000), 1.5) == expected


@pytest.mark.parametrize("speed,expected", [([200, 250, None], C), ([200, None, None], C), ([200, 250, 260], R)])
def test_comparable_censored_within_the_bound(speed, expected):  # horizon 300 < the bound 330: cannot decide
    assert comparable(Speed(speed, 300), Speed([200, 220, 240], 300), 1.5) == expected


# ----------------------------------------------------------------------------- 01, Fig. 1

ch01 = ch01_does_batchnorm_help


SLOWEST_BN = 250  # BatchNorm's slowest seed in the threshold tests


@pytest.mark.parametrize(
    "std_fastest,expected",
    [
        (round(ch01.SPEEDUP * SLOWEST_BN), R),
        (round(ch01.SPEEDUP * SLOWEST_BN) - 1, P),
    ],  # at the factor, and a step under
)
def test_faster_at_its_threshold(store, std_fastest, expected):
    _fig1(store, [200, 240, SLOWEST_BN], [std_fastest, std_fastest + 100, std_fastest + 200])
    assert verdict(ch01, "faster") == expected


@pytest.mark.parametrize("bn,std,expected", [([200, 250, None], [2000] * 3, N), ([200, 250, None], [None] * 3, C)])
def test_faster_when_a_batchnorm_seed_never_arrives(store, bn, std, expected):  # the branches its rule text names
    _fig1(store, bn, std)
    assert verdict(ch01, "faster") == expected


@pytest.mark.parametrize("slowest,expected", [(1.5, R), (1.5 + 0.01, P)])  # in units of the reference's median
def test_comparable_at_its_threshold(slowest, expected):
    reference = Speed([280, 300, 320], 3000)
    factor = 1.5
    assert comparable(Speed([300, 310, round(slowest * 300)], 3000), reference, factor) == expected


def _fig1(store, bn, std, bn_finals=None, std_finals=None):
    for seed, (b, s) in enumerate(zip(bn, std, strict=True)):
        store.put(ch01.BN, seed, steps_to=b, final=(bn_finals or [{}] * 3)[seed])
        store.put(ch01.STD, seed, steps_to=s, final=(std_finals or [{}] * 3)[seed])


@pytest.mark.parametrize(
    "bn,std,expected",
    [([200, 250, 240], [2000, 2100, 2800], R), ([900, 1000, 1100], [1500, 1600, 1700], P), ([2000] * 3, [900] * 3, N)],
)
def test_faster_at_lr_01(store, bn, std, expected):
    _fig1(store, bn, std)
    assert verdict(ch01, "faster") == expected


def test_faster_shaped_like_fig_1a(monkeypatch):
    # Fig. 1a: BN near 100% by ~3k of 15k steps, the standard network by ~7-8k; the target is met far earlier
    store = Store(monkeypatch, "paper")
    for seed in range(3):
        store.put(ch01.BN, seed, steps_to=500 + 50 * seed)
        store.put(ch01.STD, seed, steps_to=2500 + 200 * seed)
    assert verdict(ch01, "faster", "paper") == R


def _plateau(train, test):
    return [{"train_acc": a, "test_acc": t} for a, t in zip(train, test, strict=True)]


@pytest.mark.parametrize(
    "bn,std,expected",
    [
        # appendix A: 83% with BN, 80% without, both near 100% training accuracy
        (_plateau([1.0] * 3, [0.83] * 3), _plateau([0.99] * 3, [0.80] * 3), R),
        (_plateau([1.0] * 3, [0.83, 0.79, 0.84]), _plateau([0.99] * 3, [0.80] * 3), P),
        (_plateau([1.0] * 3, [0.78] * 3), _plateau([0.99] * 3, [0.80] * 3), N),
        (_plateau([1.0] * 3, [0.57] * 3), _plateau([0.64] * 3, [0.46] * 3), C),  # not finished training
        (_plateau([1.0] * 3, [0.83] * 3), _plateau([ch01.PLATEAU] * 3, [0.80] * 3), R),  # at the threshold
        (_plateau([1.0] * 3, [0.83] * 3), _plateau([ch01.PLATEAU - 1e-6] * 3, [0.80] * 3), C),
    ],
)
def test_test_accuracy(store, bn, std, expected):
    _fig1(store, [200] * 3, [2000] * 3, bn, std)
    assert verdict(ch01, "test_accuracy") == expected


def test_augmented_accuracy_cannot_tell_without_its_runs(store):
    assert verdict(ch01, "test_accuracy_augmented") == C


@pytest.mark.parametrize(
    "std_top,bn,expected",
    [
        (0.11, [600, 650, 700], R),  # Fig. 1: chance (10%)
        (0.30, [600, 650, 700], P),
        (0.30, [None] * 3, N),
        (ch01.CHANCE + ch01.NEAR_CHANCE, [600, 650, 700], R),  # at the threshold, and one step above it
        (ch01.CHANCE + ch01.NEAR_CHANCE + 1e-6, [600, 650, 700], P),
    ],
)
def test_large_rate(store, std_top, bn, expected):
    curve = np.full(3000, 0.1)
    curve[100:200] = std_top
    for seed in range(3):
        store.put(ch01.STD_LARGE, seed, curve=curve)
        store.put(ch01.BN_LARGE, seed, steps_to=bn[seed])
    assert verdict(ch01, "large_rate") == expected


def test_large_rate_cannot_tell_from_runs_shorter_than_the_window(store):
    for seed in range(3):
        store.put(ch01.STD_LARGE, seed, curve=np.full(SPEED_WINDOW - 5, 0.1))  # dead before one window
        store.put(ch01.BN_LARGE, seed, steps_to=600)
    finding = ch01.CHAPTER.finding("large_rate", CPU)
    assert finding.verdict == C and "nan" not in finding.measured


# Fig. 1a's shapes at the cpu scale: BatchNorm leaves the plateau at once and passes 60% within a few
# hundred steps; the standard network sits on it for 400 steps and never reaches 80% in 3,000
HORIZON = 3000
BN_CURVE, STD_CURVE = rising(HORIZON, 20, 500), rising(HORIZON, 400, 3000)
BN_PHASES, STD_PHASES = (100, 300), (800, 2250)  # their probed steps from 20% to 60% training accuracy


@pytest.mark.parametrize(
    "bn_over_std,expected",
    [
        ({"mean": 1.2, "sd": 0.8}, R),  # "marginal": within a factor 2 (Fig. 1c)
        ({"mean": 0.1, "sd": 0.1}, N),
        ({"mean": 1.0, "sd": 0.1}, P),
        ({"mean": ch01.MARGINAL, "sd": 1.0}, R),  # at the threshold, and one step past it
        ({"mean": ch01.MARGINAL * 1.001, "sd": 1.0}, P),
    ],
)
def test_input_stability_shaped_like_fig_1c(store, bn_over_std, expected):
    # each network's units move only while it climbs from 20% to 60%, its own steps; the standard
    # network's also grow on its plateau (out of the Glorot start), which a fixed window would count
    for seed in range(3):
        std = drifting(HORIZON, ch01.FIG1C_LAYERS, 0.5, 0.4, moves=STD_PHASES)
        for layer in ch01.FIG1C_LAYERS:  # on the plateau: a spread growing from near zero, then the drift
            on_plateau = std["step"] < 500
            std[f"L{layer}.norm_out.var"][on_plateau] = 0.01
        store.put(ch01.STD, seed, curve=STD_CURVE, probes={ACTIVATIONS: std})
        bn = drifting(HORIZON, ch01.FIG1C_LAYERS, 0.5 * bn_over_std["mean"], 0.4 * bn_over_std["sd"], moves=BN_PHASES)
        store.put(ch01.BN, seed, curve=BN_CURVE, probes={ACTIVATIONS: bn})
    assert verdict(ch01, "input_stability") == expected


def test_input_stability_cannot_tell_without_a_shared_phase(store):
    for seed in range(3):
        store.put(
            ch01.STD, seed, curve=rising(HORIZON, 400, 30_000), probes={ACTIVATIONS: drifting(HORIZON, (3, 11), 1, 1)}
        )
        store.put(ch01.BN, seed, curve=BN_CURVE, probes={ACTIVATIONS: drifting(HORIZON, (3, 11), 1, 1)})
    assert verdict(ch01, "input_stability") == C


# ----------------------------------------------------------------------------- 02, Figs. 2 and 8

ch02 = ch02_noisy_batchnorm


@pytest.mark.parametrize(
    "noisy,expected",
    [
        (rising(HORIZON, 80, 500), R),  # Fig. 2: noisy BN trails BN by a few points, the standard network far behind
        (rising(HORIZON, 400, 1500), P),  # well behind BN, still ahead of the standard network
        (STD_CURVE, N),
    ],
)
def test_trains_like_batchnorm_shaped_like_fig_2(store, noisy, expected):
    for seed in range(3):
        store.put(ch01.BN, seed, curve=BN_CURVE)
        store.put(ch01.STD, seed, curve=STD_CURVE)
        store.put(ch02.NOISY, seed, curve=noisy)
    assert verdict(ch02, "trains_like_batchnorm") == expected


@pytest.mark.parametrize("gap,expected", [(ch02.NEAR_GAP - 1e-6, R), (ch02.NEAR_GAP + 1e-6, P)])
def test_trains_like_batchnorm_at_its_threshold(store, gap, expected):
    # noisy BN exactly `gap` below BN at every step, both far ahead of the standard network
    for seed in range(3):
        store.put(ch01.BN, seed, curve=np.full(HORIZON, 0.9))
        store.put(ch01.STD, seed, curve=np.full(HORIZON, 0.9 - gap - ch02.AHEAD - 1e-6))
        store.put(ch02.NOISY, seed, curve=np.full(HORIZON, 0.9 - gap))
    assert verdict(ch02, "trains_like_batchnorm") == expected


def _moments_moving(store, noisy: dict[int, float], std: float) -> None:
    """Noisy BN's and the standard network's activation probes, pairs of successive steps (t, t + 1):
    every unit's mean moves by `noisy[layer]` (`std`) between the two steps of a pair."""
    pairs = np.arange(0, 600, 50)
    steps = np.sort(np.concatenate([pairs, pairs + 1]))

    def probe(change: dict[int, float]) -> dict[str, np.ndarray]:
        moving = {k: np.where(steps % 2 == 1, c, 0.0)[:, None] * np.ones((1, 8)) for k, c in change.items()}
        return activations(steps, moving)

    for seed in range(3):
        store.put(ch02.NOISY, seed, probes={ACTIVATIONS: probe(noisy)})
        store.put(ch01.STD, seed, probes={ACTIVATIONS: probe({k: std for k in ch02.FIG8_LAYERS})})


@pytest.mark.parametrize(
    "noisy,std,expected",
    [
        (1.0, 0.1, R),  # Fig. 8: noisy BN's moments move by ~1 per step, the standard's ~0.1
        (0.15, 0.1, N),
        (ch02.LESS_STABLE * 0.1, 0.1, R),  # at the threshold, and one step below it
        (ch02.LESS_STABLE * 0.1 * 0.999, 0.1, N),
    ],
)
def test_unstable_moments(store, noisy, std, expected):
    _moments_moving(store, {k: noisy for k in ch02.FIG8_LAYERS}, std)
    assert verdict(ch02, "unstable_moments") == expected


def test_unstable_moments_partly(store):
    first, *rest = ch02.FIG8_LAYERS
    _moments_moving(store, {first: 1.0, **{k: 0.1 for k in rest}}, 0.1)
    assert verdict(ch02, "unstable_moments") == P


@pytest.mark.parametrize(
    "top,expected",
    [
        (0.12, R),  # "prevents it from training entirely"
        (0.3, N),
        (ch02.CHANCE + ch02.NEAR_CHANCE, R),  # at the threshold, and one step above it
        (ch02.CHANCE + ch02.NEAR_CHANCE + 1e-6, N),
    ],
)
def test_noise_without_batchnorm(store, top, expected):
    curve = np.full(3000, 0.1)
    curve[500:600] = top
    for seed in range(3):
        store.put(ch02.STD_NOISE, seed, curve=curve)
    assert verdict(ch02, "noise_without_batchnorm") == expected


# ----------------------------------------------------------------------------- 03, Fig. 3

ch03 = ch03_internal_covariate_shift


@pytest.mark.parametrize(
    "std,bn,expected",
    [
        ({"l2": 1.0, "cosine": 0.5}, {"l2": 0.4, "cosine": 0.7}, "less"),
        ({"l2": 1.0, "cosine": 0.5}, {"l2": 1 / ch03.L2_FACTOR, "cosine": 0.5}, "less"),  # the l2 difference alone
        ({"l2": 1.0, "cosine": 0.5}, {"l2": 0.6, "cosine": 0.5 + ch03.COSINE_GAP}, "less"),  # the cosine alone
        ({"l2": 1.0, "cosine": 0.5}, {"l2": 0.6, "cosine": 0.55}, "similar"),  # neither by its margin
        ({"l2": 1.0, "cosine": 0.9}, {"l2": ch03.L2_FACTOR, "cosine": 0.85}, "more"),  # symmetrically
        ({"l2": 1.0, "cosine": 0.9}, {"l2": 1.0, "cosine": 0.9 - ch03.COSINE_GAP}, "more"),
        ({"l2": 1.0, "cosine": 0.5}, {"l2": 0.4, "cosine": 0.3}, "disagree"),  # one says less, the other more
    ],
)
def test_ics_compare_is_symmetric(std, bn, expected):
    assert ch03.compare(pd.Series(std), pd.Series(bn)) == expected


def _ics_vgg(store, shift: dict[int, tuple[float, float]], plateau: bool = False) -> None:
    """Fig. 3a's runs with the ICS probe every 50th step while the training accuracy climbs from 10% to
    90%: the standard network's l2 difference 1 and cosine 0.2 at both layers (Fig. 3a: layer #10's
    cosine about 0-0.2), BN's `shift[layer]` = (its l2 difference over the standard's, its cosine
    minus the standard's). `plateau`: the standard network stays at chance."""
    horizon = CPU.config(ch01.BN).steps
    steps = np.arange(0, horizon, 50)
    layers = plan.ICS_LAYERS["vgg"]
    for lr, pair in ch03.VGG_PAIRS.items():
        for seed in ch03.VGG_SEEDS[lr]:
            for run in pair:
                bn = run.norm == "batch"
                l2 = [shift[k][0] if bn else 1.0 for k in layers]
                cosine = [0.2 + (shift[k][1] if bn else 0.0) for k in layers]
                curve = np.full(horizon, 0.1) if plateau and not bn else np.linspace(0.1, 0.9, horizon)
                store.put(run, seed, curve=curve, probes={"ics": ics(steps, layers, l2, cosine)})


@pytest.mark.parametrize(
    "shift,plateau,expected",
    [
        ({5: (1.0, 0.0), 10: (3.0, -0.2)}, False, R),  # "similar, or even worse" (Fig. 3a)
        ({5: (0.25, 0.3), 10: (0.25, 0.3)}, False, N),
        ({5: (0.25, 0.3), 10: (1.0, 0.0)}, False, P),
        ({5: (0.25, 0.3), 10: (0.25, 0.3)}, True, C),  # the standard network never left its plateau
    ],
)
def test_vgg_ics(store, shift, plateau, expected):
    _ics_vgg(store, shift, plateau)
    assert verdict(ch03, "vgg") == expected


def _dln(store, std, bn, loss_std, loss_bn):
    """Fig. 3b's runs in every seed, the ICS probe at every 50th step: each network's l2 difference and
    cosine (`std`, `bn`) at both layers, its final loss (`loss_bn`: BN's at each rate, or one number for
    both)."""
    for i, pair in enumerate(ch03.DLN_PAIRS.values()):
        for run in pair:
            shift = bn if run.norm == "batch" else std
            loss = loss_std if run.norm == "none" else loss_bn[i] if isinstance(loss_bn, list) else loss_bn
            probe = ics(np.arange(0, CPU.config(run).steps, 50), (9, 17), [shift["l2"]] * 2, [shift["cosine"]] * 2)
            for seed in range(3):
                store.put(run, seed, final={"train_loss": loss}, probes={"ics": probe})


@pytest.mark.parametrize(
    "bn,loss_bn,expected",
    [
        (
            {"l2": 1e3, "cosine": 0.0},
            5e2,
            R,
        ),  # Fig. 3b's text: BN's G, G' uncorrelated, l2 1e3 vs 1e1; loss 5e2 vs 1.6e3
        ({"l2": 1e3, "cosine": 0.0}, [5e2, 3e3], P),  # more shift, a lower loss at one rate only
        ({"l2": 1.0, "cosine": 1.0}, 3e3, N),
    ],
)
def test_dln_ics(store, bn, loss_bn, expected):
    _dln(store, {"l2": 1e1, "cosine": 1.0}, bn, 1.6e3, loss_bn)
    assert verdict(ch03, "dln") == expected


def test_dln_ics_shaped_like_fig_3b(store):
    # Fig. 3b: at lr 1e-6, layer #17, both cosines sit near -1 and BN's l2 difference is the larger (the
    # cosine cannot separate them; the l2 difference decides); elsewhere the text's numbers
    text = {"none": (1e1, 1.0), "batch": (1e3, 0.0)}
    fig_3b = {"none": (1e2, -0.98), "batch": (1e3, -1.0 + ch03.SATURATED)}
    losses = {1e-6: {"none": 1.6e3, "batch": 5e2}, 1e-7: {"none": 4e3, "batch": 7e2}}
    for lr, pair in ch03.DLN_PAIRS.items():
        for run in pair:
            at_17 = fig_3b if lr == 1e-6 else text
            (l2_9, cos_9), (l2_17, cos_17) = text[run.norm], at_17[run.norm]
            probe = ics(np.arange(0, CPU.config(run).steps, 50), (9, 17), [l2_9, l2_17], [cos_9, cos_17])
            for seed in range(3):
                store.put(run, seed, final={"train_loss": losses[lr][run.norm]}, probes={"ics": probe})
    assert verdict(ch03, "dln") == R


@pytest.mark.parametrize(
    "std,bn,expected",
    [
        ({"l2": 1e2, "cosine": -0.95}, {"l2": 1e3, "cosine": -0.92}, "more"),  # both at -1: the l2 difference decides
        ({"l2": 1e2, "cosine": 0.95}, {"l2": 1e3, "cosine": 0.92}, "more"),  # both at +1
        ({"l2": 1e2, "cosine": -0.95}, {"l2": 1e3, "cosine": 0.92}, "disagree"),  # at opposite ends: the usual rule
        ({"l2": 1e2, "cosine": 0.95}, {"l2": 1e2, "cosine": 1 - ch03.SATURATED - 0.01}, "similar"),  # just outside
        ({"l2": 1e2, "cosine": 1.0}, {"l2": 1e2, "cosine": 1 - ch03.SATURATED}, "similar"),  # inside: l2 alone
    ],
)
def test_saturated_cosines_leave_the_l2_difference_to_decide(std, bn, expected):
    assert ch03.compare(pd.Series(std), pd.Series(bn)) == expected


# ----------------------------------------------------------------------------- 04, Figs. 4 and 10

ch04 = ch04_landscape


def _landscapes(store, runs: dict, vgg, dln, plateau: bool = False, others: np.ndarray = BN_CURVE) -> None:
    """Every seed of the given networks with its landscape probes, shaped like Figs. 4 and 10: VGG's
    training curves as Fig. 1a's (`STD_CURVE`, `BN_CURVE`), the standard VGG's probes flat (0.1) on
    its plateau and at `vgg` once it has left it, the standard DLN's at `dln`, every other network's
    at 1 throughout (`others`: the other VGG networks' training curve). A fixed early window would
    see mostly the standard VGG's flat plateau. `plateau`: the standard VGG never leaves it."""
    for run, seeds in runs.items():
        horizon = CPU.config(run).steps
        curve = None
        if run.model == "vgg":
            curve = others if run.norm != "none" else np.full(horizon, 0.1) if plateau else STD_CURVE
        if run.norm != "none":
            level, beta = 1.0, None
        elif run.model == "dln":
            level, beta = dln, None
        else:
            rough = vgg if callable(vgg) else (lambda steps, v=vgg: np.full(len(steps), v))
            level = beta = lambda steps, rough=rough: np.where(steps < 400, 0.1, rough(steps))
        for seed in seeds:
            store.put(run, seed, curve=curve, probes=landscape(horizon, level, beta, run.model))


def _spikes(store, vgg, dln, plateau: bool = False) -> None:
    """Fig. 4 and 10's pairs in every seed (chapter 04)."""
    _landscapes(store, {run: ch04.SEEDS for pair in ch04.PAIRS.values() for run in pair}, vgg, dln, plateau)


KEYS = ["loss_band", "gradient_predictiveness", "gradient_magnitude", "random_directions"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    "vgg,dln,expected",
    [(10.0, 1e9, R), (10.0, 1.0, P), (1.0, 1.0, N)],  # Figs. 4a, 10a: ~10 vs narrow; 1e14 vs 1e5 early
)
def test_smoothness_in_matched_phases(store, key, vgg, dln, expected):
    _spikes(store, vgg, dln)
    assert verdict(ch04, key) == expected


@pytest.mark.parametrize("key", [*KEYS, "effective_beta", "larger_distances"])
def test_a_network_that_never_leaves_its_plateau_cannot_be_compared(store, key):
    _spikes(store, 10.0, 1e9, plateau=True)
    assert verdict(ch04, key) == C


@pytest.mark.parametrize(
    "key,gap", [("loss_band", ch04.GAP), ("gradient_magnitude", ch04.GAP), ("effective_beta", ch04.BETA_GAP)]
)
@pytest.mark.parametrize("step,expected", [(1.0, R), (0.999, P)])
def test_smoothness_at_its_threshold(store, key, gap, step, expected):
    _spikes(store, gap * step, 1e9)
    assert verdict(ch04, key) == expected


def _fig_4c(steps: np.ndarray) -> np.ndarray:
    """Fig. 4c's standard network: its effective beta spikes between 5 and 45 (BN's sits at ~20)."""
    return np.where(np.arange(len(steps)) % 5 == 0, 45.0, 5.0) / 20


@pytest.mark.parametrize("key", ["effective_beta", "larger_distances"])
@pytest.mark.parametrize("vgg,expected", [(_fig_4c, R), (1.2, P)])  # Fig. 4c: spikes to ~45 against ~20
@pytest.mark.parametrize("dln", [1e9, np.inf])  # far along the gradient the standard DLN's loss overflows
def test_effective_beta_shaped_like_figs_4c_and_10c(store, key, vgg, dln, expected):
    _spikes(store, vgg, dln)
    assert verdict(ch04, key) == expected


def test_an_overflowed_loss_counts_as_the_roughest_landscape_not_as_missing():
    finite = pd.Series([1.0, 2.0, 3.0, 4.0])
    assert measures.upper_quantile(finite) == pytest.approx(finite.quantile(measures.QUANTILE))
    assert measures.upper_quantile(pd.Series([1.0, 2.0, np.inf, np.nan])) == np.inf
    assert (
        measures.upper_quantile(pd.Series([1.0, 2.0, 3.0, 4.0] * 5 + [np.nan])) < np.inf
    )  # one outlier is not the level


def _hessian(top: float) -> dict:
    return {"hessian": {"step": np.array([0, 500]), "eigenvalues": np.array([[top, 1, 1], [top, 1, 1]])}}


@pytest.mark.parametrize(
    "ratios,expected",
    [
        ([0.96, 1.0, 1.0, 0.99], R),
        ([0.96, 5.0, 1.0, 0.99], P),
        ([ch04.TWO_OVER_LR_FACTOR, 1.0, 1 / ch04.TWO_OVER_LR_FACTOR, 1.0], R),  # at the factor, and one step past it
        ([ch04.TWO_OVER_LR_FACTOR * 1.001, 1.0, 1.0, 1.0], P),
    ],
)
def test_two_over_lr(store, ratios, expected):  # the effective beta, as a multiple of 2 / lr, seed 0
    for run, ratio in zip(ch04.TWO_OVER_LR_RUNS, ratios, strict=True):
        probes = landscape(CPU.config(run).steps, 1.0, ratio * 2 / run.lr, run.model) | _hessian(5 * 2 / run.lr)
        store.put(run, probes=probes)
    assert verdict(ch04, "two_over_lr") == expected


# ----------------------------------------------------------------------------- 05, Figs. 5, 6, 12, 13

ch05 = ch05_other_normalizations


def _lp(store, vgg_steps: dict, dln_loss: dict):
    """Fig. 5: every VGG reaches the target in `vgg_steps[norm]` steps in every seed (the l_p
    networks' seeds 1 and 2 stop there), every deep linear network ends at `dln_loss[norm]`."""
    for norm, run in ch05.VGG.items():
        for seed in range(3):
            store.put(ch05.VGG_SEEDS[norm][seed] if norm in ch05.LP else run, seed, steps_to=vgg_steps[norm])
    for norm, run in ch05.dln_runs("cpu").items():
        for seed in range(3):
            store.put(run, seed, final={"train_loss": dln_loss[norm]})


@pytest.mark.parametrize(
    "lp_steps,lp_loss,expected",
    [
        (260, 1.2e3, R),  # Fig. 5: comparably or better; l-inf's DLN loss about twice BN's is "comparable"
        (260, 5e3, P),
        (900, 5e3, N),
        (260, ch05.LOSS_COMPARABLE * 5e2, R),  # at the DLN's threshold, and one step past it
        (260, ch05.LOSS_COMPARABLE * 5e2 * 1.001, P),
    ],
)
def test_train_as_well(store, lp_steps, lp_loss, expected):
    steps = {"none": 2000, "batch": 240} | dict.fromkeys(ch05.LP, lp_steps)
    losses = {"none": 1.6e3, "batch": 5e2} | dict.fromkeys(ch05.LP, lp_loss)
    _lp(store, steps, losses)
    assert verdict(ch05, "train_as_well") == expected


@pytest.mark.parametrize(
    "scale,l1,expected",
    [
        ("smoke", 1e2, C),  # Fig. 5b at 10k steps: ~1e2 against BN's ~5e2; the smoke scale stops before they separate
        ("cpu", 1e2, R),
        ("paper", 1e2, R),
        ("paper", 4e2, P),
        ("paper", 6e2, N),
        ("cpu", 5e2 / ch05.BEATS_FACTOR, R),  # at the threshold, and one step past it
        ("cpu", 5e2 / ch05.BEATS_FACTOR * 1.001, P),
    ],
)
def test_l1_beats_batchnorm(monkeypatch, scale, l1, expected):
    losses = {"l1": l1, "batch": 5e2}
    store = Store(monkeypatch, scale)
    for norm in losses:
        for seed in range(3):
            store.put(ch05.dln_runs(scale)[norm], seed, final={"train_loss": losses[norm]})
    assert verdict(ch05, "l1_beats_batchnorm", scale) == expected


@pytest.mark.parametrize(
    "lp_drift,expected",
    [(3.0, R), (1.0, N), (ch05.MORE_SHIFT, R), (ch05.MORE_SHIFT * 0.999, N)],  # Fig. 6: "larger distributional shift"
)
def test_drift_more_shaped_like_fig_6(store, lp_drift, expected):
    # each network's units move while it climbs from 20% to 60% training accuracy, its own steps
    for seed in range(3):
        std = drifting(HORIZON, (ch05.FIG6_LAYER,), 1.0, 0.5, moves=STD_PHASES)
        store.put(ch01.STD, seed, curve=STD_CURVE, probes={ACTIVATIONS: std})
    for p in ch05.LP:  # seed 0: the l_p networks' Fig. 6
        lp = drifting(HORIZON, (ch05.FIG6_LAYER,), lp_drift, 0.5, moves=BN_PHASES)
        store.put(ch05.VGG[p], curve=BN_CURVE, probes={ACTIVATIONS: lp})
    assert verdict(ch05, "drift_more") == expected


@pytest.mark.parametrize("vgg,dln,expected", [(10.0, 1e9, R), (10.0, 1.0, P), (1.0, 1.0, N)])  # Figs. 12, 13
def test_smooth_like_batchnorm(store, vgg, dln, expected):
    runs = {run: ch05.VGG_LANDSCAPE_SEEDS for run in ch05.VGG.values()} | {ch01.STD: ch05.SEEDS}
    runs |= dict.fromkeys(ch05.dln_runs("cpu").values(), ch05.SEEDS)
    _landscapes(store, runs, vgg, dln, others=rising(HORIZON, 20, 1000))  # seed 0 of each l_p: 32 probes at 20-40%
    assert verdict(ch05, "smooth_like_batchnorm") == expected


def test_smooth_like_batchnorm_cannot_tell_on_a_plateau(store):
    runs = {run: ch05.VGG_LANDSCAPE_SEEDS for run in ch05.VGG.values()} | {ch01.STD: ch05.SEEDS}
    _landscapes(store, runs | dict.fromkeys(ch05.dln_runs("cpu").values(), ch05.SEEDS), 10.0, 1e9, plateau=True)
    assert verdict(ch05, "smooth_like_batchnorm") == C


# ----------------------------------------------------------------------------- 06, Section 4

ch06 = ch06_theory


@pytest.mark.parametrize(
    "hypothesis,verdicts,expected",
    [
        ([True, True, False], ["holds", "holds", "violated"], R),  # a violation where the hypothesis fails
        ([True, True], ["holds", "violated"], N),
        ([False, False], ["violated", "holds"], C),  # no unit meets the hypothesis
    ],
)
def test_theorem_c_1(monkeypatch, hypothesis, verdicts, expected):
    monkeypatch.setattr(ch06, "sweeps", lambda: {"C.1": pd.DataFrame({"hypothesis": hypothesis, "verdict": verdicts})})
    assert verdict(ch06, "theorem_c_1") == expected


@pytest.mark.parametrize("holds_where_step,expected", [(True, B), (False, N)])
def test_theorem_4_2_second_is_by_construction(monkeypatch, holds_where_step, expected):
    table = pd.DataFrame({"proof_step_holds": [True, True, False], "second_holds": [True, holds_where_step, False]})
    monkeypatch.setattr(ch06, "sweeps", lambda: {"4.2": table})
    assert verdict(ch06, "theorem_4_2_second") == expected


def _bn_scale(below: float, positive: float = 0.5, units: int = 20) -> dict:
    """A BN-scale probe of two layers at two probed steps: `below` of the units have gamma^2/sigma^2
    under 1 (0.5 against 2), `positive` of them <g, y_hat> > 0."""
    ratio = np.where(np.arange(units) < round(below * units), 0.5, 2.0)
    dot = np.where(np.arange(units) < round(positive * units), 1.0, -1.0)
    data = {"step": np.array([0, 10])}
    for layer in (1, 2):
        data[f"L{layer}.gamma_sq_over_sigma_sq"] = np.tile(ratio, (2, 1))
        data[f"L{layer}.g_dot_y_hat"] = np.tile(dot, (2, 1))
    return {"bn-scale": data}


STEP = 0.05  # a step either side of a threshold on a share


def _fewest_above_chance(n: int) -> int:
    """The fewest successes of n that the binomial test counts as more than half."""
    return min(k for k in range(n + 1) if chance_tail(k, n) <= ALPHA)


ABOVE = _fewest_above_chance(40) / 40  # of the 40 units of `_bn_scale`'s two layers (26 of 40)


@pytest.mark.parametrize(
    "vgg,dln,expected",
    [(ch06.MOST, ch06.MOST, R), (ABOVE, 0.3, P), (ABOVE - 1 / 20, 0.3, N)],  # one unit a layer under the test
)
def test_sigma_large(store, vgg, dln, expected):
    store.put(ch06.BN, probes=_bn_scale(vgg))
    store.put(ch06.DLN_BN, probes=_bn_scale(dln))
    assert verdict(ch06, "sigma_large") == expected


def test_chance_tail_is_the_binomial_tail():
    assert chance_tail(0, 20) == 1 and chance_tail(20, 20) == 2.0**-20
    assert chance_tail(15, 20) == pytest.approx(0.0207, abs=1e-4) and chance_tail(14, 20) == pytest.approx(
        0.0577, abs=1e-4
    )
    assert _fewest_above_chance(20) == 15 and _fewest_above_chance(26) == 18  # chapter 06's 26 sampled units


def _sweeps(monkeypatch, **tables) -> None:
    """Chapter 06's random-instance checks, each given as a table (the numerics are bnlib.probes.theory's)."""
    monkeypatch.setattr(ch06, "sweeps", lambda: tables)


TOLERANCE = ch06.IDENTITY_TOLERANCE


@pytest.mark.parametrize(
    "violated,error,expected", [(0.0, TOLERANCE, R), (STEP, TOLERANCE, N), (1.0, 10 * TOLERANCE, N)]
)
def test_theorem_4_1(monkeypatch, violated, error, expected):
    n = 20
    flags = np.arange(n) < round(violated * n)
    _sweeps(monkeypatch, **{"4.1": pd.DataFrame({"relative_error_1_over_m": [error] * n, "printed_violated": flags})})
    assert verdict(ch06, "theorem_4_1") == expected


@pytest.mark.parametrize("error,expected", [(TOLERANCE, R), (TOLERANCE * (1 + STEP), N)])
def test_theorem_4_2(monkeypatch, error, expected):
    _sweeps(monkeypatch, **{"4.2": pd.DataFrame({"relative_error": [0.0, error]})})
    assert verdict(ch06, "theorem_4_2") == expected


@pytest.mark.parametrize("difference,expected", [(ch06.EXACT, R), (ch06.EXACT * (1 + STEP), N)])
def test_observation_4_3(monkeypatch, difference, expected):
    _sweeps(monkeypatch, **{"4.3": pd.DataFrame({"max_abs_difference": [0.0, difference]})})
    assert verdict(ch06, "observation_4_3") == expected


@pytest.mark.parametrize("violated,expected", [(False, R), (True, N)])
def test_theorem_4_4(monkeypatch, violated, expected):
    table = pd.DataFrame(
        {"gradient scale": [1e-3, 1.0, 1e3], "printed_violated": [violated, False, False], "relative_error": 0.0}
    )
    inputs = pd.DataFrame({"rank_one": [4.0], "bound": [4.0], "largest_random": [3.0]})
    _sweeps(monkeypatch, **{"4.4": table, "4.4 inputs": inputs})
    assert verdict(ch06, "theorem_4_4") == expected


@pytest.mark.parametrize(
    "error,ratio,expected",
    [
        (TOLERANCE, 1 + ch06.INVARIANT * (1 - STEP), R),
        (TOLERANCE * (1 + STEP), 1.0, N),
        (0.0, 1 + ch06.INVARIANT * (1 + STEP), N),
    ],
)
def test_lemma_4_5(monkeypatch, error, ratio, expected):
    _sweeps(
        monkeypatch,
        **{"4.5": pd.DataFrame({"relative_error": [error]}), "invariance": pd.DataFrame({"loss ratio": [ratio, 1.0]})},
    )
    assert verdict(ch06, "lemma_4_5") == expected


@pytest.mark.parametrize(
    "convex,positive,expected",
    [(ch06.MOST, ch06.MOST, R), (1.0, _fewest_above_chance(20) / 20, P), (1.0, (_fewest_above_chance(20) - 1) / 20, N)],
)
def test_theorem_4_2_hypotheses(monkeypatch, convex, positive, expected):
    def measured(session, name, config, compute, **params):  # the units sampled on the trained network
        n = 20
        g_h_g = np.where(np.arange(n) < round(convex * n), 1.0, -1.0)
        dot = np.where(np.arange(n) < round(positive * n), 1.0, -1.0)
        return pd.DataFrame({"network": "trained", "unit": np.arange(n), "g_H_g": g_h_g, "g_dot_y_hat": dot})

    monkeypatch.setattr(Session, "measured", measured)
    assert verdict(ch06, "theorem_4_2_hypotheses") == expected


# ----------------------------------------------------------------------------- 07, learning rates

ch07 = ch07_learning_rates


def _rates(store, trains: dict[str, float], speed: dict[tuple[str, float], int] | None = None, died: bool = True):
    """Every rate of the grid: a network reaches the target at each rate up to `trains[norm]` (in
    `speed` steps, else 500), and beyond it dies (or, `died=False`, runs out its steps)."""
    speed = speed or {}
    for norm in ch07.NETWORKS:
        for lr in ch07.RATES:
            ok = lr <= trains[norm]
            for seed in ch07.SEEDS if ok or lr in WHOLE_RUNS else (0,):
                run = rate_run(norm, lr, seed)
                if ok:
                    store.put(run, seed, steps_to=speed.get((norm, lr), 500) + seed)
                else:
                    store.put(run, seed, status="dead" if died else "finished")


@pytest.mark.parametrize(
    "bn_top,std_top,expected",
    [(1.0, 0.1, R), (0.5, 0.3, P), (0.3, 0.3, N), (10.0, 0.1, C), (1.0, 0.0, C)],  # C: censored; no rate trains
)
def test_larger_rates(store, bn_top, std_top, expected):
    _rates(store, {"batch": bn_top, "none": std_top})
    assert verdict(ch07, "larger_rates") == expected


@pytest.mark.parametrize("bn_at_std_best,expected", [(1000, R), (300, N)])
def test_matched_rate(store, bn_at_std_best, expected):
    speed = {("none", lr): 2950 for lr in ch07.RATES} | {("none", 0.1): 2000, ("none", 0.03): 2900}
    speed |= {("batch", lr): 900 for lr in ch07.RATES} | {("batch", 0.3): 200, ("batch", 0.1): bn_at_std_best}
    _rates(store, {"batch": 1.0, "none": 0.1}, speed)
    assert verdict(ch07, "matched_rate") == expected


@pytest.mark.parametrize(
    "bn,std,std_rise,expected",
    [
        (0.80, 0.80 - ch07.SIMILAR + 1e-9, 0.0, R),  # Bjorck et al.: at the matched rate, similar final accuracy
        (0.80, 0.80 - ch07.SIMILAR - 0.01, 0.0, N),  # BatchNorm ahead by more, in every pairing
        (0.80, 0.60, ch07.STILL_RISING + 0.01, C),  # the standard network is still rising: not final yet
        (0.80, 0.60, ch07.STILL_RISING - 0.005, N),
    ],
)
def test_matched_final(store, bn, std, std_rise, expected):
    horizon = CPU.config(rate_run("none", ch07.MATCHED)).steps
    late = int(horizon * (1 - ch07.RISING_SHARE))
    for seed in ch07.SEEDS:
        flat = np.full(horizon, 0.9)
        rising_end = np.concatenate([np.full(late, 0.5), np.linspace(0.5, 0.5 + std_rise, horizon - late)])
        store.put(rate_run("batch", ch07.MATCHED, seed), seed, curve=flat, final={"test_acc": bn})
        store.put(rate_run("none", ch07.MATCHED, seed), seed, curve=rising_end, final={"test_acc": std})
    assert verdict(ch07, "matched_final") == expected


def test_matched_rate_cannot_tell_without_a_training_rate(store):
    _rates(store, {"batch": 1.0, "none": 0.0})
    assert verdict(ch07, "matched_rate") == C


@pytest.mark.parametrize(
    "deep,died,expected",
    [(20.0, True, R), (20.0, False, P), (2.0, True, N)],  # Bjorck et al.: a blow-up that grows with depth
)
def test_large_step(store, monkeypatch, deep, died, expected):
    _rates(store, {"batch": 1.0, "none": 0.1}, died=died)

    def measured(session, name, config, compute, rates):  # `one_step_spread` of each seed's network, as published
        rows = []
        for lr in rates:
            for layer in range(1, 15):
                ratio = 1.5 + (deep - 1.5) * (layer - 1) / 12 if config.norm == "none" else 1.0
                rows.append({"lr": lr, "layer": layer, "ratio": ratio, "dead share": 0.5})
        return pd.DataFrame(rows)

    monkeypatch.setattr(Session, "measured", measured)
    assert verdict(ch07, "large_step") == expected


# ----------------------------------------------------------------------------- 08, scale invariance

ch08 = ch08_scale_invariance
WEIGHT_NORMS = probe_key(plan.make_probe("weight-norms", "vgg", "cpu"))


def _weight_norms(
    lr: float, first: float, last: float, error: float = 0.0, dot: float = 0.0, angles=(0.05, 0.05, 0.05), steps=150
) -> dict[str, np.ndarray]:
    """A weight-norm probe of three layers (the last is the classifier), four probed pairs of steps
    (t, t + 1) spread over `steps`: ||W_t||^2 goes from `first` to `last` at every layer, ||g||^2 = 1,
    <W, g> = `dot`, and each pair grows ||W||^2 by -2 lr dot + lr^2 (1 + error) (scale invariance:
    dot = 0, error = 0); the angular update of each layer is `angles`."""
    probed, rows = [], []
    growth = -2 * lr * dot + lr**2 * (1 + error)
    for t, w in zip(np.linspace(0, steps - 2, 4).astype(int), np.linspace(first, last, 4), strict=True):
        probed += [t, t + 1]
        rows += [(w, 1.0, dot), (w + growth, 1.0, dot)]
    table = np.array(rows)
    wide = {
        name: np.repeat(table[:, [i]], 3, axis=1) for i, name in enumerate(("weight_sq", "grad_sq", "weight_dot_grad"))
    }
    layer = np.tile([1, 2, 3], (len(probed), 1))
    return {"step": np.array(probed), "layer": layer, **wide, "angular_update": np.tile(angles, (len(probed), 1))}


def _identity(store, error: float, grew: bool):
    store.put(ch01.STD, probes={WEIGHT_NORMS: _weight_norms(0.1, 1.0, 2.0, dot=-1.0)})
    store.put(ch01.BN, probes={WEIGHT_NORMS: _weight_norms(0.1, 1.0, 1.5 if grew else 0.9, error=error)})


@pytest.mark.parametrize("error,expected", [(1e-5, B), (0.5, N)])
def test_identity_is_a_mechanism_check(store, error, expected):
    _identity(store, error, True)
    assert verdict(ch08, "identity") == expected


@pytest.mark.parametrize("grew,expected", [(True, B), (False, N)])
def test_norms_grow_is_a_mechanism_check(store, grew, expected):
    _identity(store, 1e-5, grew)
    assert verdict(ch08, "norms_grow") == expected


def _cell(store, norm: str, rate: float, steps: int | None, effective: float, fixed: bool = False, ended="dead"):
    """One cell of the sweep: every seed reaches the target in `steps` (None: seed 0 never does, and
    ends `ended`), its hidden layers' effective rate `effective` at the end."""
    run = ch08.weight_run(norm, rate, fixed)
    probes = {WEIGHT_NORMS: _weight_norms(rate, rate / effective, rate / effective)}
    for seed in ch08.SEEDS if steps is not None else (0,):
        store.put(run, seed, steps_to=steps, probes=probes, status=None if steps is not None else ended)


def _sweep(store, bn_trains, bn_steps, effective, std_top_trains, fixed_trains):
    for i, rate in enumerate(ch08.WEIGHT_RATES):
        _cell(store, "batch", rate, bn_steps[i] if bn_trains[i] else None, effective[i], ended="finished")
        _cell(store, "none", rate, 2000 if rate <= 1 or std_top_trains else None, 1e-3)
    for rate, trains in zip(ch08.FIXED_RATES, fixed_trains, strict=True):
        _cell(store, "batch", rate, 300 if trains else None, 1e-3, fixed=True, ended="diverged")


@pytest.mark.parametrize(
    "bn_trains,bn_steps,effective,std_top,expected",
    [
        ([True] * 5, [300, 250, 260, 400, 600], [1e-3, 2e-3, 2e-3, 3e-3, 4e-3], False, R),  # Arora et al.
        ([True] * 5, [300, 250, 260, 400, 600], [1e-4, 1e-3, 1e-2, 1e-1, 1.0], False, P),  # not tuned together
        ([True] * 4 + [False], [300, 250, 260, 400, 3001], [1e-3] * 5, False, N),
    ],
)
def test_robust(store, bn_trains, bn_steps, effective, std_top, expected):
    _sweep(store, bn_trains, bn_steps, effective, std_top, (True, False))
    assert verdict(ch08, "robust") == expected


@pytest.mark.parametrize(
    "fixed,expected",
    [
        ((1900, 1800), R),  # held at its initial norm, BatchNorm keeps almost none of its speed-up: Arora et al.
        ((120, 130), N),  # it keeps nearly all of it (the cpu store's shape at 0.1: 113-154 against 109-123)
        ((120, 1900), C),  # the two rates disagree
    ],
)
def test_auto_tuning_is_the_share_of_the_speed_up_a_fixed_norm_keeps_at_batchnorms_own_rates(store, fixed, expected):
    _sweep(store, [True] * 5, [110] * 5, [1e-3] * 5, False, (True, False))  # the standard network at 0.1: 2,000
    probes = {WEIGHT_NORMS: _weight_norms(0.1, 100.0, 100.0)}
    for seed in ch08.SEEDS:
        store.put(ch08.own_rate_run(0.03, False), seed, steps_to=105)
        for lr, steps in zip(ch08.OWN_RATES, fixed, strict=True):
            store.put(ch08.own_rate_run(lr, True), seed, steps_to=steps, probes=probes)
    assert verdict(ch08, "auto_tuning") == expected


@pytest.mark.parametrize("measured,expected", [([1.05, 0.9, 1.1], R), ([1.05, 2.0, 3.0], P), ([2.0, 3.0], N)])
def test_equilibrium(store, measured, expected):
    # the angular update of each BN-fed layer over the whole run, as a multiple of Wan et al.'s prediction
    angles = (*(m * ch08.predicted_angle() for m in measured), 0.0)  # the classifier's is not read
    horizon = CPU.config(ch08.PRACTICE).steps
    store.put(ch08.PRACTICE, probes={WEIGHT_NORMS: _weight_norms(0.1, 1.0, 1.0, angles=angles, steps=horizon)})
    assert verdict(ch08, "equilibrium") == expected


# ----------------------------------------------------------------------------- 09, curvature

ch09 = ch09_curvature


def _spectra(store, ratios: list[float], frozen_share: float = 0.8) -> None:
    """BatchNorm's and the standard network's records with every spectrum probe, one probed step per
    ratio: BatchNorm active has a top eigenvalue of 10 over a bulk of 2 with 0.3 of the gradient in
    its top directions; frozen, the top is `ratio` times larger and holds `frozen_share` of it; the
    standard network's top is 30 (Ghorbani et al.: outliers without BatchNorm or with it frozen)."""
    steps = np.arange(len(ratios)) * 1000

    def spectrum(tops, share: float) -> dict[str, np.ndarray]:
        ritz = np.array([[top, *np.full(ch09.TOP - 1, 2.0)] for top in tops])
        return {"step": steps, "ritz": ritz, "grad_mass": np.full(len(steps), share)}

    cases = {
        False: {"BatchNorm": spectrum([10.0] * len(ratios), 0.3), "standard": spectrum([30.0] * len(ratios), 0.7)},
        True: {"BatchNorm": spectrum([10.0 * r for r in ratios], frozen_share)},
    }
    probes = {run.norm: {} for run in (ch01.BN, ch01.STD)}
    for _, run, frozen in ch09.SPECTRA:
        network = "BatchNorm" if run.norm == "batch" else "standard"
        probes[run.norm] |= {probe_key(p): cases[frozen][network] for p in ch09.spectrum_probes(CPU, frozen)}
    for run in (ch01.BN, ch01.STD):
        for seed in ch09.spectrum_seeds(run):  # BatchNorm's every seed
            store.put(run, seed, probes=probes[run.norm])


# Ghorbani et al.: outliers 10-100x the bulk; a gap of 3 (the old threshold) no longer counts
@pytest.mark.parametrize("ratios,expected", [([20.0, 10.0], R), ([20.0, 3.0], P), ([1.0, 9.9], N)])
def test_outliers_return(store, ratios, expected):
    _spectra(store, ratios)
    assert verdict(ch09, "outliers_return") == expected


def _edge_runs(store, cases: dict[tuple[str, float], tuple[float, float, bool]]) -> None:
    """Every edge-of-stability run, each seed alike: per (network, step size), its top eigenvalue at
    the start and late in the run as shares of 2 / eta, and whether it reached the loss goal. The top
    eigenvalue starts at `start` x 2 / eta and sits at `late` x 2 / eta from the second probe on
    (Cohen et al.'s Fig. 1: progressive sharpening, then the edge)."""
    steps = np.arange(20) * 150
    for (norm, lr), (start, late, reached) in cases.items():
        edge = 2 / lr
        top = np.array([start * edge, *np.full(len(steps) - 1, late * edge)])
        probes = {probe_key(p): {"step": steps, "eigenvalues": top} for p in ch09.eos_probes(lr, CPU)}
        weights = {"step": steps, "weight_sq": np.linspace(1.0, 2.0, len(steps))}
        probes[probe_key(plan.make_probe("weight-norms", "mlp", "cpu"))] = weights
        for seed in ch09.SEEDS:
            run = ch09.eos_run(norm, lr, CPU)
            store.put(run, seed, status="reached" if reached else "finished", probes=probes)


SMALL, LARGE = ch09.STEP_SIZES["cpu"]
# (start, late, reached the loss goal): at the edge; past the loss goal below it; still sharpening
# when its steps ran out; starting above half of 2 / eta (it cannot show sharpening), past the edge
# or at it
YES, NO, NOT_YET = (0.3, 1.0, False), (0.3, 0.4, True), (0.3, 0.4, False)
ABOVE, AT = (0.6, 1.5, False), (0.6, 1.0, False)


@pytest.mark.parametrize(
    "std,bn,expected",
    [
        (YES, YES, R),  # Cohen et al.: both rise to 2/eta and hover
        (AT, AT, R),  # wherever they start, they end at the edge: counted on its own
        (NO, YES, P),
        (NO, NO, N),
        (ABOVE, ABOVE, N),
        (NOT_YET, YES, C),  # the standard network: no decided run
    ],
)
def test_edge_of_stability(store, std, bn, expected):
    _edge_runs(store, {(norm, lr): case for norm, case in (("none", std), ("batch", bn)) for lr in (SMALL, LARGE)})
    assert verdict(ch09, "edge_of_stability") == expected


@pytest.mark.parametrize(
    "std,bn,expected",
    [
        (YES, YES, R),  # progressive sharpening in both
        (NO, YES, P),
        (AT, AT, C),  # they start above half of 2 / eta: no rise to see
        (NOT_YET, YES, C),
    ],
)
def test_progressive_sharpening(store, std, bn, expected):
    _edge_runs(store, {(norm, lr): case for norm, case in (("none", std), ("batch", bn)) for lr in (SMALL, LARGE)})
    assert verdict(ch09, "sharpening") == expected


@pytest.mark.parametrize(
    "std,bn,expected",
    [
        ((YES, YES), (YES, YES), R),  # late = 2/eta, lower at the larger step
        ((YES, YES), ((0.3, 0.1, True), (0.3, 0.5, True)), P),  # BN ends sharper at the larger step
        (((0.3, 0.1, True), (0.3, 0.5, True)), ((0.3, 0.1, True), (0.3, 0.5, True)), N),
        # the smaller step's runs still sharpening when their steps ran out: where they end is unknown
        ((NOT_YET, YES), ((0.3, 0.2, False), YES), C),
        ((NOT_YET, YES), (YES, YES), R),
    ],
)
def test_follows_step_size(store, std, bn, expected):
    cases = {("none", SMALL): std[0], ("none", LARGE): std[1], ("batch", SMALL): bn[0], ("batch", LARGE): bn[1]}
    _edge_runs(store, cases)
    assert verdict(ch09, "follows_step_size") == expected


# ----------------------------------------------------------------------------- 10, initialisation

ch10 = ch10_initialisation


def _signal(monkeypatch, std_rank: float, bn_rank: float, bn_growth: float, std_shift: float, collapsed=None):
    """Every network's signal at initialisation as `Session.measured` returns it (the published
    tables of `signal_propagation`), per numbered layer: the standard network's effective rank falls
    to `std_rank` at its last hidden layer, BN's stays at `bn_rank`, the broken control's at 1; BN's
    weight gradient grows by `bn_growth` per layer toward the input; the standard network's squared
    channel mean over variance rises `std_shift`-fold from the first layer to the last. `collapsed`
    (where given): the MLPs (network, depth) whose last hidden layer has rank 1 (and stable rank 1:
    Daneshmand et al.'s collapse), every other 100 (stable rank 3)."""

    def measured(session, name, config, compute, **params):
        network = next(n for n, pair in ch10.NETWORKS.items() if pair == (config.norm, config.init))
        depth = config.mlp_depth if config.model == "mlp" else config.vgg_depth
        growth = bn_growth if network == "batch" else 1.0
        rows = []
        for layer in range(1, depth + 2):
            rank = {"none": std_rank if layer == depth else 100.0, "batch": bn_rank, "broken": 1.0}[network]
            if layer == depth and config.model == "mlp" and collapsed is not None:
                rank = 1.0 if (network, depth) in collapsed else 100.0
            shift = std_shift ** (layer / depth) if network == "none" else 1.0
            rows.append(
                {"layer": layer, "rank": rank, "effective rank": rank, "stable rank": 1.0 if rank == 1.0 else 3.0,
                 "mean cosine": 0.5, "channel mean^2": shift, "channel variance": 1.0,
                 "gradient norm": growth ** (-layer)}
            )  # fmt: skip
        return pd.DataFrame(rows)

    monkeypatch.setattr(Session, "measured", measured)


@pytest.mark.parametrize(
    "std_rank,bn_rank,expected",
    [(2.0, 40.0, R), (40.0, 40.0, P), (40.0, 3.0, N)],  # Daneshmand et al.: BN keeps Omega(sqrt(width)) = 16
)
def test_rank_collapse(monkeypatch, std_rank, bn_rank, expected):
    _signal(monkeypatch, std_rank, bn_rank, 1.21, 20.0)
    assert verdict(ch10, "rank_collapse") == expected


@pytest.mark.parametrize("bn_growth,expected", [(1.21, R), (1.0, N)])  # Yang et al.: ~1.21 per layer
def test_gradient_explosion(monkeypatch, bn_growth, expected):
    _signal(monkeypatch, 2.0, 40.0, bn_growth, 20.0)
    assert verdict(ch10, "gradient_explosion") == expected


@pytest.mark.parametrize("std_shift,expected", [(20.0, R), (2.0, N)])
def test_mean_shift(monkeypatch, std_shift, expected):
    _signal(monkeypatch, 2.0, 40.0, 1.21, std_shift)
    assert verdict(ch10, "mean_shift") == expected


MLPS = [(network, depth) for network in ch10.NETWORKS for depth in ch10.TRAIN_DEPTHS["cpu"]]
DEEP_FAILURES = {("none", 50), ("broken", 20), ("broken", 50)}  # Daneshmand et al.: the collapsed ones fail


@pytest.mark.parametrize(
    "collapsed,fails,expected",
    [
        (DEEP_FAILURES, DEEP_FAILURES, R),  # collapse tells failure from success
        (DEEP_FAILURES, {("none", 50), ("broken", 20)}, P),  # one collapsed network trains
        (DEEP_FAILURES, set(MLPS) - DEEP_FAILURES, N),
        (set(), DEEP_FAILURES, C),  # nothing collapsed: nothing to tell apart
    ],
)
def test_predicts_training(store, monkeypatch, collapsed, fails, expected):
    _signal(monkeypatch, 40.0, 40.0, 1.21, 20.0, collapsed)
    _mlps(store, fails)
    assert verdict(ch10, "predicts_training") == expected


def _mlps(store, fails) -> None:
    """Every MLP's runs: a network that trains reaches the target at lr 0.1 in every seed; the others
    at no rate of their grid (the deepest's down to 0.001)."""
    for network, depth in MLPS:
        for lr in ch10.train_rates(depth, CPU):
            run = ch10.fast(ch10.mlp_run(network, depth, lr))
            trains = lr == 0.1 and (network, depth) not in fails
            for seed in ch10.SEEDS if trains else (0,):
                store.put(run, seed, steps_to=100 if trains else None)


@pytest.mark.parametrize(
    "fails,expected",
    [
        ({("batch", 50), ("broken", 50)}, R),  # Yang et al.: BatchNorm fails at depth 50, the standard trains
        ({("none", 50), ("broken", 50)}, N),  # BatchNorm trains at depth 50
        ({("none", 50), ("batch", 50)}, C),  # both fail: nothing to tell apart
    ],
)
def test_deep_batchnorm_fails(store, monkeypatch, fails, expected):
    _signal(monkeypatch, 40.0, 40.0, 1.21, 20.0)
    _mlps(store, fails)
    assert verdict(ch10, "deep_batchnorm_fails") == expected


# ----------------------------------------------------------------------------- 11, residual networks

ch11 = ch11_residual
SMALL_BATCH, LARGE_BATCH = ch11.BATCHES["cpu"]


@pytest.mark.parametrize(
    "bn_slope,none_slope,expected",
    [(-1.0, 0.1, R), (-ch11.DOWNSCALING - 0.01, -ch11.DOWNSCALING + 0.01, R), (-1.0, -1.0, P),
     (-ch11.DOWNSCALING + 0.01, 0.1, N)],
)  # fmt: skip
def test_downscaled(monkeypatch, bn_slope, none_slope, expected):  # De and Smith: 1/block along a stage
    slopes = {"batch": bn_slope, "none": none_slope}

    def measured(session, name, config, compute, **params):  # `residual_variances`: ratio = place ** slope
        place = np.tile(np.arange(1, 10), 3).astype(float)
        if config.residual != "plain":  # SkipInit, Fixup: branches of 0
            return pd.DataFrame({"block": np.arange(1, 28), "ratio": 0.0, "branch variance": 0.0})
        ratio = place ** slopes[config.norm] * np.where(place == 1, 7.0, 1.0)  # a projection's block: off the law
        ratio[:9] = np.arange(1, 10.0) ** slopes[config.norm]  # the first stage has no projection
        return pd.DataFrame({"block": np.arange(1, 28), "ratio": ratio, "branch variance": 1.0})

    monkeypatch.setattr(Session, "measured", measured)
    assert verdict(ch11, "downscaled") == expected


@pytest.mark.parametrize(
    "none,skip,expected",
    [
        ({}, 300, R),  # the unnormalized ResNet-56 reaches the target at no rate, SkipInit trains it
        ({0.001: 600}, 300, P),  # ... but at the smallest rate it does: "does not train" is not one rate's
        ({0.01: 200}, None, N),
    ],
)
def test_skipinit_trains_deep(store, none, skip, expected):
    for lr in ch11.DEEP_RATES:
        for seed in range(3):
            steps = none.get(lr)
            run = ch11.run("no normalization", SMALL_BATCH, lr, CPU, ch11.DEEP["cpu"])
            store.put(run, seed, steps_to=steps, status=None if steps else "diverged")
    for seed in range(3):
        store.put(ch11.run("SkipInit", SMALL_BATCH, ch11.START, CPU, ch11.DEEP["cpu"]), seed, steps_to=skip)
    assert verdict(ch11, "skipinit_trains_deep") == expected


def _resnets(store, nets: dict[tuple[str, int], dict[float, list]]) -> None:
    """ResNet-20's runs at every rate of each search's grid. `nets[(variant, batch)]`: steps to the
    target by rate of the smaller batch's grid (`ch11.GRID`, scaled with the batch), seed by seed
    (one number: seed 0 only); a rate not given does not train (it diverges)."""
    for variant in ch11.VARIANTS:
        for batch in (SMALL_BATCH, LARGE_BATCH):
            given = nets.get((variant, batch), {})
            for base, lr in zip(ch11.GRID, ch11.grid(batch, CPU), strict=True):
                steps = given.get(base)
                for seed, s in enumerate([steps] if not isinstance(steps, list) else steps):
                    store.put(ch11.run(variant, batch, lr, CPU), seed, steps_to=s, status=None if s else "diverged")


BN_V = {0.05: 300, 0.1: [200, 210, 220], 0.2: 260}  # BatchNorm: best at 0.1, slower on each side
SKIP_NEAR = {0.05: 330, 0.1: [300, 310, 305], 0.2: 400}


@pytest.mark.parametrize(
    "skip,expected",
    [
        (SKIP_NEAR, R),
        ({0.05: 330, 0.1: [300, 500, 310], 0.2: 400}, P),
        ({0.05: 700, 0.1: [600, 700, 750], 0.2: 790}, N),
        ({0.05: 700, 0.1: [600, None, None], 0.2: 790}, N),  # censored seeds, at a horizon beyond the bound
        ({}, C),  # SkipInit trains at no rate of the grid
        ({0.8: 500, 1.6: [300, 320, 310]}, C),  # its best rate at the grid's edge
    ],
)
def test_skipinit_small_batch(store, skip, expected):  # De and Smith: SkipInit about as fast at a small batch
    _resnets(store, {("BatchNorm", SMALL_BATCH): BN_V, ("SkipInit", SMALL_BATCH): skip})
    assert verdict(ch11, "skipinit_small_batch") == expected


def test_a_tie_at_the_best_rate_is_bracketed_past_it(store):  # SkipInit at batch 512: 0.2 and 0.4 both 321 steps
    _resnets(store, {("SkipInit", SMALL_BATCH): {0.05: 300, 0.1: [250, 260, 270], 0.2: 250, 0.4: 290}})
    found = ch11.searched(CPU, "SkipInit", SMALL_BATCH)
    assert ch11.search(CPU, "SkipInit", SMALL_BATCH)[0] == [0.05, 0.1, 0.2, 0.4, 0.8]
    assert (found.best, found.bracketed) == (0.1, True)
    _resnets(store, {("SkipInit", SMALL_BATCH): {0.05: 300, 0.1: [250, 260, 270], 0.2: 250}})  # 0.4 diverges
    ch11.searched.cache_clear()
    assert ch11.searched(CPU, "SkipInit", SMALL_BATCH).bracketed


def test_a_resnet_search_brackets_the_best_rate(store):
    _resnets(store, {("BatchNorm", SMALL_BATCH): {**BN_V, 0.4: 270}})
    found = ch11.searched(CPU, "BatchNorm", SMALL_BATCH)
    # from 0.1 to its neighbours, then up to the first rate that does not train (0.8)
    assert ch11.search(CPU, "BatchNorm", SMALL_BATCH)[0] == [0.05, 0.1, 0.2, 0.4, 0.8]
    assert (found.best, found.bracketed, found.largest) == (0.1, True, 0.4)
    assert found.speed.steps == [200 * SMALL_BATCH, 210 * SMALL_BATCH, 220 * SMALL_BATCH]


@pytest.mark.parametrize(
    "fixup,expected", [([300, 301, 302], R), ([300, 400, 750], P), ([600, 700, 750], N), ([300, None, None], N)]
)
def test_fixup_same_rate(store, fixup, expected):  # Zhang et al.: as fast as BatchNorm at the same rate
    bn = {0.05: 300, 0.1: [280, 300, 290], 0.2: 260 + 100}
    _resnets(store, {("post-activation BatchNorm", SMALL_BATCH): bn, ("Fixup", SMALL_BATCH): {0.05: 790, 0.1: fixup}})
    assert verdict(ch11, "fixup_same_rate") == expected


@pytest.mark.parametrize(
    "lead_small,lead_large,top,spread,expected",
    [(1.1, 3.0, {"BatchNorm": 0.4, "SkipInit": 0.2}, (1, 1, 1), R),
     (1.1, 3.0, {"BatchNorm": 0.2, "SkipInit": 0.2}, (1, 1, 1), P),
     (3.0, 1.1, {"BatchNorm": 0.2, "SkipInit": 0.2}, (1, 1, 1), N),
     (None, 1.1, {"BatchNorm": 0.2, "SkipInit": 0.2}, (1, 1, 1), C),
     (1.1, 1.3, {"BatchNorm": 0.4, "SkipInit": 0.2}, (0.8, 1, 1.25), C)],  # the seeds' ranges overlap
)  # fmt: skip
def test_large_batch(store, lead_small, lead_large, top, spread, expected):  # De and Smith: BN ahead at large batch
    nets = {}
    for batch, lead in ((SMALL_BATCH, lead_small), (LARGE_BATCH, lead_large)):
        for variant, factor in (("BatchNorm", 1.0), ("SkipInit", lead)):
            if factor is None:
                continue
            seeds = (1, 1, 1) if variant == "BatchNorm" else spread
            best = [int(40 * factor * m) for m in seeds]  # every seed at 0.05, the best; slower above, up to the top
            rates = [r for r in ch11.GRID if 0.05 < r <= (top[variant] if batch == LARGE_BATCH else 0.2)]
            nets[(variant, batch)] = {0.025: int(70 * factor), 0.05: best} | {r: int(65 * factor) for r in rates}
    _resnets(store, nets)
    assert verdict(ch11, "large_batch") == expected


# ----------------------------------------------------------------------------- 12, the ladder

ch12 = ch12_batchnorm_apart


@pytest.mark.parametrize(
    "variant,low,high",
    [
        ([250, 260, 270], 0.96, 1.0),  # nearly all of it
        ([2900, 3100, 3000], -np.inf, 0.0),  # slower than standard at its median; censored seeds open below
    ],
)
def test_fraction_recovered_and_its_interval(variant, low, high):
    standard, batchnorm = Speed([2000, 2500, 2800], 3000), Speed([200, 240, 250], 3000)
    steps = [None if v > 3000 else v for v in variant]
    f = ladder.recovered(standard, Speed(steps, 3000), batchnorm)
    assert f.point == pytest.approx((2500 - np.median(Speed(steps, 3000).lower())) / (2500 - 240))
    assert f.low == pytest.approx(low, abs=0.02) if np.isfinite(low) else f.low == -np.inf
    assert f.high <= high + 1e-9


def test_fraction_is_undefined_when_batchnorm_is_not_faster():
    f = ladder.recovered(Speed([200] * 3, 3000), Speed([300] * 3, 3000), Speed([250] * 3, 3000))
    assert f.point is None and ladder.recovers(f) == C


def test_a_censored_standard_seed_opens_the_interval_above():
    f = ladder.recovered(Speed([2000, None, 2500], 3000), Speed([1000] * 3, 3000), Speed([200] * 3, 3000))
    assert f.high == np.inf and np.isfinite(f.low)


def _seed_zero(found: dict[float, int | None], horizon: int = 972, plateau: tuple[float, ...] = ()) -> dict:
    """Seed 0's records of a rung by rate: reaching the target at the given step (None: never, and
    never leaving the plateau, unless the rate is in `plateau`: it leaves it but never gets there)."""
    run = ladder.rung("layer").run(0.1, CPU, horizon)
    out = {}
    for lr, steps in found.items():
        curve = rising(horizon, 300, 600, high=0.35) if lr in plateau else None
        out[lr] = synthetic.record(run.but(lr=lr), steps_to=steps, curve=curve)
    return out


@pytest.mark.parametrize(
    "found,plateau,wanted,speed_alone",
    [
        ({0.03: 300, 0.1: 200}, (), [0.3], [0.3]),  # fastest at 0.1: the rate above it (0.03 is slower)
        ({0.03: 300, 0.1: 200, 0.3: 250}, (), [1.0], []),  # bracketed; 0.3 trains, so the rate above it
        ({0.03: 300, 0.1: 200, 0.3: 250, 1.0: None}, (), [], []),  # 1.0 fails: done
        ({0.03: 200, 0.1: 300}, (), [0.01, 0.3], [0.01]),  # fastest at the lower; 0.1 trains: 0.3 too
        ({0.03: None, 0.1: None}, (), [0.01, 0.3], [0.01, 0.3]),  # reached at neither: outwards both ways
        ({lr: None for lr in ladder.GRID}, (), [], []),  # the whole grid tried
        ({0.01: None, 0.03: None, 0.1: None}, (0.1,), [0.3], [0.3]),  # 0.1 trains without arriving
    ],
)
def test_the_search_brackets_the_best_rate_and_climbs_to_the_largest_that_trains(found, plateau, wanted, speed_alone):
    seed_zero = _seed_zero(found, plateau=plateau)
    assert ladder.next_rates(seed_zero, 972) == wanted
    assert ladder.next_rates(seed_zero, None) == speed_alone  # before the horizon is known: speed alone


def test_the_largest_rate_steps_down_until_every_seed_trains():
    run = ladder.rung("layer").run(0.1, CPU, 972)

    def made(lr: float, seed: int, steps: int | None):
        return synthetic.record(run.but(lr=lr), seed=seed, steps_to=steps)

    by_rate = {0.1: {0: made(0.1, 0, 200)}, 0.3: {0: made(0.3, 0, 250)}, 1.0: {0: made(1.0, 0, None)}}
    assert ladder.largest_search(by_rate, (0, 1, 2), 972) == [0.3]  # its seeds are wanted next
    by_rate[0.3] |= {1: made(0.3, 1, 260), 2: made(0.3, 2, None)}  # seed 2 fails at 0.3
    assert ladder.largest_search(by_rate, (0, 1, 2), 972) == [0.3, 0.1]  # so one rate lower, 0.3 still read
    assert ladder.measure(by_rate, 972, (0, 1, 2), 0.03).largest is None  # not decided yet
    by_rate[0.1] |= {1: made(0.1, 1, 210), 2: made(0.1, 2, 220)}
    assert ladder.largest_search(by_rate, (0, 1, 2), 972) == [0.3, 0.1]
    assert ladder.measure(by_rate, 972, (0, 1, 2), 0.03).largest == 0.1
    by_rate[0.1][2] = made(0.1, 2, None)  # a seed fails at every rate seed 0 trains at: no largest rate
    assert ladder.largest_search(by_rate, (0, 1, 2), 972) == [0.3, 0.1]
    assert ladder.measure(by_rate, 972, (0, 1, 2), 0.03).largest is None


# The ends as at the cpu scale (chapter 07's runs): steps to the target per rate, seeds 0-2 (None:
# never). The standard network leaves its plateau long before it reaches the target.
ENDS_LIKE_CPU = {
    "none": {0.01: [None] * 3, 0.03: [2279, 2006, 2296], 0.1: [1307, 1122, 1836], 0.3: [None] * 3, 1.0: [None] * 3},
    "batch": {
        0.01: [168, 160, 195],
        0.03: [108, 94, 108],
        0.1: [113, 103, 140],
        0.3: [288, 266, 302],
        1.0: [947, 578, 814],
    },
}


def _paced(steps_to: int, horizon: int, leaves: int = 450) -> np.ndarray:
    """An accuracy curve that leaves the plateau at `leaves` and rises linearly through the target
    near `steps_to` (the standard network's shape, Fig. 1)."""
    return rising(horizon, leaves, int((steps_to - leaves) / ((measures.TARGET - 0.1) / 0.8)))


def _ladder(store, rungs: dict[str, dict[float, list]]) -> int:
    """Every record the ladder could read: the ends as at the cpu scale (`ENDS_LIKE_CPU`), and each
    rung's steps to the target per rate and seed (a float below 1: it leaves the plateau and trains to
    that accuracy without reaching the target; a rate or a rung not given: never, on the plateau),
    its runs stopped at the horizon the ends set. Returns the horizon."""
    for norm, by_rate in ENDS_LIKE_CPU.items():
        for lr, steps in by_rate.items():
            for seed, reached in enumerate(steps):
                run = rate_run(norm, lr, seed)
                whole = CPU.config(run, seed).target_acc is None and reached is not None and norm == "none"
                curve = _paced(reached, CPU.config(run, seed).steps) if whole else None
                store.put(run, seed, steps_to=None if whole else reached, curve=curve)
    h = ladder.horizon(CPU)
    for step in ladder.RUNGS:
        for lr in ladder.GRID:
            for seed, reached in enumerate(rungs.get(step.key, {}).get(lr, [None] * 3)):
                if isinstance(reached, float):
                    store.put(step.run(lr, CPU, h), seed, curve=rising(h, 200, 400, high=reached))
                else:
                    store.put(step.run(lr, CPU, h), seed, steps_to=reached)
    return h


def test_the_ladder_reads_the_ends_at_their_own_best_rates(store):
    h = _ladder(store, {})
    bn, standard = ladder.measured(ladder.BATCHNORM, CPU), ladder.measured(ladder.STANDARD, CPU)
    assert h == ladder.decided_after(standard.speed, bn.speed) and 950 < h < 1000
    assert (bn.best, bn.bracketed, bn.largest, bn.at_top) == (0.03, True, 1.0, True)
    assert (standard.best, standard.bracketed, standard.largest) == (0.1, True, 0.1)
    assert standard.at_batchnorm.steps == [2279, 2006, 2296]  # the standard network at BatchNorm's best rate


@pytest.mark.parametrize(
    "key,found,expected",
    [
        ("layer", {0.1: [300, 320, 330], 0.3: [400] * 3}, R),  # a source that predicts "most": it does
        ("layer", {0.1: [300, 320, 330], 0.03: [700] * 3}, R),  # best bracketed below, 0.3 never: most
        # it trains at three rates without arriving by the horizon, best (highest accuracy) in the middle:
        # less than half in every combination of seeds, and no rate beyond the grid would change that
        ("layer", {0.03: [0.25] * 3, 0.1: [0.35] * 3, 0.3: [0.3] * 3}, N),
        ("layer", {0.3: [900, 920, 940], 1.0: [800, 820, 850]}, C),  # less than half, its best the grid's top
        ("layer", {}, C),  # reached at no rate: a rate beyond the grid might
        ("layer", {0.1: [400, 700, 900]}, C),  # the seeds straddle one half
        ("detached", {}, C),  # predicted "less than half", but reached at no rate: cannot tell
        ("detached", {0.01: [0.2] * 3, 0.03: [0.35] * 3, 0.1: [0.3] * 3}, R),  # bracketed, below half
        ("detached", {0.03: [150] * 3, 0.1: [200] * 3}, N),
    ],
)
def test_each_rung_is_ruled_on_its_sources_prediction(store, key, found, expected):
    _ladder(store, {key: found})
    assert verdict(ch12, key) == expected


@pytest.mark.parametrize(
    "key,found,expected",
    [
        ("warmup", {0.1: [600] * 3, 0.3: [500] * 3, 1.0: [450] * 3}, R),  # trains at BatchNorm's largest, 1.0
        ("warmup", {0.1: [600] * 3, 0.3: [500] * 3}, P),  # up to 0.3: between the ends' 0.1 and 1.0
        ("warmup", {0.1: [600] * 3, 0.3: [500, 520, None]}, N),  # a seed fails at 0.3: as the standard's 0.1
        ("detached", {0.03: [180] * 3}, R),  # Ghorbani et al.: it loses BatchNorm's larger rates
        ("detached", {0.03: [180] * 3, 0.1: [200] * 3, 0.3: [300] * 3, 1.0: [700] * 3}, N),
    ],
)
def test_the_rate_tolerance_claims_rule_on_the_largest_rate_every_seed_trains_at(store, key, found, expected):
    _ladder(store, {key: found})
    assert verdict(ch12, f"{key}_rates") == expected


def test_the_ladder_reads_its_ends_from_chapter_07_and_stops_its_rungs_at_the_target():
    assert ladder.experiment(ladder.BATCHNORM, 0.1, CPU) == ch01.BN  # Part I's run
    assert ladder.experiment(ladder.STANDARD, 0.3, CPU) == rate_run("none", 0.3)
    rung = ladder.rung("warmup").run(0.1, CPU, horizon=1472).config("cpu")
    assert rung.target_acc == measures.TARGET and rung.warmup_steps == 300 and rung.steps == 1472
    assert ladder.rung("he").run(0.1, CPU, horizon=1472).config("cpu").init == "he"


# Fig. 1's speeds at the cpu scale: the standard network's slowest seed sets the horizon
PAPER_LIKE = Speed([1412, 1468, 2822], 3000), Speed([115, 109, 123], 3000)


def test_the_ladders_horizon_is_where_a_rung_that_has_not_arrived_recovers_less_than_half():
    standard, batchnorm = PAPER_LIKE
    h = ladder.decided_after(standard, batchnorm)
    assert h == 1472  # 0.5 * 2822 + 0.5 * 123, rounded down
    censored = ladder.recovered(standard, Speed([None, None, None], h), batchnorm)  # stopped at the horizon
    assert censored.high < ladder.HALF and ladder.recovers(censored) == N
    assert ch12.verdict(ladder.rung("detached"), censored) == R  # predicted "less than half": decided too
    assert ch12.verdict(ladder.rung("detached"), censored, inside=False) == C  # unless the grid's edge censors it
    arrived = ladder.recovered(standard, Speed([h, h, h], h), batchnorm)  # one step sooner: not yet decided
    assert arrived.high >= ladder.HALF and ladder.recovers(arrived) == C


def test_the_fraction_prints_its_bounds_as_bounds():
    standard, batchnorm = PAPER_LIKE
    censored = ladder.recovered(standard, Speed([None] * 3, 1472), batchnorm)
    assert censored.text() == "at most 0.00 (seeds: below 0.50)"  # -0.0037 and 0.4998, rounded outwards
    assert (
        ladder.recovered(standard, Speed([635, 817, 652], 3000), batchnorm).text() == "0.60 (seeds: 0.45 to 0.82)"
    )  # outwards too
    assert (
        ladder.recovered(Speed([1412, None, 2822], 3000), Speed([2000] * 3, 3000), batchnorm)
        .text()
        .startswith("at least")
    )


def test_no_horizon_before_the_scales_end_when_an_end_never_arrives():
    standard, batchnorm = PAPER_LIKE
    assert ladder.decided_after(Speed([1412, None, 2822], 3000), batchnorm) == 3000
    assert ladder.decided_after(standard, Speed([115, None, 123], 3000)) == 3000


# ----------------------------------------------------------------------------- 13, the bottom line

ch13 = ch13_why_batchnorm_works


FAKE = "00_fake"


def _book(**verdicts: Verdict) -> Session:
    """A session whose book is one chapter with claims of the given verdicts."""
    made = {
        key: Claim(key, "", "", lambda session, v=v, key=key: Finding("", v, f"{key} was {v}."))
        for key, v in verdicts.items()
    }
    return Session("smoke", (Chapter(FAKE, "fake", PART_ONE, lambda session: [], made),))


@pytest.mark.parametrize(
    "tests,expected",
    [
        ((("d", R, "decisive"), ("s", R, "supporting")), ch13.SUPPORTED),
        ((("d", N, "decisive"), ("s", N, "supporting")), ch13.NOT_SUPPORTED),
        ((("d", R, "decisive"), ("e", N, "decisive"), ("s", R, "supporting")), ch13.MIXED),
        ((("s", R, "supporting"), ("t", R, "supporting")), ch13.CONSISTENT),  # no decisive test decided
        ((("d", C, "decisive"), ("s", R, "supporting")), ch13.CONSISTENT),  # "cannot tell" leaves out that test only
        ((("d", C, "decisive"), ("m", B, "mechanism present")), ch13.CANNOT_TELL),
        ((("d", R, "decisive"), ("m", N, "mechanism present")), ch13.SUPPORTED),  # never counted
    ],
)
def test_an_explanations_verdict_weighs_its_tests(tests, expected):
    session = _book(**{key: v for key, v, _ in tests})
    explanation = ch13.Explanation("e", "s", "p", tuple(ch13.Test(FAKE, key, w) for key, _, w in tests))
    assert ch13.verdict(explanation, session) == expected


def test_a_refutation_counts_against_when_reproduced():
    session = _book(noisy=R, ics=R)
    tests = (
        ch13.Test(FAKE, "noisy", ch13.DECISIVE, against=True),
        ch13.Test(FAKE, "ics", ch13.SUPPORTING, against=True),
    )
    assert ch13.verdict(ch13.Explanation("ICS", "s", "p", tests), session) == ch13.NOT_SUPPORTED
    assert ch13.support(ch13.Explanation("ICS", "s", "p", tests), session) == 0.0


def test_the_answer_is_each_explanations_verdict_and_its_decisive_tests_own_sentences(monkeypatch):
    session = _book(first=R, second=N)
    tests = (ch13.Test(FAKE, "first", ch13.DECISIVE), ch13.Test(FAKE, "second", ch13.SUPPORTING))
    monkeypatch.setattr(ch13, "EXPLANATIONS", (ch13.Explanation("It helps", "Someone (2020)", "p", tests),))
    (paragraph,) = ch13.answer(session)
    assert paragraph == "**It helps** (Someone (2020)): supported, support 0.67. first was reproduced."


def test_every_explanation_names_tests_that_exist():
    for explanation in ch13.EXPLANATIONS:
        assert any(t.weight == ch13.DECISIVE for t in explanation.tests) or explanation.name.startswith("It smooths")
        for test in explanation.tests:
            assert test.key in contents.chapter(test.chapter).claims, (explanation.name, test.key)


def test_the_ladders_answer_says_which_rungs_the_grids_edge_leaves_open(monkeypatch):
    fractions = {
        "layer": ladder.Recovered(0.9, 0.8, 1.0),  # most, in every combination of seeds
        "detached": ladder.Recovered(0.1, -np.inf, 0.2),  # less than half, its best rate inside the grid
        "group": ladder.Recovered(0.1, -np.inf, 0.2),  # less than half at the grid's rates, best at its edge
        "center": ladder.Recovered(0.5, 0.2, 0.7),  # the seeds straddle one half
    }
    monkeypatch.setattr(ladder, "RUNGS", tuple(ladder.rung(key) for key in fractions))
    monkeypatch.setattr(ladder, "fraction", lambda step, scale: fractions[step.key])
    monkeypatch.setattr(ladder, "inside_grid", lambda step, scale: step.key == "detached")
    monkeypatch.setattr(ladder, "measured", lambda step, scale: ladder.Measured(0.1, True, Speed([], 3000), None, 0.3))
    most, less, edge, seeds = ch13.ladder_answer(CPU).split(". Those recovering ")
    assert "LayerNorm (0.90 (seeds: 0.80 to 1.00); trains up to lr 0.3)" in most
    assert "LayerNorm" in most and "without the gradient" in less and "GroupNorm" in edge and "centering" in seeds
    assert edge.startswith("less than 0.5 at the grid's rates, undecided because a rate beyond the grid")


def test_a_rule_that_names_the_scales_batches_or_depths_follows_the_scale():
    large_batch = ch11.CLAIMS["large_batch"]
    assert "batch 128 and 512" in large_batch.rule_at("cpu") and "batch 128 and 1024" in large_batch.rule_at("paper")
    assert "ResNet-56" in ch11.CLAIMS["skipinit_trains_deep"].rule_at("cpu")
    assert "ResNet-110" in ch11.CLAIMS["skipinit_trains_deep"].rule_at("paper")
    assert ch03.CLAIMS["vgg"].rule_at("cpu").startswith("layers #5 and #10 at lr 0.1 and 0.01")
