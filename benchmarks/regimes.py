"""The regime each of Part II's chapters trains in, read from the stored run records after a build
of the book: the calibration tables of book/scales.md (does the standard network leave its plateau
in the rate sweep, does sharpening reach the edge, does the deep unnormalized ResNet fail, where
does each MLP train), as each chapter computes them.

    python benchmarks/regimes.py [--scale cpu]

It trains nothing: a chapter whose runs are not all stored is named and skipped.
"""

from __future__ import annotations

import argparse

import pandas as pd

from bnlib.book import contents
from bnlib.book.chapters import ch07_learning_rates as ch07
from bnlib.book.chapters import ch09_curvature as ch09
from bnlib.book.chapters import ch10_initialisation as ch10
from bnlib.book.chapters import ch11_residual as ch11
from bnlib.book.chapters import ch12_batchnorm_apart as ch12
from bnlib.book.session import Session
from bnlib.errors import run_script


def show(title: str, frame: pd.DataFrame, columns: list[str]) -> None:
    print(f"\n### {title}\n")
    cells = frame[columns].map(lambda v: v.replace("|", "\\|") if isinstance(v, str) else v)  # "2|w|" in a table
    print(cells.to_markdown(index=False, floatfmt=".3g"))


def rate_sweep(session: Session) -> None:
    show("07: the rate sweep", ch07.table(session), ["network", "lr", "ended", f"steps to {ch07.TARGET:.0%}"])


def edge_of_stability(session: Session) -> None:
    columns = ["network", "step size", "seed", "2 / eta", "start / (2/eta)", "late / (2/eta)", "at the edge", "ended"]
    show("09: sharpening and the edge of stability", ch09.eos_table(session), [*columns, "steps"])


def depth(session: Session) -> None:
    columns = ["depth", "network", "best lr", f"steps to {ch10.TARGET:.0%}", "trains", "collapsed at init"]
    show("10: trainability by depth", ch10.trainability_table(session), columns)


def residual(session: Session) -> None:
    columns = ["variant", "batch", "lr", "ended", f"examples to {ch11.TARGET:.0%}"]
    show("11: ResNet-20 by batch and rate", ch11.train_table(session), columns)
    deep = pd.DataFrame(
        [
            {"network": f"ResNet-{ch11.DEEP[session.scale]}, {variant}", "seed": r.config.seed, "ended": r.status,
             "steps": int(r.final["steps"]), "highest training accuracy": r.highest()}
            for variant, records in ch11.deep_runs(session).items()
            for r in records
        ]
    )  # fmt: skip
    show("11: the deep network without normalization", deep, list(deep.columns))


def ladder(session: Session) -> None:
    frame = ch12.table(session)
    show("12: the ladder's rungs", frame, [c for c in frame.columns if c != "what it keeps or supplies"])


REGIMES = {ch07: rate_sweep, ch09: edge_of_stability, ch10: depth, ch11: residual, ch12: ladder}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    # the runs as the build trained them, with every chapter's probes
    session = contents.session(parser.parse_args().scale, whole=True)
    for chapter, regime in REGIMES.items():
        missing = session.missing((chapter.CHAPTER,))
        if missing:
            print(f"\n{chapter.CHAPTER.notebook}: {len(missing)} of its runs are not stored yet (build the book first)")
        else:
            regime(session)


if __name__ == "__main__":
    run_script(main)
