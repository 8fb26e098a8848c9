"""`python -m bnlib.book`: build the book's HTML from its run store, or train, publish and verify
the store's runs, or re-apply the chapter template.

    python -m bnlib.book [--scale cpu]             # render the book (the published runs: no data needed)
    python -m bnlib.book train [--chapter 07]      # train what the book reads into your cache
    python -m bnlib.book train --missing           # only what the published store lacks
    python -m bnlib.book publish [--chapter 07]    # your cache's records into the repository's store/
    python -m bnlib.book verify [--run NAME] [--chapter 07] [--sample 3] [--steps 100]
    python -m bnlib.book results [--chapter 07] [--csv FILE]   # every claim's verdict, from the runs

Bad input ends with one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bnlib import interrupts
from bnlib.cli import OneLineParser
from bnlib.errors import BnlibError, report
from bnlib.experiments import SCALES

if TYPE_CHECKING:  # the book's modules load when a command needs them (the parser answers at once)
    from bnlib.book.chapter import Chapter
    from bnlib.book.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m bnlib.book", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, help="default: $BNLIB_SCALE, else cpu")
    parser.add_argument("--all", action="store_true", help="rebuild every page, not only changed ones")
    parser.add_argument(
        "--no-training",
        action="store_true",
        help="fail, naming them, if runs the book reads are in neither the store nor your cache (default: train them)",
    )
    parser.add_argument(
        "--apply-template", action="store_true", help="only rewrite each chapter's first cells and strip outputs"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="{train,publish,verify,results}", parser_class=OneLineParser
    )
    chapter_help = "a chapter by number (07) or notebook; several allowed (default: the whole book)"
    train = commands.add_parser("train", help="train what the book (or a chapter) reads into your cache")
    train.add_argument("--chapter", action="append", help=chapter_help)
    train.add_argument("--workers", type=int, help="runs side by side (default: this machine's cores)")
    train.add_argument("--missing", action="store_true", help="only what the published store lacks")
    publish = commands.add_parser("publish", help="copy your cache's records of what the book reads into store/")
    publish.add_argument("--chapter", action="append", help=chapter_help)
    verify = commands.add_parser("verify", help="retrain published runs and compare them with their records")
    verify.add_argument("--chapter", action="append", help=chapter_help)
    verify.add_argument("--run", action="append", default=[], help="a run by the start of its name; several allowed")
    verify.add_argument("--sample", type=int, help="this many runs drawn at random")
    verify.add_argument("--seed", type=int, default=0, help="the draw of --sample")
    verify.add_argument("--steps", type=int, help="retrain only the first steps (default: the whole run)")
    results = commands.add_parser("results", help="print every claim's verdict and what we measure, from the runs")
    results.add_argument("--chapter", action="append", help=chapter_help)
    results.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    interrupts.terminate_as_interrupt()
    from bnlib.book import build, template
    from bnlib.experiments import check_scale, default_scale

    try:
        scale = check_scale(args.scale) if args.scale else default_scale()
        if args.command is None and args.apply_template:
            for notebook in template.pages():
                template.apply_template(notebook)
            return 0
        if args.command is None:
            build.build(scale, rebuild_all=args.all, training=not args.no_training)
            return 0
        return _store_command(args, scale)
    except BnlibError as e:
        return report(e)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: what finished is kept, runs in flight checkpointed
        return interrupts.say(e)


def _store_command(args: argparse.Namespace, scale: str) -> int:
    from bnlib.book import contents, store
    from bnlib.errors import ConfigError

    chapters = contents.named(args.chapter)
    session = contents.session(scale, whole=True)  # every run with the union of every chapter's probes
    if args.command == "train":
        if args.workers is not None and args.workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {args.workers}")
        store.train_book(session, chapters, args.workers, args.missing)
    elif args.command == "results":
        _print_results(session, chapters, args.csv)
    elif args.command == "publish":
        done = store.publish(session, chapters)
        files, size = store.store_size(done.store)
        print(f"published {done.runs} new runs and {done.tables} new tables into {done.store}")
        print(f"the store: {files} files, {size / 2**20:.1f} MB on disk")
        if done.missing:
            print(
                f"{len(done.missing)} runs the book reads are not in your cache yet, e.g. {done.missing[0]} (records "
                "are found by your copy of CIFAR-10: set BNLIB_DATA as when they trained)"
            )
    else:
        for name, value in (("--sample", args.sample), ("--steps", args.steps)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, not {value}")
        comparisons = store.verify(session, chapters, args.run, args.sample, args.steps, args.seed)
        print(store.report(comparisons))
        return 1 if any(c.outcome == "differs" for c in comparisons) else 0
    return 0


def _print_results(session: Session, chapters: tuple[Chapter, ...] | None, csv: Path | None) -> None:
    """The results table as Markdown on stdout (and as CSV where asked), measured from the runs the
    reader would render: the published store, or the reader's own cache where it holds them."""
    from bnlib.book import report, store
    from bnlib.storage import atomic_write

    store.refuse_missing(session, chapters, "these claims read")
    chapters = chapters or session.book
    frame = report.results(session, chapters)
    on_claims = frame["claim"].isin([key for chapter in chapters for key in chapter.claims])
    summary = [_counted(frame[on_claims], "claims")]
    if not on_claims.all():  # the bottom line's verdicts are on the explanations, not on claims
        summary.append(_counted(frame[~on_claims], "explanations"))
    print("| " + " | ".join(frame.columns) + " |")
    print("|" + "---|" * len(frame.columns))
    for row in frame.itertuples(index=False):
        print("| " + " | ".join(str(value).replace("|", "\\|") for value in row) + " |")
    print("\n" + "; ".join(summary))
    if csv is not None:
        atomic_write(csv, lambda tmp: frame.to_csv(tmp, index=False))


def _counted(frame, what: str) -> str:
    """'17 reproduced, 16 partly ... (61 claims)'."""
    counts = frame["verdict"].value_counts()
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items()) + f" ({len(frame)} {what})"


if __name__ == "__main__":
    raise SystemExit(main())
