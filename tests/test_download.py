"""CIFAR-10 from a URL (a mirror the user trusts): downloaded with a progress bar, resumed after an
interruption, checked against the archive's MD5 before anything is decoded, and a one-line error
that keeps nothing when it is not the archive or not there. Against a server on the loopback
address, serving a small fake archive in the canonical format."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_cifar_python, write_image_tar

from bnlib.data import CIFAR_ARCHIVE, load_cifar10
from bnlib.errors import DataError


@pytest.fixture
def archive(tmp_path, cifar_arrays) -> Path:
    """A fake cifar-10-python.tar.gz: the canonical layout, cifar-10-batches-py/ with its batches."""
    folder = write_cifar_python(tmp_path / "src" / "cifar-10-batches-py", cifar_arrays)
    path = tmp_path / CIFAR_ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return path


class Server:
    """Serves one file at /cifar-10-python.tar.gz (with HTTP Range), 404 elsewhere; `cut_once`
    drops the first response after half the bytes, as a flaky connection would."""

    def __init__(self, payload: bytes):
        self.payload, self.cut_once, self.requests = payload, False, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path != f"/{CIFAR_ARCHIVE}":
                    self.send_error(404, "Not Found")
                    return
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                body = server.payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_once:
                    server.cut_once = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{CIFAR_ARCHIVE}"


@pytest.fixture
def server(archive):
    served = Server(archive.read_bytes())
    yield served
    served.httpd.shutdown()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def same(cifar, arrays) -> None:
    for key in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(cifar, key), arrays[key])


def nothing_written(cache: Path) -> bool:
    """No file and no folder in the cache (which may not exist at all)."""
    return not cache.exists() or not any(cache.iterdir())


def test_a_complete_download_is_checked_decoded_and_kept(server, archive, cifar_arrays, isolated_cache):
    url = f"{server.url}#md5={md5(archive)}"
    same(load_cifar10(url), cifar_arrays)
    (kept,) = (isolated_cache / "data" / "downloads").glob(f"*/{CIFAR_ARCHIVE}")
    assert kept.read_bytes() == archive.read_bytes() and not list(kept.parent.glob("*.part"))
    same(load_cifar10(url), cifar_arrays)  # decoded once: the server is not asked again
    assert len(server.requests) == 1


def test_an_interrupted_download_resumes_where_it_stopped(server, archive, cifar_arrays, isolated_cache):
    server.cut_once = True
    url = f"{server.url}#md5={md5(archive)}"
    with pytest.raises(DataError, match="stopped early; run again to resume it") as info:
        load_cifar10(url)
    assert "\n" not in str(info.value)
    (part,) = (isolated_cache / "data" / "downloads").glob("*/*.part")
    arrived = part.stat().st_size
    assert 0 < arrived < archive.stat().st_size
    same(load_cifar10(url), cifar_arrays)
    assert server.requests[-1][1] == f"bytes={arrived}-"  # it asked only for the rest


def test_a_wrong_checksum_keeps_nothing(server, isolated_cache):
    with pytest.raises(DataError, match=r"has MD5 .*, not c58f30108f718f92721af3b95e74349a") as info:
        load_cifar10(server.url)  # the canonical MD5: the fake archive is not the canonical one
    assert "\n" not in str(info.value) and "nothing was kept" in str(info.value)
    assert nothing_written(isolated_cache)


def test_a_missing_file_is_one_line(server, isolated_cache):
    with pytest.raises(DataError, match="the server answered 404") as info:
        load_cifar10(server.url.replace(CIFAR_ARCHIVE, "nothing.tar.gz"))
    assert "\n" not in str(info.value)
    assert nothing_written(isolated_cache)


def test_a_bad_checksum_fragment_is_refused_before_anything(server, isolated_cache):
    with pytest.raises(DataError, match="is not #md5=<32 hex digits>"):
        load_cifar10(f"{server.url}#sha=abc")
    assert server.requests == []


def test_the_canonical_archive_reads_from_a_local_file(archive, cifar_arrays):
    same(load_cifar10(archive), cifar_arrays)


def test_the_cli_says_a_missing_url_in_one_line_and_exits_2(server, isolated_cache):
    url = server.url.replace(CIFAR_ARCHIVE, "gone.tar.gz")
    done = subprocess.run(
        [sys.executable, "-m", "bnlib", "run", "vgg-bn-lr0.1", "--scale", "smoke", "--data", url, "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "404" in done.stderr
    assert done.stdout == ""  # the problem is found before the plan is printed


def test_a_url_may_hold_an_image_folder_tarball(tmp_path, cifar_arrays, isolated_cache, capsys):
    """The offline copy's format (a .tar.gz of train/<class>/*, test/<class>/*) at a URL, with its
    checksum: kept, decoded and trained on, through the CLI; a second run finds it."""
    tarball = write_image_tar(tmp_path / "images.tar.gz", cifar_arrays)
    served = Server(tarball.read_bytes())
    try:
        url = f"{served.url}#md5={md5(tarball)}"
        args = ("run", "vgg-bn-lr0.1", "--scale", "smoke", "--data", url, "--quiet")
        code, out, err = run_cli(capsys, *args)
        assert code == 0 and "trained:" in out, err
        same(load_cifar10(url), cifar_arrays)
        code, out, err = run_cli(capsys, *args)
        assert code == 0 and "loaded from the cache" in out, err
        assert len(served.requests) == 1
    finally:
        served.httpd.shutdown()


def test_a_url_of_neither_layout_keeps_nothing(tmp_path, isolated_cache, capsys):
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        (tmp_path / "readme.txt").write_text("not CIFAR-10")
        tar.add(tmp_path / "readme.txt", arcname="readme.txt")
    served = Server(other.read_bytes())
    try:
        args = ("run", "vgg-bn-lr0.1", "--scale", "smoke", "--data", f"{served.url}#md5={md5(other)}", "--quiet")
        code, out, err = run_cli(capsys, *args)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert "holds neither cifar-10-python.tar.gz's batches nor an image folder" in err
        assert nothing_written(isolated_cache)
    finally:
        served.httpd.shutdown()
