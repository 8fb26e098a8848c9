"""Command line: `python -m bnlib run EXPERIMENT`, `sweep EXPERIMENT...`, `list`, `show EXPERIMENT`.

The book has its own entry point, `python -m bnlib.book` (the book layer, which the library never
imports).

Bad input ends with one line on stderr and a non-zero exit status, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from bnlib import interrupts
from bnlib.config import RunConfig
from bnlib.data import ENV_DATA, fetch, resolve_location
from bnlib.errors import BnlibError, report
from bnlib.experiments import SCALES, default_scale, experiment, experiment_names
from bnlib.norms import NORMS
from bnlib.records import Record, load_or_run, record_state, space_needed, stored_record
from bnlib.storage import check_cache
from bnlib.train import RunOptions


class OneLineParser(argparse.ArgumentParser):
    """argparse, with bad input said in one line (instead of its usage block), exit status 2."""

    def error(self, message: str) -> None:
        command = self.prog.split(" ")
        self.exit(2, f"bnlib: error: {message} (see {' '.join(command[:3])} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m bnlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def experiment_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("experiment", help="a named experiment, e.g. vgg-bn-lr0.1 (see `list`)")
        p.add_argument("--scale", choices=SCALES, help="smoke, cpu or paper (default: $BNLIB_SCALE, else cpu)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--lr", type=float, help="override the learning rate")
        p.add_argument("--steps", type=int, help="override the number of steps")
        p.add_argument("--norm", help=f"override the normalization: {', '.join(NORMS)}")
        p.add_argument("--data", help="CIFAR-10 location (default: $BNLIB_DATA, else torchvision's download)")

    run = sub.add_parser("run", help="train an experiment (or load its record) and print where it went")
    experiment_args(run)
    run.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    show = sub.add_parser("show", help="print an experiment's config and, if it has run, its record")
    experiment_args(show)
    listing = sub.add_parser("list", help="list the named experiments")
    listing.add_argument("--scale", choices=SCALES)
    many = sub.add_parser("sweep", help="run a grid of experiments as Ray tasks (this machine, or a cluster)")
    many.add_argument("experiments", nargs="+", help="named experiments, e.g. vgg-bn-lr0.1 vgg-std-lr0.1")
    many.add_argument("--scale", choices=SCALES, help="smoke, cpu or paper (default: $BNLIB_SCALE, else cpu)")
    many.add_argument("--lr", type=_numbers(float), help="learning rates, e.g. 0.01,0.1,1 (default: each experiment's)")
    many.add_argument("--norm", type=_numbers(str), help=f"normalizations, e.g. none,batch ({', '.join(NORMS)})")
    many.add_argument("--seeds", type=_numbers(int), default=[0], help="seeds, e.g. 0,1,2 (default: 0)")
    many.add_argument("--steps", type=int, help="override the number of steps")
    many.add_argument("--data", help="CIFAR-10 location (default: $BNLIB_DATA, else torchvision's download)")
    many.add_argument("--address", help="a running Ray cluster, host:port (default: a local one on this machine)")
    many.add_argument("--workers", type=_positive, help="local Ray: CPUs to use (default: all)")
    many.add_argument("--threads", type=_positive, default=1, help="CPU threads per run (default: 1)")
    many.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _positive(text: str) -> int:
    """A whole number of at least 1, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one of at least 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1; give at least 1")
    return value


def _numbers(kind: type):
    """A comma-separated list of `kind` values, for argparse."""

    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        try:
            return [kind(t) for t in items]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of {kind.__name__} values") from e

    return parse


def _config(args: argparse.Namespace) -> RunConfig:
    overrides = {k: v for k, v in (("lr", args.lr), ("steps", args.steps), ("norm", args.norm)) if v is not None}
    config = experiment(args.experiment, args.scale, seed=args.seed, **overrides)
    if config.on_cifar:
        kind, path = resolve_location(args.data)  # checks the data path before anything is written
        if kind == "url" and args.command == "run":  # a URL can only be checked by fetching it
            fetch(args.data or os.environ[ENV_DATA], path)
    return config


def _summary(config: RunConfig, scale: str) -> str:
    size = f"{config.dln_depth} x {config.dln_dim}" if config.model == "dln" else f"width {config.width:g}"
    return f"{config.model} {size} norm={config.norm} lr={config.lr:g} steps={config.steps} ({scale} scale)"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    interrupts.terminate_as_interrupt()
    try:
        if args.command == "list":
            scale = args.scale or default_scale()
            for name in experiment_names():
                print(f"{name:24s} {_summary(experiment(name, scale), scale)}")
            return 0
        scale = args.scale or default_scale()
        if args.command == "sweep":
            return _sweep(args, scale)
        config = _config(args)
        if args.command == "show":
            options = RunOptions(data=args.data)
            print(json.dumps(config.to_dict(), indent=1))
            state = record_state(config, options)  # reads only: nothing is decoded or trained
            if state != "stored":
                print(state)
                return 0
            record = stored_record(config, options)
            print(json.dumps({"status": record.status, "final": record.final, "path": str(record.path)}, indent=1))
            return 0
        options = RunOptions(data=args.data, device=args.device, progress=False if args.quiet else None)
        if stored_record(config, options) is None:  # a finished record loads from a read-only cache or store
            check_cache(space_needed([config], options))  # every check before the plan is printed
        print(f"{args.experiment}: {_summary(config, scale)}", flush=True)
        record = load_or_run(config, options=options)
        final = ", ".join(f"{k}={v:.4g}" for k, v in record.final.items())
        print(f"{_how(record)}: {record.status} in {record.wall_time_s:.1f} s of training: {final}")
        print(f"record: {record.path}")
        return 0
    except BnlibError as e:
        return report(e)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the run in progress saved its checkpoint
        return interrupts.say(e)


def _how(record: Record) -> str:
    """How `run` came by a record, in words."""
    if record.trained:
        return "trained"
    if record.waited:
        return "loaded: another process trained it while this one waited"
    where = "the published store" if record.origin == "published" else "the cache"
    return f"loaded from {where} (trained earlier)"


def _sweep(args: argparse.Namespace, scale: str) -> int:
    from bnlib.sweeps import grid, sweep

    changes = {"steps": args.steps} if args.steps is not None else {}
    configs = grid(args.experiments, scale, lrs=args.lr, norms=args.norm, seeds=args.seeds, **changes)
    result = sweep(
        configs,
        address=args.address,
        workers=args.workers,
        threads=args.threads,
        options=RunOptions(data=args.data),
        progress=not args.quiet,
        require_ray=True,
    )
    if args.quiet:
        print(result.summary())
    for outcome in result.outcomes:
        final = ", ".join(f"{k}={v:.4g}" for k, v in outcome.final.items())
        print(f"{outcome.job.name:32s} {outcome.state:8s} {outcome.status or outcome.error} {final}")
    return 1 if result.failed else 0
