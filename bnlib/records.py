"""Run records: each run stored once, keyed by what determines its result, loaded as DataFrames.

A record lives in $BNLIB_CACHE/runs/<key>/ where key hashes the record schema version, the full
RunConfig and the data copy's fingerprint. Inside: record.json (config, status, final numbers,
wall time, environment, and a checksum of every other file), metrics.npz, one probe-<name>.npz per
probe, and model.pt (the final weights; load with torch.load(..., weights_only=True)). JSON and
.npz only, never pickle; every file is written atomically and record.json last, so a record either
exists whole or is recomputed. `load_or_run` computes only what is missing: a new run, or probes a
finished run lacks (measuring never changes the training, so the rerun retraces the same path).
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bnlib.config import RunConfig
from bnlib.data import load_cifar10
from bnlib.models import NumberedNet
from bnlib.probes.hook import Probe, probe_key
from bnlib.storage import atomic_write, cache_dir, file_sha256, load_npz, read_json, save_npz, write_json
from bnlib.train import RunOptions, TrainResult, initial_model, train

SCHEMA_VERSION = 1


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

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def model(self) -> NumberedNet:
        """The run's final network (from model.pt), on the CPU in training mode."""
        if self.path is None:
            raise ValueError("this record has no folder to load the model from")
        model = initial_model(self.config)
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


def data_fingerprint(config: RunConfig, options: RunOptions) -> str:
    """The data copy a run uses: part of its key, so switching copies never reuses stale results."""
    if config.model == "dln":
        return "synthetic"
    return load_cifar10(options.data).source["fingerprint"]


def record_key(config: RunConfig, options: RunOptions | None = None) -> str:
    options = options or RunOptions()
    return config.digest(SCHEMA_VERSION, data_fingerprint(config, options))


def load_record(path: Path) -> Record | None:
    """The record stored at `path`, or None if there is none; a damaged one warns and gives None."""
    meta_path = path / "record.json"
    if not meta_path.exists():
        return None
    try:
        meta = read_json(meta_path)
        if meta["schema"] != SCHEMA_VERSION:
            return None
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
    except Exception as e:
        warnings.warn(f"run record {path} is damaged ({e}); it will be recomputed", stacklevel=2)
        return None


def _write_record(path: Path, config: RunConfig, result: TrainResult, probes: dict[str, dict[str, np.ndarray]]) -> None:
    save_npz(path / "metrics.npz", result.metrics)
    for key, arrays in probes.items():
        save_npz(path / f"probe-{key}.npz", arrays)

    atomic_write(path / "model.pt", lambda tmp: torch.save(result.model_state, tmp))
    files = ["metrics.npz", "model.pt", *[f"probe-{k}.npz" for k in probes]]
    write_json(
        path / "record.json",
        {
            "schema": SCHEMA_VERSION,
            "config": config.to_dict(),
            "status": result.status,
            "steps_done": result.steps_done,
            "final": result.final,
            "wall_time_s": result.wall_time_s,
            "environment": result.environment,
            "probes": sorted(probes),
            "files": {name: file_sha256(path / name) for name in files},
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def load_or_run(
    config: RunConfig, probes: Sequence[Probe] = (), options: RunOptions | None = None, label: str = ""
) -> Record:
    """The record of `config` with the outputs of `probes`, training only what is missing."""
    options = options or RunOptions()
    path = runs_dir() / record_key(config, options)
    record = load_record(path)
    missing = [p for p in probes if record is None or probe_key(p) not in record.probes]
    if record is not None and not missing:
        record.label = label
        return record
    if record is None and path.exists():
        shutil.rmtree(path)  # a damaged record: start clean
    to_run = probes if record is None else missing
    result = train(config, to_run, RunOptions(**{**options.__dict__, "checkpoint_path": path / "checkpoint.pt"}))
    all_probes = {**(record.probes if record else {}), **result.probes}
    _write_record(path, config, result, all_probes)
    (path / "checkpoint.pt").unlink(missing_ok=True)
    record = load_record(path)
    assert record is not None
    record.label = label
    return record
