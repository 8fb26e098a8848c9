"""What a claim is: the paper's statement, what the paper reports, the rule that decides it, and the
function that measures it from the runs and applies the rule.

Every verdict is computed when the page is built, by the rule written beside the claim, from the
records of the scale the page shows; no verdict is written in advance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Verdict(str, Enum):
    REPRODUCED = "reproduced"
    PARTLY = "partly"
    NOT_REPRODUCED = "not reproduced"
    CANNOT_TELL = "cannot tell at this scale"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """What we measured, in words and numbers, and the verdict the claim's rule gives it."""

    measured: str
    verdict: Verdict


@dataclass(frozen=True)
class Claim:
    """One claim: in the paper's words, what the paper reports (saying when a value is read off a
    figure by eye), the rule that decides it, and the named function that measures it at a scale."""

    claim: str
    paper: str
    rule: str
    measure: Callable[[str], Finding]

    def finding(self, scale: str) -> Finding:
        return _finding(self, scale)


@functools.cache
def _finding(claim: Claim, scale: str) -> Finding:
    """Measured once per process and scale: the chapter's prose and its table read the same finding."""
    finding = claim.measure(scale)
    if not isinstance(finding, Finding):
        raise TypeError(f"{claim.measure.__name__} must return a Finding")
    return finding


def graded(checks: list[bool], partly_if_any: bool = True) -> Verdict:
    """The usual rule: reproduced if every check holds, partly if some do (when `partly_if_any`),
    not reproduced if none does."""
    if all(checks):
        return Verdict.REPRODUCED
    if partly_if_any and any(checks):
        return Verdict.PARTLY
    return Verdict.NOT_REPRODUCED
