"""What a claim is: the paper's statement, what the paper reports, and how we measure it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """One claim: in the paper's words, what the paper reports, and how we measure it."""

    claim: str
    paper: str
    measure: Callable[[str], str]  # scale -> what we measure, as text
