"""The published run store: the book's evidence, trained once and kept in the repository.

A store is a folder, read-only to everything but `publish`:

    store/store.json                   the data copies its records were trained on (fingerprint -> source)
    store/runs/<key>/record.json       a run record, as in the cache (bnlib.records), keyed the same way;
    store/runs/<key>/*.npz             its metrics and probe outputs, compressed; model.pt only for the
                                       runs whose weights a page loads
    store/measurements/<key>.npz       what a page computes from data beyond its runs (a table)

The store used is $BNLIB_STORE, else the `store/` folder of the checkout bnlib runs from (none
when bnlib is installed from a wheel). With $BNLIB_STORE_URL set (a chapter's set-up does so on
Colab: the repository's store at the release tag), a record or table the local store lacks is
fetched from there into it when first asked for, every file checked against its record's checksum.

A published record answers for its config whenever the cache holds no record of the reader's own
(`bnlib.records.load_or_run`, `RunOptions.published`): the reader's own runs come first, then the
published ones, and only then does anything train. `publish` adds the cache's records to a store
and never removes or replaces one: what is published stays published.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bnlib.errors import BnlibError, CacheError
from bnlib.storage import atomic_write, file_sha256, load_npz, read_json, write_json

ENV_STORE = "BNLIB_STORE"
ENV_STORE_URL = "BNLIB_STORE_URL"  # a published store to fetch from on demand (Colab)
MANIFEST = "store.json"
WEIGHTS = "model.pt"
# The checkout's store: the repository root holds bnlib/ and store/ side by side.
CHECKOUT_STORE = Path(__file__).resolve().parents[1] / "store"


def store_dir() -> Path | None:
    """The store bnlib reads: $BNLIB_STORE, else the checkout's `store/` if there is one."""
    if os.environ.get(ENV_STORE):
        return Path(os.environ[ENV_STORE]).expanduser().absolute()
    return CHECKOUT_STORE if CHECKOUT_STORE.is_dir() else None


def manifest(store: Path | None = None) -> dict[str, Any]:
    """The store's manifest: {"data": {fingerprint: source}} (empty when there is no store)."""
    store = store or store_dir()
    if store is not None and not (store / MANIFEST).is_file() and _remote() and store == store_dir():
        fetch_manifest(_remote(), store)
    if store is None or not (store / MANIFEST).is_file():
        return {"data": {}}
    return read_json(store / MANIFEST)


def fingerprints(store: Path | None = None) -> list[str]:
    """The data copies the store's records were trained on (a record's key includes its copy)."""
    return sorted(manifest(store)["data"])


def copies_for(on_cifar: bool) -> list[str]:
    """The data copies a config's published record may be keyed by: the store's copies of CIFAR-10,
    or "synthetic" for a run that reads none (the deep linear network)."""
    return fingerprints() if on_cifar else ["synthetic"]


def run_folder(key: str) -> Path | None:
    """Where the store keeps the record with this key (None without a store); fetched first from
    $BNLIB_STORE_URL if that is set and the local store lacks it."""
    store = store_dir()
    if store is None:
        return None
    if _remote() and not (store / "runs" / key / "record.json").exists():
        fetch(_remote(), [key], store)
    return store / "runs" / key


def measurement_file(key: str) -> Path | None:
    """Where the store keeps a table computed from data (None without a store); fetched first from
    $BNLIB_STORE_URL if that is set and the local store lacks it."""
    store = store_dir()
    if store is None:
        return None
    if _remote() and not (store / "measurements" / f"{key}.npz").exists():
        fetch(_remote(), [], store, measurements=[key])
    return store / "measurements" / f"{key}.npz"


def _remote() -> str | None:
    return os.environ.get(ENV_STORE_URL, "").rstrip("/") or None


