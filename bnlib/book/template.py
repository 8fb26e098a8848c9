"""Every chapter's first cells (title with its Colab link, the page's opening, then set-up,
parameters and start) and its last (where its evidence came from), the check that a chapter follows
them, and what those cells do when they run.

`python -m bnlib.book --apply-template` rewrites the first cells of every chapter from here, so
the install line and the repository address (`bnlib.book.project`) live in one place.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from bnlib.book.project import ROOT, colab_url, install_line, store_url
from bnlib.device import describe, pick_device
from bnlib.errors import BnlibError
from bnlib.published import ENV_STORE, ENV_STORE_URL
from bnlib.storage import ENV_CACHE, cache_dir

if TYPE_CHECKING:  # the book's modules load when a page starts, after its set-up cell
    from bnlib.book.session import Session

ENV_BOOK = "BNLIB_BOOK"  # "all": the book build, every run with every probe any chapter reads
# Set by the book build for the pages it executes, never by hand: a fresh folder for that one build,
# where the pages share the findings they measured (`Session.findings`); the build deletes it after.
ENV_FINDINGS = "BNLIB_BOOK_FINDINGS"
NOTEBOOKS = ROOT / "notebooks"


def pages() -> list[Path]:
    """Every executable page: the chapters, and the book's results page."""
    return [*sorted(NOTEBOOKS.glob("*.ipynb")), ROOT / "book" / "results.ipynb"]


DRIVE_CACHE = "/content/drive/MyDrive/bnlib-cache"

PARAMETERS_CELL = """# The parameters (papermill sets them too)
scale = bnlib.book.default_scale()  # "cpu": the published pages, minutes; "paper": the full protocol
seeds = None  # fewer seeds than the book's, e.g. 1 (None: the book's)
steps = None  # fewer steps per run than the scale's, e.g. 500 (None: the scale's)"""

# The three cells above come after the page's opening (its question, in a markdown cell), and on
# the static pages they fold behind a toggle; in the notebook and on Colab they are there to run.
HIDDEN = "hide-cell"
HEAD_IDS = ("setup", "parameters", "start")
# Every page's last cell: where its evidence came from (the published store or the reader's cache)
EVIDENCE_CELL = "bnlib.book.evidence(session)  # where this page's runs came from, and every record by name"
EVIDENCE_ID = "evidence"


def start_cell(chapter: str | None) -> str:
    """The start cell of a chapter (or, for None, of a page that reads every chapter's runs)."""
    name = "None" if chapter is None else f'"{chapter}"'
    return f"""# This page's session (its chapter, scale, seeds, steps) and what it will train (paper scale: how long)
session = bnlib.book.start({name}, scale, seeds, steps)"""


SETUP_CELL = f"""# Set-up. On Colab this installs bnlib (your runtime's own torch and ipywidgets are kept).
import sys

if "google.colab" in sys.modules:
    {install_line()}
import bnlib.book

# True keeps run records and checkpoints on your Google Drive (Colab only), so that a run
# interrupted by a runtime reset resumes from its last checkpoint there.
KEEP_ON_DRIVE = False
# CIFAR-10 comes from torchvision's download, which can be very slow. If it is, point BNLIB_DATA at
# cifar-10-python.tar.gz on a mirror you trust (it is checked against the archive's MD5), e.g.
# import os; os.environ["BNLIB_DATA"] = "https://your.mirror/cifar-10-python.tar.gz"
bnlib.book.setup(keep_on_drive=KEEP_ON_DRIVE)"""


def setup(keep_on_drive: bool = False) -> None:
    """A page's first call: the figure style, where runs are kept, and what this session runs on."""
    from bnlib import __version__
    from bnlib.book import plotting

    plotting.style()
    on_colab = "google.colab" in sys.modules
    if keep_on_drive and on_colab:
        from google.colab import drive

        drive.mount("/content/drive")
        os.environ[ENV_CACHE] = DRIVE_CACHE
        print(f"Runs are kept on your Google Drive, in {DRIVE_CACHE}.")
    elif keep_on_drive:
        print("KEEP_ON_DRIVE applies on Colab only; here runs are kept in $BNLIB_CACHE (default ~/.cache/bnlib).")
    if on_colab and not os.environ.get(ENV_STORE):
        # the book's published runs, fetched from the repository as the page reads them (no training)
        os.environ[ENV_STORE] = str(cache_dir() / "store")
        os.environ[ENV_STORE_URL] = os.environ.get(ENV_STORE_URL) or store_url()
    device = pick_device()
    print(f"bnlib {__version__}, torch {torch.__version__}, {describe(device)}")


