"""The book's table of contents: its chapters in order, and the sessions the entry points make.

The one module that imports every chapter. A page, the build and the command line make their
session here (`session`), so that a chapter's measurements receive the book they refer to (the
bottom line reads the other chapters' claims through it) without any chapter importing another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bnlib.book.chapter import PART_ONE, Chapter
from bnlib.book.chapters import (
    ch01_does_batchnorm_help,
    ch02_noisy_batchnorm,
    ch03_internal_covariate_shift,
    ch04_landscape,
    ch05_other_normalizations,
    ch06_theory,
    ch07_learning_rates,
    ch08_scale_invariance,
    ch09_curvature,
    ch10_initialisation,
    ch11_residual,
    ch12_batchnorm_apart,
    ch13_why_batchnorm_works,
)
from bnlib.book.session import Session
from bnlib.errors import ConfigError

CHAPTERS: tuple[Chapter, ...] = (
    ch01_does_batchnorm_help.CHAPTER,
    ch02_noisy_batchnorm.CHAPTER,
    ch03_internal_covariate_shift.CHAPTER,
    ch04_landscape.CHAPTER,
    ch05_other_normalizations.CHAPTER,
    ch06_theory.CHAPTER,
    ch07_learning_rates.CHAPTER,
    ch08_scale_invariance.CHAPTER,
    ch09_curvature.CHAPTER,
    ch10_initialisation.CHAPTER,
    ch11_residual.CHAPTER,
    ch12_batchnorm_apart.CHAPTER,
    ch13_why_batchnorm_works.CHAPTER,
)
# Part I: the paper's claims, chapter by chapter (Part II, what each explanation since predicts, and
# the bottom line follow it: `Chapter.part`).
PART_ONE_CHAPTERS = tuple(c for c in CHAPTERS if c.part == PART_ONE)


def chapter(notebook: str) -> Chapter:
    """A chapter by its notebook's name ("01_does_batchnorm_help")."""
    for found in CHAPTERS:
        if found.notebook == notebook:
            return found
    raise KeyError(f"no chapter for notebook {notebook!r}; the chapters are {[c.notebook for c in CHAPTERS]}")


def named(names: Sequence[str] | None) -> tuple[Chapter, ...] | None:
    """The chapters named by their number ("07") or notebook ("07_learning_rates"); None for all."""
    if not names:
        return None
    chosen: list[Chapter] = []
    for name in names:
        found = [c for c in CHAPTERS if c.notebook == name or c.notebook.split("_")[0] == name.zfill(2)]
        if not found:
            known = ", ".join(c.notebook.split("_")[0] for c in CHAPTERS)
            raise ConfigError(f"no chapter {name!r}; name one by its number ({known}) or its notebook")
        chosen += found
    return tuple(chosen)


def session(
    scale: str,
    chapter: Chapter | None = None,
    whole: bool = False,
    seeds: int | None = None,
    steps: int | None = None,
    findings: Path | None = None,
) -> Session:
    """A session over this book: one chapter's page (or, for None, a page that reads every chapter),
    `whole` for every run with every chapter's probes (the book build and the store)."""
    return Session(scale, CHAPTERS, chapter, whole, seeds, steps, findings)
