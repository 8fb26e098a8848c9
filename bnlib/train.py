"""The training loop: plain SGD with a constant learning rate, as in the paper.

`train(config)` builds the model and data a `RunConfig` describes and trains it, recording per-step
training loss and accuracy, test accuracy every `config.test_every` steps, and whatever the probes
measure. It stops early, marked "diverged", when the training loss is non-finite or above
`config.divergence_bound`. With a checkpoint path it saves its whole state now and then
(atomically) and, started again, resumes from it and ends bit-identical (on CPU) to a run that was
never interrupted. Most users call `bnlib.load_or_run`, which adds the run record on top.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from bnlib import device as devices
from bnlib import interrupts
from bnlib.config import RunConfig
from bnlib.data import BatchSampler, ImageSplit, balanced_subset, dln_data, load_cifar10
from bnlib.errors import CacheError, ConfigError, warn
from bnlib.models import NumberedNet, build_model, init_lsuv
from bnlib.probes.hook import Probe, ProbeContext, RandomState, due, preserved_state, probe_key, to_numpy
from bnlib.storage import atomic_write

ENV_PROGRESS = "BNLIB_PROGRESS"
ENV_CHECKPOINT = "BNLIB_CHECKPOINT_S"
CHECKPOINT_VERSION = 3
FINAL_WINDOW = 100  # final training loss and accuracy: means over the last 100 steps' batches
# "The training accuracy at step t": the mean over the batches of steps t - 24 .. t. A run's speed
# (steps to an accuracy, `Record.steps_to`) and its stop at a target (`RunConfig.target_acc`) use it.
SPEED_WINDOW = 25


@dataclass
class RunOptions:
    """How to run, as opposed to what: none of these change a run's result."""

    device: str | None = None  # None: CUDA when present, else CPU
    data: str | None = None  # CIFAR-10 location; None: $BNLIB_DATA, else torchvision's download
    progress: bool | None = None  # None: on unless BNLIB_PROGRESS=0
    # Called with the steps done at every log point, as the progress bar is (the lab's own bar)
    on_step: Callable[[int], None] | None = None
    checkpoint_path: Path | None = None  # None: no checkpoints
    # Seconds between checkpoints; 0: at every log point. Default: $BNLIB_CHECKPOINT_S, else 60.
    checkpoint_interval_s: float = field(default_factory=lambda: _checkpoint_interval())
    # CPU threads for this run (None: torch's current setting). A run is bit-identical on the CPU only
    # to runs with the same thread count (the order of its float sums depends on it); it is recorded.
    threads: int | None = None
    # Whether a published record (bnlib.published: the book's run store) answers when the cache holds
    # none of the reader's own; False trains the run on this machine and data copy, into the cache.
    published: bool = True

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Every option, checked before anything starts or is written: a one-line ConfigError that
        names the fix (an unknown device, CUDA without a GPU, a thread count below 1, ...)."""
        if self.device is not None:
            if not isinstance(self.device, str):
                raise ConfigError(f"device must be a string such as 'cpu' or 'cuda', not {self.device!r}")
            devices.pick_device(self.device)
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)):
            raise ConfigError(f"threads must be a whole number of CPU threads (or None), not {self.threads!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(
                f"threads must be at least 1, not {self.threads}; use e.g. 1, or None for torch's setting"
            )
        if not isinstance(self.published, bool):
            raise ConfigError(f"published must be True or False, not {self.published!r}")
        if self.on_step is not None and not callable(self.on_step):
            raise ConfigError(f"on_step must be a function of the steps done (or None), not {self.on_step!r}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ConfigError(f"progress must be True, False or None, not {self.progress!r}")
        if self.data is not None and not isinstance(self.data, str | os.PathLike):
            raise ConfigError(f"data must be a path or URL (a string), not {type(self.data).__name__}")


@dataclass
class TrainResult:
    status: str  # "finished" or "diverged"
    steps_done: int
    metrics: dict[str, np.ndarray]
    probes: dict[str, dict[str, np.ndarray]]
    final: dict[str, float]
    wall_time_s: float
    environment: dict[str, Any]
    model_state: dict[str, Tensor] = field(repr=False)


def _checkpoint_interval() -> float:
    text = os.environ.get(ENV_CHECKPOINT, "60")
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ConfigError(f"{ENV_CHECKPOINT}={text!r} is not a number of seconds >= 0; unset it or set e.g. 60")
    return seconds


def sgd(model: NumberedNet, config: RunConfig) -> torch.optim.SGD:
    """The paper's optimizer, SGD, with the fused kernel where this torch and device have one (one
    pass over all the weights instead of a loop over tensors; measured in benchmarks/throughput.py).
    With `config.weight_lr`, the hidden layers' weights (all numbered layers but the last) get that
    rate in a group of their own."""
    settings = dict(lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    params: list = list(model.parameters())
    if config.weight_lr is not None:
        hidden = {id(model.layer(k).weight) for k in range(1, model.num_layers)}
        params = [
            {"params": [p for p in params if id(p) in hidden], "lr": config.weight_lr},
            {"params": [p for p in params if id(p) not in hidden]},
        ]
    elif config.residual == "fixup":  # Fixup's recipe: its scalar biases and multipliers, and every bias, at lr / 10
        scalars = {id(p) for name, p in model.named_parameters() if name.endswith((".bias", ".scale"))}
        params = [
            {"params": [p for p in params if id(p) in scalars], "lr": config.lr / 10},
            {"params": [p for p in params if id(p) not in scalars]},
        ]
    try:
        optimizer = torch.optim.SGD(params, **settings, fused=True)
    except (RuntimeError, TypeError, ValueError):  # torch < 2.4 on the CPU
        optimizer = torch.optim.SGD(params, **settings)
    for group in optimizer.param_groups:  # the rates warm-up scales (`set_rate`)
        group["base_lr"] = group["lr"]
    return optimizer


def set_rate(optimizer: torch.optim.Optimizer, config: RunConfig, step: int) -> None:
    """The rate of every parameter group at `step`: its base rate, times (step + 1) / warmup_steps
    during the warm-up."""
    factor = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """VGG's loss: softmax cross-entropy, averaged over the batch."""
    return F.cross_entropy(devices.full_precision(logits), y)


