"""The normalization lab (chapter 12): a normalization composed from a recipe of BatchNorm's
ingredients computes what each registered normalization it names computes, and is stored as that
one (the same run); every rung of the ladder composed from its ingredients is that rung; the
reader's compositions are kept across a restart. The lab's widget trains from its own callbacks
under ipywidgets 7 and 8 (test_colab_pages.py), and the published rungs it reuses are bit for bit
the ladder's (test_published_store.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bnlib import RunConfig
from bnlib.book import contents, lab, ladder
from bnlib.book.lab import Composition
from bnlib.config import Recipe
from bnlib.errors import ConfigError
from bnlib.experiments import base_config
from bnlib.models import build_model
from bnlib.norms import NAMED_RECIPES, ComposedNorm

SMOKE = dict(ghost_batch=8)  # ghost batches of 8 in a batch of 32


def _composed(name: str) -> RunConfig:
    """The smoke VGG of normalization `name`, with the composed normalization of its recipe in its
    place: the config that the canonical name would otherwise replace (made by hand for the test)."""
    config = base_config("vgg", "smoke", norm=name, **SMOKE)
    object.__setattr__(config, "norm", "composed")
    object.__setattr__(config, "recipe", Recipe(**NAMED_RECIPES[name]))
    return config


def _two_steps(config: RunConfig, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every parameter's gradient at two SGD steps from the same start (and the same noise), then
    the logits in evaluation mode (the running statistics)."""
    torch.manual_seed(1)
    model = build_model(config).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    grads = []
    for step in range(2):
        torch.manual_seed(10 + step)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        grads += [p.grad.clone() for p in model.parameters()]
        optimizer.step()
    model.eval()
    return grads, model(x).detach()


