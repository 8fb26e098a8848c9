"""Training throughput of bnlib's loop against the loop of PyTorch's CIFAR-10 tutorial.

Both train the same model (the cpu scale's VGG by default) with the same batch size and SGD, in
the same process, one after the other. The tutorial loop is the one from
https://pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html: a torchvision CIFAR10
dataset, ToTensor + Normalize transforms, a DataLoader with 2 workers, NCHW tensors and
`loss.item()` every step. bnlib's loop serves batches from memory, standardises them in one
vectorised op, runs channels_last and never synchronises inside a step.

    python benchmarks/throughput.py [--steps 40] [--width 0.125] [--norm batch]

Needs CIFAR-10 (BNLIB_DATA or --data). Prints images/s of each, the ratio and GFLOP/s.
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

from bnlib.data import load_cifar10
from bnlib.experiments import experiment
from bnlib.models import build_model
from bnlib.train import Run as BnlibRun
from bnlib.train import RunOptions


def tutorial_dataset(cifar, mean, std) -> torchvision.datasets.CIFAR10:
    """torchvision's own CIFAR10 dataset class over the decoded arrays (its constructor insists on
    the canonical files; we have possibly only the image-folder copy)."""
    ds = torchvision.datasets.CIFAR10.__new__(torchvision.datasets.CIFAR10)
    torchvision.datasets.VisionDataset.__init__(
        ds, root=".", transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    )
    ds.data, ds.targets, ds.train = cifar.train_x, cifar.train_y.tolist(), True
    return ds


def time_tutorial(config, cifar, steps: int, warmup: int) -> float:
    torch.manual_seed(config.seed)
    model = build_model(config)
    loader = DataLoader(
        tutorial_dataset(cifar, cifar.mean.tolist(), cifar.std.tolist()),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=2,
        drop_last=True,
        persistent_workers=True,
    )
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    running_loss, batches = 0.0, iter(loader)
    for i in range(warmup + steps):
        if i == warmup:
            started = time.perf_counter()
        inputs, labels = next(batches)
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    return steps * config.batch_size / (time.perf_counter() - started)


def time_bnlib(config, data: str | None, steps: int, warmup: int) -> float:
    run = BnlibRun(config, [], RunOptions(data=data, progress=False, device="cpu"))
    for i in range(warmup + steps):
        if i == warmup:
            run.loss_buf.sum().item()
            started = time.perf_counter()
        run.train_step(*run.task.next_batch())
        run.step += 1
    run.loss_buf[: run.step].sum().item()  # the loop's only synchronisation point
    return steps * config.batch_size / (time.perf_counter() - started)


def training_flops(config) -> int:
    model = build_model(config).to(memory_format=torch.channels_last)
    x = torch.randn(config.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (config.batch_size,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--norm", default="batch")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    config = experiment("vgg-bn-lr0.1", "cpu", width=args.width, norm=args.norm)
    cifar = load_cifar10(args.data)
    flops = training_flops(config) / config.batch_size
    print(
        f"model: VGG-16 width {config.width:g}, norm={config.norm}, batch {config.batch_size}, "
        f"{flops / 1e6:.1f} MFLOP per image (forward + backward); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    tutorial = time_tutorial(config, cifar, args.steps, args.warmup)
    ours = time_bnlib(config, args.data, args.steps, args.warmup)
    for name, rate in (("tutorial loop", tutorial), ("bnlib loop", ours)):
        print(f"{name:14s} {rate:8.0f} images/s  {rate * flops / 1e9:6.1f} GFLOP/s")
    print(f"ratio bnlib / tutorial: {ours / tutorial:.2f}x")


if __name__ == "__main__":
    main()
