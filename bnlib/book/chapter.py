"""What a chapter is: its notebook, its title, the runs it reads and its claims, in one typed value.

Each chapter module (`bnlib.book.chapters.chNN_name`) ends with its `CHAPTER`; the book's table of
contents (`bnlib.book.contents`) lists them. No chapter imports another: the runs several chapters
read are in `bnlib.book.runs`, the measurements they share in `bnlib.book.measures`, and the bottom
line refers to the claims it weighs by chapter and key, through the session's book.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from bnlib.book.claims import Claim, Finding, Verdict
from bnlib.book.plan import Read
from bnlib.book.session import Session
from bnlib.storage import read_json, write_json

PART_ONE, PART_TWO, BOTTOM_LINE = 1, 2, 3  # the paper's claims; the explanations since; the answer


@dataclass(frozen=True, eq=False)  # a chapter is itself: compared and hashed by identity
class Chapter:
    """A chapter: its notebook (`notebooks/<notebook>.ipynb`), title and part; the runs it reads in
    a session (`reads`: every run, seed and probe its measurements load, declared once); its claims
    keyed by name; and, for a chapter whose verdicts are not on claims (the bottom line, on the
    explanations), `verdicts`: those rows (columns "claim", "verdict", "we measure")."""

    notebook: str
    title: str
    part: int
    reads: Callable[[Session], list[Read]]
    claims: Mapping[str, Claim] = field(default_factory=dict)
    verdicts: Callable[[Session], pd.DataFrame] | None = None

    def finding(self, key: str, session: Session) -> Finding:
        """What claim `key` measures in a session: measured once per session (the chapter's prose and
        its table read the same finding); within a book build, once per build (a page reads what an
        earlier page measured, through `session.findings`)."""
        return _finding(self, key, session)

    def __repr__(self) -> str:
        return f"Chapter({self.notebook!r})"


@functools.cache
def _finding(chapter: Chapter, key: str, session: Session) -> Finding:
    claim = chapter.claims[key]
    shared = None
    if session.findings is not None:
        reduced = hashlib.sha256(session.reduced().encode()).hexdigest()[:12]
        shared = session.findings / f"{chapter.notebook}.{key}.{session.scale}.{reduced}.json"
    if shared is not None and shared.exists():
        found = read_json(shared)
        return Finding(found["measured"], Verdict(found["verdict"]), found["summary"])
    finding = claim.measure(session)
    if not isinstance(finding, Finding):
        raise TypeError(f"{claim.measure.__name__} must return a Finding")
    if shared is not None:
        write_json(shared, {"measured": finding.measured, "verdict": finding.verdict.value, "summary": finding.summary})
    return finding


def forget() -> None:
    """Forget every finding measured so far (they are measured again on the next request)."""
    _finding.cache_clear()
