"""Train every run the book needs at a scale and print each run's time and numbers.

    python benchmarks/book_runs.py [--scale cpu] [--optional]

Runs go through the run records, so a second call only loads them (and prints the recorded
times). This is the measurement behind the cpu scale's choice (book/scales.md).
"""

from __future__ import annotations

import argparse
import time

from bnlib.experiments import book_runs, experiment
from bnlib.records import load_or_run
from bnlib.train import RunOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--optional", action="store_true", help="also the augmented runs")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    total = 0.0
    print(f"{'experiment':22s} seed  status    steps  train time   train acc  test acc  train loss")
    for name, seed in book_runs(args.optional):
        record = load_or_run(
            experiment(name, args.scale, seed=seed), options=RunOptions(data=args.data, progress=False)
        )
        f = record.final
        total += record.wall_time_s
        accs = f"{f['train_acc']:9.3f} {f['test_acc']:9.3f}" if "test_acc" in f else f"{'':9s} {'':9s}"
        print(
            f"{name:22s} {seed:4d}  {record.status:8s} {f['steps']:6.0f} {record.wall_time_s:9.1f} s "
            f"{accs}  {f['train_loss']:.4g}",
            flush=True,
        )
    print(f"sum of recorded training times: {total:.0f} s; this call took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
