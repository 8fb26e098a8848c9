"""The book's claims, one module per chapter: what the paper says, and what we measure.

Each chapter module holds its `CHAPTER` title and its `CLAIMS`, each measured by a named function
of the scale that reads the runs (through `bnlib.book.plan`, training whatever is missing). A
chapter ends with `chapter_table(claims.<module>, scale)`; the results page shows `table(scale)`.
"""

from __future__ import annotations

from types import ModuleType

import pandas as pd

from bnlib.book.claims import ics, landscape, noisy, normalizations, performance, theory
from bnlib.book.claims.claim import Claim

CHAPTERS: tuple[ModuleType, ...] = (performance, noisy, ics, landscape, normalizations, theory)

__all__ = ["CHAPTERS", "Claim", "chapter_table", "table"]


def chapter_table(chapter: ModuleType, scale: str) -> str:
    """A chapter's closing 'paper says / we measure' table, as HTML naming the scale it ran at."""
    table = table_of(scale, [chapter]).drop(columns="chapter")
    return f"<p><em>Measured at the {scale} scale.</em></p>" + table.to_html(index=False)


def table(scale: str) -> pd.DataFrame:
    """The results table: one row per claim of every chapter."""
    return table_of(scale, CHAPTERS)


def table_of(scale: str, chapters: tuple[ModuleType, ...] | list[ModuleType]) -> pd.DataFrame:
    rows = [
        {"claim": c.claim, "paper says": c.paper, "we measure": c.measure(scale), "chapter": chapter.CHAPTER}
        for chapter in chapters
        for c in chapter.CLAIMS
    ]
    return pd.DataFrame(rows)
