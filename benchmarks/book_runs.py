"""Every run the book reads at a scale, with its probes: each run's training time and numbers.

    python benchmarks/book_runs.py [--scale cpu]

Runs go through the run records and the book's run plan (`bnlib.book.plan.jobs`, what the book
build trains up front), so after a build this only loads them and prints the recorded times, which
include the probes; missing runs are trained first, as one sweep. The measurement behind the cpu
scale's choice (book/scales.md).
"""

from __future__ import annotations

import argparse
import time

from bnlib.book import plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    args = parser.parse_args()
    started = time.perf_counter()
    plan.use(None)
    jobs = plan.jobs(args.scale)
    part_one = {job.config for job in plan.jobs(args.scale, plan.PART_ONE)}
    records = plan.records(jobs)
    totals = {"Part I": 0.0, "Part II": 0.0}
    print(f"{'run':58s} part  status    steps  probes  train time  train acc  test acc  train loss")
    for job, record in zip(jobs, records, strict=True):
        f = record.final
        part = "Part I" if job.config in part_one else "Part II"
        totals[part] += record.wall_time_s
        accs = f"{f['train_acc']:9.3f} {f['test_acc']:9.3f}" if "test_acc" in f else f"{'':9s} {'':9s}"
        print(
            f"{job.name:58s} {part[5:]:4s}  {record.status:8s} {f['steps']:6.0f}  {len(job.probes):6d}  "
            f"{record.wall_time_s:8.1f} s {accs}  {f['train_loss']:.4g}",
            flush=True,
        )
    print(", ".join(f"{part}: {seconds:.0f} s of training" for part, seconds in totals.items()))
    print(f"this call took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
