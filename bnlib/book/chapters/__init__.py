"""The book's chapters, one module each: what the chapter reads (`reads(scale)`: the runs, their
seeds and the probes their records carry), what it measures and plots, and its claims (`CLAIMS`,
keyed by name), each with the rule that decides it. A notebook `notebooks/NN_name.ipynb` is
`bnlib/book/chapters/chNN_name.py`: its cells call the module's functions.

| module | chapter |
|---|---|
| `ch01_does_batchnorm_help` | Fig. 1: training and test accuracy, the inputs of a layer |
| `ch02_noisy_batchnorm` | Section 2.1, Algorithm 1, Figs. 2 and 8 |
| `ch03_internal_covariate_shift` | Definition 2.1, Figs. 3 and 9 |
| `ch04_landscape` | Section 3.2, Figs. 4, 10 and 11, and whether the effective beta is 2 / lr |
| `ch05_other_normalizations` | Section 3.3, Figs. 5, 6, 12 and 13 |
| `ch06_theory` | Section 4 and appendix C, checked numerically |
| `ch07_learning_rates` | a wider range of learning rates (Bjorck et al., 2018) |
| `ch08_scale_invariance` | scale invariance and the effective learning rate (Arora et al., 2019) |
| `ch09_curvature` | frozen or active statistics (Ghorbani et al., 2019), the edge of stability (Cohen et al., 2021) |
| `ch10_initialisation` | rank collapse, mean shift, exploding gradients (Daneshmand et al., 2020; Yang et al., 2019) |
| `ch11_residual` | residual networks and the identity (De and Smith, 2020; Zhang et al., 2019) |
| `ch12_batchnorm_apart` | the ablation ladder: how much of BatchNorm's speed-up each ingredient recovers |
| `ch13_why_batchnorm_works` | every explanation weighed by its tests, and the book's answer |
"""

from __future__ import annotations

from types import ModuleType

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

# Part I: the paper's claims, chapter by chapter; Part II: what each explanation since predicts.
PART_ONE: tuple[ModuleType, ...] = (
    ch01_does_batchnorm_help,
    ch02_noisy_batchnorm,
    ch03_internal_covariate_shift,
    ch04_landscape,
    ch05_other_normalizations,
    ch06_theory,
)
PART_TWO: tuple[ModuleType, ...] = (
    ch07_learning_rates,
    ch08_scale_invariance,
    ch09_curvature,
    ch10_initialisation,
    ch11_residual,
    ch12_batchnorm_apart,
)
CHAPTERS: tuple[ModuleType, ...] = (*PART_ONE, *PART_TWO, ch13_why_batchnorm_works)


def chapter(notebook: str) -> ModuleType:
    """The module of a chapter's notebook ("01_does_batchnorm_help")."""
    for module in CHAPTERS:
        if module.NOTEBOOK == notebook:
            return module
    raise KeyError(f"no chapter module for notebook {notebook!r}; the chapters are {[m.NOTEBOOK for m in CHAPTERS]}")
