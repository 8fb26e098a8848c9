"""Run records: each run stored once, keyed by what determines its result, loaded as DataFrames.

A record lives in $BNLIB_CACHE/runs/<key>/ where key hashes the record schema version, the full
RunConfig and the data copy's fingerprint. Inside: record.json (config, status, final numbers,
wall time, environment, and a checksum of every other file), metrics.npz, one probe-<name>.npz per
probe, and model.pt (the final weights; load with torch.load(..., weights_only=True)).

A published record (`bnlib.published`: the book's run store, in the repository) answers for its
config whenever the cache holds no record of the reader's own; it keeps the weights only of the
runs whose weights a page loads.

What `load_or_run` guarantees:

* **Only what is missing is computed**: a new run, or the probes a finished run lacks (measuring
  never changes the training, so the rerun retraces the same path). The reader's own record comes
  first, then the published one (unless `RunOptions.published` is False), and only then does
  anything train; a published record is found without decoding any data.
* **Resume**: while training, the run's whole state is checkpointed now and then into
  checkpoint.pt in the record's folder; a run killed at any moment resumes from there on the next
  request (bit-identical to an uninterrupted run on the CPU).
* **One writer per run**: a lock on the record's key; a second process asking for the same run
  waits for the first one's record instead of training it again.
* **Atomic records**: every file is written atomically and record.json last, and record.json is
  validated when read (schema, status, the files it names and their checksums), so a record exists
  whole or is recomputed. Strict JSON and .npz only, never pickle.
* **Problems first**: the cache is checked (a writable folder with room for the run) before any
  data is decoded or any step trained.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bnlib import published
from bnlib.config import RunConfig
from bnlib.data import known_source, load_cifar10
from bnlib.errors import BnlibError, CacheError, ConfigError, warn
from bnlib.models import NumberedNet, build_model
from bnlib.probes.hook import Probe, probe_key
from bnlib.storage import (
    atomic_write,
    cache_dir,
    check_cache,
    exclusive,
    file_sha256,
    load_npz,
    read_json,
    remove_stale_temporaries,
    save_npz,
    write_json,
)
from bnlib.train import FINAL_WINDOW, SPEED_WINDOW, RunOptions, TrainResult, build_model_at_seed, train

SCHEMA_VERSION = 3  # 2: strict JSON, validated on load; 3: keys of the changed fields only, early stops
# How a run ended: all its steps; the loss out of bounds; its target reached; its network dead
STATUSES = ("finished", "diverged", "reached", "dead")
_MB = 1 << 20


@dataclass
class Record:
    """A finished run: its config, status, numbers, and probe outputs."""

    config: RunConfig
    status: str
    metrics: dict[str, np.ndarray]
    probes: dict[str, dict[str, np.ndarray]]
    final: dict[str, float]
    wall_time_s: float
    environment: dict[str, Any]
    path: Path | None = None
    label: str = field(default="")
    trained: bool = False  # True when the call that returned it trained (or resumed) the run
    waited: bool = False  # True when another process trained it while the call that returned it waited
    origin: str = "cache"  # "published": read from the run store (bnlib.published), not the reader's cache

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def smoothed(self, metric: str = "train_acc") -> np.ndarray:
        """A per-step training metric averaged over the last SPEED_WINDOW steps (NaN before there are
        that many): "the training accuracy at step t" of the speed measures and the target stops."""
        values = pd.Series(self.metrics[metric], dtype=float)
        return values.rolling(SPEED_WINDOW).mean().to_numpy()

    def highest(self, metric: str = "train_acc") -> float:
        """The highest `smoothed` value over the run (NaN if it is shorter than SPEED_WINDOW)."""
        values = self.smoothed(metric)
        values = values[~np.isnan(values)]
        return float(values.max()) if len(values) else float("nan")

    def steps_to(self, accuracy: float) -> int | None:
        """The first step at which the training accuracy (`smoothed`) reaches `accuracy`; None if the
        run never did (within its steps; a dead run never will)."""
        hit = np.flatnonzero(self.smoothed() >= accuracy)
        return int(self.metrics["step"][hit[0]]) if len(hit) else None

    def truncated(self, steps: int) -> Record:
        """The record a run of the same config stopped after `steps` steps would have: nothing before
        a step depends on how long the run lasts (the test set is evaluated in evaluation mode,
        drawing no random numbers). Metrics, final numbers and the probes' outputs at the steps
        before `steps`; no weights."""
        if not 0 < steps <= self.config.steps:
            raise ValueError(f"cannot cut a {self.config.steps}-step run at step {steps}")
        probes = {key: {q: v[data["step"] < steps] for q, v in data.items()} for key, data in self.probes.items()}
        cut = dataclasses.replace(self, config=self.config.replace(steps=steps), probes=probes, path=None)
        m, done = self.metrics, len(self.metrics["step"])
        if steps >= done:  # it diverged before `steps` (or ends there): the same record
            return cut
        window = slice(max(0, steps - FINAL_WINDOW), steps)
        cut.metrics = {k: v[:steps] for k, v in m.items() if not k.startswith("test_")}
        cut.final = {"steps": float(steps), "train_loss": float(np.mean(m["train_loss"][window]))}
        if "test_step" in m:
            kept = m["test_step"] <= steps
            if not kept.any() or m["test_step"][kept][-1] != steps:
                raise ValueError(f"the run has no test accuracy at step {steps}; cut it where it was tested")
            cut.metrics |= {k: v[kept] for k, v in m.items() if k.startswith("test_")}
            cut.final |= {
                "train_acc": float(np.mean(m["train_acc"][window])),
                "test_acc": float(m["test_acc"][kept][-1]),
            }
        cut.status, cut.wall_time_s = "finished", self.wall_time_s * steps / done
        return cut

    def model(self) -> NumberedNet:
        """The run's final network (from model.pt), on the CPU in training mode."""
        if self.path is None:
            raise ValueError("this record has no folder to load the model from")
        if not (self.path / published.WEIGHTS).exists():
            raise BnlibError(
                f"the published record {self.path} keeps no weights (the store keeps them only for runs a page "
                "loads); train it into your cache: bnlib.load_or_run(config, options=RunOptions(published=False))"
            )
        model = build_model_at_seed(self.config)
        model.load_state_dict(torch.load(self.path / "model.pt", weights_only=True))
        return model

    def curves(self) -> pd.DataFrame:
        """Tidy training curves: one row per (step, metric) with the run's config as columns."""
        m = self.metrics
        parts = [
            pd.DataFrame({"step": m["step"], "metric": name, "value": m[name]})
            for name in ("train_loss", "train_acc")
            if name in m
        ]
        parts += [
            pd.DataFrame({"step": m["test_step"], "metric": name, "value": m[name]})
            for name in ("test_acc", "test_loss")
            if name in m
        ]
        return self._tag(pd.concat(parts, ignore_index=True))

    def probe_key(self, probe: str | Probe) -> str:
        """The key of a probe in this record: a probe, its key, or the start of exactly one key
        ("ics", "landscape-gradient", "hessian")."""
        key = probe if isinstance(probe, str) else probe_key(probe)
        if key in self.probes:
            return key
        matches = [k for k in self.probes if k.startswith(key)]
        if len(matches) != 1:
            raise KeyError(f"this record has no probe {key!r} (nor one key starting so); it has {sorted(self.probes)}")
        return matches[0]

    def probe_table(self, probe: str | Probe, quantity: str) -> pd.DataFrame:
        """One probe quantity as a table: a row per probed step, a column per position of a vector
        output (a single column 0 for a number)."""
        data = self.probes[self.probe_key(probe)]
        values = data[quantity].reshape(len(data["step"]), -1)
        return pd.DataFrame(values, index=pd.Index(data["step"], name="step"))

    def probe_frame(self, probe: str | Probe) -> pd.DataFrame:
        """Tidy probe outputs: step, quantity, index (position in a vector output), value."""
        data = self.probes[self.probe_key(probe)]
        steps = data["step"]
        rows = []
        for name, values in data.items():
            if name == "step":
                continue
            flat = values.reshape(len(steps), -1)
            rows.append(
                pd.DataFrame(
                    {
                        "step": np.repeat(steps, flat.shape[1]),
                        "quantity": name,
                        "index": np.tile(np.arange(flat.shape[1]), len(steps)),
                        "value": flat.ravel(),
                    }
                )
            )
        return self._tag(pd.concat(rows, ignore_index=True))

    def _tag(self, frame: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        return frame.assign(
            run=self.label or f"{c.model}-{c.norm}-lr{c.lr:g}", model=c.model, norm=c.norm, lr=c.lr, seed=c.seed
        )


def frame(records: Sequence[Record]) -> pd.DataFrame:
    """The training curves of several runs in one tidy DataFrame."""
    return pd.concat([r.curves() for r in records], ignore_index=True)


def runs_dir() -> Path:
    return cache_dir() / "runs"


def data_fingerprint(config: RunConfig, options: RunOptions, decode: bool = True) -> str | None:
    """The data copy a run uses: part of its key, so switching copies never reuses stale results.
    With decode=False, None when the copy was never decoded (so no run of it can exist)."""
    if not config.on_cifar:
        return "synthetic"
    source = load_cifar10(options.data).source if decode else known_source(options.data)
    return None if source is None else source["fingerprint"]


def record_key(config: RunConfig, options: RunOptions | None = None) -> str:
    options = options or RunOptions()
    return config.digest(SCHEMA_VERSION, data_fingerprint(config, options))


def stored_record(config: RunConfig, options: RunOptions | None = None) -> Record | None:
    """The record of `config` if one is stored, without training or decoding anything: the reader's
    own (in the cache), else the published one (unless `options.published` is False)."""
    options = options or RunOptions()
    fingerprint = data_fingerprint(config, options, decode=False)
    own = None if fingerprint is None else load_record(runs_dir() / config.digest(SCHEMA_VERSION, fingerprint))
    return own or (published_record(config) if options.published else None)


def published_record(config: RunConfig) -> Record | None:
    """The run store's record of `config` (`bnlib.published`), whatever copy of CIFAR-10 the reader
    has: its environment names the copy it was trained on. None if the store holds none."""
    for folder in _published_folders(config):
        record = load_record(folder)
        if record is not None:
            record.origin = "published"
            return record
    return None


def _published_folders(config: RunConfig) -> list[Path]:
    """Where the run store would keep the record of `config`, one folder per data copy it names."""
    keys = [config.digest(SCHEMA_VERSION, fingerprint) for fingerprint in published.copies_for(config.on_cifar)]
    folders = [published.run_folder(key) for key in keys]
    return [folder for folder in folders if folder is not None and (folder / "record.json").exists()]


class _Stale(Exception):
    """A record written by another version of bnlib (another schema): recomputed without a word."""


def load_record(path: Path) -> Record | None:
    """The record stored at `path`, or None if there is none; a damaged one warns (one line) and
    gives None, so that it is recomputed."""
    try:
        return _read_record(path)
    except _Stale:
        return None
    except Exception as e:
        warn(f"run record {path} is damaged ({_reason(e)}); it will be recomputed")
        return None


def _read_quietly(path: Path) -> Record | None:
    """The record at `path` if it reads back whole and current; None otherwise, without a word."""
    try:
        return _read_record(path)
    except Exception:
        return None


def _read_record(path: Path) -> Record | None:
    """The record at `path` (None if there is none), raising if it is damaged or stale."""
    meta_path = path / "record.json"
    if not meta_path.exists():
        return None
    meta = read_json(meta_path)
    if isinstance(meta, dict) and meta.get("schema") != SCHEMA_VERSION:
        raise _Stale(f"schema {meta.get('schema')}")
    _check_meta(meta)
    for name, digest in meta["files"].items():
        if file_sha256(path / name) != digest:
            raise ValueError(f"{name} does not match its checksum")
    probes = {key: load_npz(path / f"probe-{key}.npz") for key in meta["probes"]}
    return Record(
        config=RunConfig.from_dict(meta["config"]),
        status=meta["status"],
        metrics=load_npz(path / "metrics.npz"),
        probes=probes,
        final=meta["final"],
        wall_time_s=meta["wall_time_s"],
        environment=meta["environment"],
        path=path,
    )


def _reason(error: Exception) -> str:
    """A damaged file's error in a few words (the libraries' own messages can run to lines)."""
    text = " ".join(str(error).split())
    return text if isinstance(error, ValueError | KeyError) and len(text) <= 120 else type(error).__name__


def record_state(config: RunConfig, options: RunOptions | None = None) -> str:
    """What is stored for `config`, without training or decoding anything: "stored", "not run yet",
    or why what is there will be recomputed (damaged, or written by another version of bnlib)."""
    options = options or RunOptions()
    fingerprint = data_fingerprint(config, options, decode=False)
    path = None if fingerprint is None else runs_dir() / config.digest(SCHEMA_VERSION, fingerprint)
    if path is None or not (path / "record.json").exists():
        published_here = _published_folders(config)
        if not published_here:
            return "not run yet"
        return _state(published_here[0], "published (in the run store)", "published, but ")
    return _state(path, "stored")


def _state(path: Path, whole: str, prefix: str = "") -> str:
    try:
        _read_record(path)
    except _Stale:
        return f"{prefix}written by another version of bnlib; it will be recomputed when it next runs"
    except Exception as e:
        return f"{prefix}damaged ({_reason(e)}); it will be recomputed when it next runs"
    return whole


_META_TYPES = {
    "schema": int,
    "config": dict,
    "status": str,
    "steps_done": int,
    "final": dict,
    "wall_time_s": float | int,
    "environment": dict,
    "probes": list,
    "files": dict,
    "written": str,
}


def _check_meta(meta: Any) -> None:
    """Raise ValueError unless record.json has the fields, types and values a record must have."""
    if not isinstance(meta, dict):
        raise ValueError("record.json is not a JSON object")
    for name, kind in _META_TYPES.items():
        if not isinstance(meta.get(name), kind) or isinstance(meta.get(name), bool):
            raise ValueError(f"record.json's {name!r} is missing or not a {getattr(kind, '__name__', kind)}")
    if meta["status"] not in STATUSES:
        raise ValueError(f"record.json's status {meta['status']!r} is none of {', '.join(STATUSES)}")
    if not all(isinstance(k, str) and isinstance(v, float | int) for k, v in meta["final"].items()):
        raise ValueError("record.json's final numbers are not all numbers")
    named = {"metrics.npz", *(f"probe-{k}.npz" for k in meta["probes"])}  # and the weights, but for a published one
    if set(meta["files"]) - {published.WEIGHTS} != named:
        raise ValueError(f"record.json names the files {sorted(meta['files'])}, expected {sorted(named)}")


def _write_record(path: Path, config: RunConfig, result: TrainResult, old: Record | None) -> None:
    """Write a record for `result`, record.json last. Adding probes to `old` writes only their files
    and keeps its metrics and weights. A failed write removes what it wrote (the checkpoint stays)."""
    written: list[Path] = []

    def keep(name: str, write) -> None:
        write(path / name)
        written.append(path / name)

    try:
        if old is None:
            keep("metrics.npz", lambda f: save_npz(f, result.metrics))
            keep("model.pt", lambda f: atomic_write(f, lambda tmp: torch.save(result.model_state, tmp)))
        for key, arrays in result.probes.items():
            keep(f"probe-{key}.npz", lambda f, arrays=arrays: save_npz(f, arrays))
        probes = sorted({*(old.probes if old else {}), *result.probes})
        files = ["metrics.npz", "model.pt", *[f"probe-{k}.npz" for k in probes]]
        write_json(
            path / "record.json",
            {
                "schema": SCHEMA_VERSION,
                "config": config.to_dict(),
                "status": result.status if old is None else old.status,
                "steps_done": result.steps_done,
                "final": result.final if old is None else old.final,
                "wall_time_s": result.wall_time_s if old is None else old.wall_time_s,
                "environment": result.environment if old is None else old.environment,
                "probes": probes,
                "files": {name: file_sha256(path / name) for name in files},
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
    except OSError as e:
        for f in written:
            f.unlink(missing_ok=True)
        raise CacheError(
            f"could not write the run record in {path} ({e.strerror}); free some space in the cache and ask "
            "again: the training is kept in checkpoint.pt and resumes from there"
        ) from e


def _remove_record_files(path: Path) -> None:
    """Remove a damaged or partial record, record.json first; the checkpoint stays, to resume from."""
    (path / "record.json").unlink(missing_ok=True)
    for f in path.glob("*"):
        if f.is_file() and f.name != "checkpoint.pt":
            f.unlink()


PER_STEP = 2 << 10  # bytes of metrics and probe outputs a run may write per step, at most
PER_RUN = 256 << 10  # and once per run: record.json, the files' headers


def space_needed(configs: Sequence[RunConfig], options: RunOptions, at_once: int = 1) -> int:
    """Bytes the runs `configs` may write at their peak, `at_once` of them training side by side: each
    run's final weights (the model's size, or twice that with momentum), metrics and probe outputs
    (the store's largest record holds about 1.1 KB per step: PER_STEP doubles it), and, for the runs
    in flight, a checkpoint and its temporary copy (removed when the run ends); once for all of them,
    the decoded data set if this copy was never decoded."""
    weights = []
    need = 0
    for config in configs:
        with torch.device("meta"):
            parameters = sum(p.numel() for p in build_model(config).parameters())
        weights.append(4 * parameters * (2 if config.momentum else 1))
        need += weights[-1] + PER_STEP * config.steps + PER_RUN
    need += 2 * sum(sorted(weights, reverse=True)[: max(1, at_once)])
    if any(config.on_cifar for config in configs) and known_source(options.data) is None:
        need += 200 * _MB  # CIFAR-10 decoded: 60,000 x 3,072 bytes, one copy that every run reads
    return need


def check_probes(probes: Sequence[Probe]) -> list[Probe]:
    """The probes as a list, after checking each is a probe (a callable with a name and a stride)."""
    if isinstance(probes, str) or not isinstance(probes, Sequence):
        raise ConfigError(f"probes must be a list of probes, not {type(probes).__name__}")
    for probe in probes:
        if not isinstance(getattr(probe, "name", None), str) or not callable(probe):
            raise ConfigError(f"{probe!r} is not a probe: a probe is a callable with a `name` and an `every`")
        every = getattr(probe, "every", None)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"probe {probe.name!r} needs a positive integer `every`, not {every!r}")
    if len({probe_key(p) for p in probes}) < len(probes):
        raise ConfigError("two probes share a name and a stride; give them different names")
    return list(probes)


def _say_waiting(holder: str) -> None:
    who = holder or "another process"
    print(f"bnlib: {who} is computing this run; waiting for its record", file=sys.stderr, flush=True)


def load_or_run(
    config: RunConfig, probes: Sequence[Probe] = (), options: RunOptions | None = None, label: str = ""
) -> Record:
    """The record of `config` with the outputs of `probes`, training only what is missing (see the
    module's docstring for what is guaranteed)."""
    if not isinstance(config, RunConfig):
        raise ConfigError(
            f"load_or_run needs a RunConfig, not {type(config).__name__}; "
            "make one with bnlib.experiment('vgg-bn-lr0.1') or bnlib.RunConfig(...)"
        )
    probes = check_probes(probes)
    options = options or RunOptions()
    options.check()  # again: an option may have been changed since the options were made
    # First without the lock or any data: a record is only ever replaced whole, so one that reads
    # back complete is final, and readers of a stored run (two chapters executing side by side)
    # never wait on each other. The reader's own record, then the published one (no data needed).
    # Anything else (missing, damaged, short of a probe) is decided under the lock.
    fingerprint = data_fingerprint(config, options, decode=False)
    own = None if fingerprint is None else _read_quietly(runs_dir() / config.digest(SCHEMA_VERSION, fingerprint))
    for record in (own, published_record(config) if options.published else None):
        if record is not None and all(probe_key(p) in record.probes for p in probes):
            record.label = label
            return record
    check_cache(space_needed([config], options))
    key = record_key(config, options)
    path = runs_dir() / key
    waits: list[str] = []
    with exclusive(runs_dir() / f"{key}.lock", on_wait=lambda holder: (waits.append(holder), _say_waiting(holder))):
        record = load_record(path)
        missing = [p for p in probes if record is None or probe_key(p) not in record.probes]
        if record is not None and not missing:
            record.label, record.waited = label, bool(waits)
            return record
        if path.exists():
            remove_stale_temporaries(path)
            if record is None:
                _remove_record_files(path)
        run_options = RunOptions(**{**options.__dict__, "checkpoint_path": path / "checkpoint.pt"})
        result = train(config, probes if record is None else missing, run_options)
        _write_record(path, config, result, record)
        (path / "checkpoint.pt").unlink(missing_ok=True)
        stored = load_record(path)
    if stored is None:
        raise CacheError(f"the run record just written in {path} does not read back; check the disk it lies on")
    stored.label, stored.trained = label, True
    return stored
