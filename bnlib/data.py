"""CIFAR-10 from any of three sources, decoded once and served from memory; the DLN's synthetic data.

Where CIFAR-10 comes from, in order: the `location` argument (the CLI's --data), else the
environment variable BNLIB_DATA, else torchvision's canonical download into the cache. A location
may be (a) a folder holding torchvision's download, (b) a canonical `cifar-10-batches-py` folder or
the canonical archive `cifar-10-python.tar.gz`, (c) an image-folder tree `train/<class>/*`,
`test/<class>/*`, or a .tar.gz of one, or (d) an http(s) URL of the canonical archive on a mirror
the user trusts: downloaded into the cache with a progress bar, resumed where an interrupted
download stopped, and checked against the archive's published MD5 before anything is decoded (a
URL ending in `#md5=<hex>` names another checksum, e.g. for a repacked copy).
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import hashlib
import io
import json
import lzma
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from bnlib.errors import DataError, warn
from bnlib.storage import cache_dir, exclusive, file_sha256, load_npz, read_json, save_npz, write_json

ENV_DATA = "BNLIB_DATA"
CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
HOW_TO_PROVIDE = (
    "provide CIFAR-10 in one of four ways: (a) go online and let torchvision download it "
    "(the default), (b) point BNLIB_DATA or --data at a canonical cifar-10-batches-py folder, or "
    "(c) point them at an image-folder tree train/<class>/*, test/<class>/* or a .tar.gz of one, or "
    "(d) point them at an http(s) URL of cifar-10-python.tar.gz on a mirror you trust (or of a .tar.gz of an "
    "image folder, with #md5=<its checksum> after the URL)"
)
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"  # the archive's published checksum (torchvision's too)
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_DECODER_VERSION = 1  # bump when decoding changes, so stale caches are rebuilt


@dataclass(frozen=True)
class Cifar10:
    """The decoded data set: uint8 images (N, 32, 32, 3), int64 labels, and where they came from."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        """Per-channel mean of the training images in [0, 1] (the input standardisation)."""
        return np.asarray(self.source["mean"], dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.asarray(self.source["std"], dtype=np.float32)


# ----------------------------------------------------------------------------- locating a source


def resolve_location(location: str | os.PathLike | None) -> tuple[str, Path]:
    """(kind, path) of a data location, checking it without writing anything.

    kind is "torchvision" (download into the cache), "cifar-python" (a cifar-10-batches-py folder),
    "image-folder" (a folder with train/ and test/) or "image-tar" (a .tar.gz of one).
    """
    if location is None or str(location) == "":
        location = os.environ.get(ENV_DATA) or None
    if location is None:
        return "torchvision", cache_dir() / "data" / "torchvision"
    if is_url(location):
        url, _ = _split_checksum(str(location))
        return "url", _download_folder(url) / CIFAR_ARCHIVE
    path = Path(location).expanduser()
    if not path.exists():
        raise DataError(f"data path {path} does not exist; fix BNLIB_DATA or --data, or {HOW_TO_PROVIDE}")
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise DataError(f"data path {path} cannot be read (permissions); make it readable")
    if path.is_file():
        if not path.name.endswith(_TAR_SUFFIXES):
            raise DataError(f"data path {path} is a file but not a .tar.gz of an image folder; {HOW_TO_PROVIDE}")
        _check_archive(path)
        kind = "cifar-archive" if path.name == CIFAR_ARCHIVE else "image-tar"
        if not _cache_file(kind, path).exists():  # decoded before: it read whole then
            _check_whole(path)
        return kind, path
    if not path.is_dir():
        raise DataError(f"data path {path} is neither a file nor a folder; {HOW_TO_PROVIDE}")
    for candidate in (path, path / "cifar-10-batches-py"):
        if (candidate / "data_batch_1").is_file():
            return "cifar-python", candidate
    for candidate in (path, *sorted(p for p in path.iterdir() if p.is_dir())):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            _check_readable(_image_files(candidate))
            return "image-folder", candidate
    raise DataError(f"data path {path} holds no CIFAR-10 in a known layout; {HOW_TO_PROVIDE}")


# The first bytes of the archive formats tarfile reads (a plain tar says "ustar" at byte 257)
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


def _check_archive(path: Path) -> None:
    """That a .tar.gz location is a tar archive (gzip, bzip2, xz or plain), from its first bytes,
    before anything starts: one line saying what it is not."""
    with open(path, "rb") as f:
        head = f.read(512)
    if any(head.startswith(magic) for magic in _MAGIC) or head[257:262] == b"ustar":
        return
    shown = "is empty" if not head else f"starts with {head[:12]!r}"
    raise DataError(
        f"data path {path} is not a tar archive (gzip, bzip2, xz or plain): it {shown}; give the canonical "
        f"{CIFAR_ARCHIVE}, a .tar.gz of an image folder, or a folder"
    )


_OPENERS = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}
_STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, tarfile.TarError, ValueError)


def _check_whole(path: Path) -> None:
    """That a compressed archive reads to its end with its checksum right (gzip's CRC, bzip2's and
    xz's own), so a damaged or cut file is named as such before any plan is printed (a second or so
    for the canonical 163 MB archive). A plain tar carries no checksum of its contents."""
    with open(path, "rb") as f:
        head = f.read(8)
    opener = next((_OPENERS[kind] for magic, kind in _MAGIC.items() if head.startswith(magic)), None)
    if opener is None:
        return
    try:
        with opener(path, "rb") as stream:
            while stream.read(1 << 22):
                pass
    except _STREAM_ERRORS as e:
        raise _damaged(path, e) from None


def _damaged(path: Path | str, error: BaseException) -> DataError:
    return DataError(f"the archive {path} is damaged ({_one_line(error) or type(error).__name__}); download it again")


def _archive_layout(path: Path) -> str | None:
    """What an archive holds, from its first members: "cifar-archive" (the canonical batches),
    "image-tar" (train/<class>/* and test/<class>/*), or None (neither)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and parts[-1] in ("data_batch_1", "test_batch", "batches.meta"):
                    return "cifar-archive"
                if member.isfile() and len(parts) >= 3 and parts[-3] in ("train", "test"):
                    return "image-tar"
    except _STREAM_ERRORS as e:
        raise _damaged(path, e) from None
    return None


def is_url(location: str | os.PathLike) -> bool:
    return str(location).startswith(("http://", "https://"))


def _split_checksum(location: str) -> tuple[str, str]:
    """A URL and the MD5 its archive must have: the canonical one, or a `#md5=<hex>` fragment's."""
    url, _, fragment = location.partition("#")
    if not fragment:
        return url, CIFAR_MD5
    md5 = fragment.removeprefix("md5=")
    if not fragment.startswith("md5=") or len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5.lower()):
        raise DataError(
            f"the URL's fragment #{fragment} is not #md5=<32 hex digits>; drop it for the canonical archive"
        )
    return url, md5.lower()


def _download_folder(url: str) -> Path:
    return cache_dir() / "data" / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16]


def _image_files(root: Path) -> list[Path]:
    return [p for split in ("train", "test") for p in sorted((root / split).glob("*/*")) if p.is_file()]


def _check_readable(files: list[Path]) -> None:
    for path in files:
        if not os.access(path, os.R_OK):
            raise DataError(f"cannot read {path} (permissions); make it readable or remove it from the image folder")


def _source_key(kind: str, path: Path) -> str:
    """Identifies a copy by its path and its content, to find its decoded cache: an archive by its
    checksum (the same file copied again or touched is still found), a folder by its files' sizes
    and times (checksumming 60,000 images would cost more than decoding them)."""
    path = path.resolve()
    if path.is_file():
        stat = path.stat()
        stats = [(path.name, _file_digest(path, stat.st_size, stat.st_mtime_ns))]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        stats = [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    text = repr((_DECODER_VERSION, kind, str(path), stats))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=8)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """An archive's checksum, computed once per process for each size and time it is seen with."""
    return file_sha256(path)


# ----------------------------------------------------------------------------- loading and caching


def load_cifar10(location: str | os.PathLike | None = None) -> Cifar10:
    """CIFAR-10, decoded once per copy and then read from the cache ($BNLIB_CACHE/data)."""
    kind, path = resolve_location(location)
    kind_for_record = kind
    if kind == "torchvision":
        path, kind = _download(path), "cifar-python"
    if kind == "url":
        path = fetch(str(location or os.environ.get(ENV_DATA)), path)
        kind = _archive_layout(path) or "cifar-archive"  # fetch keeps only an archive of a known layout
    cache_file = _cache_file(kind, path)
    if cache_file.exists():
        try:
            cifar = _from_arrays(load_npz(cache_file))
            if not cache_file.with_suffix(".json").exists():
                write_json(cache_file.with_suffix(".json"), cifar.source)
            return cifar
        except Exception:
            warn(f"decoded copy {cache_file} is damaged; decoding again")
    # Nothing is written before the copy decodes whole; two processes decoding at once only lose time
    decoded = {
        "cifar-python": _read_cifar_python,
        "cifar-archive": _read_cifar_archive,
        "image-folder": _read_image_folder,
    }.get(kind, _read_image_tar)
    train_x, train_y, test_x, test_y = decoded(path)
    source = _describe(kind_for_record, path, train_x, train_y, test_x, test_y)
    arrays = dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
    try:
        save_npz(cache_file, {**arrays, "source": np.array(json.dumps(source, sort_keys=True))})
        write_json(cache_file.with_suffix(".json"), source)
    except OSError as e:  # the arrays are in memory: a full disk costs the next run a decode, not this one
        warn(f"could not keep the decoded copy in {cache_file.parent} ({e.strerror})")
    else:
        _drop_superseded(cache_file, source["path"])
    return Cifar10(**arrays, source=source)


def _drop_superseded(cache_file: Path, path: str) -> None:
    """Remove the decoded copies made earlier from the same path, whose content has changed since
    (or which an older bnlib keyed differently): each is the size of the data set, and no lookup
    finds it again while the copy at that path stays as it is now."""
    for sidecar in cache_file.parent.glob("cifar10-*.json"):
        if sidecar == cache_file.with_suffix(".json"):
            continue
        try:
            if read_json(sidecar).get("path") != path:
                continue
            sidecar.with_suffix(".npz").unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
        except (OSError, ValueError):  # unreadable, or a cache shared read-only: leave it
            continue


def known_source(location: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """What a run would record about this copy of CIFAR-10 (its fingerprint included), if the copy
    was decoded before; None otherwise. Never decodes or downloads anything."""
    kind, path = resolve_location(location)
    if kind == "torchvision":
        path, kind = path / "cifar-10-batches-py", "cifar-python"
        if not path.is_dir():
            return None
    if kind == "url":
        if not path.is_file():  # not downloaded (and checked) yet
            return None
        kind = _archive_layout(path) or "cifar-archive"
    sidecar = _cache_file(kind, path).with_suffix(".json")
    try:
        return read_json(sidecar)
    except (OSError, ValueError):
        return None


def _cache_file(kind: str, path: Path) -> Path:
    return cache_dir() / "data" / f"cifar10-{_source_key(kind, path)}.npz"


def _from_arrays(arrays: dict[str, np.ndarray]) -> Cifar10:
    source = json.loads(str(arrays.pop("source")))
    return Cifar10(**arrays, source=source)


def _describe(kind: str, path: Path, *arrays: np.ndarray) -> dict[str, Any]:
    """What a run records about its data: the kind of source, the copy, and a content fingerprint."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    train_x = arrays[0]
    pixels = train_x.reshape(-1, 3).astype(np.float64) / 255
    notes = {
        "image-tar": "image-folder copy; if JPEG-re-encoded, pixels differ slightly from canonical CIFAR-10",
        "image-folder": "image-folder copy; if JPEG-re-encoded, pixels differ slightly from canonical CIFAR-10",
    }
    return {
        "kind": kind,
        "path": str(path.resolve()),
        "fingerprint": h.hexdigest()[:16],
        "n_train": len(arrays[1]),
        "n_test": len(arrays[3]),
        "mean": pixels.mean(0).round(6).tolist(),
        "std": pixels.std(0).round(6).tolist(),
        "note": notes.get(kind, "canonical CIFAR-10"),
    }


def fetch(location: str, target: Path) -> Path:
    """The archive at a URL, downloaded into `target` once: with a progress bar, resuming what an
    interrupted download left (`target`.part, an HTTP Range request), and kept under its name only
    once its MD5 is the one expected (`_split_checksum`); a mismatch keeps nothing."""
    url, md5 = _split_checksum(location)
    if target.is_file():  # only an archive whose checksum matched is ever kept under this name
        return target
    made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    part, lock = target.with_name(target.name + ".part"), target.with_name(target.name + ".lock")
    try:
        with exclusive(lock):
            if not target.is_file():
                _download_part(url, part)
                _verify(part, md5, url)
                if _archive_layout(part) is None:
                    part.unlink()
                    raise DataError(
                        f"the archive at {url} holds neither {CIFAR_ARCHIVE}'s batches nor an image folder "
                        "(train/<class>/*, test/<class>/*), the two layouts a URL may hold; nothing was kept"
                    )
                os.replace(part, target)
    except DataError:
        if not part.exists():  # nothing arrived to resume from: leave nothing behind
            lock.unlink(missing_ok=True)
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    return target


def _download_part(url: str, part: Path) -> None:
    """Download `url` into `part`, appending to what an earlier, interrupted download left there."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and done:  # nothing left to fetch: the earlier download got it all
            return
        raise DataError(f"cannot download {url}: the server answered {e.code} ({e.reason}); check the URL") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e.strerror or type(e).__name__
        raise DataError(f"cannot download {url} ({reason}); check the address and the connection") from None
    with response:
        if done and response.status != 206:  # the server ignored the range: start again
            done = 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length and length.isdigit() else None
        show = os.environ.get("BNLIB_PROGRESS") != "0"
        try:
            with (
                open(part, "ab" if done else "wb") as f,
                tqdm(
                    total=total,
                    initial=done,
                    unit="B",
                    unit_scale=True,
                    desc=f"downloading {CIFAR_ARCHIVE}",
                    disable=not show,
                ) as bar,
            ):
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException):  # a dropped connection: what arrived is kept
            raise DataError(f"the download of {url} stopped early; run again to resume it") from None
    if total is not None and part.stat().st_size < total:
        raise DataError(f"the download of {url} stopped early; run again to resume it")


def _verify(part: Path, md5: str, url: str) -> None:
    h = hashlib.md5()
    with open(part, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    if h.hexdigest() != md5:
        part.unlink()
        raise DataError(
            f"the archive downloaded from {url} has MD5 {h.hexdigest()}, not {md5}: it is not the canonical "
            f"{CIFAR_ARCHIVE} (or arrived damaged); nothing was kept, use another mirror"
        )


def _download(root: Path) -> Path:
    """torchvision's canonical download (checksummed) into root; the folder it extracts."""
    folder = root / "cifar-10-batches-py"
    if (folder / "test_batch").is_file():
        return folder
    from torchvision.datasets import CIFAR10, utils

    try:
        utils.download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    except Exception as e:  # offline, DNS, checksum: all end the same way for the user
        raise DataError(f"no CIFAR-10 available offline (download failed: {type(e).__name__}); {HOW_TO_PROVIDE}") from e
    return folder


# ----------------------------------------------------------------------------- decoders


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """The canonical CIFAR batches are pickles; this reader accepts numpy arrays and builtins only,
    so a tampered file cannot run code. bnlib itself never writes pickle."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def _read_batch(source: Path | io.BytesIO, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    path = where or source
    try:
        with source if isinstance(source, io.BytesIO) else open(source, "rb") as f:
            batch = _ArraysOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as e:
        raise DataError(f"cannot read CIFAR batch {path} ({_one_line(e)}); re-download it or {HOW_TO_PROVIDE}") from e
    return np.ascontiguousarray(data), labels


def _read_cifar_archive(path: Path) -> tuple[np.ndarray, ...]:
    """The canonical archive, cifar-10-python.tar.gz: its batches read straight from the tarball."""
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in names:
                    blobs[name] = tar.extractfile(member).read()
    except _STREAM_ERRORS as e:
        raise _damaged(path, e) from None
    missing = [n for n in names if n not in blobs]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}: it is not {CIFAR_ARCHIVE}; {HOW_TO_PROVIDE}")
    batches = [_read_batch(io.BytesIO(blobs[n]), f"{path}:{n}") for n in names]
    return (
        np.concatenate([x for x, _ in batches[:5]]),
        np.concatenate([y for _, y in batches[:5]]),
        *batches[5],
    )


def _read_cifar_python(folder: Path) -> tuple[np.ndarray, ...]:
    names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in [*names, "test_batch"] if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}; re-download it or {HOW_TO_PROVIDE}")
    train = [_read_batch(folder / n) for n in names]
    test_x, test_y = _read_batch(folder / "test_batch")
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), test_x, test_y


def _read_image_folder(root: Path) -> tuple[np.ndarray, ...]:
    entries = []
    for p in _image_files(root):
        try:
            entries.append((p.parent.parent.name, p.parent.name, p.name, p.read_bytes()))
        except OSError as e:
            raise DataError(f"cannot read {p} ({e.strerror}); make it readable or remove it from the folder") from e
    return _assemble(entries, str(root))


def _read_image_tar(path: Path) -> tuple[np.ndarray, ...]:
    entries = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) >= 3 and parts[-3] in ("train", "test"):
                    entries.append((parts[-3], parts[-2], parts[-1], tar.extractfile(member).read()))
    except _STREAM_ERRORS as e:
        raise _damaged(path, e) from None
    return _assemble(entries, str(path))


def _assemble(entries: list[tuple[str, str, str, bytes]], where: str) -> tuple[np.ndarray, ...]:
    """Decode (split, class, file name, bytes) entries; labels are the sorted class folders' ranks."""
    classes = {split: sorted({c for s, c, _, _ in entries if s == split}) for split in ("train", "test")}
    if not classes["train"] or classes["train"] != classes["test"] or len(classes["train"]) != 10:
        raise DataError(
            f"{where}: expected the same 10 class folders under train/ and test/, found "
            f"{len(classes['train'])} and {len(classes['test'])}; {HOW_TO_PROVIDE}"
        )
    out: list[np.ndarray] = []
    for split in ("train", "test"):
        rank = {c: i for i, c in enumerate(classes[split])}
        items = sorted((rank[c], name, blob) for s, c, name, blob in entries if s == split)
        images = np.empty((len(items), 32, 32, 3), dtype=np.uint8)
        for i, (label, name, blob) in enumerate(items):
            try:
                with Image.open(io.BytesIO(blob)) as img:
                    images[i] = np.asarray(img.convert("RGB"))
            except Exception as e:
                where_exactly = f"{split}/{classes[split][label]}/{name}"
                raise DataError(f"{where}: cannot decode {where_exactly} as a 32x32 image ({_one_line(e)})") from e
        out += [images, np.array([r for r, _, _ in items], dtype=np.int64)]
    return tuple(out)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


# ----------------------------------------------------------------------------- serving batches


def balanced_subset(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Indices of `per_class` examples of each class (all of them if None), chosen by `seed`."""
    if per_class is None:
        return np.arange(len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    chosen = [order[labels[order] == c][:per_class] for c in np.unique(labels)]
    short = min(len(c) for c in chosen)
    if short < per_class:
        raise DataError(f"asked for {per_class} examples per class but a class has only {short}; ask for fewer")
    return np.sort(np.concatenate(chosen))


class ImageSplit:
    """A split held on the device as uint8 NCHW, converted to standardised floats batch by batch."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: np.ndarray, std: np.ndarray, device: torch.device):
        self.images = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.from_numpy(labels).to(device)
        self.device = device
        # (x / 255 - mean) / std  ==  x * scale + shift
        self._scale = torch.as_tensor(1 / (255 * std), dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._shift = torch.as_tensor(-mean / std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def standardise(self, images: Tensor) -> Tensor:
        x = images.float() * self._scale + self._shift
        return x.contiguous(memory_format=torch.channels_last)

    def batches(self, batch_size: int) -> list[tuple[Tensor, Tensor]]:
        """The whole split in order, for evaluation."""
        return [
            (self.standardise(self.images[i : i + batch_size]), self.labels[i : i + batch_size])
            for i in range(0, len(self), batch_size)
        ]


class BatchSampler:
    """Shuffled batches without replacement, epoch after epoch, drawn on the device.

    Deterministic given the seed; `state_dict` / `load_state_dict` capture the position exactly,
    so a resumed run sees the same batches as an uninterrupted one. The last partial batch of each
    epoch is dropped so every step sees `batch_size` examples.
    """

    def __init__(self, split: ImageSplit, batch_size: int, seed: int, augment: bool = False):
        if batch_size > len(split):
            raise DataError(f"batch size {batch_size} exceeds the {len(split)} training examples; use more data")
        self.split, self.batch_size, self.augment = split, batch_size, augment
        self.generator = torch.Generator(device=split.device)
        self.generator.manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long, device=split.device)
        self.cursor = 0

    def next(self) -> tuple[Tensor, Tensor]:
        if self.cursor + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.split), generator=self.generator, device=self.split.device)
            self.cursor = 0
        index = self.order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        images = self.split.images[index]
        if self.augment:
            images = self._crop_and_flip(images)
        return self.split.standardise(images), self.split.labels[index]

    def _crop_and_flip(self, images: Tensor, pad: int = 4) -> Tensor:
        """Random 32x32 crops of the zero-padded images and random horizontal flips, batched."""
        n, _, h, w = images.shape
        dev, g = images.device, self.generator
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=g, device=dev)
        dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=g, device=dev)
        rows = (dy + torch.arange(h, device=dev))[:, None, :, None]
        cols = (dx + torch.arange(w, device=dev))[:, None, None, :]
        flip = torch.rand(n, generator=g, device=dev) < 0.5
        cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
        batch = torch.arange(n, device=dev)[:, None, None, None]
        chan = torch.arange(images.shape[1], device=dev)[None, :, None, None]
        return padded[batch, chan, rows, cols]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self.order.cpu(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].to(self.split.device)
        self.cursor = int(state["cursor"])


# ----------------------------------------------------------------------------- deep linear network data


def dln_data(dim: int, n: int, seed: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """(x, y, A): x ~ N(0, I_dim) with n rows, A with i.i.d. N(0, 1) entries, targets y = A x."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g)
    x = torch.randn(n, dim, generator=g)
    return x.to(device), (x @ a.T).to(device), a.to(device)
