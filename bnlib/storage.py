"""Where bnlib keeps things, and how it writes them: atomically, never as pickle, one writer at a time.

* `cache_dir()` is $BNLIB_CACHE (default ~/.cache/bnlib); `check_cache(needed)` finds every cache
  problem (not a folder, not writable, too little free space) before any work starts, writing nothing.
* `atomic_write` writes through a temporary file and a rename, so a reader (or a process killed
  mid-write) sees the old file or the new one, never half of it.
* `write_json` / `read_json` are strict JSON: a non-finite number is written as {"__float__": "nan"}
  (or "inf", "-inf") and read back as a float, so any JSON reader can parse the files.
* `exclusive(path)` is an inter-process lock (flock): the second process to ask waits for the first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bnlib.errors import CacheError

ENV_CACHE = "BNLIB_CACHE"
_MB = 1 << 20
FULL_BELOW = _MB  # a write that fails with less than this free on its disk failed for want of space


def cache_dir() -> Path:
    """The root of bnlib's cache: $BNLIB_CACHE, else ~/.cache/bnlib. Not created here."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "bnlib").expanduser().absolute()


def check_cache(needed_bytes: int = 0) -> Path:
    """The cache folder, after checking, without creating anything, that it is (or can become) a
    writable folder with at least `needed_bytes` free. Raises CacheError (one line, naming the fix)."""
    root = cache_dir()
    where = f"the cache {root} (BNLIB_CACHE)"
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not existing.is_dir():
        raise CacheError(f"{where} lies under {existing}, which is a file, not a folder; point BNLIB_CACHE at a folder")
    try:  # a real write tells more than os.access (root, read-only mounts, quotas)
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".bnlib-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CacheError(
            f"{where} {_why_not_writable(existing, e)}; point BNLIB_CACHE at a folder you can write to"
        ) from None
    free = shutil.disk_usage(existing).free
    if free < needed_bytes:
        raise CacheError(
            f"{where} has {free / _MB:.0f} MB free and this needs about {needed_bytes / _MB:.0f} MB; "
            "free some space or point BNLIB_CACHE at a larger disk"
        )
    return root


def _why_not_writable(folder: Path, error: OSError) -> str:
    """What is wrong with a folder no file can be created in, in words."""
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"cannot be written: {folder} does not let you create files (permissions)"
    if error.errno == errno.EROFS:
        return f"cannot be written: {folder} is on a read-only file system"
    if error.errno == errno.ENOSPC:
        return f"cannot be written: the disk holding {folder} is full"
    if error.errno in (errno.ENOENT, errno.EINVAL, errno.EOPNOTSUPP):
        return f"cannot be written: {folder} is a virtual file system (like /proc or /sys) that holds no files"
    return f"cannot be written: creating a file in {folder} failed ({error.strerror})"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide shared caches from other users
        os.replace(tmp, path)
    except RuntimeError as e:  # torch.save says a full disk as a RuntimeError, without its errno
        full = shutil.disk_usage(path.parent).free < FULL_BELOW
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Delete what `atomic_write` left behind when its process was killed mid-write. Call it only
    while holding the folder's lock, so no live writer's temporary file is removed."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(lock_file: Path, on_wait: Callable[[str], None] | None = None, remind_s: float = 60) -> Iterator[None]:
    """Hold an exclusive inter-process lock on `lock_file` (created if missing). While another
    process holds it, wait, calling on_wait(what the holder wrote into the file) at once and every
    `remind_s` seconds. The lock is released when the block ends or the process dies."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as f:
        told = None
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None and (told is None or time.monotonic() - told >= remind_s):
                    f.seek(0)
                    on_wait(f.read().strip())
                    told = time.monotonic()
                time.sleep(0.2)
        try:
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(_encode(data), indent=1, sort_keys=True, allow_nan=False, default=_json_default)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(), object_hook=_decode, parse_constant=_refuse_constant)


def _encode(value: Any) -> Any:
    """Non-finite floats (anywhere in the structure) as {"__float__": "nan" | "inf" | "-inf"}."""
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(obj: dict[str, Any]) -> Any:
    if obj.keys() == {"__float__"} and obj["__float__"] in ("nan", "inf", "-inf"):
        return float(obj["__float__"])
    return obj


def _refuse_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


_COLUMNS = "__columns__"


def save_frame(path: Path, frame) -> None:
    """A table (a pandas DataFrame of numbers, booleans and strings) as .npz, its columns in order;
    text columns as fixed-width unicode arrays, so that no pickle is needed to read it back."""
    if not all(isinstance(c, str) for c in frame.columns):
        raise ValueError(f"a stored table's columns must be named by strings, not {list(frame.columns)}")
    arrays = {_COLUMNS: np.array(list(frame.columns), dtype=str)}
    for i, column in enumerate(frame.columns):
        values = frame[column].to_numpy()
        arrays[f"c{i}"] = values.astype(str) if values.dtype == object else values
    save_npz(path, arrays)


def load_frame(path: Path):
    """The table `save_frame` wrote."""
    import pandas as pd

    arrays = load_npz(path)
    columns = arrays.pop(_COLUMNS).tolist()
    return pd.DataFrame({name: arrays[f"c{i}"] for i, name in enumerate(columns)})


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return _encode(value.item())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
