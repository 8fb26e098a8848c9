"""Cost of the probes in units of plain training passes (forward + backward) on the same batch.

    python benchmarks/probes.py [--width 0.125] [--norm batch] [--repeats 5]

Targets (issue): a landscape probe with k step sizes at most 1.15 x the time of k + 1 plain
passes; an ICS probe over L layers at most 1.15 x L passes. In the training loop the probes reuse
the step's own gradient, so they need one pass less than as stand-alone functions; both are printed.
Random inputs: the cost does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from bnlib.errors import run_script
from bnlib.experiments import experiment
from bnlib.models import build_model
from bnlib.probes import BatchLoss, ics, landscape
from bnlib.probes.hook import ProbeContext
from bnlib.train import cross_entropy


def best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of `repeats` runs of each function, interleaved so that a slow moment of the
    machine hits all of them alike."""
    for fn in fns.values():
        fn()  # warm-up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--norm", default="batch")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    config = experiment("vgg-bn-lr0.1", "cpu", width=args.width, norm=args.norm)
    torch.manual_seed(0)
    model = build_model(config).to(memory_format=torch.channels_last).train()
    x = torch.randn(config.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (config.batch_size,))
    ctx = ProbeContext(model, x, y, 0, config, cross_entropy)

    def plain_pass() -> None:
        model.zero_grad(set_to_none=True)
        cross_entropy(model(x), y).backward()

    grad = ctx.gradient()
    etas = [m * config.lr for m in (0.5, 1, 2, 4)]
    layers = (5, 10)
    k, n_layers = len(etas), len(layers)

    def ics_standalone() -> None:
        model.zero_grad(set_to_none=True)  # so that ctx.gradient() computes g itself
        g = ctx.gradient()
        ics(BatchLoss(model, x, y, cross_entropy), model, layers, g, ctx.next_params(g))

    probes = {
        f"landscape, {k} step sizes, stand-alone (computes g)": (
            lambda: landscape(BatchLoss(model, x, y, cross_entropy), etas),
            k + 1,
        ),
        f"landscape, {k} step sizes, in the loop (reuses g)": (
            lambda: landscape(BatchLoss(model, x, y, cross_entropy), etas, grad),
            k + 1,
        ),
        f"ICS, layers {layers}, in the loop (reuses g)": (
            lambda: ics(BatchLoss(model, x, y, cross_entropy), model, layers, grad, ctx.next_params(grad)),
            n_layers,
        ),
        f"ICS, layers {layers}, stand-alone (computes g)": (ics_standalone, n_layers),
    }
    model.zero_grad(set_to_none=True)
    times = best_times({"plain": plain_pass} | {name: fn for name, (fn, _) in probes.items()}, args.repeats)
    one = times["plain"]
    threads = torch.get_num_threads()
    print(f"VGG-16 width {config.width:g}, norm={config.norm}, batch {config.batch_size}, {threads} threads")
    print(f"plain forward + backward pass: {one * 1e3:.1f} ms")
    for name, (_, passes) in probes.items():
        print(f"{name:52s} {times[name] * 1e3:7.1f} ms = {times[name] / (passes * one):.2f} x {passes} passes")


if __name__ == "__main__":
    run_script(main)
