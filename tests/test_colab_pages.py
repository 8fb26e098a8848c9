"""The chapters executed as a Colab user runs them: with Colab's ipywidgets 7 (the venv has 8, which
the smoke book's build uses, test_book.py), each page ending with its claims and their verdicts."""

from __future__ import annotations

import html
import os
from pathlib import Path

import nbformat
import pytest

from bnlib.book import build, plan, template
from bnlib.book.chapters import CHAPTERS as CHAPTER_MODULES
from bnlib.book.chapters import chapter

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


@pytest.fixture(scope="module")
def colab_executions(book_env, colab_widgets) -> dict[str, object]:
    """Every page executed once with Colab's ipywidgets 7, two at a time on one thread each, as the
    book build executes them (with ipywidgets 8): page name -> the executed notebook, or the error
    that stopped it. The build's sweep trains every run first (into the cache the smoke book shares,
    so whichever test file comes first trains them); the pages only load them. The kernels see the
    environment set here."""
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
        build.pretrain("smoke", {"BNLIB_PROGRESS": "0", plan.ENV_BOOK: "all"})
        for name, value in {**colab_widgets, "OMP_NUM_THREADS": "1"}.items():
            env.setenv(name, value)
        with ThreadPoolExecutor(max_workers=build.PAGE_WORKERS) as pool:
            return dict(zip([p.stem for p in template.pages()], pool.map(execute, template.pages()), strict=True))


@pytest.mark.parametrize("notebook", template.pages(), ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_scale_with_ipywidgets_7(notebook, colab_executions):
    nb = colab_executions[notebook.stem]
    if isinstance(nb, Exception):  # a cell's error, or a hang
        raise nb
    if "widgets.live(" in "".join(c.source for c in nb.cells):  # the widgets displayed, and their state was saved
        assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    shown = _outputs(nb)
    for claim in _claims_of(notebook):  # the page ends with its claims: each in its table, with a verdict
        assert html.escape(claim.claim) in shown, f"{notebook.name} does not show the claim {claim.claim!r}"
    if notebook.stem in {c.NOTEBOOK for c in CHAPTER_MODULES} and _claims_of(notebook):
        assert "What we find at the smoke scale." in shown


def _claims_of(page: Path) -> list:
    """The claims a page must show: a chapter's own; the results page, every chapter's."""
    if page.stem == "results":
        return [claim for module in CHAPTER_MODULES for claim in module.CLAIMS.values()]
    return list(chapter(page.stem).CLAIMS.values())


def _outputs(nb) -> str:
    """Everything a notebook's cells displayed, as text (HTML, Markdown, plain)."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [str(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)
