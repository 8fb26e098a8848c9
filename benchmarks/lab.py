"""The lab's composed normalization against the registered one it stands for, per training step, in
one run on this machine: the cost of composing (chapter 12's lab trains `ComposedNorm` for every
composition that is not a rung), and the steps of the lab's example compositions.

Each pair trains the same VGG at the cpu scale, one with the registered normalization (as the
ladder's rung trains) and one with `ComposedNorm` of its recipe (the config made by hand, since a
config stores a recipe that names a normalization as that name). Steps are timed in interleaved
rounds, so that a slow moment of the machine hits both alike; each number is the median over rounds.

    python benchmarks/lab.py [--steps 10] [--rounds 5]

Needs CIFAR-10 (BNLIB_DATA).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bnlib.book import lab
from bnlib.config import Recipe, RunConfig
from bnlib.errors import run_script
from bnlib.experiments import base_config
from bnlib.norms import NAMED_RECIPES
from bnlib.train import Run, RunOptions

PAIRS = ("batch", "batch_detached", "batch_center", "layer", "group", "ghost", "noisy_batch")


def composed(name: str) -> RunConfig:
    """The cpu-scale VGG of normalization `name`, with `ComposedNorm` of its recipe in its place."""
    config = base_config("vgg", "cpu", norm=name, ghost_batch=8)
    object.__setattr__(config, "norm", "composed")
    object.__setattr__(config, "recipe", Recipe(**NAMED_RECIPES[name]))
    return config


def step_seconds(run: Run, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        run.train_step(*run.task.next_batch())
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    options = RunOptions(progress=False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; VGG-16 at the cpu scale, batch 128")
    print(f"{'normalization':<16} {'registered':>11} {'composed':>10} {'ratio':>7}")
    for name in PAIRS:
        runs = [Run(base_config("vgg", "cpu", norm=name, ghost_batch=8), (), options), Run(composed(name), (), options)]
        for run in runs:
            step_seconds(run, 2)  # warm-up
        times = [[], []]
        for _ in range(args.rounds):
            for run, found in zip(runs, times, strict=True):
                found.append(step_seconds(run, args.steps))
        named, mine = (statistics.median(t) for t in times)
        print(f"{name:<16} {named * 1e3:>8.1f} ms {mine * 1e3:>7.1f} ms {mine / named:>6.2f}x")
    print("\nthe lab's example compositions (ComposedNorm, or a registered normalization where one is named):")
    for composition in lab.EXAMPLES:
        norm, changes = composition.network()
        changes.pop("warmup", None)
        run = Run(base_config("vgg", "cpu", norm=norm, lr=composition.lr, **changes), (), options)
        step_seconds(run, 2)
        seconds = statistics.median(step_seconds(run, args.steps) for _ in range(args.rounds))
        print(f"  {composition.label()}: {seconds * 1e3:.1f} ms per step")


if __name__ == "__main__":
    run_script(main)
