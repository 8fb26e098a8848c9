"""Chapter 05, l1, l2 and l-infinity normalizations (Figs. 5, 6, 12 and 13)."""

from __future__ import annotations

from bnlib.book.claims.claim import Claim
from bnlib.book.tables import LP_DLN, LP_VGG, drift, final_loss_text, landscape_text, percent

CHAPTER = "Other normalizations"


def _short(name: str) -> str:
    return name.split("-")[1]


def train_as_well(scale: str) -> str:
    return (
        "VGG training accuracy: "
        + ", ".join(f"{_short(n)} {percent(n, scale, 'train_acc')}" for n in LP_VGG)
        + "; DLN final loss: "
        + ", ".join(f"{_short(n)} {final_loss_text(n, scale)}" for n in LP_DLN)
    )


def l1_beats_batchnorm(scale: str) -> str:
    return f"final loss: l1 {final_loss_text('dln-l1-lr1e-6', scale)}, BN {final_loss_text('dln-bn-lr1e-6', scale)}"


def drift_more(scale: str) -> str:
    return "layer #11, median over units of |mu_T - mu_0| and |var_T - var_0|: " + ", ".join(
        f"{_short(n)} {d['mean']:.2g} and {d['var']:.2g}" for n in LP_VGG for d in [drift(n, scale)]
    )


def smooth_like_batchnorm(scale: str) -> str:
    return (
        "median effective beta, VGG: "
        + ", ".join(f"{_short(n)} {landscape_text(n, scale, 'beta median')}" for n in LP_VGG)
        + "; DLN: "
        + ", ".join(f"{_short(n)} {landscape_text(n, scale, 'beta median')}" for n in LP_DLN)
    )


CLAIMS = [
    Claim(
        "l1, l2 and l-infinity normalization train as well as BatchNorm",
        "all three match or beat BN on VGG (Fig. 5a) and the DLN (Fig. 5b)",
        train_as_well,
    ),
    Claim(
        "On the DLN, l1 normalization beats BatchNorm",
        "final loss ~1e2 (l1) vs ~5e2 (BN and l2), ~1e3 (l-inf), ~1.6e3 (standard) (Fig. 5b, by eye)",
        l1_beats_batchnorm,
    ),
    Claim(
        "Their activations drift more than the standard network's",
        "l_p activations non-Gaussian, with larger distributional shift than standard (Fig. 6)",
        drift_more,
    ),
    Claim(
        "They smooth the landscape as BatchNorm does",
        "landscape probes similar to BN's (Figs. 12, 13)",
        smooth_like_batchnorm,
    ),
]
