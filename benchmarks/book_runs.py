"""Every run the book reads at a scale: its training time (probes included), how it ended, and what
each chapter's own runs cost (a run several chapters read counts for the first that reads it).

    python benchmarks/book_runs.py [--scale cpu] [--runs]

It reads the stored run records (after a build of the book), trains nothing, and says which runs
are missing. The times are those recorded while the build trained the runs, two side by side on one
thread each; report them beside the machine's reference (`python benchmarks/throughput.py`).
"""

from __future__ import annotations

import argparse
import os

from bnlib.book import plan
from bnlib.book.chapters import CHAPTERS
from bnlib.records import stored_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--runs", action="store_true", help="a line per run, not only per chapter")
    args = parser.parse_args()
    os.environ[plan.ENV_BOOK] = "all"  # the runs with every chapter's probes, as the build trains them
    plan.use(None)
    seen: set = set()
    total, missing = 0.0, 0
    print(f"{'chapter':32s} {'runs':>5s} {'training time':>14s}  how they ended")
    for chapter in CHAPTERS:
        own = [job for job in plan.jobs(args.scale, (chapter,)) if job.config not in seen]
        seen |= {job.config for job in own}
        seconds, ended = 0.0, {}
        for job in own:
            record = stored_record(job.config)
            if record is None:
                missing += 1
                continue
            seconds += record.wall_time_s
            ended[record.status] = ended.get(record.status, 0) + 1
            if args.runs:
                print(f"  {job.name:70s} {record.status:8s} {record.final['steps']:6.0f} {record.wall_time_s:8.1f} s")
        total += seconds
        shown = ", ".join(f"{n} {status}" for status, n in sorted(ended.items()))
        print(f"{chapter.NOTEBOOK:32s} {len(own):5d} {seconds:12.0f} s  {shown}", flush=True)
    print(f"every run: {total:.0f} s of training ({total / 2 / 60:.1f} minutes on two workers)")
    if missing:
        print(f"{missing} runs are not stored yet: build the book first (python -m bnlib.book --scale {args.scale})")


if __name__ == "__main__":
    main()
