"""The run plan: what a chapter reads (`Read`: runs, seeds, probes), the probes at each scale, the
jobs that train them, and what training them costs on this device. Generic machinery over reads; a
`bnlib.book.session.Session` says whose reads a process loads.

A run record holds the probes it was trained with, and asking for a probe a record lacks trains
the run again with it (`bnlib.records`). So chapters never choose probes at the point of use: they
declare them in their reads, and the session loads (or trains) each run with the probes of the
chapters it reads: one chapter's for a reader who opens one page, every chapter's union for the
book build (so that a run trained once serves every chapter).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bnlib.config import RunConfig
from bnlib.experiments import Experiment, check_scale
from bnlib.models import dln, vgg
from bnlib.probes import ActivationGradientProbe, ActivationProbe, HessianProbe, ICSProbe, LandscapeProbe
from bnlib.probes.hook import Probe, due, probe_key
from bnlib.probes.landscape import DLN_EXTENDED_ETAS, VGG_EXTENDED_ETAS
from bnlib.probes.theory import BNScaleProbe
from bnlib.probes.weights import WeightNormProbe
from bnlib.records import stored_record
from bnlib.sweeps import Job
from bnlib.train import RunOptions


@dataclass(frozen=True)
class Read:
    """One experiment a chapter reads: the seeds it reads, and the probes those seeds' records must
    carry (probe kinds of `PROBE_KINDS`, or probes). `optional` runs train only when asked for;
    `weights`: the page loads the run's final weights, so the published store keeps them."""

    run: Experiment
    seeds: tuple[int, ...] = (0,)
    probes: tuple[str | Probe, ...] = ()
    optional: bool = False
    weights: bool = False


# ----------------------------------------------------------------------------- probes: strides and layers

# How often each probe runs. The paper probes the landscape at every step (its appendix A.2.2) and
# draws the other curves from about 150 points over 15,000 steps (Figs. 3 and 8, by eye). At the
# cpu scale the strides give about 50 points per run (the DLN trains longer, so its strides are
# longer); at the paper scale, the landscape every 10th step gives 1,500 points per run.
PROBE_EVERY: dict[str, dict[str, int]] = {
    "paper": {"activations": 100, "ics": 50, "landscape": 10, "landscape-extended": 100, "hessian": 1000},
    "cpu": {"activations": 50, "ics": 50, "landscape": 50, "landscape-extended": 50, "hessian": 500},
    "smoke": {"activations": 3, "ics": 3, "landscape": 3, "landscape-extended": 6, "hessian": 6},
}

# On VGG the landscape's probes also run densely at the start, where BatchNorm leaves its initial
# plateau within a few of the strides above (about 115 steps at the cpu scale, 100-150 in the
# paper's Fig. 2a): every `dense` steps before step `until`, so that every phase of training the
# rules compare (chapter 04) holds enough probed steps of both networks.
DENSE_START: dict[str, tuple[int, int] | None] = {"paper": (600, 2), "cpu": (300, 5), "smoke": None}

# The layers the paper's figures show, in its numbering (kept beside the models they number)
ACTIVATION_LAYERS = {"vgg": vgg.PAPER_ACTIVATION_LAYERS, "dln": dln.PAPER_ACTIVATION_LAYERS}
ICS_LAYERS = {"vgg": vgg.PAPER_ICS_LAYERS, "dln": dln.PAPER_ICS_LAYERS}
EXTENDED_ETAS = {"vgg": VGG_EXTENDED_ETAS, "dln": DLN_EXTENDED_ETAS}
HESSIAN_TOP = 3  # eigenvalues kept by the Hessian probes (Lanczos, 20 Hessian-vector products)

# The probes a chapter names by kind in its reads, in one table: each kind's stride (a key of
# PROBE_EVERY: the bn-scale and weight-norm probes follow the activations, the random-direction
# landscape the landscape, the frozen Hessian the Hessian) and its probe for a model at that stride.
# A new kind of probe is one row here (and a stride above, if it has its own).
KINDS: dict[str, tuple[str, Callable[[str, int], Probe]]] = {
    "activations": ("activations", lambda model, every: ActivationProbe(ACTIVATION_LAYERS[model], every, pairs=True)),
    "ics": ("ics", lambda model, every: ICSProbe(ICS_LAYERS[model], every)),
    "landscape": ("landscape", lambda model, every: LandscapeProbe(every)),
    "landscape-random": ("landscape", lambda model, every: LandscapeProbe(every, direction="random")),
    "landscape-extended": (
        "landscape-extended",
        lambda model, every: LandscapeProbe(every, etas=EXTENDED_ETAS[model]),
    ),
    "activation-gradients": ("landscape", lambda model, every: ActivationGradientProbe(every)),
    "hessian": ("hessian", lambda model, every: HessianProbe(every, k=HESSIAN_TOP)),
    "hessian-frozen": ("hessian", lambda model, every: HessianProbe(every, k=HESSIAN_TOP, frozen_bn=True)),
    "bn-scale": ("activations", lambda model, every: BNScaleProbe(every)),
    "weight-norms": ("activations", lambda model, every: WeightNormProbe(every)),
}
PROBE_KINDS = tuple(KINDS)


