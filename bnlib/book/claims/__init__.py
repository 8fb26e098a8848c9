"""The book's claims, one module per chapter: what the paper says, what we measure, and the verdict.

Each chapter module holds its `CHAPTER` title, its `CLAIMS` (each with the rule that decides it
and a named function of the scale that measures it from the runs, through `bnlib.book.plan`) and a
`findings(scale)` paragraph whose sentences are chosen by those verdicts. A chapter ends with
`chapter_table(claims.<module>, scale)`; the results page shows `table(scale)`.
"""

from __future__ import annotations

from types import ModuleType

import pandas as pd
from IPython.display import HTML

from bnlib.book.claims import (
    curvature,
    ics,
    initialisation,
    landscape,
    lr_range,
    noisy,
    normalizations,
    performance,
    residual,
    scale_invariance,
    theory,
    why,
)
from bnlib.book.claims.claim import Claim, Finding, Verdict, graded
from bnlib.book.html import table_html

# Part I: the paper's claims, chapter by chapter; Part II: what each explanation since predicts.
CHAPTERS: tuple[ModuleType, ...] = (performance, noisy, ics, landscape, normalizations, theory)
PART_TWO: tuple[ModuleType, ...] = (lr_range, scale_invariance, curvature, initialisation, residual)

__all__ = ["CHAPTERS", "PART_TWO", "Claim", "Finding", "Verdict", "chapter_table", "graded", "table", "why"]


def table_of(scale: str, chapters: tuple[ModuleType, ...] | list[ModuleType]) -> pd.DataFrame:
    """One row per claim: what the paper (or, in Part II, the explanation's source) says, what we
    measure, the rule and its verdict."""
    rows = []
    for chapter in chapters:
        for claim in chapter.CLAIMS:
            found = claim.finding(scale)
            rows.append(
                {
                    "claim": claim.claim,
                    "paper says": claim.paper,
                    "we measure": found.measured,
                    "rule": claim.rule,
                    "verdict": str(found.verdict),
                    "chapter": chapter.CHAPTER,
                }
            )
    return pd.DataFrame(rows)


PART_TWO_COLUMNS = {"claim": "the explanation predicts", "paper says": "its source says"}


def scale_note(scale: str) -> str:
    """Which runs a table's numbers come from: the scale, the precision, and any reduction asked for."""
    from bnlib.book import plan

    precision = plan.config("vgg-bn-lr0.1", scale).precision
    reduced = f" ({plan.reduced()}, as the parameters cell asked)" if plan.reduced() else ""
    return (
        f"Measured at the {scale} scale{reduced}, in {precision}; the verdicts are computed from these runs "
        "by the rules."
    )


def chapter_table(chapter: ModuleType, scale: str) -> HTML:
    """A chapter's closing table ('paper says / we measure'; in Part II 'the explanation predicts /
    we measure'), naming the scale it ran at."""
    frame = table_of(scale, [chapter]).drop(columns="chapter")
    if chapter in PART_TWO:
        frame = frame.rename(columns=PART_TWO_COLUMNS)
    return HTML(table_html(frame, caption=scale_note(scale)))


def table(scale: str, part: int = 1) -> pd.DataFrame:
    """The results table: one row per claim of every chapter of Part I (part=1) or Part II (part=2)."""
    if part == 2:
        return table_of(scale, PART_TWO).rename(columns=PART_TWO_COLUMNS)
    return table_of(scale, CHAPTERS)
