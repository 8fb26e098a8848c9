"""What a claim is and how its verdict is computed.

A claim is a sentence of the paper (or, in Part II, of an explanation's source), what the source
reports, the rule that decides it (rendered from the rule's named thresholds and, where it names
layers, rates or batches, from the scale's, so the words and the code cannot drift apart) and the
function that measures it in a session and applies the rule. Every verdict is computed when the
page is built, from the records of the scale the page shows; none is written in advance. A chapter
(`bnlib.book.chapter.Chapter`) keeps its claims keyed by name, so the bottom line refers to a claim
by chapter and key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from bnlib.book.session import Session


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
    rule: str | Callable[[str], str]
    measure: Callable[[Session], Finding]

    def rule_at(self, scale: str) -> str:
        """The rule in words, at a scale (a rule that names the scale's layers, rates or batches is a
        function of the scale)."""
        return self.rule if isinstance(self.rule, str) else self.rule(scale)


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


# A share of sampled units "above chance" (the book's own threshold): a one-sided binomial test against
# one half at this level, so that a share near 50% of a few dozen units is never read as a finding.
ALPHA = 0.05


def chance_tail(successes: int, n: int) -> float:
    """P(X >= successes) for X ~ Binomial(n, 1/2): the one-sided p-value of a share against chance."""
    return sum(math.comb(n, k) for k in range(successes, n + 1)) / 2**n


def above_chance(successes: int, n: int, alpha: float = ALPHA) -> bool:
    """Whether `successes` of `n` is significantly more than half (`chance_tail` at most `alpha`)."""
    return n > 0 and chance_tail(successes, n) <= alpha
