"""The Colab-only code paths, with the Colab module simulated: the set-up cell installs bnlib there
(and only there), keeps runs on Google Drive when asked, and every executable page starts with it."""

from __future__ import annotations

import sys
import types

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from bnlib.book import template
from bnlib.book.project import install_line, store_url
from bnlib.storage import ENV_CACHE


class FakeIPython:
    """Records the line magics a cell runs (%pip) instead of running them."""

    def __init__(self):
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str) -> None:
        self.magics.append((name, line))


@pytest.fixture
def colab(monkeypatch):
    """A google.colab module whose drive.mount records where it was asked to mount."""
    mounted: list[str] = []
    drive = types.ModuleType("google.colab.drive")
    drive.mount = mounted.append
    colab_module = types.ModuleType("google.colab")
    colab_module.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab_module)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    return mounted


def run_setup_cell(keep_on_drive: bool = False) -> FakeIPython:
    source = template.SETUP_CELL
    if keep_on_drive:
        source = source.replace("KEEP_ON_DRIVE = False", "KEEP_ON_DRIVE = True")
    ipython = FakeIPython()
    exec(TransformerManager().transform_cell(source), {"get_ipython": lambda: ipython})
    return ipython


def test_on_colab_the_set_up_cell_installs_bnlib_and_nothing_else(colab, monkeypatch):
    monkeypatch.setenv(ENV_CACHE, "/somewhere")
    ipython = run_setup_cell()
    assert ipython.magics == [("pip", install_line().removeprefix("%pip "))]
    assert "torch" not in install_line() and "ipywidgets" not in install_line()  # Colab's own stay
    assert colab == []


def test_keep_on_drive_mounts_drive_and_keeps_the_cache_there(colab, monkeypatch, capsys):
    monkeypatch.setenv(ENV_CACHE, "/somewhere")
    run_setup_cell(keep_on_drive=True)
    assert colab == ["/content/drive"]
    import os

    assert os.environ[ENV_CACHE] == template.DRIVE_CACHE
    assert "kept on your Google Drive" in capsys.readouterr().out


def test_on_colab_the_pages_read_the_published_store(colab, monkeypatch):
    import os

    monkeypatch.setenv(ENV_CACHE, "/somewhere")
    monkeypatch.delenv("BNLIB_STORE")
    run_setup_cell()
    assert os.environ["BNLIB_STORE_URL"] == store_url()  # the repository's store/ at the tag
    assert os.environ["BNLIB_STORE"] == "/somewhere/store"  # fetched into the cache (on Drive, if kept there)


def test_outside_colab_nothing_is_installed_or_mounted(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv(ENV_CACHE, "/somewhere")
    assert run_setup_cell(keep_on_drive=True).magics == []
    import os

    assert os.environ[ENV_CACHE] == "/somewhere"
    assert "applies on Colab only" in capsys.readouterr().out
    assert os.environ["BNLIB_STORE_URL"] == ""  # the checkout's own store, nothing fetched


@pytest.mark.parametrize("page", template.pages(), ids=lambda p: p.stem)
def test_every_executable_page_starts_with_the_set_up_cell(page):
    assert template.template_problems(page) == []
