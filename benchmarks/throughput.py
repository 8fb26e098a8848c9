"""Training throughput on this machine, in one run: its fp32 matmul peak, the loop of PyTorch's
CIFAR-10 tutorial, and bnlib's training step before and after the speed work of the cpu scale, for
every normalization.

* peak: a 2048 x 2048 fp32 matmul with the process's threads (the machine's own reference);
* tutorial: https://pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html, a torchvision
  CIFAR10 dataset, ToTensor + Normalize, a DataLoader with 2 workers, NCHW, `loss.item()` each step;
* previous: bnlib's step as it was (noise drawn in NCHW and combined in four passes, l_p layers in
  five passes, SGD's per-parameter loop), swapped in for the measurement;
* now: bnlib's step as it is (`bnlib.train.Run.train_step`).

Steps are timed in interleaved rounds (previous, now, previous, now, ...), so that a slow moment of
the machine hits both alike; each number is the median over rounds.

    python benchmarks/throughput.py [--steps 20] [--rounds 5] [--width 0.125] [--norms batch,none,...]

Needs CIFAR-10 (BNLIB_DATA or --data) for the tutorial loop; bnlib's steps read the same arrays.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator

import torch
import torchvision
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

from bnlib import norms
from bnlib.data import load_cifar10
from bnlib.errors import run_script
from bnlib.experiments import experiment
from bnlib.models import build_model
from bnlib.train import Run, RunOptions

# ----------------------------------------------------------------------------- the previous step


def previous_noise_forward(self: norms.NoiseInjection, a: torch.Tensor) -> torch.Tensor:
    """NoiseInjection.forward before: noise drawn in NCHW, combined in separate passes."""
    if not self.training:
        return a
    p = self.noise
    a = a.float()
    channels = a.shape[1]
    mu = (torch.rand(channels, device=a.device) * 2 - 1) * p.n_mu
    sigma = 1 + torch.rand(channels, device=a.device) * (p.n_sigma - 1)
    per_channel = (1, -1, *([1] * (a.dim() - 2)))
    m = torch.rand(a.shape, device=a.device).mul_(2 * p.r_mu).sub_(p.r_mu).add_(mu.view(per_channel))
    s = torch.randn(a.shape, device=a.device).mul_(p.r_sigma).add_(sigma.view(per_channel))
    return s * a + m


def previous_lp_forward(self: norms.LpNorm, x: torch.Tensor) -> torch.Tensor:
    """LpNorm.forward before: the scale from abs/square temporaries, then four elementwise passes."""
    x = x.float()
    dims = (0, *range(2, x.dim()))
    per_channel = (1, -1, *([1] * (x.dim() - 2)))
    mean = x.mean(dims)
    if self.p == 1:
        scale = x.abs().mean(dims) + self.eps
    elif self.p == 2:
        scale = (x.square().mean(dims) + self.eps).sqrt()
    else:
        scale = x.abs().amax(dims) + self.eps
    with torch.no_grad():
        self.running_mean.lerp_(mean, self.momentum)
        self.running_scale.lerp_(scale, self.momentum)
    x_hat = (x - mean.view(per_channel)) / scale.view(per_channel)
    return x_hat * self.weight.view(per_channel) + self.bias.view(per_channel)


@contextlib.contextmanager
def previous_step(run: Run) -> Iterator[None]:
    """Swap the previous implementations into a run (and back)."""
    noise, lp, optimizer = norms.NoiseInjection.forward, norms.LpNorm.forward, run.optimizer
    norms.NoiseInjection.forward, norms.LpNorm.forward = previous_noise_forward, previous_lp_forward
    run.optimizer = torch.optim.SGD(run.model.parameters(), lr=run.config.lr, foreach=False)
    run.optimizer.param_groups[0]["base_lr"] = run.config.lr  # the rate `set_rate` scales (warm-up)
    try:
        yield
    finally:
        norms.NoiseInjection.forward, norms.LpNorm.forward, run.optimizer = noise, lp, optimizer


# ----------------------------------------------------------------------------- measurements


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a size x size fp32 matmul (the best of `repeats`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def tutorial_dataset(cifar) -> torchvision.datasets.CIFAR10:
    """torchvision's own CIFAR10 dataset class over the decoded arrays (its constructor insists on
    the canonical files; we have possibly only the image-folder copy)."""
    ds = torchvision.datasets.CIFAR10.__new__(torchvision.datasets.CIFAR10)
    normalize = transforms.Normalize(cifar.mean.tolist(), cifar.std.tolist())
    torchvision.datasets.VisionDataset.__init__(
        ds, root=".", transform=transforms.Compose([transforms.ToTensor(), normalize])
    )
    ds.data, ds.targets, ds.train = cifar.train_x, cifar.train_y.tolist(), True
    return ds


def tutorial_seconds(config, cifar, steps: int) -> float:
    """Seconds per step of the tutorial's loop (after 5 warm-up steps)."""
    torch.manual_seed(config.seed)
    model = build_model(config)
    loader = DataLoader(tutorial_dataset(cifar), batch_size=config.batch_size, shuffle=True, num_workers=2)
    criterion, optimizer = torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=config.lr)
    batches = iter(loader)
    for i in range(5 + steps):
        if i == 5:
            started = time.perf_counter()
        inputs, labels = next(batches)
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
        loss.item()
    return (time.perf_counter() - started) / steps


def step_seconds(run: Run, steps: int) -> float:
    run.loss_buf.sum().item()
    started = time.perf_counter()
    for _ in range(steps):
        run.train_step(*run.task.next_batch())
        run.step = (run.step + 1) % run.config.steps
    run.loss_buf.sum().item()  # the loop's only synchronisation point
    return (time.perf_counter() - started) / steps


def previous_and_now(config, data: str | None, steps: int, rounds: int) -> tuple[float, float]:
    """Median seconds per step of the previous and the current step, in interleaved rounds."""
    run = Run(config, [], RunOptions(data=data, progress=False, device="cpu"))
    for _ in range(3):  # warm-up
        run.train_step(*run.task.next_batch())
    before, now = [], []
    for _ in range(rounds):
        with previous_step(run):
            before.append(step_seconds(run, steps))
        now.append(step_seconds(run, steps))
    return statistics.median(before), statistics.median(now)


def training_flops(config) -> int:
    model = build_model(config).to(memory_format=torch.channels_last)
    x = torch.randn(config.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (config.batch_size,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--norms", default="batch,none,noisy_batch,noise,l1,l2,linf")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul peak {peak:.0f} GFLOP/s")
    base = experiment("vgg-bn-lr0.1", "cpu", width=args.width)
    tutorial = tutorial_seconds(base, load_cifar10(args.data), args.steps * 2)
    flops = training_flops(base)
    print(
        f"VGG-16 width {args.width:g}, batch {base.batch_size}: {flops / base.batch_size / 1e6:.1f} MFLOP per image "
        f"(forward + backward); tutorial loop (BatchNorm) {tutorial * 1e3:.1f} ms/step"
    )
    print(f"{'normalization':14s} {'previous':>10s} {'now':>10s} {'speed-up':>9s} {'now, % of peak':>15s}")
    for norm in args.norms.split(","):
        config = base.replace(norm=norm)
        before, now = previous_and_now(config, args.data, args.steps, args.rounds)
        share = training_flops(config) / now / 1e9 / peak
        print(f"{norm:14s} {before * 1e3:8.1f}ms {now * 1e3:8.1f}ms {before / now:8.2f}x {share:14.0%}", flush=True)


if __name__ == "__main__":
    run_script(main)