def publish_run(source: Path, key: str, keep_weights: bool, store: Path) -> bool:
    """Copy the cache's record folder `source` into `store` as `key`, its arrays compressed and its
    weights only if `keep_weights`. Returns False (and writes nothing) if the store holds it already
    with every probe the cache's record has. A cache record with probes the published one lacks (the
    same run trained again with a probe a chapter added) is added to it, if it trained the same:
    its metrics equal the published ones, step for step; the published probes stay. record.json is
    written last, naming the files as they are in the store with their checksums."""
    target = store / "runs" / key
    meta = read_json(source / "record.json")
    held = read_json(target / "record.json") if (target / "record.json").exists() else None
    if held is not None:
        if set(meta["probes"]) <= set(held["probes"]):
            return False
        if not _same_metrics(source, target):
            raise CacheError(
                f"the cache's record {key} has probes the published one lacks but is not the same run (its "
                "metrics differ); retrain it and compare it with python -m bnlib.book verify first"
            )
    names = [name for name in meta["files"] if name != WEIGHTS or keep_weights]
    for name in names:
        if file_sha256(source / name) != meta["files"][name]:
            raise CacheError(f"{source / name} does not match its checksum; train the run again before publishing it")
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith(".npz"):
            arrays = load_npz(source / name)
            atomic_write(target / name, lambda tmp, arrays=arrays: _save_compressed(tmp, arrays))
        else:
            atomic_write(target / name, lambda tmp, name=name: shutil.copyfile(source / name, tmp))
    if held is not None:  # what was published stays: its probes (and weights) beside the new ones
        names = list(dict.fromkeys([*held["files"], *names]))
        meta["probes"] = sorted({*held["probes"], *meta["probes"]})
    meta["files"] = {name: file_sha256(target / name) for name in names}
    write_json(target / "record.json", meta)
    return True


def _same_metrics(a: Path, b: Path) -> bool:
    """Whether two record folders hold the same metrics, array for array (NaN equal to NaN)."""
    x, y = load_npz(a / "metrics.npz"), load_npz(b / "metrics.npz")
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k], equal_nan=True) for k in x)


def publish_measurement(source: Path, key: str, store: Path) -> bool:
    """Copy a measurement (a table computed from data, in the cache) into `store`; False if there."""
    target = store / "measurements" / f"{key}.npz"
    if target.exists():
        return False
    arrays = load_npz(source)
    atomic_write(target, lambda tmp: _save_compressed(tmp, arrays))
    return True


def add_data_copy(source: dict[str, Any], store: Path) -> None:
    """Name a data copy in the store's manifest (its fingerprint and what it is)."""
    current = manifest(store)
    if source["fingerprint"] not in current["data"]:
        current["data"][source["fingerprint"]] = source
        write_json(store / MANIFEST, current)


def _save_compressed(path: Path, arrays: dict) -> None:
    import numpy as np

    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


# ----------------------------------------------------------------------------- fetching (Colab)


_absent: set[str] = set()  # addresses the remote store answered 404 for, in this process


def fetch(base_url: str, keys: Iterable[str], into: Path, measurements: Iterable[str] = ()) -> int:
    """Copy the records `keys` (and the measurements) of the store at `base_url` into the local
    store `into`, checking every file against its record's checksum; records already there are not
    fetched again, a key the store does not hold is skipped. Returns how many files were fetched."""
    fetched = 0
    for key in keys:
        target = into / "runs" / key
        if (target / "record.json").exists():
            continue
        text = _get(f"{base_url}/runs/{key}/record.json", missing_ok=True)
        if text is None:
            continue
        meta = _json(text, f"{base_url}/runs/{key}/record.json")
        target.mkdir(parents=True, exist_ok=True)
        for name, digest in meta["files"].items():
            data = _get(f"{base_url}/runs/{key}/{name}")
            atomic_write(target / name, lambda tmp, data=data: tmp.write_bytes(data))
            if file_sha256(target / name) != digest:
                (target / name).unlink()
                raise BnlibError(f"{base_url}/runs/{key}/{name} does not match its record's checksum; fetch it again")
            fetched += 1
        atomic_write(target / "record.json", lambda tmp, text=text: tmp.write_bytes(text))
        fetched += 1
    for key in measurements:
        target = into / "measurements" / f"{key}.npz"
        if not target.exists() and (data := _get(f"{base_url}/measurements/{key}.npz", missing_ok=True)) is not None:
            atomic_write(target, lambda tmp, data=data: tmp.write_bytes(data))
            fetched += 1
    return fetched


def fetch_manifest(base_url: str, into: Path) -> None:
    """Copy the store's manifest (which data copies its keys were made with) into `into`."""
    text = _get(f"{base_url}/{MANIFEST}")
    _json(text, f"{base_url}/{MANIFEST}")
    atomic_write(into / MANIFEST, lambda tmp: tmp.write_bytes(text))


def _json(text: bytes, url: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        raise BnlibError(f"{url} is not the JSON file of a run store; check the store's address") from None
    if not isinstance(value, dict):
        raise BnlibError(f"{url} is not the JSON file of a run store; check the store's address")
    return value


def _get(url: str, missing_ok: bool = False) -> bytes | None:
    if missing_ok and url in _absent:
        return None
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except urllib.error.HTTPError as e:
        if e.code == 404 and missing_ok:
            _absent.add(url)
            return None
        raise BnlibError(f"fetching {url} failed (HTTP {e.code}); check the address and the connection") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise BnlibError(f"fetching {url} failed ({reason}); check the store's address and your connection") from None
