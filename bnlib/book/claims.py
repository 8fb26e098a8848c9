"""What a claim is, how its verdict is computed, and how a chapter shows its claims.

A claim is a sentence of the paper (or, in Part II, of an explanation's source), what the source
reports, the rule that decides it (rendered from the rule's named thresholds, so the words and the
code cannot drift apart) and the function that measures it at a scale and applies the rule. Every
verdict is computed when the page is built, from the records of the scale the page shows; none is
written in advance. A chapter module (`bnlib.book.chapters`) keeps its claims in `CLAIMS`, a dict
keyed by name, so other chapters (the bottom line) refer to a claim by chapter and key.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType

import pandas as pd
from IPython.display import HTML, Markdown

from bnlib.book.html import table_html
from bnlib.storage import read_json, write_json


class Verdict(str, Enum):
    REPRODUCED = "reproduced"
    PARTLY = "partly"
    NOT_REPRODUCED = "not reproduced"
    CANNOT_TELL = "cannot tell at this scale"
    # An identity that holds by algebra, checked numerically: it shows a mechanism is present (or a
    # step of a proof is right), never that it explains anything, and is never counted as evidence.
    BY_CONSTRUCTION = "holds by construction"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """What a claim's measurement found: the numbers (`measured`, for the table), the rule's
    verdict, and one sentence that states the outcome of this claim (`summary`, for the chapter's
    closing paragraph), written from the same numbers."""

    measured: str
    verdict: Verdict
    summary: str


@dataclass(frozen=True)
class Claim:
    """One claim: in the source's words, what the source reports (saying when a value is read off a
    figure by eye), the rule that decides it, and the named function that measures it at a scale."""

    claim: str
    paper: str
    rule: str
    measure: Callable[[str], Finding]

    def finding(self, scale: str) -> Finding:
        return _finding(self, scale)


@functools.cache
def _finding(claim: Claim, scale: str) -> Finding:
    """Measured once per process and scale: the chapter's prose and its table read the same finding.
    Within a book build, once per build: a page reads what an earlier page measured (`plan.ENV_FINDINGS`)."""
    shared = _shared(claim, scale)
    if shared is not None and shared.exists():
        found = read_json(shared)
        return Finding(found["measured"], Verdict(found["verdict"]), found["summary"])
    finding = claim.measure(scale)
    if not isinstance(finding, Finding):
        raise TypeError(f"{claim.measure.__name__} must return a Finding")
    if shared is not None:
        write_json(shared, {"measured": finding.measured, "verdict": finding.verdict.value, "summary": finding.summary})
    return finding


def _shared(claim: Claim, scale: str) -> Path | None:
    """Where this build's pages share the claim's finding at this scale and in this session (the
    parameters cell's fewer seeds or steps measure another finding); None outside a book build, and
    for a claim of no chapter."""
    from bnlib.book import plan
    from bnlib.book.chapters import CHAPTERS

    folder = os.environ.get(plan.ENV_FINDINGS)
    if not folder:
        return None
    name = next((f"{c.NOTEBOOK}.{key}" for c in CHAPTERS for key, known in c.CLAIMS.items() if known is claim), None)
    if name is None:
        return None
    session = hashlib.sha256(plan.reduced().encode()).hexdigest()[:12]
    return Path(folder) / f"{name}.{scale}.{session}.json"


def forget() -> None:
    """Forget every finding measured so far (they are measured again on the next request)."""
    _finding.cache_clear()


def graded(checks: Iterable[bool]) -> Verdict:
    """The usual rule: reproduced if every check holds, partly if some do, not reproduced if none does."""
    checks = list(checks)
    if all(checks):
        return Verdict.REPRODUCED
    return Verdict.PARTLY if any(checks) else Verdict.NOT_REPRODUCED


def majority(checks: Iterable[bool]) -> Verdict:
    """Reproduced if every check holds, partly if at least half do, not reproduced otherwise."""
    checks = list(checks)
    if all(checks):
        return Verdict.REPRODUCED
    return Verdict.PARTLY if sum(checks) >= len(checks) / 2 else Verdict.NOT_REPRODUCED


# ----------------------------------------------------------------------------- how chapters show claims


def table_of(scale: str, chapters: Iterable[ModuleType]) -> pd.DataFrame:
    """One row per claim: what the paper (or, in Part II, the explanation's source) says, what we
    measure, the rule and its verdict."""
    rows = []
    for chapter in chapters:
        for claim in chapter.CLAIMS.values():
            found = claim.finding(scale)
            rows.append(
                {
                    "chapter": chapter.TITLE,
                    "claim": claim.claim,
                    "paper says": claim.paper,
                    "we measure": found.measured,
                    "rule": claim.rule,
                    "verdict": str(found.verdict),
                }
            )
    return pd.DataFrame(rows)


def results(scale: str, chapters: Iterable[ModuleType]) -> pd.DataFrame:
    """One row per claim, keyed by chapter and claim name, with its verdict and what we measure (the
    book's results in a form two builds can be compared by)."""
    from bnlib.book import plan

    rows = []
    for chapter in chapters:
        plan.use(chapter)
        for key, claim in chapter.CLAIMS.items():
            found = claim.finding(scale)
            rows.append(
                {
                    "chapter": chapter.NOTEBOOK,
                    "claim": key,
                    "verdict": str(found.verdict),
                    "we measure": " ".join(found.measured.split()),
                }
            )
    plan.use()
    return pd.DataFrame(rows)


PART_TWO_COLUMNS = {"claim": "the explanation predicts", "paper says": "its source says"}


def scale_note(scale: str) -> str:
    """Which runs a table's numbers come from: the scale, the precision, and any reduction asked for."""
    from bnlib.book import plan
    from bnlib.experiments import base_config

    precision = base_config("vgg", scale).precision
    reduced = plan.reduced()
    asked = f" ({reduced}, as the parameters cell asked)" if reduced else ""
    return (
        f"Measured at the {scale} scale{asked}, in {precision}; the verdicts are computed from these runs by the rules."
    )


def chapter_table(chapter: ModuleType, scale: str) -> HTML:
    """A chapter's closing table ('paper says / we measure'; in Part II 'the explanation predicts /
    we measure'), naming the scale it ran at."""
    from bnlib.book.chapters import PART_TWO

    frame = table_of(scale, [chapter]).drop(columns="chapter")
    if chapter in PART_TWO:
        frame = frame.rename(columns=PART_TWO_COLUMNS)
    return HTML(table_html(frame, caption=scale_note(scale), fold="rule"))


def findings(chapter: ModuleType, scale: str) -> Markdown:
    """A chapter's closing paragraph: the outcome of each of its claims, one sentence each, from
    the same findings as its table."""
    sentences = [claim.finding(scale).summary for claim in chapter.CLAIMS.values()]
    return Markdown(f"**What we find at the {scale} scale.** " + " ".join(sentences))


def table(scale: str, part: int = 1) -> pd.DataFrame:
    """The results table: one row per claim of every chapter of Part I (part=1) or Part II (part=2)."""
    from bnlib.book.chapters import PART_ONE, PART_TWO

    if part == 2:
        return table_of(scale, PART_TWO).rename(columns=PART_TWO_COLUMNS)
    return table_of(scale, PART_ONE)
