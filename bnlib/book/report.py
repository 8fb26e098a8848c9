"""How the book shows its claims: a chapter's closing paragraph and table, the results page's
tables, and the results table two builds are compared by (`python -m bnlib.book results`)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from IPython.display import HTML, Markdown

from bnlib.book.chapter import PART_TWO, Chapter
from bnlib.book.html import table_html
from bnlib.book.session import Session
from bnlib.experiments import base_config

PART_TWO_COLUMNS = {"claim": "the explanation predicts", "paper says": "its source says"}


def table_of(session: Session, chapters: Iterable[Chapter]) -> pd.DataFrame:
    """One row per claim: what the paper (or, in Part II, the explanation's source) says, what we
    measure, the rule at the session's scale and its verdict."""
    rows = []
    for chapter in chapters:
        for key, claim in chapter.claims.items():
            found = chapter.finding(key, session)
            rows.append(
                {
                    "chapter": chapter.title,
                    "claim": claim.claim,
                    "paper says": claim.paper,
                    "we measure": found.measured,
                    "rule": claim.rule_at(session.scale),
                    "verdict": str(found.verdict),
                }
            )
    return pd.DataFrame(rows)


def results(session: Session, chapters: Iterable[Chapter]) -> pd.DataFrame:
    """One row per claim, keyed by chapter and claim name, with its verdict and what we measure, then
    the rows of the chapters whose verdicts are not on claims (the bottom line's, on the
    explanations): the book's results in a form two builds can be compared by."""
    rows = []
    for chapter in chapters:
        for key in chapter.claims:
            found = chapter.finding(key, session)
            rows.append(
                {
                    "chapter": chapter.notebook,
                    "claim": key,
                    "verdict": str(found.verdict),
                    "we measure": " ".join(found.measured.split()),
                }
            )
        if chapter.verdicts is not None:
            rows += chapter.verdicts(session).assign(chapter=chapter.notebook).to_dict("records")
    return pd.DataFrame(rows, columns=["chapter", "claim", "verdict", "we measure"])


def scale_note(session: Session) -> str:
    """Which runs a table's numbers come from: the scale, the precision, and any reduction asked for."""
    precision = base_config("vgg", session.scale).precision
    reduced = session.reduced()
    asked = f" ({reduced}, as the parameters cell asked)" if reduced else ""
    return (
        f"Measured at the {session.scale} scale{asked}, in {precision}; the verdicts are computed from these runs by "
        "the rules."
    )


def chapter_table(chapter: Chapter, session: Session) -> HTML:
    """A chapter's closing table ('paper says / we measure'; in Part II 'the explanation predicts /
    we measure'), naming the scale it ran at."""
    frame = table_of(session, [chapter]).drop(columns="chapter")
    if chapter.part == PART_TWO:
        frame = frame.rename(columns=PART_TWO_COLUMNS)
    return HTML(table_html(frame, caption=scale_note(session), fold="rule"))


def findings(chapter: Chapter, session: Session) -> Markdown:
    """A chapter's closing paragraph: the outcome of each of its claims, one sentence each, from
    the same findings as its table."""
    sentences = [chapter.finding(key, session).summary for key in chapter.claims]
    return Markdown(f"**What we find at the {session.scale} scale.** " + " ".join(sentences))


def part_table(session: Session, part: int) -> pd.DataFrame:
    """The results page's table of one part: one row per claim of each of its chapters."""
    frame = table_of(session, [chapter for chapter in session.book if chapter.part == part])
    return frame.rename(columns=PART_TWO_COLUMNS) if part == PART_TWO else frame
