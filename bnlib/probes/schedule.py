"""How often each probe runs at each scale, and the standard set of probes the book uses.

The paper probes the landscape at every step (its appendix A.2.2) and draws the other curves from
about 150 points over 15,000 steps (Figs. 3 and 8, by eye). Our strides:

| probe | paper | cpu | smoke |
|---|---|---|---|
| activations (Figs. 1c, 2, 6, 8, 9) | 100 | 20 | 3 |
| ICS, Definition 2.1 (Fig. 3) | 50 | 20 | 3 |
| landscape along the gradient / a random direction (Figs. 4, 10-13) | 10 | 20 | 3 |
| top Hessian eigenvalue | 1,000 | 200 | 6 |

At the paper scale, landscape every 10th step gives 1,500 points per run (the paper's curves show
hundreds), at five times less cost than every step. At the cpu scale a landscape probe costs about
four training steps (benchmarks/probes.py), so a stride of 20 adds about 20% to a run that
carries one, which keeps the whole book within its 30-minute budget (book/scales.md).
"""

from __future__ import annotations

from bnlib.experiments import check_scale, default_scale
from bnlib.hooks import Probe
from bnlib.probes.activations import ActivationProbe
from bnlib.probes.hessian import HessianProbe
from bnlib.probes.ics import ICSProbe
from bnlib.probes.landscape import LandscapeProbe

PROBE_EVERY: dict[str, dict[str, int]] = {
    "paper": {"activations": 100, "ics": 50, "landscape": 10, "hessian": 1000},
    "cpu": {"activations": 20, "ics": 20, "landscape": 20, "hessian": 200},
    "smoke": {"activations": 3, "ics": 3, "landscape": 3, "hessian": 6},
}

# The layers the paper's figures show.
ACTIVATION_LAYERS = {"vgg": (2, 3, 9, 11, 13), "dln": (1, 11, 24)}
ICS_LAYERS = {"vgg": (5, 10), "dln": (9, 17)}


def standard_probes(model: str, scale: str | None = None) -> list[Probe]:
    """Every probe, on the paper's layers, at the scale's strides."""
    every = PROBE_EVERY[check_scale(scale) if scale else default_scale()]
    return [
        ActivationProbe(ACTIVATION_LAYERS[model], every["activations"]),
        ICSProbe(ICS_LAYERS[model], every["ics"]),
        LandscapeProbe(every["landscape"]),
        LandscapeProbe(every["landscape"], direction="random"),
        HessianProbe(every["hessian"]),
    ]
