"""The book's chapters, one module each: what the chapter reads (`reads(session)`: the runs, their
seeds and the probes their records carry), what it measures and plots, and its claims (`CLAIMS`,
keyed by name), each with the rule that decides it, gathered in its `CHAPTER`
(`bnlib.book.chapter.Chapter`). A notebook `notebooks/NN_name.ipynb` is
`bnlib/book/chapters/chNN_name.py`: its cells call the module's functions. The table of contents,
in order, is `bnlib.book.contents`. No chapter imports another.

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