def half_squared_error(logits: Tensor, y: Tensor) -> Tensor:
    """The "mse" loss: half the squared distance between the outputs and the one-hot labels, summed
    over classes and averaged over the batch (Cohen et al.'s edge-of-stability runs)."""
    out = devices.full_precision(logits)
    return 0.5 * (out - F.one_hot(y, out.shape[1]).to(out.dtype)).square().sum(1).mean()


LOSSES = {"cross_entropy": cross_entropy, "mse": half_squared_error}


def summed_squared_error(pred: Tensor, y: Tensor) -> Tensor:
    """The DLN's loss, sum_i ||W x_i - A x_i||^2 over all samples: the sum (not the mean) is what
    makes the paper's plotted losses (1e3..1e5) and its learning rate 1e-6 fit (book/protocol.md,
    "The deep linear network")."""
    return (devices.full_precision(pred) - y).square().sum()


@dataclass
class _Task:
    """The data side of a run: a batch source, the loss, and (on CIFAR-10) the training and test sets."""

    next_batch: Callable[[], tuple[Tensor, Tensor]]
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    test: ImageSplit | None
    sampler: BatchSampler | None
    source: dict[str, Any]
    train: ImageSplit | None = None


def _make_task(config: RunConfig, device: torch.device, options: RunOptions) -> _Task:
    if not config.on_cifar:
        x, y, _ = dln_data(config.dln_dim, config.dln_samples, config.data_seed, device)
        source = {"kind": "synthetic", "note": "x ~ N(0, I), A_ij ~ N(0, 1), y = A x", "seed": config.data_seed}
        return _Task(lambda: (x, y), summed_squared_error, None, None, source)
    cifar = load_cifar10(options.data)
    train_idx = balanced_subset(cifar.train_y, config.train_per_class, config.data_seed)
    test_idx = balanced_subset(cifar.test_y, config.test_per_class, config.data_seed)
    train = ImageSplit(cifar.train_x[train_idx], cifar.train_y[train_idx], cifar.mean, cifar.std, device)
    test = ImageSplit(cifar.test_x[test_idx], cifar.test_y[test_idx], cifar.mean, cifar.std, device)
    sampler = BatchSampler(train, config.batch_size, config.seed, config.augment)
    return _Task(sampler.next, LOSSES[config.loss], test, sampler, cifar.source, train)


