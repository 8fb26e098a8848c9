"""The runs several chapters read, in one place, so that no chapter imports another.

Fig. 1's VGG-16 with and without BatchNorm (three seeds each) are the book's reference networks:
Part I compares against them, Part II measures against them, and chapter 07's grid of rates reuses
them where it trains those rates. Figs. 3b, 4 and 10's deep linear networks serve chapters 03-06.
"""

from __future__ import annotations

from bnlib.book.measures import fast
from bnlib.book.plan import Read
from bnlib.experiments import Experiment

SEEDS = (0, 1, 2)
STD, BN = Experiment("vgg", "none", 0.1), Experiment("vgg", "batch", 0.1)
STD_LARGE, BN_LARGE = Experiment("vgg", "none", 0.5), Experiment("vgg", "batch", 0.5)
FIG1 = {run: Read(run, SEEDS) for run in (STD, BN, STD_LARGE, BN_LARGE)}  # Fig. 1, three seeds each
DLN_STD, DLN_BN = Experiment("dln", "none", 1e-6), Experiment("dln", "batch", 1e-6)

# The VGG rates Part I trains over the whole scale, with the seeds it trains them in (chapter 03 at
# 0.01; Fig. 1 at 0.1 and 0.5): Part II reads these runs where it needs those rates and seeds.
WHOLE_RUNS = {0.01: SEEDS, 0.1: SEEDS, 0.5: SEEDS}


def rate_run(norm: str, lr: float, seed: int = 0) -> Experiment:
    """A VGG's run at one rate in one seed: Part I's where it trains that rate and seed (the whole
    scale), else one that stops at the speed target (the same steps until then)."""
    run = Experiment("vgg", norm, lr)
    return run if seed in WHOLE_RUNS.get(lr, ()) else fast(run)
