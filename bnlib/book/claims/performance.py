"""Chapter 01, does BatchNorm help? (Fig. 1)."""

from __future__ import annotations

from bnlib.book.claims.claim import Claim
from bnlib.book.tables import percent, steps_text
from bnlib.experiments import experiment

CHAPTER = "Does BatchNorm help?"


def faster_at_lr_01(scale: str) -> str:
    return (
        f"training accuracy after {experiment('vgg-bn-lr0.1', scale).steps:,} steps, 3 seeds: "
        f"BN {percent('vgg-bn-lr0.1', scale, 'train_acc')}, "
        f"standard {percent('vgg-std-lr0.1', scale, 'train_acc')}; "
        f"steps to 50%: BN {steps_text('vgg-bn-lr0.1', scale, 0.5)}, "
        f"standard {steps_text('vgg-std-lr0.1', scale, 0.5)}"
    )


def test_accuracy(scale: str) -> str:
    return (
        f"test accuracy, 3 seeds: BN {percent('vgg-bn-lr0.1', scale, 'test_acc')}, "
        f"standard {percent('vgg-std-lr0.1', scale, 'test_acc')}"
    )


def large_learning_rate(scale: str) -> str:
    return (
        f"training accuracy, 3 seeds: standard {percent('vgg-std-lr0.5', scale, 'train_acc')}, "
        f"BN {percent('vgg-bn-lr0.5', scale, 'train_acc')} (test {percent('vgg-bn-lr0.5', scale, 'test_acc')})"
    )


CLAIMS = [
    Claim(
        "BatchNorm makes VGG train faster at lr 0.1",
        "BN near 100% training accuracy by ~3k steps, standard by ~7-8k (Fig. 1)",
        faster_at_lr_01,
    ),
    Claim(
        "BatchNorm improves test accuracy (no augmentation)",
        "83% with BN, 80% without, at 15k steps (Fig. 1, appendix A)",
        test_accuracy,
    ),
    Claim(
        "At lr 0.5 the standard VGG does not train; with BN it does",
        "standard at chance (10%) for 15k steps; BN ~95-100% train, ~80% test (Fig. 1)",
        large_learning_rate,
    ),
]