def probe_every(scale: str) -> dict[str, int]:
    """How often each probe kind runs at a scale."""
    every = PROBE_EVERY[check_scale(scale)]
    return {kind: every[stride] for kind, (stride, _) in KINDS.items()}


def make_probe(kind: str | Probe, model: str, scale: str) -> Probe:
    """A probe of one kind (`KINDS`) on the paper's layers at the scale's stride (a probe is
    returned as it is)."""
    if not isinstance(kind, str):
        return kind
    if kind not in KINDS:
        raise ValueError(f"unknown probe kind {kind!r}; choose from {', '.join(PROBE_KINDS)}")
    stride, make = KINDS[kind]
    probe = make(model, PROBE_EVERY[check_scale(scale)][stride])
    if stride.startswith("landscape") and model == "vgg" and DENSE_START[scale] is not None:
        probe = dataclasses.replace(probe, early=DENSE_START[scale])
    return probe


def named(kind: str | Probe) -> str:
    """How a chapter names a probe in a record it reads: its kind, or the probe's key."""
    return kind if isinstance(kind, str) else probe_key(kind)


# ----------------------------------------------------------------------------- the jobs: what trains

# Relative cost of a training step (VGG by normalization, one thread; benchmarks/throughput.py), for
# the build's sweep, which starts the longest runs first so that the last ones to finish are short.
_STEP_COST = {"none": 1.0, "batch": 1.7, "noisy_batch": 3.2, "noise": 2.8, "l1": 1.7, "l2": 2.2, "linf": 2.3}
_MODEL_COST = {"vgg": 1.0, "resnet": 1.5, "mlp": 0.1, "dln": 0.1}


def job(run: Experiment, config: RunConfig, probes: dict[str, Probe], seed: int) -> Job:
    """The job that trains one seed of a run with its probes."""
    return Job(config, tuple(probes.values()), f"{run.name} seed {seed}")


def longest_first(jobs: list[Job]) -> list[Job]:
    """Jobs with the longest first, so that the last ones a sweep finishes are short."""
    return sorted(jobs, key=_cost, reverse=True)


def _cost(job: Job) -> float:
    c = job.config
    per_step = _MODEL_COST[c.model] * (_STEP_COST.get(c.norm, 1.0) if c.model in ("vgg", "resnet") else 1.0)
    return c.steps * per_step * (1 + 0.4 * bool(job.probes))


def untrained(job: Job, published: bool = True) -> bool:
    """Whether a job's record is missing, or lacks one of its probes (`published`: a published
    record counts; False: only the reader's own, in the cache)."""
    record = stored_record(job.config, RunOptions(published=published))
    return record is None or any(probe_key(p) not in record.probes for p in job.probes)


# ----------------------------------------------------------------------------- cost before commitment


def step_seconds(cfg: RunConfig, probes: list[Probe], steps: int = 3) -> float:
    """Seconds per training step of `cfg` on this device, with the probes' cost spread over their
    strides, from a short timing: `steps` steps after two warm-up steps, and one call of each probe."""
    from bnlib.train import Run, RunOptions

    run = Run(cfg, probes, RunOptions(progress=False))
    for _ in range(2):
        run.train_step(*run.task.next_batch())
    _sync(run.device)
    started = time.perf_counter()
    for _ in range(steps):
        run.train_step(*run.task.next_batch())
    _sync(run.device)
    seconds = (time.perf_counter() - started) / steps
    for probe in probes:
        started = time.perf_counter()
        run.train_step(*run.task.next_batch(), probes=[probe])
        _sync(run.device)
        calls = sum(due(probe, step) for step in range(cfg.steps)) / cfg.steps
        seconds += max(0.0, time.perf_counter() - started - seconds) * calls
    return seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def announce(scale: str, todo: list[Job], workers: int = 1, who: str = "This chapter") -> str:
    """What will train (`todo`): the runs, their steps and probes, and, except at the smoke scale,
    how long they will take on this device, measured from a short timing of each kind of run, on
    `workers` runs side by side. '' if nothing will."""
    if not todo:
        return ""
    lines = [f"{who} will train {len(todo)} run{'s' if len(todo) > 1 else ''} at the {scale} scale:"]
    total = 0.0
    timed: dict[tuple, float] = {}
    for job in todo:
        cfg = job.config
        kinds = ", ".join(sorted({probe_key(p).split("-")[0] for p in job.probes})) or "no probes"
        stops = cfg.target_acc is not None or cfg.target_loss is not None  # it ends at its target, if sooner
        line = f"  {job.name}: {'up to ' if stops else ''}{cfg.steps:,} steps, {kinds}"
        if scale != "smoke":
            key = (cfg.replace(seed=0), tuple(map(probe_key, job.probes)))
            if key not in timed:
                timed[key] = step_seconds(cfg, list(job.probes))
            total += timed[key] * cfg.steps
            line += f", {'at most' if stops else 'about'} {_minutes(timed[key] * cfg.steps)}"
        lines.append(line)
    if scale != "smoke":
        side = f", {workers} runs side by side" if workers > 1 else ""
        lines.append(
            f"Estimated total on this device: at most {_minutes(total / workers)}{side} (from a short timing of "
            "each kind of run; runs that stop at their target take less)."
        )
    if who == "This chapter":
        lines.append("For fewer seeds or steps set `seeds` or `steps` in the parameters cell and run it again.")
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