def start(chapter: str | None, scale: str, seeds: int | None = None, steps: int | None = None) -> Session:
    """A page's third cell: its session (its chapter, by its notebook's name, None for a page that
    reads every chapter; the parameters cell's scale, seeds and steps), and what it will train.
    The one place a page's session is made: inside a book build (which sets
    $BNLIB_BOOK and $BNLIB_BOOK_FINDINGS) it reads every run with every chapter's probes and shares
    its findings with the build's other pages."""
    from bnlib.book import contents

    page = None if chapter is None else contents.chapter(chapter)
    findings = os.environ.get(ENV_FINDINGS)
    session = contents.session(
        scale,
        page,
        whole=os.environ.get(ENV_BOOK) == "all",
        seeds=seeds,
        steps=steps,
        findings=Path(findings) if findings else None,
    )
    reduced = session.reduced()
    note = f"Scale: {scale}" + (f" ({reduced})" if reduced else "") + "."
    if scale == "paper":
        note += " The paper's full protocol, in float32: on a GPU, minutes to hours per run (estimates below)."
    print(note)
    plan_text = session.announce()
    print(plan_text or "Every run this page reads is trained already (published, or yours): it only loads them.")
    return session


def evidence(session: Session):
    """A page's last cell: where the runs it read came from (`bnlib.book.evidence`)."""
    from bnlib.book import provenance

    return provenance.show(session)


def badge(notebook: Path) -> str:
    url = colab_url(notebook.resolve().relative_to(ROOT).as_posix())
    return f"[Open this page in Colab]({url}) to run it there, on a CPU or a GPU."


def _chapter_of(notebook: Path) -> str | None:
    """The chapter a page runs as (its notebook's name); None for the results page, which reads
    every chapter's runs."""
    from bnlib.book.contents import CHAPTERS

    return notebook.stem if notebook.stem in {c.notebook for c in CHAPTERS} else None


def _head(notebook: Path) -> list[tuple[str, str]]:
    """(cell type, source) of the cells every chapter runs first, after its title and opening."""
    return [("code", SETUP_CELL), ("code", PARAMETERS_CELL), ("code", start_cell(_chapter_of(notebook)))]


def template_problems(notebook: Path) -> list[str]:
    """How a chapter departs from the template (empty if it follows it)."""
    cells = json.loads(notebook.read_text())["cells"]
    problems = []
    if len(cells) < 5:
        return [f"{notebook.name}: needs a title cell, its opening, then the set-up, parameters and start cells"]
    title = "".join(cells[0]["source"])
    if cells[0]["cell_type"] != "markdown" or not title.startswith("# ") or badge(notebook) not in title:
        problems.append(f"{notebook.name}: the first cell must be '# Title' and the Colab link")
    if cells[1]["cell_type"] != "markdown":
        problems.append(f"{notebook.name}: the cell after the title must be the page's opening (markdown)")
    head = cells[2:5]
    for (kind, source), cell, name in zip(_head(notebook), head, ("set-up", "parameters", "start"), strict=True):
        if cell["cell_type"] != kind or "".join(cell["source"]) != source:
            problems.append(f"{notebook.name}: the {name} cell must follow the opening, as the template has it")
    if "parameters" not in head[1]["metadata"].get("tags", []):
        problems.append(f"{notebook.name}: the parameters cell must be tagged 'parameters' (papermill)")
    if any(HIDDEN not in cell["metadata"].get("tags", []) for cell in head):
        problems.append(f"{notebook.name}: the set-up, parameters and start cells must be tagged {HIDDEN!r}")
    if cells[-1]["cell_type"] != "code" or "".join(cells[-1]["source"]) != EVIDENCE_CELL:
        problems.append(f"{notebook.name}: the last cell must say where the page's evidence came from (the template's)")
    for cell in cells:
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{notebook.name}: committed with outputs; strip them")
            break
    return problems


def apply_template(notebook: Path) -> None:
    """Rewrite a chapter's first cells from the template (its opening, the first markdown cell after
    the title, moves up to follow the title) and strip every output."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    cells = nb.cells
    title = cells[0].source.split("\n", 1)[0] if cells and cells[0].cell_type == "markdown" else ""
    if not title.startswith("# "):
        raise BnlibError(f"{notebook}: the first cell must start with a '# Title' line")
    rest = [cell for cell in cells[1:] if cell.get("id") not in (*HEAD_IDS, EVIDENCE_ID)]
    if not rest or rest[0].cell_type != "markdown":
        raise BnlibError(f"{notebook}: the title must be followed by the page's opening, a markdown cell")
    head = [
        nbformat.v4.new_markdown_cell(f"{title}\n\n{badge(notebook)}", id="title"),
        rest.pop(0),
        nbformat.v4.new_code_cell(SETUP_CELL, id="setup", metadata={"tags": [HIDDEN]}),
        nbformat.v4.new_code_cell(PARAMETERS_CELL, id="parameters", metadata={"tags": ["parameters", HIDDEN]}),
        nbformat.v4.new_code_cell(start_cell(_chapter_of(notebook)), id="start", metadata={"tags": [HIDDEN]}),
    ]
    for cell in rest:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = [*head, *rest, nbformat.v4.new_code_cell(EVIDENCE_CELL, id=EVIDENCE_ID)]
    nbformat.validator.normalize(nb)  # gives any cell without an id one
    nbformat.write(nb, notebook)
