"""Part II's experiments: one module per chapter, each with the runs it trains (`jobs(scale)`, which
the run plan and the book build collect), the numbers it measures from them, and its figures.

| module | chapter |
|---|---|
| `lr_range` | 07: a wider range of learning rates (Bjorck et al., 2018) |
| `scale_invariance` | 08: scale invariance and the effective learning rate (Arora et al., 2019) |
| `curvature` | 09: frozen or active BatchNorm, and the edge of stability (Ghorbani et al., 2019; Cohen et al., 2021) |
| `initialisation` | 10: rank collapse, mean shift and gradient explosion at initialisation (Daneshmand et al., 2020) |
| `residual` | 11: residual networks and the bias toward the identity (De and Smith, 2020) |

Their claims (what each explanation predicts, the rule, the verdict) are in `bnlib.book.claims`.
"""
