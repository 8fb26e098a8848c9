"""Run configuration: every setting that can change a run's result, and nothing else.

A `RunConfig` is frozen and hashable; its JSON form (plus the record schema version and the data
copy) is the key of the run record, so two chapters asking for the same config share one run.
Settings that cannot change the result (device, progress bar, checkpoint interval) live in
`bnlib.train.RunOptions` instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bnlib.errors import ConfigError

MODELS = ("vgg", "dln")
VGG_DEPTHS = (11, 13, 16, 19)


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

    def __post_init__(self) -> None:
        if self.n_mu < 0 or self.r_mu < 0 or self.r_sigma < 0:
            raise ConfigError(
                f"noise constants n_mu, r_mu, r_sigma must be >= 0 (got {self.n_mu}, "
                f"{self.r_mu}, {self.r_sigma}); use 0 to switch a part of the noise off"
            )
        if self.n_sigma < 1:
            raise ConfigError(f"noise constant n_sigma must be >= 1 since sigma ~ U(1, n_sigma) (got {self.n_sigma})")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run. Build one with `bnlib.experiment(name, scale)`."""

    model: str = "vgg"  # "vgg" (CIFAR-10) or "dln" (deep linear network on synthetic data)
    norm: str = "none"  # a name registered in bnlib.norms.NORMS
    lr: float = 0.1
    steps: int = 15_000
    batch_size: int = 128  # the DLN always trains full batch: batch_size is then dln_samples
    seed: int = 0  # initialisation, batch order, augmentation and noise
    data_seed: int = 0  # which balanced subset of CIFAR-10, and the DLN's synthetic data
    momentum: float = 0.0
    weight_decay: float = 0.0

    # VGG on CIFAR-10
    vgg_depth: int = 16  # 16 = 13 conv layers + a linear head (the paper's layer numbering)
    width: float = 1.0  # channel multiplier: 1.0 is 64..512 channels
    train_per_class: int | None = None  # balanced training subset; None = all 5,000 per class
    test_per_class: int | None = None  # balanced test subset; None = all 1,000 per class
    augment: bool = False  # random crop (pad 4) + horizontal flip

    # Deep linear network
    dln_depth: int = 25
    dln_dim: int = 10
    dln_samples: int = 1000

    # Normalization details the paper leaves open
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    noise: NoiseParams = field(default_factory=NoiseParams)

    # Measurement schedule and divergence rule
    log_every: int = 10  # training loss/accuracy are kept every step; checked for divergence this often
    test_every: int = 500  # test accuracy (VGG); 0 = only at the end
    # A training loss above this (or non-finite) ends the run. None: 1e3 for VGG's cross-entropy
    # (chance is 2.3), 1e12 for the DLN's summed squared error (about 1e5 at initialisation).
    divergence_bound: float | None = None

    def __post_init__(self) -> None:
        from bnlib.norms import NORMS  # late import: norms depends on torch, config should not

        def bad(message: str) -> None:
            raise ConfigError(message)

        if self.model not in MODELS:
            bad(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.norm not in NORMS:
            bad(f"unknown normalization {self.norm!r}; choose one of {', '.join(NORMS)}")
        if not self.lr > 0:
            bad(f"learning rate must be positive (got {self.lr}); pass e.g. --lr 0.1")
        if self.steps <= 0:
            bad(f"steps must be a positive integer (got {self.steps}); pass e.g. --steps 100")
        if self.batch_size <= 1:
            bad(f"batch_size must be at least 2 for batch statistics (got {self.batch_size})")
        if self.momentum < 0 or self.weight_decay < 0:
            bad("momentum and weight_decay must be >= 0")
        if self.vgg_depth not in VGG_DEPTHS:
            bad(f"vgg_depth must be one of {VGG_DEPTHS} (got {self.vgg_depth})")
        if not self.width > 0:
            bad(f"width multiplier must be positive (got {self.width})")
        for name in ("train_per_class", "test_per_class"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                bad(f"{name} must be positive or None for the whole set (got {value})")
        if self.dln_depth < 2 or self.dln_dim < 1 or self.dln_samples < 2:
            bad("the DLN needs dln_depth >= 2, dln_dim >= 1 and dln_samples >= 2")
        if self.log_every <= 0 or self.test_every < 0:
            bad("log_every must be positive and test_every >= 0")
        if self.divergence_bound is None:
            object.__setattr__(self, "divergence_bound", 1e3 if self.model == "vgg" else 1e12)
        if not self.divergence_bound > 0:
            bad(f"divergence_bound must be positive (got {self.divergence_bound})")
        if not isinstance(self.noise, NoiseParams):
            object.__setattr__(self, "noise", NoiseParams(**dict(self.noise)))

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown config fields {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        if "noise" in data:
            data["noise"] = NoiseParams(**data["noise"])
        return cls(**data)

    def digest(self, *extra: Any) -> str:
        """A short stable hash of this config (and any extra JSON-able values)."""
        payload = json.dumps([self.to_dict(), *extra], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
