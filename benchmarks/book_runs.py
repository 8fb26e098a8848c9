"""Every run the book reads at a scale: its training time (probes included), how it ended, and what
each chapter's own runs cost (a run several chapters read counts for the first that reads it).

    python benchmarks/book_runs.py [--scale cpu] [--runs] [--timed]

It reads the run records the book reads (the reader's cache, else the published store), trains
nothing, and says which runs are missing. The times are those recorded while the runs trained,
whatever else the machine was doing then (a record trained beside the test suite took up to four
times as long). `--timed` adds what each run costs on this machine now: its step, probes included,
timed on one thread (`bnlib.book.plan.step_seconds`, once per configuration and probe set), times
the steps its record ran. Two runs side by side, as the build trains them, take 5-10% longer than that. Report either
beside the machine's reference (`python benchmarks/throughput.py`).
"""

from __future__ import annotations

import argparse

import torch

from bnlib.book import contents, plan
from bnlib.errors import run_script
from bnlib.experiments import SCALES
from bnlib.probes.hook import probe_key
from bnlib.records import stored_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu", choices=SCALES)
    parser.add_argument("--runs", action="store_true", help="a line per run, not only per chapter")
    parser.add_argument("--timed", action="store_true", help="also time each run's step on this machine")
    args = parser.parse_args()
    session = contents.session(args.scale, whole=True)  # the runs with every chapter's probes, as the build trains them
    torch.set_num_threads(1)  # as the build trains each run
    step_cost: dict[tuple, float] = {}
    seen: set = set()
    total, timed_total, missing = 0.0, 0.0, 0
    timed_header = f" {'timed now':>10s}" if args.timed else ""
    print(f"{'chapter':32s} {'runs':>5s} {'recorded':>10s} {'2 workers':>10s}{timed_header}  how they ended")
    for chapter in contents.CHAPTERS:
        own = [job for job in session.jobs((chapter,)) if job.config not in seen]
        seen |= {job.config for job in own}
        seconds, timed, ended = 0.0, 0.0, {}
        for job in own:
            record = stored_record(job.config)
            if record is None:
                missing += 1
                continue
            seconds += record.wall_time_s
            ended[record.status] = ended.get(record.status, 0) + 1
            now = ""
            if args.timed:
                key = (job.config.replace(seed=0), tuple(map(probe_key, job.probes)))
                if key not in step_cost:
                    step_cost[key] = plan.step_seconds(job.config, list(job.probes), steps=4)
                run_timed = step_cost[key] * record.final["steps"]
                timed += run_timed
                now = f" {run_timed:8.1f} s"
            if args.runs:
                steps = record.final["steps"]
                print(f"  {job.name:70s} {record.status:8s} {steps:6.0f} {record.wall_time_s:8.1f} s{now}")
        total += seconds
        timed_total += timed
        shown = ", ".join(f"{n} {status}" for status, n in sorted(ended.items()))
        timed_column = f" {timed:8.0f} s" if args.timed else ""
        workers = f"{seconds / 2 / 60:6.1f} min"
        print(f"{chapter.notebook:32s} {len(own):5d} {seconds:8.0f} s {workers}{timed_column}  {shown}", flush=True)
    print(f"every run, recorded: {total:.0f} s of training ({total / 2 / 60:.1f} minutes on two workers)")
    if args.timed:
        print(f"every run, timed now: {timed_total:.0f} s ({timed_total / 2 / 60:.1f} minutes on two workers)")
    if missing:
        print(
            f"{missing} runs are in neither your cache nor the store: train them "
            f"(python -m bnlib.book --scale {args.scale} train --missing) and publish them"
        )


if __name__ == "__main__":
    run_script(main)
