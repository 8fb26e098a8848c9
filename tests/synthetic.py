"""Synthetic run records for the rule tests: a record whose training accuracy reaches the speed
target at a chosen step (or never), with chosen final numbers and probe outputs, and a store that
every session reads instead of the cache (`Session.get`, `Session.stored`, `Session.records`)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from bnlib.book import chapter, ladder, measures, plan
from bnlib.book.measures import TARGET
from bnlib.book.session import Session
from bnlib.experiments import Experiment
from bnlib.probes.hook import due
from bnlib.records import Record
from bnlib.train import SPEED_WINDOW


def accuracy(steps_to: int | None, horizon: int, low: float = 0.1, high: float = 0.9) -> np.ndarray:
    """A training-accuracy curve at `low` that jumps to `high`, placed so that its SPEED_WINDOW-step
    mean (`Record.smoothed`) first reaches TARGET at step `steps_to` (never, if None)."""
    acc = np.full(horizon, low)
    if steps_to is None:
        return acc
    # the mean over the window ending at t counts (t - jump + 1) steps at `high`
    inside = int(np.ceil((TARGET - low) * SPEED_WINDOW / (high - low) - 1e-9))
    jump = steps_to - inside + 1
    if jump < 0 or steps_to >= horizon:
        raise ValueError(f"cannot reach the target at step {steps_to} within {horizon} steps")
    acc[jump:] = high
    return acc


def record(
    run: Experiment,
    scale: str = "cpu",
    seed: int = 0,
    steps_to: int | None = None,
    curve: np.ndarray | None = None,
    final: dict[str, float] | None = None,
    status: str | None = None,
    probes: dict[str, dict[str, np.ndarray]] | None = None,
) -> Record:
    """A record of `run` at a scale and seed. A run that stops at the speed target ends there
    (status "reached"); otherwise it runs its steps ("finished"), unless `status` says how it ended."""
    config = Session(scale).config(run, seed)
    if curve is None:
        curve = accuracy(steps_to, config.steps)
        if steps_to is not None and config.target_acc is not None:
            curve = curve[: steps_to + 1]
    done = len(curve)
    ended = status or ("reached" if config.target_acc is not None and steps_to is not None else "finished")
    loss = np.log(10) * (1 - curve) / 0.9  # chance (ln 10) at 10% accuracy: the plateau
    metrics = {"step": np.arange(done), "train_acc": curve, "train_loss": loss}
    numbers = {"steps": float(done), "train_acc": float(curve[-100:].mean()), "train_loss": float(loss[-100:].mean())}
    numbers |= {"test_acc": numbers["train_acc"] * 0.8}
    return Record(config, ended, metrics, probes or {}, numbers | (final or {}), 1.0, {})


class Store:
    """Records by config, read by every session in place of the cache."""

    def __init__(self, monkeypatch, scale: str = "cpu"):
        self.scale, self.book = scale, {}
        # plain functions, so that `session.get(run)` passes the session first, as the methods do
        monkeypatch.setattr(Session, "get", lambda session, run, seed=0: self.get(session, run, seed))
        monkeypatch.setattr(Session, "stored", lambda session, run, seed=0: self.stored(session, run, seed))
        monkeypatch.setattr(Session, "records", lambda session, runs: self.records(session, runs))

    def put(self, run: Experiment, seed: int = 0, **kwargs) -> Record:
        made = record(run, self.scale, seed, **kwargs)
        self.book[made.config] = made
        return made

    def get(self, session: Session, run: Experiment, seed: int = 0) -> Record:
        return self.book[session.config(run, seed)]

    def stored(self, session: Session, run: Experiment, seed: int = 0) -> Record | None:
        return self.book.get(session.config(run, seed))

    def records(self, session: Session, runs: list) -> list[Record]:
        pairs = [item if isinstance(item, tuple) else (item, 0) for item in runs]
        return [self.get(session, run, seed) for run, seed in pairs]


def forget(*modules: ModuleType) -> None:
    """Forget every finding, and the cached tables of every chapter and shared module."""
    chapter.forget()
    for module in (*modules, ladder, measures):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def activations(
    steps: np.ndarray, mean: dict[int, np.ndarray], var: dict[int, np.ndarray] | None = None, site: str = "norm_out"
) -> dict[str, np.ndarray]:
    """An activation probe's output: per layer, every tracked unit's mean (and variance, 1 if not
    given) at each probed step, one array of shape (steps, units) per layer."""
    out = {"step": np.asarray(steps)}
    for layer, values in mean.items():
        out[f"L{layer}.{site}.mean"] = np.asarray(values, dtype=float)
        spread = np.ones_like(values, dtype=float) if var is None else var[layer]
        out[f"L{layer}.{site}.var"] = np.asarray(spread, dtype=float)
    return out


def rising(horizon: int, leaves: int, rise: int, low: float = 0.1, high: float = 0.9) -> np.ndarray:
    """A training-accuracy curve shaped like the paper's: on the plateau at `low` (chance, its loss
    ln 10) until step `leaves`, then rising linearly to `high` over `rise` steps."""
    return low + (high - low) * np.clip((np.arange(horizon) - leaves) / rise, 0, 1)


def drifting(
    horizon: int,
    layers,
    mean_drift: float,
    sd_drift: float,
    site: str = "norm_out",
    moves: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """An activation probe every 50 steps whose units sit still except between the steps `moves`
    (default: from a tenth of the run to its end), where they move linearly: over them every unit's
    mean moves by `mean_drift` and its standard deviation (1 at the start) by `sd_drift`."""
    steps = np.arange(0, horizon, 50)
    start, end = moves or (0.1 * horizon, horizon)
    moved = np.clip((steps - start) / (end - start), 0, 1)[:, None] * np.ones((1, 8))
    mean = {layer: moved * mean_drift for layer in layers}
    var = {layer: (1 + moved * sd_drift) ** 2 for layer in layers}
    return activations(steps, mean, var, site)


def landscape(
    horizon: int, level, beta=None, model: str = "vgg", scale: str = "cpu"
) -> dict[str, dict[str, np.ndarray]]:
    """The landscape probes of a run (along the gradient, along a random direction, on the extended
    grid of step sizes) and its activation gradients, at the probed steps of the scale's schedule
    (`plan.make_probe`): the loss band's width, the largest gradient change, the gradients' norms
    and the effective beta (`beta` where given) all equal `level` (a number, or a function of the
    probed steps). Keyed by the probe kinds the chapters read them under."""
    schedule = plan.make_probe("landscape", model, scale)
    steps = np.array([s for s in range(horizon) if due(schedule, s)])
    n = len(steps)
    values = np.broadcast_to(level(steps) if callable(level) else level, (n,)).astype(float)
    betas = values if beta is None else np.broadcast_to(beta(steps) if callable(beta) else beta, (n,)).astype(float)
    one = {
        "step": steps,
        "loss_max": values,
        "loss_min": np.zeros(n),
        "grad_diff_max": values,
        "beta_max": betas,
        "grad_norm": values,
    }
    multiples = np.tile([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], (n, 1))
    extended = one | {"eta_multiple": multiples, "beta": np.tile(betas[:, None], (1, 6))}
    gradients = {"step": steps, "norms": np.tile(values[:, None], (1, 3)), "total": values}
    return {
        "landscape": one,
        "landscape-random": one,
        "landscape-extended": extended,
        "activation-gradients": gradients,
    }


def ics(steps: np.ndarray, layers, l2, cosine) -> dict[str, np.ndarray]:
    """An ICS probe's output (Definition 2.1): at every probed step, per layer, the l2 difference and
    the cosine given (one value per layer)."""
    columns = (("layer", layers), ("l2_diff", l2), ("cosine", cosine))
    return {"step": np.asarray(steps)} | {name: np.tile(values, (len(steps), 1)) for name, values in columns}
