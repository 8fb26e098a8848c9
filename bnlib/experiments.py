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
        "resnet": dict(width=0.25, train_per_class=1000, test_per_class=200, steps=400, test_every=100, log_every=10),
        "mlp": dict(mlp_width=256, train_per_class=1000, test_per_class=200, steps=500, test_every=100, log_every=10),
    },
    "smoke": {
        "vgg": dict(width=0.0625, train_per_class=20, test_per_class=10, steps=12, test_every=6, log_every=3),
        "dln": dict(dln_samples=100, steps=12, log_every=3),
        "resnet": dict(width=0.125, train_per_class=20, test_per_class=10, steps=12, test_every=6, log_every=3),
        "mlp": dict(mlp_width=32, train_per_class=20, test_per_class=10, steps=12, test_every=6, log_every=3),
    },
}

# Short names used in experiment names -> bnlib.norms registry names.
NORM_SHORT = {
    "std": "none",
    "bn": "batch",
    "noisybn": "noisy_batch",
    "stdnoise": "noise",
    "l1": "l1",
    "l2": "l2",
    "linf": "linf",
}

# The named experiments: (model, short norm, learning rate, augmentation). The book's run plan
# (bnlib.book.plan) says which of them it runs with which seeds and probes.
_BOOK = [
    *[("vgg", n, lr, False) for n in ("std", "bn") for lr in (0.1, 0.5, 0.01)],
    *[("vgg", n, 0.1, False) for n in ("noisybn", "stdnoise", "l1", "l2", "linf")],
    *[("vgg", n, 0.1, True) for n in ("std", "bn")],
    *[("dln", n, lr, False) for n in ("std", "bn") for lr in (1e-6, 1e-7)],
    *[("dln", n, 1e-6, False) for n in ("l1", "l2", "linf")],
]


def _name(model: str, norm: str, lr: float, augment: bool) -> str:
    lr_text = f"{lr:g}".replace("e-0", "e-")  # 1e-06 -> 1e-6
    return f"{model}-{norm}{'-aug' if augment else ''}-lr{lr_text}"


EXPERIMENTS: dict[str, tuple[str, str, float, bool]] = {_name(*e): e for e in _BOOK}


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


def experiment(name: str, scale: str | None = None, seed: int = 0, **changes: Any) -> RunConfig:
    """The RunConfig of a named experiment at a scale (default: `default_scale()`)."""
    if name not in EXPERIMENTS:
        close = [n for n in EXPERIMENTS if n.split("-")[:2] == name.split("-")[:2]] or experiment_names()
        raise ConfigError(f"unknown experiment {name!r}; try one of {', '.join(close)} (see `python -m bnlib list`)")
    model, norm, lr, augment = EXPERIMENTS[name]
    named = {"norm": NORM_SHORT[norm], "lr": lr, "augment": augment, "seed": seed}
    return base_config(model, scale, **{**named, **changes})
