"""Run configuration: every setting that can change a run's result, and nothing else.

A `RunConfig` is frozen and hashable; its JSON form (plus the record schema version and the data
copy) is the key of the run record, so two chapters asking for the same config share one run.
Every field is checked when a config is made: its type (a number is a real number, a count an
integer), finiteness and range, with a one-line `ConfigError` naming the fix; numbers are stored in
their field's type, so equal configs (lr=1 and lr=1.0) have equal keys. Settings that cannot
change the result (device, progress bar, checkpoint interval) live in `bnlib.train.RunOptions`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from bnlib.errors import ConfigError

MODELS = ("vgg", "dln", "resnet", "mlp")
PRECISIONS = ("float32", "bf16")
VGG_DEPTHS = (11, 13, 16, 19)
RESIDUALS = ("plain", "skipinit", "fixup")
RESNET_BLOCKS = ("post", "pre")
LOSSES = ("cross_entropy", "mse")
INITS = ("default", "he", "lsuv", "broken")
# A composed normalization's ingredients (`Recipe`): what its statistics are taken over, and its weights
STATISTICS = ("batch", "ghost", "example", "groups", "none")
WEIGHTS = ("plain", "centered", "scaled")
# Normalizations whose output for an example depends on that example alone (see RunConfig.can_die)
PER_EXAMPLE = ("none", "layer", "group", "weight_std", "scaled_ws")
MAX_SEED = 2**32 - 1
MAX_LR = 1e6  # beyond this, float32 arithmetic in the update overflows


def _unknown(cls: type, names: set[str]) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(names - set(known))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; known fields: {', '.join(known)}")


def _real(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """`value` as a float, if it is a finite real number in [low, high] (or (low, high])."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, not {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number (got {value})")
    if value < low or (low_open and value == low) or value > high:
        if low == 0 and low_open:
            raise ConfigError(f"{name} must be positive and at most {high:g} (got {value:g})")
        raise ConfigError(f"{name} must lie in [{low:g}, {high:g}] (got {value:g})")
    return value


