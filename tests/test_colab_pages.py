"""The chapters that display widgets executed as a Colab user runs them: with Colab's ipywidgets 7
(the venv has 8, which the smoke book's build uses, test_book.py), their widgets' state saved."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from conftest import claims_not_shown

from bnlib.book import build, template
from bnlib.book.contents import chapter

ROOT = template.ROOT

IPYWIDGETS_7 = ROOT / ".ipywidgets7"  # tests/setup.sh installs Colab's ipywidgets 7 there


@pytest.fixture(scope="module")
def colab_widgets() -> dict[str, str]:
    """The environment in which the pages' kernels import ipywidgets 7 instead of the venv's 8."""
    if not (IPYWIDGETS_7 / "ipywidgets").is_dir():
        pytest.fail("ipywidgets 7 is missing from .ipywidgets7: run tests/setup.sh")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(IPYWIDGETS_7), os.environ.get("PYTHONPATH")]))}


def test_the_pages_run_with_ipywidgets_7(colab_widgets, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", colab_widgets["PYTHONPATH"])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import ipywidgets\nprint(ipywidgets.__version__)")])
    build.run_notebook(nb, ROOT, hang_after_s=60)
    assert nb.cells[0].outputs[0]["text"].startswith("7.")


def _displays_widgets(page: Path) -> bool:
    source = "".join(cell.source for cell in nbformat.read(page, as_version=4).cells)
    return "widgets.live(" in source or "widgets.frames(" in source


# Only these differ under ipywidgets 7; every page's execution and claims are checked in the smoke
# book's build (test_book.py).
WIDGET_PAGES = [page for page in template.pages() if _displays_widgets(page)]


@pytest.fixture(scope="module")
def colab_executions(book_env, colab_widgets) -> dict[str, object]:
    """Every page that displays widgets executed once with Colab's ipywidgets 7, two at a time on
    one thread each, as the book build executes them (with ipywidgets 8): page name -> the executed
    notebook, or the error that stopped it. The build's sweep trains every run first (into the
    cache the smoke book shares, so whichever test file comes first trains them); the pages only
    load them, and read the findings the smoke book's pages measured (or measure them for it). The
    kernels see the environment set here."""
    from concurrent.futures import ThreadPoolExecutor

    def execute(page: Path):
        nb = nbformat.read(page, as_version=4)
        try:
            build.run_notebook(nb, page.parent, hang_after_s=120)  # a stuck cell fails: a hang detector
        except Exception as error:  # the test of that page fails with it
            return error
        return nb

    with pytest.MonkeyPatch.context() as env:
        for name, value in book_env.items():
            env.setenv(name, value)
        build.pretrain("smoke", {"BNLIB_PROGRESS": "0"})
        for name, value in {**colab_widgets, "OMP_NUM_THREADS": "1"}.items():
            env.setenv(name, value)
        with ThreadPoolExecutor(max_workers=build.PAGE_WORKERS) as pool:
            return dict(zip([p.stem for p in WIDGET_PAGES], pool.map(execute, WIDGET_PAGES), strict=True))


@pytest.mark.parametrize("notebook", WIDGET_PAGES, ids=lambda p: p.stem)
def test_notebook_with_widgets_runs_at_smoke_scale_with_ipywidgets_7(notebook, colab_executions):
    nb = colab_executions[notebook.stem]
    if isinstance(nb, Exception):  # a cell's error, or a hang
        raise nb
    # the widgets displayed, and their state was saved
    assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    shown = _outputs(nb)
    claims = list(chapter(notebook.stem).claims.values())
    assert not claims_not_shown(shown, claims), f"{notebook.name} does not show these claims"  # it still ends with them


def _outputs(nb) -> str:
    """Everything a notebook's cells displayed, as text (HTML, Markdown, plain)."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [str(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)
