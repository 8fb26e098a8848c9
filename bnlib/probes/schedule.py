"""How often each probe runs at each scale, and the standard set of probes the book uses.

The paper probes the landscape at every step (its appendix A.2.2) and draws the other curves from
about 150 points over 15,000 steps (Figs. 3 and 8, by eye). Our strides:

| probe | paper | cpu | smoke |
|---|---|---|---|
| activations (Figs. 1c, 2, 6, 8, 9) | 100 | 20 | 3 |
| ICS, Definition 2.1 (Fig. 3) | 50 | 20 | 3 |
| landscape along the gradient / a random direction (Figs. 4, 10-13) | 10 | 20 | 3 |
| top Hessian eigenvalue | 1,000 | 250 | 6 |
| BN scale gamma^2 / sigma^2 (Section 4) | 100 | 20 | 3 |

At the cpu scale the DLN trains 2,500 steps, 2.5 times VGG's 1,000, so its strides are 2.5 times
longer (50, 50, 50, 500): about 50 points per run for both models, which keeps the book in budget.

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
from bnlib.probes.theory import BNScaleProbe

PROBE_EVERY: dict[str, dict[str, int]] = {
    "paper": {"activations": 100, "ics": 50, "landscape": 10, "hessian": 1000},
    "cpu": {"activations": 20, "ics": 20, "landscape": 20, "hessian": 250},
    "smoke": {"activations": 3, "ics": 3, "landscape": 3, "hessian": 6},
}

# The cpu-scale DLN runs 2.5x VGG's steps: the same number of points per run.
_DLN_EVERY = {"cpu": {"activations": 50, "ics": 50, "landscape": 50, "hessian": 500}}


def probe_every(scale: str, model: str) -> dict[str, int]:
    """How often each probe runs for a model at a scale (the bn-scale probe follows activations)."""
    every = _DLN_EVERY.get(check_scale(scale), PROBE_EVERY[scale]) if model == "dln" else PROBE_EVERY[scale]
    return every | {"bn-scale": every["activations"]}


# The layers the paper's figures show.
ACTIVATION_LAYERS = {"vgg": (2, 3, 9, 11, 13), "dln": (1, 11, 24)}
ICS_LAYERS = {"vgg": (5, 10), "dln": (9, 17)}


PROBE_KINDS = ("activations", "ics", "landscape", "landscape-random", "hessian", "bn-scale")


def make_probe(kind: str, model: str, scale: str) -> Probe:
    """A probe of one kind (PROBE_KINDS) on the paper's layers at the scale's stride."""
    every = probe_every(scale, model)
    make = {
        "activations": lambda: ActivationProbe(ACTIVATION_LAYERS[model], every["activations"]),
        "ics": lambda: ICSProbe(ICS_LAYERS[model], every["ics"]),
        "landscape": lambda: LandscapeProbe(every["landscape"]),
        "landscape-random": lambda: LandscapeProbe(every["landscape"], direction="random"),
        "hessian": lambda: HessianProbe(every["hessian"]),
        "bn-scale": lambda: BNScaleProbe(every["bn-scale"]),
    }
    if kind not in make:
        raise ValueError(f"unknown probe kind {kind!r}; choose from {', '.join(PROBE_KINDS)}")
    return make[kind]()


def standard_probes(model: str, scale: str | None = None) -> list[Probe]:
    """Every probe but the BN-scale one, on the paper's layers, at the scale's strides."""
    scale = scale or default_scale()
    return [make_probe(kind, model, scale) for kind in PROBE_KINDS if kind != "bn-scale"]
