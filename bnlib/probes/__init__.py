"""Measurements taken during training (or on any model and batch), as the paper specifies them.

Each measurement is a plain function of a model and a batch, and a probe class (name, every,
__call__(ctx)) for `bnlib.load_or_run(config, probes=[...])`:

| measurement | function | probe | paper |
|---|---|---|---|
| activation distributions and moments | `activation_stats` | `ActivationProbe` | Figs. 1c, 2, 6, 8, 9 |
| internal covariate shift, Definition 2.1 | `ics` | `ICSProbe` | Fig. 3 |
| loss landscape along the gradient | `landscape` | `LandscapeProbe` | Figs. 4, 10-13 |
| top Hessian eigenvalues | `top_eigenvalues` | `HessianProbe` | (2 / lr test) |
| Section 4's statements, both sides | `theory.*` | `theory.BNScaleProbe` | Thms 4.1, 4.2, 4.4, Obs. 4.3, Lemma 4.5 |
| signal propagation, residual variances, one step | `signal.*` | | Part II: initialisation, ResNets, lr |
| weight norms and scale invariance | `weights.norm_growth` | `WeightNormProbe` | Part II: effective learning rate |

How a probe plugs into the training loop, and what it must not change: `bnlib.probes.hook`. The
probes know nothing of scales or of which layers the paper shows: the book's run plan
(`bnlib.book.plan`) chooses both.
"""

from bnlib.probes import signal, theory
from bnlib.probes.activations import ActivationProbe, activation_stats, drifts, successive_changes
from bnlib.probes.functional import BatchLoss
from bnlib.probes.gradients import ActivationGradientProbe, activation_gradient_norms
from bnlib.probes.hessian import HessianProbe, freeze_batch_statistics, top_eigenvalues
from bnlib.probes.hook import FunctionProbe, Probe, ProbeContext
from bnlib.probes.ics import ICSProbe, ics
from bnlib.probes.landscape import LandscapeProbe, landscape, random_direction
from bnlib.probes.weights import WeightNormProbe, norm_growth

__all__ = [
    "ActivationGradientProbe",
    "ActivationProbe",
    "BatchLoss",
    "FunctionProbe",
    "HessianProbe",
    "ICSProbe",
    "LandscapeProbe",
    "Probe",
    "ProbeContext",
    "WeightNormProbe",
    "activation_gradient_norms",
    "activation_stats",
    "drifts",
    "freeze_batch_statistics",
    "ics",
    "landscape",
    "norm_growth",
    "random_direction",
    "signal",
    "successive_changes",
    "theory",
    "top_eigenvalues",
]
