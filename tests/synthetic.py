"""Synthetic run records for the rule tests: a record whose training accuracy reaches the speed
target at a chosen step (or never), with chosen final numbers and probe outputs, and a store that
every session reads instead of the cache (`Session.get`, `Session.stored`, `Session.records`)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from bnlib.book import chapter, ladder, measures
from bnlib.book.measures import TARGET
from bnlib.book.session import Session
from bnlib.experiments import Experiment
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
    loss = 2.3 * (1 - curve)
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


def drifting(horizon: int, layers, mean_drift: float, sd_drift: float, site: str = "norm_out") -> dict[str, np.ndarray]:
    """An activation probe every 50 steps whose units sit still for the first tenth of the run (the
    transient the drift measures are taken after), then move linearly: by the end every unit's mean
    has moved by `mean_drift` and its standard deviation (1 at the start) by `sd_drift`."""
    steps = np.arange(0, horizon, 50)
    moved = np.clip((steps - 0.1 * horizon) / (0.9 * horizon), 0, 1)[:, None] * np.ones((1, 8))
    mean = {layer: moved * mean_drift for layer in layers}
    var = {layer: (1 + moved * sd_drift) ** 2 for layer in layers}
    return activations(steps, mean, var, site)


def landscape(horizon: int, level: float, beta: float | None = None) -> dict[str, dict[str, np.ndarray]]:
    """The three landscape probes of a run (along the gradient, along a random direction, and on the
    extended grid of step sizes), every 50 steps, at a constant `level`: the loss band's width, the
    largest gradient change, the gradient's norm and the effective beta (`beta` where given) all equal
    it, at every probed step. Keyed by the probe kinds the chapters read them under."""
    steps = np.arange(0, horizon, 50)
    n = len(steps)
    beta = level if beta is None else beta
    one = {
        "step": steps,
        "loss_max": np.full(n, level),
        "loss_min": np.zeros(n),
        "grad_diff_max": np.full(n, level),
        "beta_max": np.full(n, beta),
        "grad_norm": np.full(n, level),
    }
    multiples = np.tile([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], (n, 1))
    extended = one | {"eta_multiple": multiples, "beta": np.full((n, 6), beta)}
    return {"landscape": one, "landscape-random": one, "landscape-extended": extended}


def ics(steps: np.ndarray, layers, l2, cosine) -> dict[str, np.ndarray]:
    """An ICS probe's output (Definition 2.1): at every probed step, per layer, the l2 difference and
    the cosine given (one value per layer)."""
    columns = (("layer", layers), ("l2_diff", l2), ("cosine", cosine))
    return {"step": np.asarray(steps)} | {name: np.tile(values, (len(steps), 1)) for name, values in columns}
