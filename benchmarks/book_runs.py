"""Train every run the book needs at a scale, with its probes, and print each run's time and numbers.

    python benchmarks/book_runs.py [--scale cpu] [--optional]

Runs go through the run records (bnlib.book.plan, the book's run plan), so a second call only loads
them and prints the recorded times, which include the probes. This is the measurement behind the
cpu scale's choice (book/scales.md).
"""

from __future__ import annotations

import argparse
import time

from bnlib.book import plan
from bnlib.book.plan import book_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--optional", action="store_true", help="also the augmented runs")
    args = parser.parse_args()
    started = time.perf_counter()
    total = 0.0
    print(f"{'experiment':22s} seed  status    steps  train time   train acc  test acc  train loss")
    for name, seed in book_runs(args.optional):
        record = plan.get(name, args.scale, seed)
        f = record.final
        total += record.wall_time_s
        accs = f"{f['train_acc']:9.3f} {f['test_acc']:9.3f}" if "test_acc" in f else f"{'':9s} {'':9s}"
        print(
            f"{name:22s} {seed:4d} {len(record.probes)} probes  {record.status:8s} {f['steps']:6.0f} "
            f"{record.wall_time_s:9.1f} s "
            f"{accs}  {f['train_loss']:.4g}",
            flush=True,
        )
    for k in plan.NOISE_GRID:  # the noisy-BN widget's grid (0 and 1 are book runs, loaded again)
        record = plan.noisy_run(plan.scaled_noise(k), args.scale)
        total += record.wall_time_s
        print(f"noisy BN, noise x{k:g}, {record.final['steps']:.0f} steps: {record.wall_time_s:.1f} s", flush=True)
    print(f"sum of recorded training times: {total:.0f} s; this call took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