def _integer(name: str, value: Any, low: int, high: int) -> int:
    """`value` as an int, if it is an integer (not a bool, not 1.5) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, not {value!r} ({type(value).__name__})")
    value = int(value)
    if not low <= value <= high:
        if low == 1:
            raise ConfigError(f"{name} must be a positive integer, at most {high:,} (got {value:,})")
        raise ConfigError(f"{name} must be an integer from {low:,} to {high:,} (got {value:,})")
    return value


def _choice(name: str, value: Any, choices: tuple) -> Any:
    if isinstance(value, bool) or value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}")
    return value


@dataclass(frozen=True)
class NoiseParams:
    """The four constants of the paper's Algorithm 1 (noisy BatchNorm); defaults are the paper's.

    Per unit and step: mu ~ U(-n_mu, n_mu), sigma ~ U(1, n_sigma); per element:
    m ~ U(mu - r_mu, mu + r_mu), s ~ N(sigma, r_sigma) (r_sigma a standard deviation); a <- s a + m.
    """

    n_mu: float = 0.5
    n_sigma: float = 1.25
    r_mu: float = 0.1
    r_sigma: float = 0.1

    def __new__(cls, *args: Any, **kwargs: Any) -> NoiseParams:
        _unknown(cls, set(kwargs))
        return super().__new__(cls)

    def __post_init__(self) -> None:
        hint = " (use 0 to switch a part of the noise off)"
        for name in ("n_mu", "r_mu", "r_sigma"):
            try:
                object.__setattr__(self, name, _real(f"noise constant {name}", getattr(self, name), 0, 1e3))
            except ConfigError as e:
                raise ConfigError(f"{e}{hint}") from None
        n_sigma = _real("noise constant n_sigma (sigma ~ U(1, n_sigma))", self.n_sigma, 1, 1e3)
        object.__setattr__(self, "n_sigma", n_sigma)


@dataclass(frozen=True)
class Recipe:
    """A normalization composed from BatchNorm's ingredients (`RunConfig(norm="composed")`, the
    normalization lab of chapter 12); the defaults are BatchNorm's own.

    * statistics: over what the mean and spread are taken: "batch" (each unit over the batch, and H,
      W), "ghost" (over sub-batches of `RunConfig.ghost_batch` examples), "example" (each example over
      all its units: LayerNorm), "groups" (each example over groups of units, `RunConfig.norm_groups`:
      GroupNorm), or "none" (no statistics: nothing is normalized);
    * center: subtract the mean; scale: divide by the spread about the mean, sqrt(var + eps);
    * gradient: the backward pass goes through the statistics (False: they are held constant);
    * affine: a learnable per-unit gamma and beta after it;
    * noise: the paper's noise (Algorithm 1, `RunConfig.noise`) after it, in training;
    * weights: the weight layer before it as it is ("plain"), or reparametrized: "centered" (centered
      weight normalization) or "scaled" (scaled weight standardization).

    Ingredients that do nothing are set to their defaults when a recipe is made (statistics without
    centering or scaling are no statistics; without statistics, centering, scaling and the gradient
    through them mean nothing), so that one normalization has one recipe, and one run one key.
    """

    statistics: str = "batch"
    center: bool = True
    scale: bool = True
    gradient: bool = True
    affine: bool = True
    noise: bool = False
    weights: str = "plain"

    def __new__(cls, *args: Any, **kwargs: Any) -> Recipe:
        _unknown(cls, set(kwargs))
        return super().__new__(cls)

    def __post_init__(self) -> None:
        object.__setattr__(self, "statistics", _choice("statistics", self.statistics, STATISTICS))
        object.__setattr__(self, "weights", _choice("weights", self.weights, WEIGHTS))
        for name in ("center", "scale", "gradient", "affine", "noise"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"recipe's {name} must be True or False, not {getattr(self, name)!r}")
        if not (self.center or self.scale):
            object.__setattr__(self, "statistics", "none")
        if self.statistics == "none":
            for name in ("center", "scale", "gradient"):
                object.__setattr__(self, name, True)

    def __str__(self) -> str:
        """The ingredients that differ from BatchNorm's, for run names: "Recipe(scale=False)"."""
        changed = [
            f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self) if getattr(self, f.name) != f.default
        ]
        return f"Recipe({', '.join(changed)})"

    @property
    def per_example(self) -> bool:
        """Whether an example's output depends on that example alone (no batch statistics, no noise)."""
        return self.statistics in ("example", "groups", "none") and not self.noise


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run. Build one with `bnlib.experiment(name, scale)`."""

    model: str = "vgg"  # "vgg" (CIFAR-10) or "dln" (deep linear network on synthetic data)
    norm: str = "none"  # a name registered in bnlib.norms.NORMS
    lr: float = 0.1
    # The learning rate of the hidden layers' weights, the ones that feed a normalization and so are
    # scale-invariant with BatchNorm (None: `lr`); everything else (biases, gamma, beta, the
    # classifier) keeps `lr`. For the test of scale invariance in Part II.
    weight_lr: float | None = None
    steps: int = 15_000
    batch_size: int = 128  # the DLN always trains full batch: batch_size is then dln_samples
    seed: int = 0  # initialisation, batch order, augmentation and noise
    data_seed: int = 0  # which balanced subset of CIFAR-10, and the DLN's synthetic data
    momentum: float = 0.0
    weight_decay: float = 0.0
    # "float32": the paper's protocol (on CUDA with TF32 off); "bf16": training under bf16 autocast,
    # faster on a GPU, only on request (VGG on CUDA). Probes always measure in float32.
    precision: str = "float32"

    # VGG on CIFAR-10
    vgg_depth: int = 16  # 16 = 13 conv layers + a linear head (the paper's layer numbering)
    width: float = 1.0  # channel multiplier: 1.0 is 64..512 channels
    train_per_class: int | None = None  # balanced training subset; None = all 5,000 per class
    test_per_class: int | None = None  # balanced test subset; None = all 1,000 per class
    augment: bool = False  # random crop (pad 4) + horizontal flip
    # The loss on CIFAR-10: softmax cross-entropy (the paper's), or "mse", half the squared error
    # against one-hot labels (Cohen et al.'s edge-of-stability runs, in Part II).
    loss: str = "cross_entropy"

    # ResNet on CIFAR-10 (6n + 2 layers) and deep ReLU MLPs on flattened CIFAR-10 (Part II)
    resnet_depth: int = 20
    residual: str = "plain"  # "plain", "skipinit" or "fixup" (the latter two without normalization)
    # "post": He et al.'s original blocks, ReLU(x + branch), parameter-free shortcuts (Fixup's);
    # "pre": pre-activation blocks, x + branch, 1 x 1 projections where the shape changes (SkipInit's)
    resnet_block: str = "post"
    mlp_depth: int = 10  # hidden layers
    mlp_width: int = 256

    # Deep linear network
    dln_depth: int = 25
    dln_dim: int = 10
    dln_samples: int = 1000

    # Normalization details the paper leaves open, and those of the ablation ladder's normalizations
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    noise: NoiseParams = field(default_factory=NoiseParams)
    ghost_batch: int = 16  # "ghost": statistics over sub-batches of this many examples
    norm_groups: int = 32  # "group": GroupNorm's groups at full width (times `width`, as channels are)
    # "composed": the normalization of this recipe (a recipe that is a registered normalization is
    # stored as that normalization's name, so that it is the same run: bnlib.norms.named_norm)
    recipe: Recipe = field(default_factory=Recipe)

    # Variations of the training loop (Part II's tests, the ablation ladder); the defaults are the
    # paper's plain SGD from the model's own initialisation.
    warmup_steps: int = 0  # the rate rises linearly from lr / warmup_steps to lr over these steps
    clip_norm: float | None = None  # the gradient's global norm clipped to this (None: not clipped)
    # "he": He-normal weights (fan-in, ReLU gain sqrt(2)) in place of the model's own (the VGG's Glorot);
    # "lsuv": then every layer rescaled to unit output variance on a batch (Mishkin and Matas, 2016);
    # "broken": then every weight w replaced by 2|w| (Daneshmand et al.'s broken BatchNorm network, whose
    # representations collapse with depth even with BatchNorm)
    init: str = "default"
    # After every step, rescale each hidden layer's weights to their initial norm: the weights that
    # feed a normalization keep their scale invariance but lose its auto-tuning of the rate.
    fixed_weight_norm: bool = False

    # Stop a run when its metric is decided; the record then ends early and says why (its status):
    # "reached" once the training accuracy, averaged over the last SPEED_WINDOW steps, reaches
    # `target_acc` (or the loss, so averaged, falls to `target_loss`); "dead" once every training
    # example gives the same output (`stop_dead`; see bnlib.train.dead_layer).
    target_acc: float | None = None
    target_loss: float | None = None
    stop_dead: bool = True

    # Measurement schedule and divergence rule
    log_every: int = 10  # training loss/accuracy are kept every step; checked for divergence this often
    test_every: int = 500  # test accuracy (VGG); 0 = only at the end
    # A training loss above this (or non-finite) ends the run. None: 1e3 for VGG's cross-entropy
    # (chance is 2.3), 1e12 for the DLN's summed squared error (about 1e5 at initialisation).
    divergence_bound: float | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> RunConfig:
        _unknown(cls, set(kwargs))  # before dataclass's __init__ raises a bare TypeError
        return super().__new__(cls)

    def __post_init__(self) -> None:
        from bnlib.norms import NORMS  # late import: norms depends on torch, config should not

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("model", _choice("model", self.model, MODELS))
        put("norm", _choice("normalization", self.norm, tuple(NORMS)))
        put("lr", _real("learning rate", self.lr, 0, MAX_LR, low_open=True))
        if self.weight_lr is not None:
            put("weight_lr", _real("weight_lr", self.weight_lr, 0, MAX_LR, low_open=True))
            if self.weight_lr == self.lr:  # the same run: the same config, and so the same key
                put("weight_lr", None)
        put("steps", _integer("steps", self.steps, 1, 10**9))
        put("batch_size", _integer("batch_size (at least 2 for batch statistics)", self.batch_size, 2, 10**6))
        for name in ("seed", "data_seed"):
            put(name, _integer(name, getattr(self, name), 0, MAX_SEED))
        put("momentum", _real("momentum", self.momentum, 0, 1 - 1e-12))
        put("precision", _choice("precision", self.precision, PRECISIONS))
        put("weight_decay", _real("weight_decay", self.weight_decay, 0, 1e3))
        put("vgg_depth", _choice("vgg_depth", self.vgg_depth, VGG_DEPTHS))
        put("width", _real("width multiplier", self.width, 0, 64, low_open=True))
        for name in ("train_per_class", "test_per_class"):
            value = getattr(self, name)
            put(name, None if value is None else _integer(f"{name} (None for the whole set)", value, 1, 10**6))
        if not isinstance(self.augment, bool):
            raise ConfigError(f"augment must be True or False, not {self.augment!r}")
        put("loss", _choice("loss", self.loss, LOSSES))
        if self.model == "dln" and self.loss != "cross_entropy":
            raise ConfigError("the DLN's loss is its summed squared error; leave loss at its default")
        put("resnet_depth", _integer("resnet_depth", self.resnet_depth, 8, 10**4))
        if (self.resnet_depth - 2) % 6:
            raise ConfigError(f"resnet_depth must be 6n + 2 (20, 32, 56, 110), not {self.resnet_depth}")
        put("residual", _choice("residual", self.residual, RESIDUALS))
        if self.residual != "plain" and self.norm != "none":
            raise ConfigError(f"residual {self.residual!r} replaces the normalization; use norm 'none'")
        put("resnet_block", _choice("resnet_block", self.resnet_block, RESNET_BLOCKS))
        if self.residual == "fixup" and self.resnet_block != "post":
            raise ConfigError("Fixup's recipe is for post-activation blocks; use resnet_block 'post'")
        put("mlp_depth", _integer("mlp_depth", self.mlp_depth, 1, 10**4))
        put("mlp_width", _integer("mlp_width", self.mlp_width, 1, 10**6))
        put("dln_depth", _integer("dln_depth", self.dln_depth, 2, 10**4))
        put("dln_dim", _integer("dln_dim", self.dln_dim, 1, 10**5))
        put("dln_samples", _integer("dln_samples", self.dln_samples, 2, 10**8))
        put("bn_eps", _real("bn_eps", self.bn_eps, 0, 1, low_open=True))
        put("bn_momentum", _real("bn_momentum", self.bn_momentum, 0, 1))
        if isinstance(self.noise, dict):
            put("noise", NoiseParams(**self.noise))
        elif not isinstance(self.noise, NoiseParams):
            raise ConfigError(f"noise must be a NoiseParams, not {type(self.noise).__name__}")
        if isinstance(self.recipe, dict):
            put("recipe", Recipe(**self.recipe))
        elif not isinstance(self.recipe, Recipe):
            raise ConfigError(f"recipe must be a Recipe, not {type(self.recipe).__name__}")
        if self.norm == "composed":
            from bnlib.norms import named_norm

            named = named_norm(self.recipe)
            if named is not None:  # the same normalization: the same config, and so the same key
                put("norm", named)
                put("recipe", Recipe())
        elif self.recipe != Recipe():
            raise ConfigError(f"a recipe is read only with norm 'composed', not {self.norm!r}: set norm='composed'")
        if self.model == "resnet" and self.norm == "composed" and self.recipe.weights != "plain":
            raise ConfigError("the ResNet does not reparametrize its weights; use recipe weights 'plain'")
        put("ghost_batch", _integer("ghost_batch", self.ghost_batch, 2, 10**6))
        put("norm_groups", _integer("norm_groups", self.norm_groups, 1, 10**6))
        put("warmup_steps", _integer("warmup_steps", self.warmup_steps, 0, 10**9))
        if self.clip_norm is not None:
            put("clip_norm", _real("clip_norm", self.clip_norm, 0, 1e12, low_open=True))
        put("init", _choice("init", self.init, INITS))
        for name in ("fixed_weight_norm", "stop_dead"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.target_acc is not None:
            put("target_acc", _real("target_acc (a training accuracy)", self.target_acc, 0, 1, low_open=True))
        if self.target_loss is not None:
            put("target_loss", _real("target_loss", self.target_loss, 0, 1e300))
        if not self.can_die:  # the same run: the same config, and so the same key
            put("stop_dead", False)
        put("log_every", _integer("log_every", self.log_every, 1, 10**9))
        put("test_every", _integer("test_every (0: only at the end)", self.test_every, 0, 10**9))
        if self.divergence_bound is None:
            put("divergence_bound", 1e3 if self.on_cifar else 1e12)
        put("divergence_bound", _real("divergence_bound", self.divergence_bound, 0, 1e300, low_open=True))

    @property
    def can_die(self) -> bool:
        """Whether a run can be proven dead (see `stop_dead`): a chain of layers (VGG, the MLP) whose
        output for an example depends on that example alone (no batch statistics, no noise), trained
        by plain SGD (with momentum or weight decay, weights keep moving after their gradient
        vanishes)."""
        per_example = self.norm in PER_EXAMPLE or (self.norm == "composed" and self.recipe.per_example)
        return self.model in ("vgg", "mlp") and per_example and not self.momentum and not self.weight_decay

    @property
    def on_cifar(self) -> bool:
        """True for the models trained on CIFAR-10 (with cross-entropy); False for the DLN."""
        return self.model != "dln"

    @property
    def effective_batch_size(self) -> int:
        return self.dln_samples if self.model == "dln" else self.batch_size

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (and validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, not {type(data).__name__}")
        return cls(**data)

    def digest(self, *extra: Any) -> str:
        """A short stable hash of this config (and any extra JSON-able values). It hashes the fields
        that differ from RunConfig's defaults, so a field added later, at its default, leaves the
        key of every run stored before it as it was."""
        defaults = _defaults()
        changed = {k: v for k, v in self.to_dict().items() if v != defaults[k]}
        payload = json.dumps([changed, *extra], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@functools.cache
def _defaults() -> dict[str, Any]:
    return RunConfig().to_dict()
