"""Chapter 02, noisy BatchNorm (Algorithm 1, Figs. 2 and 8)."""

from __future__ import annotations

from bnlib.book.claims.claim import Claim
from bnlib.book.tables import moment_changes, percent
from bnlib.experiments import experiment

CHAPTER = "Noisy BatchNorm"


def trains_like_batchnorm(scale: str) -> str:
    return (
        f"training accuracy after {experiment('vgg-bn-lr0.1', scale).steps:,} steps: "
        f"BN {percent('vgg-bn-lr0.1', scale, 'train_acc')} (3 seeds), "
        f"noisy BN {percent('vgg-noisybn-lr0.1', scale, 'train_acc')}, "
        f"standard {percent('vgg-std-lr0.1', scale, 'train_acc')} (3 seeds)"
    )


def unstable_moments(scale: str) -> str:
    parts = []
    for label, name in (("noisy BN", "vgg-noisybn-lr0.1"), ("BN", "vgg-bn-lr0.1"), ("standard", "vgg-std-lr0.1")):
        changes = moment_changes(name, scale)["abs_change_mean"]
        parts.append(f"{label} {changes.median():.2g} ({changes.max():.2g})")
    return "|change of the mean| between probed steps, layers #2, #9, #13, median (largest): " + ", ".join(parts)


def noise_without_batchnorm(scale: str) -> str:
    return f"standard + noise: training accuracy {percent('vgg-stdnoise-lr0.1', scale, 'train_acc')}"


CLAIMS = [
    Claim(
        "BatchNorm with noise after it still trains about as fast as BatchNorm, and faster than standard",
        "noisy BN close to BN in training accuracy; both clearly faster than standard (Fig. 2)",
        trains_like_batchnorm,
    ),
    Claim(
        "The noise makes the activation moments far less stable than in the standard network",
        "noisy BN moments jump by up to ~1 between steps, BN ~0, standard ~0.1 (Fig. 8)",
        unstable_moments,
    ),
    Claim(
        "The same noise without BatchNorm prevents training",
        "stated in the text (Section 2.1), no figure",
        noise_without_batchnorm,
    ),
]