def initial_model(config: RunConfig, options: RunOptions | None = None) -> NumberedNet:
    """The network a run of `config` starts from (the same draw as `train`, and for init "lsuv" the
    same rescaling, which reads the data), on the CPU in training mode; torch's random state is left
    as it was."""
    model = build_model_at_seed(config)
    if config.init == "lsuv":
        init_lsuv(model, lsuv_batch(_make_task(config, torch.device("cpu"), options or RunOptions())))
    return model


def build_model_at_seed(config: RunConfig) -> NumberedNet:
    """The network of `config` as its seed draws it (before any data-dependent initialisation), on
    the CPU in training mode; torch's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_model(config).train()


def lsuv_batch(task: _Task) -> Tensor:
    """The batch LSUV rescales the layers on: the first LSUV_EXAMPLES training examples in order
    (not drawn from the sampler, so the run's batches are the same with or without LSUV)."""
    if task.train is None:
        raise ConfigError("init 'lsuv' needs CIFAR-10 data (the VGG, ResNet or MLP)")
    return task.train.standardise(task.train.images[:LSUV_EXAMPLES])


LSUV_EXAMPLES = 256


@torch.no_grad()
def dead_layer(model: NumberedNet, split: ImageSplit, batch_size: int = 1000) -> int | None:
    """The first numbered hidden layer whose output (after its activation) is zero for every example
    of `split`, or None. With such a layer the network gives every example the same output, and
    under plain SGD it stays so: no gradient reaches that layer or those below it again, and the
    layers above it see the same input for every example. Only for networks whose output for an
    example depends on that example alone (`RunConfig.can_die`)."""
    alive: set[int] = set()
    blocks = model.blocks()[:-1]  # the hidden layers: every numbered block but the classifier
    hooks = [
        block.register_forward_hook(lambda m, i, out, k=k: alive.add(k) if bool(out.any()) else None)
        for k, block in enumerate(blocks, 1)
    ]
    try:
        for x, _ in split.batches(batch_size):
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    dead = [k for k in range(1, len(blocks) + 1) if k not in alive]
    return dead[0] if dead else None


def first_batch(config: RunConfig, options: RunOptions | None = None) -> tuple[Tensor, Tensor, Callable]:
    """The first training batch of a run of `config` on the CPU, and the run's loss function: for
    measurements on a saved model (e.g. `Record.model()`)."""
    [(x, y)], loss_fn = first_batches(config, 1, options)
    return x, y, loss_fn


def first_batches(
    config: RunConfig, count: int, options: RunOptions | None = None
) -> tuple[list[tuple[Tensor, Tensor]], Callable]:
    """The first `count` training batches of a run of `config` on the CPU, and its loss function."""
    task = _make_task(config, torch.device("cpu"), options or RunOptions())
    return [task.next_batch() for _ in range(count)], task.loss_fn


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: ImageSplit,
    device: torch.device,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = cross_entropy,
    batch_size: int = 1000,
) -> tuple[float, float]:
    """(accuracy, mean loss) of the model in evaluation mode on a whole split."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=device)
    loss = torch.zeros((), device=device)
    for x, y in split.batches(batch_size):
        logits = model(x)
        correct += (logits.argmax(1) == y).sum()
        loss += loss_fn(logits, y) * len(y)
    model.train(was_training)
    return (correct / len(split)).item(), (loss / len(split)).item()


def environment(device: torch.device, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "bnlib": importlib.metadata.version("bnlib"),
        "git_commit": _git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _processor(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch ran (AVX2, AVX512, ...)
        "device": devices.describe(device),
        "threads": torch.get_num_threads(),  # a CPU run is bit-identical only on as many threads
        "trained": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": source,
    }


def _processor() -> str:
    """The CPU's model name (a result is bit-identical only on the same CPU family and torch)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_commit() -> str:
    """The commit of the bnlib that trains ("+changes" when bnlib's files differ from it; "unknown"
    outside a git checkout, as an installed package)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return (commit + ("+changes" if git("status", "--porcelain", "--", ".") else "")) if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _megabytes(state: Any) -> float:
    """The size of a checkpoint's tensors, in MB (what it needs on disk, near enough)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size() / 2**20
    if isinstance(state, dict):
        return sum(_megabytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(_megabytes(v) for v in state)
    return 0.0


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return os.environ.get(ENV_PROGRESS, "1") not in ("0", "false", "no")


class Run:
    """One training run in progress: model, optimizer, data, metrics and probe outputs.

    `train()` drives it; benchmarks and probes may call `train_step` directly.
    """

    def __init__(self, config: RunConfig, probes: Sequence[Probe], options: RunOptions):
        self.config, self.probes, self.options = config, list(probes), options
        self.device = devices.pick_device(options.device)
        devices.configure(self.device)
        self.task = _make_task(config, self.device, options)
        torch.manual_seed(config.seed)
        self.model: NumberedNet = build_model(config)
        # channels_last: tensor cores on CUDA, and 1.5x faster oneDNN convolutions on the CPU (measured).
        memory_format = torch.channels_last if config.model in ("vgg", "resnet") else torch.preserve_format
        self.model.to(self.device, memory_format=memory_format)
        self.model.train()
        if config.init == "lsuv":
            init_lsuv(self.model, lsuv_batch(self.task))
        # the hidden layers' initial norms, which fixed_weight_norm restores after every step
        self.initial_norms = {k: self.model.layer(k).weight.detach().norm() for k in range(1, self.model.num_layers)}
        self.optimizer = sgd(self.model, config)
        if config.precision != "float32" and config.model == "dln":
            raise ConfigError("the DLN's summed losses (~1e5) need precision 'float32'")
        devices.autocast(self.device, config.precision)  # refuses bf16 without CUDA, before any step
        self.step = 0
        self.spoiled = False  # a checkpoint failed half-way through loading into this run
        self.loss_buf = torch.full((config.steps,), float("nan"), device=self.device)
        self.acc_buf = torch.full((config.steps,), float("nan"), device=self.device)
        self.checked = 0  # losses before this step are known finite and in bounds
        self.tests: list[tuple[int, float, float]] = []
        self.probe_out: dict[str, dict[str, list]] = {probe_key(p): {"step": []} for p in self.probes}
        self.diverged_at: int | None = None
        self.stopped = ""  # why the run ended early: "reached" its target, or "dead" (RunConfig.target_acc)
        self.first_gradient = torch.ones((), device=self.device)  # the largest |gradient| of layer #1's weights
        self.zero_streak, self.dead_patience = 0, 3  # log points with that gradient zero; how many before a proof
        self.elapsed = 0.0

    # ---------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "config_digest": self.digest(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": vars(RandomState.capture()),
            "sampler": self.task.sampler.state_dict() if self.task.sampler else {},
            "loss": self.loss_buf[: self.step].cpu(),
            "acc": self.acc_buf[: self.step].cpu(),
            "checked": self.checked,
            "dead_watch": [self.zero_streak, self.dead_patience],
            "tests": [list(t) for t in self.tests],
            "probes": {
                k: {n: [torch.as_tensor(v) for v in vs] for n, vs in d.items()} for k, d in self.probe_out.items()
            },
            "elapsed": self.elapsed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        RandomState(**state["rng"]).restore()
        if self.task.sampler:
            self.task.sampler.load_state_dict(state["sampler"])
        self.loss_buf[: self.step] = state["loss"].to(self.device)
        self.acc_buf[: self.step] = state["acc"].to(self.device)
        self.checked = int(state["checked"])
        self.zero_streak, self.dead_patience = (int(v) for v in state["dead_watch"])
        self.tests = [(int(step), float(acc), float(loss)) for step, acc, loss in state["tests"]]
        self.probe_out = {
            k: {n: [v.item() if n == "step" else v.numpy() for v in vs] for n, vs in d.items()}
            for k, d in state["probes"].items()
        }
        self.elapsed = float(state["elapsed"])

    def try_resume(self) -> bool:
        path = self.options.checkpoint_path
        if path is None or not path.exists():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torch's own message advises unsafe loading: never shown
            warn(f"checkpoint {path} is damaged; the run restarts from step 0")
            return False
        try:
            if state.get("version") != CHECKPOINT_VERSION or state["config_digest"] != self.digest():
                warn(f"checkpoint {path} belongs to another version or config; the run restarts from step 0")
                return False
            self.load_state_dict(state)
        except Exception:  # a checkpoint that loads but does not fit costs a restart, not a crash
            warn(f"checkpoint {path} is damaged; the run restarts from step 0")
            self.spoiled = True  # whatever it loaded is discarded: `train` starts afresh
            return False
        return True

    def digest(self) -> str:
        """Identifies what this run computes, so a checkpoint is never resumed into another run."""
        return self.config.digest([probe_key(p) for p in self.probes])

    def checkpoint(self) -> None:
        path = self.options.checkpoint_path
        if path is None:
            return
        state = self.state_dict()
        try:
            atomic_write(path, lambda tmp: torch.save(state, tmp))
        except OSError as e:
            raise CacheError(
                f"could not write the checkpoint of {self.label} in {path.parent} ({e.strerror}; it needs about "
                f"{_megabytes(state):.0f} MB); free some space there or point BNLIB_CACHE at a larger disk, and run "
                "again: the run resumes from its last checkpoint"
            ) from None

    # ---------------------------------------------------------------- the loop

    def run_probes(self, probes: Sequence[Probe], x: Tensor, y: Tensor, rng: RandomState | None) -> None:
        for probe in probes:
            ctx = ProbeContext(self.model, x, y, self.step, self.config, self.task.loss_fn, self.optimizer, rng)
            with preserved_state(self.model):
                out = probe(ctx)
            record = self.probe_out[probe_key(probe)]
            record["step"].append(self.step)
            for name, value in out.items():
                record.setdefault(name, []).append(to_numpy(value))

    def train_step(self, x: Tensor, y: Tensor, probes: Sequence[Probe] = ()) -> None:
        """One SGD step; `probes` measure between the backward pass and the update."""
        rng = RandomState.capture() if probes else None
        set_rate(self.optimizer, self.config, self.step)
        with devices.autocast(self.device, self.config.precision):
            out = self.model(x)
        loss = self.task.loss_fn(out, y)
        loss.backward()
        if probes:
            self.run_probes(probes, x, y, rng)
        if self.config.clip_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        if self.config.stop_dead:  # read only at log points (a sync); zero when no gradient reaches layer #1
            self.first_gradient = self.model.layer(1).weight.grad.detach().abs().max()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.config.fixed_weight_norm:
            with torch.no_grad():
                for k, norm in self.initial_norms.items():
                    weight = self.model.layer(k).weight
                    weight.mul_(norm / weight.norm())
        # Written into device buffers: no host synchronisation until the next log point.
        self.loss_buf[self.step] = loss.detach()
        if self.config.on_cifar:
            self.acc_buf[self.step] = (out.detach().argmax(1) == y).float().mean()

    def check_divergence(self) -> bool:
        """Sync point: look at the losses since the last check; True if the run diverged."""
        recent = self.loss_buf[self.checked : self.step].cpu()
        bad = ~torch.isfinite(recent) | (recent > self.config.divergence_bound)
        if bad.any():
            self.diverged_at = self.checked + int(bad.nonzero()[0])
            return True
        self.checked = self.step
        return False

    def decided(self) -> bool:
        """Sync point: whether the run's metric is decided (RunConfig.target_acc, target_loss,
        stop_dead); if so `stopped` says how."""
        cfg = self.config
        if self.step >= SPEED_WINDOW and (cfg.target_acc is not None or cfg.target_loss is not None):
            recent = slice(self.step - SPEED_WINDOW, self.step)
            reached_acc = cfg.target_acc is not None and self.acc_buf[recent].mean().item() >= cfg.target_acc
            reached_loss = cfg.target_loss is not None and self.loss_buf[recent].mean().item() <= cfg.target_loss
            if reached_acc or reached_loss:
                self.stopped = "reached"
        if not self.stopped and cfg.stop_dead and self.task.train is not None:
            # the proof (a pass over the training set) only after layer #1's gradient has been zero at
            # several log points in a row, and less often each time it finds a unit still alive
            self.zero_streak = self.zero_streak + 1 if self.first_gradient.item() == 0 else 0
            if self.zero_streak >= self.dead_patience:
                if dead_layer(self.model, self.task.train) is not None:
                    self.stopped = "dead"
                self.dead_patience *= 2
        return bool(self.stopped)

    def test(self) -> None:
        if self.task.test is not None:
            acc, loss = evaluate(self.model, self.task.test, self.device, self.task.loss_fn)
            self.tests.append((self.step, acc, loss))

    def loop(self, bar: tqdm) -> None:
        cfg = self.config
        last_checkpoint = time.monotonic()
        with interrupts.deferred() as interrupted:
            while self.step < cfg.steps:
                self.one_step()
                if interrupted():  # between two steps: the checkpoint holds whole steps only
                    self.checkpoint()
                    saved = "its checkpoint saved" if self.options.checkpoint_path else "no checkpoint kept"
                    raise interrupts.Interrupted(f"{self.label} stopped at step {self.step} of {cfg.steps}, {saved}")
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    if self.check_divergence() or self.decided():
                        return
                    bar.update(self.step - bar.n)
                    bar.set_postfix(loss=f"{self.loss_buf[self.step - 1].item():.4g}", refresh=False)
                    if self.options.on_step is not None:
                        self.options.on_step(self.step)
                    if time.monotonic() - last_checkpoint >= self.options.checkpoint_interval_s:
                        self.checkpoint()
                        last_checkpoint = time.monotonic()

    def one_step(self) -> None:
        started = time.perf_counter()
        cfg = self.config
        if cfg.test_every and self.step % cfg.test_every == 0 and not self._tested(self.step):
            self.test()
        x, y = self.task.next_batch()
        self.train_step(x, y, [p for p in self.probes if due(p, self.step)])
        self.step += 1
        self.elapsed += time.perf_counter() - started

    @property
    def label(self) -> str:
        c = self.config
        return f"{c.model}/{c.norm} lr={c.lr:g} seed={c.seed}"

    def _tested(self, step: int) -> bool:
        return bool(self.tests) and self.tests[-1][0] == step

    def result(self) -> TrainResult:
        started = time.perf_counter()
        if not self._tested(self.step):
            self.test()
        self.elapsed += time.perf_counter() - started
        n = self.diverged_at + 1 if self.diverged_at is not None else self.step
        loss = self.loss_buf[:n].cpu().numpy()
        acc = self.acc_buf[:n].cpu().numpy()
        metrics = {"step": np.arange(n), "train_loss": loss}
        if self.config.on_cifar:
            metrics["train_acc"] = acc
            tests = np.array(self.tests, dtype=np.float64).reshape(-1, 3)
            metrics |= {"test_step": tests[:, 0].astype(np.int64), "test_acc": tests[:, 1], "test_loss": tests[:, 2]}
        window = slice(max(0, n - FINAL_WINDOW), n)
        final = {"steps": float(n), "train_loss": float(np.mean(loss[window])) if n else float("nan")}
        if self.config.on_cifar:
            final |= {"train_acc": float(np.mean(acc[window])) if n else float("nan"), "test_acc": self.tests[-1][1]}
        probes = {k: {name: np.stack(v) for name, v in d.items()} for k, d in self.probe_out.items() if d["step"]}
        return TrainResult(
            status="diverged" if self.diverged_at is not None else self.stopped or "finished",
            steps_done=n,
            metrics=metrics,
            probes=probes,
            final=final,
            wall_time_s=self.elapsed,
            environment=environment(self.device, self.task.source),
            model_state={k: v.detach().cpu() for k, v in self.model.state_dict().items()},
        )


def train(config: RunConfig, probes: Sequence[Probe] = (), options: RunOptions | None = None) -> TrainResult:
    """Train one run; resume from `options.checkpoint_path` if a matching checkpoint is there.

    The checkpoint is left in place at the end (the caller removes it once the result is stored),
    so a run killed after training but before its record was written is not trained again.
    """
    options = options or RunOptions()
    with _threads(options.threads):
        run = Run(config, probes, options)
        if not run.try_resume() and run.spoiled:  # a checkpoint that failed half-way through loading
            run = Run(config, probes, options)
        show = _progress_enabled(options.progress)
        with tqdm(total=config.steps, initial=run.step, desc=run.label, disable=not show, leave=False) as bar:
            run.loop(bar)
        if run.diverged_at is None:
            run.checkpoint()
        return run.result()


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's CPU thread count set to `count` for the block (unchanged if None)."""
    if count is None:
        yield
        return
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"threads must be a positive integer or None, not {count!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
