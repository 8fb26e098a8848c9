"""Every chapter's first three cells (title with its Colab link, set-up, parameters), the check
that a chapter follows them, and what the set-up cell does when it runs.

`python -m bnlib.book --apply-template` rewrites the first cells of every chapter from here, so
the install line and the repository address (`bnlib.book.project`) live in one place.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from bnlib.book.project import colab_url, install_line
from bnlib.device import describe, pick_device
from bnlib.errors import BnlibError
from bnlib.experiments import default_scale

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

SETUP_CELL = f"""# Set-up. On Colab this installs bnlib (your runtime's own torch and ipywidgets are kept).
import sys

if "google.colab" in sys.modules:
    {install_line()}
import bnlib.book

bnlib.book.setup()"""
PARAMETERS_CELL = """scale = bnlib.book.default_scale()  # $BNLIB_SCALE, else "paper" on a GPU and "cpu" without"""


def setup() -> None:
    """A chapter's first call: figure style, and what this session will run on."""
    from bnlib import __version__
    from bnlib.book import plotting

    plotting.style()
    device = pick_device()
    print(f"bnlib {__version__}, torch {torch.__version__}, {describe(device)}, scale {default_scale()}")
    if "google.colab" in sys.modules and device.type == "cpu":
        print(
            "This Colab runtime has no GPU, so the chapter runs at the cpu scale. For the paper's "
            "full scale: Runtime > Change runtime type > a GPU, then Runtime > Run all."
        )


def badge(notebook: Path) -> str:
    url = colab_url(notebook.resolve().relative_to(ROOT).as_posix())
    return f"[Open this chapter in Colab]({url}) to run it on a GPU."


def template_problems(notebook: Path) -> list[str]:
    """How a chapter departs from the template (empty if it follows it)."""
    cells = json.loads(notebook.read_text())["cells"]
    problems = []
    if len(cells) < 3:
        return [f"{notebook.name}: needs a title cell, the set-up cell and the parameters cell"]
    title, setup_cell, parameters = cells[:3]
    source = "".join(title["source"])
    if title["cell_type"] != "markdown" or not source.startswith("# ") or badge(notebook) not in source:
        problems.append(f"{notebook.name}: the first cell must be '# Title' and the Colab link")
    if "".join(setup_cell["source"]) != SETUP_CELL:
        problems.append(f"{notebook.name}: the second cell must be the set-up cell")
    if "".join(parameters["source"]) != PARAMETERS_CELL or "parameters" not in parameters["metadata"].get("tags", []):
        problems.append(f"{notebook.name}: the third cell must be the parameters cell, tagged 'parameters'")
    for cell in cells:
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{notebook.name}: committed with outputs; strip them")
            break
    return problems


def apply_template(notebook: Path) -> None:
    """Rewrite a chapter's first three cells from the template and strip every output."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    cells = nb.cells
    title = cells[0].source.split("\n", 1)[0] if cells and cells[0].cell_type == "markdown" else ""
    if not title.startswith("# "):
        raise BnlibError(f"{notebook}: the first cell must start with a '# Title' line")
    rest = cells[1:]
    while rest and rest[0].source in (SETUP_CELL, PARAMETERS_CELL):
        rest = rest[1:]
    head = [
        nbformat.v4.new_markdown_cell(f"{title}\n\n{badge(notebook)}", id="title"),
        nbformat.v4.new_code_cell(SETUP_CELL, id="setup"),
        nbformat.v4.new_code_cell(PARAMETERS_CELL, id="parameters", metadata={"tags": ["parameters"]}),
    ]
    for cell in rest:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = head + rest
    nbformat.validator.normalize(nb)  # gives any cell without an id one
    nbformat.write(nb, notebook)