@pytest.mark.parametrize("name", list(NAMED_RECIPES))
def test_the_composed_normalization_computes_each_normalization_its_recipe_names(name):
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 32, 32, dtype=torch.float64) + 0.5, torch.randint(0, 10, (32,))
    named_grads, named_eval = _two_steps(base_config("vgg", "smoke", norm=name, **SMOKE), x, y)
    composed_grads, composed_eval = _two_steps(_composed(name), x, y)
    scale = max(g.abs().max() for g in named_grads)
    assert len(named_grads) == len(composed_grads)
    for a, b in zip(named_grads, composed_grads, strict=True):
        torch.testing.assert_close(a / scale, b / scale, rtol=0, atol=1e-10)
    torch.testing.assert_close(named_eval, composed_eval, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", list(NAMED_RECIPES))
def test_a_recipe_that_names_a_normalization_is_that_normalization_and_its_run(name):
    named = base_config("vgg", "cpu", norm=name)
    composed = base_config("vgg", "cpu", norm="composed", recipe=Recipe(**NAMED_RECIPES[name]))
    assert composed == named and composed.digest() == named.digest()
    assert composed.recipe == Recipe()  # stored as the name, with the default recipe


def test_a_recipe_of_its_own_changes_the_run_and_keeps_every_other_key():
    mine = base_config("vgg", "cpu", norm="composed", recipe=Recipe(statistics="example", scale=False))
    assert mine.norm == "composed" and mine.digest() != base_config("vgg", "cpu", norm="layer").digest()
    assert RunConfig.from_dict(mine.to_dict()) == mine  # through its JSON
    # a record written before recipes existed (its config without one) is the same run: the default
    # recipe is not hashed (the published store's test checks every stored key)
    plain = RunConfig(norm="batch", lr=0.1)
    older = {k: v for k, v in plain.to_dict().items() if k != "recipe"}
    assert RunConfig.from_dict(older) == plain and RunConfig.from_dict(older).digest() == plain.digest()


def test_ingredients_that_do_nothing_are_set_to_their_defaults():
    assert Recipe(center=False, scale=False) == Recipe(statistics="none")
    assert Recipe(statistics="none", gradient=False, center=False) == Recipe(statistics="none")
    assert Recipe(statistics="none", affine=False) == Recipe(**NAMED_RECIPES["none"])
    assert str(Recipe(statistics="example", scale=False)) == "Recipe(statistics=example, scale=False)"


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: Recipe(statistics="instance"), "unknown statistics 'instance'; choose one of batch"),
        (lambda: Recipe(weights="spectral"), "unknown weights 'spectral'"),
        (lambda: Recipe(center=1), "recipe's center must be True or False"),
        (lambda: Recipe(momentum=0.1), "unknown Recipe field"),
        (lambda: RunConfig(norm="batch", recipe=Recipe(scale=False)), "set norm='composed'"),
        (lambda: RunConfig(norm="composed", recipe="batch"), "recipe must be a Recipe"),
        (
            lambda: RunConfig(model="resnet", norm="composed", recipe=Recipe(weights="centered")),
            "the ResNet does not reparametrize its weights",
        ),
    ],
)
def test_a_bad_recipe_is_a_one_line_error(make, message):
    with pytest.raises(ConfigError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


def test_only_per_example_compositions_can_be_proven_dead():
    per_example = RunConfig(norm="composed", recipe=Recipe(statistics="groups", gradient=False))
    assert per_example.can_die and per_example.stop_dead
    assert not RunConfig(norm="composed", recipe=Recipe(statistics="ghost", affine=False)).can_die
    assert not RunConfig(norm="composed", recipe=Recipe(statistics="example", noise=True)).can_die


def test_without_the_gradient_through_per_example_statistics_they_are_constants():
    """Centering by each example's own mean, held constant: the backward pass is the identity's."""
    config = RunConfig(norm="composed", recipe=Recipe(statistics="example", scale=False, gradient=False, affine=False))
    layer = ComposedNorm(4, config.recipe, config).double()
    x = torch.randn(5, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    torch.testing.assert_close(out, x - x.mean(dim=(1, 2, 3), keepdim=True))
    g = torch.randn_like(out)
    out.backward(g)
    torch.testing.assert_close(x.grad, g)


def test_ghost_batches_that_do_not_divide_the_batch_are_normalized_part_by_part():
    config = RunConfig(norm="composed", recipe=Recipe(statistics="ghost", affine=False), ghost_batch=4)
    layer = ComposedNorm(3, config.recipe, config).double()
    x = torch.randn(10, 3, 2, 2, dtype=torch.float64) * 3 + 1
    out = layer(x)
    for part in torch.split(out, 4):  # parts of 4, 4 and 2 examples, each of mean 0 and variance 1
        torch.testing.assert_close(part.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64))
        torch.testing.assert_close(
            part.var(dim=(0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0
        )


# ----------------------------------------------------------------------------- the lab's compositions

NONE = Recipe(statistics="none", affine=False)
# Every network of the ladder, composed from its ingredients
FROM_INGREDIENTS = {
    "batchnorm": Composition(Recipe()),
    "detached": Composition(Recipe(gradient=False)),
    "center": Composition(Recipe(scale=False)),
    "scale": Composition(Recipe(center=False)),
    "layer": Composition(Recipe(statistics="example")),
    "group": Composition(Recipe(statistics="groups"), groups=32),
    "ghost8": Composition(Recipe(statistics="ghost"), ghost_batch=8),
    "ghost32": Composition(Recipe(statistics="ghost"), ghost_batch=32),
    "noise": Composition(Recipe(statistics="none", affine=False, noise=True)),
    "weight_std": Composition(Recipe(statistics="none", affine=False, weights="centered")),
    "scaled_ws": Composition(Recipe(statistics="none", affine=False, weights="scaled")),
    "warmup": Composition(NONE, warmup=True),
    "lsuv": Composition(NONE, init="lsuv"),
    "he": Composition(NONE, init="he"),
    "standard": Composition(NONE),
}
CPU = contents.session("cpu")
HORIZON = 900  # any horizon: a composition is a rung at every horizon


def test_every_network_of_the_ladder_is_composed_here():
    assert set(FROM_INGREDIENTS) == {step.key for step in ladder.LADDER}


@pytest.mark.parametrize("key", list(FROM_INGREDIENTS))
@pytest.mark.parametrize("lr", [0.03, 3.0])
def test_a_rung_composed_from_its_ingredients_is_that_rung(key, lr):
    composition = Composition(**{**FROM_INGREDIENTS[key].__dict__, "lr": lr})
    step = composition.rung(CPU, HORIZON)
    assert step is not None and step.key == key
    assert CPU.config(composition.run(CPU, HORIZON)) == CPU.config(step.run(lr, CPU, HORIZON))


@pytest.mark.parametrize(
    "composition",
    [
        *lab.EXAMPLES,
        Composition(Recipe(), init="he"),  # BatchNorm at He's start
        Composition(Recipe(statistics="ghost"), ghost_batch=4),  # a ghost batch no rung has
        Composition(Recipe(weights="scaled")),  # BatchNorm and scaled weight standardization
    ],
    ids=lambda c: c.label(),
)
def test_a_composition_of_its_own_is_no_rung_and_trains_its_own_runs(composition):
    assert composition.rung(CPU, HORIZON) is None
    run = composition.run(CPU, HORIZON)
    config = CPU.config(run)
    assert config.steps == HORIZON and config.target_acc is not None  # stopped as the ladder's runs are
    assert [s for _, s in lab.runs(composition, CPU, HORIZON)] == list(ladder.SEEDS)


def test_a_composition_reads_as_its_ingredients():
    assert lab.EXAMPLES[0].label() == (
        "per-example statistics, centering only, no gradient through them, affine, lr 0.3"
    )
    assert lab.EXAMPLES[2].label() == "no statistics, He init, warm-up, lr 0.1"
    assert Composition(Recipe(noise=True, weights="centered")).label() == (
        "batch statistics, centering and scaling, affine, the paper's noise, centered weights, lr 0.1"
    )


def test_the_compositions_kept_survive_a_restart_and_a_damaged_list_starts_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BNLIB_CACHE", str(tmp_path))
    first, second = lab.EXAMPLES[0], lab.EXAMPLES[1]
    assert lab.kept(CPU) == []
    lab.keep(first, CPU)
    lab.keep(second, CPU)
    lab.keep(first, CPU)  # once, the latest last
    assert lab.kept(CPU) == [second, first]  # read back from the file, as after a restart
    assert lab.kept(contents.session("smoke")) == []  # each scale its own
    lab.kept_file(CPU).write_text("[{")
    assert lab.kept(CPU) == []
    assert "is damaged (JSONDecodeError); it starts again" in capsys.readouterr().err
