"""Scales and named experiments: one name (e.g. "vgg-bn-lr0.1") maps to a RunConfig at every scale.

Scales trade size for time and keep the paper's depth and layer numbering throughout:
  paper  the paper's protocol exactly (appendix A): VGG-16 (13 conv layers) at full width on all of
         CIFAR-10, batch 128, 15,000 steps; the DLN with 25 layers of 10 x 10, 1,000 samples, full
         batch, 10,000 steps. For a GPU.
  cpu    the default everywhere and what the published book shows: the paper's depth and layer
         numbering, a narrower VGG, a balanced subset of CIFAR-10 and fewer steps, chosen by
         measurement (book/scales.md) so that the standard VGG leaves its plateau (the paper's
         regime) and the book builds on 2 CPU cores in its budget.
  smoke  seconds per run, for tests; its numbers mean nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bnlib.config import RunConfig
from bnlib.errors import ConfigError

SCALES = ("smoke", "cpu", "paper")
ENV_SCALE = "BNLIB_SCALE"

# Per-scale settings of each model. Learning rates are never scaled: they are the paper's.
_SCALE_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "vgg": dict(width=1.0, steps=15_000, test_every=500, log_every=50),
        "dln": dict(steps=10_000, log_every=50),
        # Part II's models, at their sources' sizes (ResNet-20 at full width, MLPs 512 wide)
        "resnet": dict(width=1.0, steps=15_000, test_every=500, log_every=50),
        "mlp": dict(mlp_width=512, steps=5000, test_every=500, log_every=50),
    },
    "cpu": {
        "vgg": dict(width=0.125, train_per_class=1000, test_per_class=200, steps=3000, test_every=100, log_every=10),
        "dln": dict(steps=2500, log_every=10),
        "resnet": dict(width=0.25, train_per_class=1000, test_per_class=200, steps=1600, test_every=100, log_every=10),
        "mlp": dict(mlp_width=256, train_per_class=1000, test_per_class=200, steps=1000, test_every=100, log_every=10),
    },
    "smoke": {
        "vgg": dict(width=0.0625, train_per_class=20, test_per_class=10, steps=12, test_every=6, log_every=3),
        "dln": dict(dln_samples=100, steps=12, log_every=3),
        "resnet": dict(width=0.125, train_per_class=20, test_per_class=10, steps=12, test_every=6, log_every=3),
        "mlp": dict(mlp_width=32, train_per_class=20, test_per_class=10, steps=12, test_every=6, log_every=3),
    },
}

# The short name of each normalization in run names ("vgg-bn-lr0.1"); a normalization without
# one is named by its registry name ("vgg-layer-lr0.1").
NORM_SHORT = {
    "none": "std",
    "batch": "bn",
    "noisy_batch": "noisybn",
    "noise": "stdnoise",
    "l1": "l1",
    "l2": "l2",
    "linf": "linf",
}


@dataclass(frozen=True)
class Experiment:
    """A run named by typed values: the model, its normalization, the learning rate, augmentation,
    and any other `RunConfig` fields that differ from the scale's base config (`changes`, as sorted
    (field, value) pairs; build them with `Experiment.of(..., field=value)` or `but(...)`).

    `config(scale, seed)` is the run's `RunConfig` at a scale; `name` is for display only, and for
    the named experiments ("vgg-bn-lr0.1") it is the name the CLI accepts. Nothing parses names."""

    model: str
    norm: str
    lr: float
    augment: bool = False
    changes: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, model: str, norm: str, lr: float, augment: bool = False, **changes: Any) -> Experiment:
        return cls(model, norm, float(lr), augment, tuple(sorted(changes.items())))

    def but(self, **changes: Any) -> Experiment:
        """The same experiment with some fields (its own or any RunConfig field) changed."""
        own = {k: changes.pop(k) for k in ("model", "norm", "lr", "augment") if k in changes}
        merged = dict(self.changes) | changes
        return Experiment.of(
            own.get("model", self.model),
            own.get("norm", self.norm),
            own.get("lr", self.lr),
            own.get("augment", self.augment),
            **merged,
        )

    def config(self, scale: str | None = None, seed: int = 0, **changes: Any) -> RunConfig:
        """The RunConfig of this experiment at a scale (default: `default_scale()`)."""
        named = {"norm": self.norm, "lr": self.lr, "augment": self.augment, "seed": seed}
        return base_config(self.model, scale, **{**named, **dict(self.changes), **changes})

    @property
    def name(self) -> str:
        """For display: "vgg-bn-lr0.1", then any other changes ("vgg-bn-lr0.1 (weight_lr=10)")."""
        lr = rate_text(self.lr)
        short = NORM_SHORT.get(self.norm, self.norm)
        base = f"{self.model}-{short}{'-aug' if self.augment else ''}-lr{lr}"
        if not self.changes:
            return base
        return f"{base} ({', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in self.changes)})"

    def __str__(self) -> str:
        return self.name


def rate_text(lr: float) -> str:
    """A learning rate as the experiment names write it: 0.1, 1e-6 (not 1e-06)."""
    return f"{lr:g}".replace("e-0", "e-")


# The named experiments (the CLI's and the book's Part I). The book's chapters
# (bnlib.book.chapters) say which of them they read, with which seeds and probes.
_BOOK = [
    *[Experiment("vgg", n, lr) for n in ("none", "batch") for lr in (0.1, 0.5, 0.01)],
    *[Experiment("vgg", n, 0.1) for n in ("noisy_batch", "noise", "l1", "l2", "linf")],
    *[Experiment("vgg", n, 0.1, augment=True) for n in ("none", "batch")],
    *[Experiment("dln", n, lr) for n in ("none", "batch") for lr in (1e-6, 1e-7)],
    *[Experiment("dln", n, 1e-6) for n in ("l1", "l2", "linf")],
]
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in _BOOK}


def experiment_names() -> list[str]:
    return list(EXPERIMENTS)


def default_scale() -> str:
    """$BNLIB_SCALE if set, else "cpu": the scale the published pages show, on a GPU as on a CPU.
    The paper's full protocol ("paper") is chosen explicitly."""
    return check_scale(os.environ.get(ENV_SCALE) or "cpu")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)} (or unset {ENV_SCALE})")
    return scale


def base_config(model: str, scale: str | None = None, **changes: Any) -> RunConfig:
    """The scale's config for a model ("vgg", "dln", or Part II's "resnet" and "mlp") with the
    paper's defaults, then `changes`."""
    scale = check_scale(scale) if scale else default_scale()
    settings: dict[str, Any] = {"model": model, **_SCALE_SETTINGS[scale][model]}
    if model == "dln":
        settings["lr"] = 1e-6
    return RunConfig(**{**settings, **changes})


def named(name: str) -> Experiment:
    """A named experiment ("vgg-bn-lr0.1"), or a one-line error listing the close ones."""
    if name not in EXPERIMENTS:
        close = [n for n in EXPERIMENTS if n.startswith(name.partition("-lr")[0])] or experiment_names()
        raise ConfigError(f"unknown experiment {name!r}; try one of {', '.join(close)} (see `python -m bnlib list`)")
    return EXPERIMENTS[name]


def experiment(name: str, scale: str | None = None, seed: int = 0, **changes: Any) -> RunConfig:
    """The RunConfig of a named experiment at a scale (default: `default_scale()`)."""
    return named(name).config(scale, seed, **changes)
