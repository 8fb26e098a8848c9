"""Wall time of a sweep run one config after another against the same sweep on local Ray workers.

    python benchmarks/sweep.py [--scale smoke] [--steps N] [--workers 2]

The grid is Fig. 1's four VGG experiments (standard and BatchNorm at lr 0.1 and 0.5) with two
seeds: eight runs. One after another, each run gets every core (what `load_or_run` in a loop does);
on Ray each of `--workers` workers runs one config on one thread. Each mode starts from an empty
run cache (the decoded data is shared, so neither pays for decoding); both are timed in one call,
so that the machine's speed is the same for both. Ray's start-up is part of its time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bnlib import sweep
from bnlib.data import load_cifar10
from bnlib.errors import run_script
from bnlib.storage import ENV_CACHE
from bnlib.sweeps import Job, grid, run_job
from bnlib.train import RunOptions

NAMES = ("vgg-std-lr0.1", "vgg-bn-lr0.1", "vgg-std-lr0.5", "vgg-bn-lr0.5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--steps", type=int, help="steps per run (default: the scale's)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    changes = {"steps": args.steps} if args.steps else {}
    configs = grid(NAMES, args.scale, seeds=(0, 1), **changes)
    cache = Path(tempfile.mkdtemp(prefix="bnlib-sweep-benchmark-"))
    os.environ[ENV_CACHE] = str(cache)
    try:
        load_cifar10()  # decoded once, into the shared cache, before either timing
        started = time.perf_counter()
        for config in configs:
            outcome = run_job(Job(config), RunOptions(), threads=os.cpu_count() or 1)
            assert "error" not in outcome, outcome["error"]
        sequential = time.perf_counter() - started
        shutil.rmtree(cache / "runs")
        result = sweep(configs, workers=args.workers, progress=False)
        assert not result.failed, result.summary()
        steps = configs[0].steps
        print(f"{len(configs)} runs of {steps:,} steps at the {args.scale} scale")
        print(f"  one after another, {os.cpu_count()} threads each: {sequential:7.1f} s")
        print(f"  Ray, {args.workers} workers of 1 thread:      {result.seconds:7.1f} s")
        print(f"  ratio: {sequential / result.seconds:.2f}x")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    run_script(main)
