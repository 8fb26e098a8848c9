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
def pretrained(book_env) -> dict[str, str]:
    """The smoke book's runs trained, into the cache the smoke book shares (whichever test file
    comes first trains them); the environment that reads them."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in book_env.items():
            env.setenv(name, value)
        build.pretrain("smoke", {"BNLIB_PROGRESS": "0"})
    return book_env


@pytest.fixture(scope="module")
def colab_executions(pretrained, colab_widgets) -> dict[str, object]:
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
        for name, value in pretrained.items():
            env.setenv(name, value)
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


# ----------------------------------------------------------------------------- the lab's own callbacks

# What a reader does in chapter 12's lab, as kernel cells: open it, compose a network that is no rung
# (`setting`), see that it must train and that its cost comes first, estimate it, train it, and find
# it kept and drawn. Each version of ipywidgets composes its own network (and none of the page's
# examples, which the smoke book trains), so each one trains.
LAB_CELLS = [
    "import ipywidgets\nimport bnlib.book\nfrom bnlib.book import lab\n"
    'session = bnlib.book.start("12_batchnorm_apart", "smoke", None, None)\n'
    "widget = lab.display_lab(session)\nprint(ipywidgets.__version__)",
    "for name, value in SETTING.items():\n    widget.controls[name].value = value\n"
    "composition = widget.composition()\n"
    'assert widget.go_button.description == "Train" and widget.go_button.disabled, widget.status.value\n'
    "widget.go_button.click()  # disabled: nothing trains before the cost is shown\n"
    "assert widget.progress.value == 0 and not lab.kept(session)[-1:] == [composition]",
    "widget.estimate_button.click()\nprint(widget.cost.value)\nassert not widget.go_button.disabled",
    "widget.go_button.click()\n"
    "assert widget.progress.value == widget.progress.max == 3 * lab.ladder.trained(session).horizon\n"
    "assert lab.kept(session)[-1] == composition and lab.missing(composition, session, widget.horizon) == []\n"
    'assert widget.go_button.description == "Show"\nprint(widget.status.value)',
]
LAB_SETTINGS = {
    "7": dict(statistics="groups", groups=8, center=False, gradient=False, weights="scaled", lr=0.03),
    "8": dict(statistics="ghost", ghost_batch=4, center=False, affine=False, noise=True, lr=0.1),
}


@pytest.mark.parametrize("version", sorted(LAB_SETTINGS))
def test_the_lab_trains_a_composition_from_its_own_callbacks(version, pretrained, colab_widgets, monkeypatch):
    for name, value in {**pretrained, **(colab_widgets if version == "7" else {})}.items():
        monkeypatch.setenv(name, value)
    setting = f"SETTING = {LAB_SETTINGS[version]!r}"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setting)])
    nb.cells += [nbformat.v4.new_code_cell(source) for source in LAB_CELLS]
    build.run_notebook(nb, ROOT, hang_after_s=120)
    assert nb.cells[1].outputs[-1]["text"].startswith(f"{version}.")
    assert "This composition will train 3 runs at the smoke scale" in nb.cells[3].outputs[0]["text"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    drawn = [m["state"]["outputs"] for m in state.values() if m["model_name"] == "OutputModel"]
    shown = [o for outputs in drawn for o in outputs]
    assert any("image/png" in o.get("data", {}) for o in shown), "the lab drew no figure"
    assert any("fraction of BatchNorm's speed-up" in o.get("text", "") for o in shown), "the lab printed no result"
