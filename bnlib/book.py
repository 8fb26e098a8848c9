"""The book around the chapters: each chapter's set-up cell, the chapter template, and the build.

    python -m bnlib book [--scale cpu]      # build the HTML; prints where it is

The build executes the notebooks in notebooks/ (committed without outputs) at the chosen scale,
with a per-scale execution cache so an unchanged chapter is not run again, a per-cell timeout, and
any cell error failing the build. Chapters share run records (bnlib.records), so a training run
used by two chapters runs once. Each scale builds into its own folder, book/_build/<scale>: smoke
outputs never mix with the published cpu build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from bnlib.device import describe, pick_device
from bnlib.errors import BnlibError
from bnlib.experiments import check_scale, default_scale
from bnlib.project import REPO_TAG, REPO_URL, colab_url, install_line

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = {"smoke": 300, "cpu": 1800, "paper": 6 * 3600}

SETUP_CELL = f"""# Set-up. On Colab this installs bnlib (your runtime's own torch and ipywidgets are kept).
import sys

if "google.colab" in sys.modules:
    {install_line()}
import bnlib.book

bnlib.book.setup()"""
PARAMETERS_CELL = """scale = bnlib.book.default_scale()  # $BNLIB_SCALE, else "paper" on a GPU and "cpu" without"""


def setup() -> None:
    """A chapter's first call: figure style, and what this session will run on."""
    from bnlib import __version__, plotting

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


def toc_notebooks() -> list[Path]:
    """The book's notebooks in table-of-contents order."""
    import yaml

    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"], *(entry["file"] for entry in toc.get("chapters", []))]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def execute_into_cache(notebook: Path, cache_path: Path, timeout: int, env: dict[str, str]) -> None:
    """Execute a notebook in a fresh process and store it in the book's execution cache, unless
    the cache already holds it; Jupyter Book then only renders it. Executing here rather than
    inside Sphinx lets us choose nbclient's options (see `_execute_here`), and a crash in one
    notebook cannot take the build process down."""
    call = f"_execute_here({str(notebook)!r}, {str(cache_path)!r}, {timeout})"
    done = subprocess.run([sys.executable, "-c", f"from bnlib.book import _execute_here; {call}"], env=env)
    if done.returncode != 0:
        raise BnlibError(
            f"executing {notebook.relative_to(ROOT)} failed (exit {done.returncode}); its traceback is above"
        )


def run_notebook(nb, cwd: Path, timeout: int) -> float:
    """Execute a notebook in place, cell by cell, saving widget state; returns the seconds taken.

    Cell by cell rather than nbclient's `execute()`: that call was seen to sit out the whole cell
    timeout after the last cell now and then (13 s notebooks taking 75-176 s, in and outside
    Jupyter Book); running the cells one by one on the same client never did.
    """
    from nbclient import NotebookClient

    # record_timing=False: timing metadata on the cells would change the notebook's hash in the
    # execution cache, and Jupyter Book would then execute every chapter a second time
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(cwd)}}
    )
    started = time.perf_counter()
    with client.setup_kernel():
        for channel in (client.kc.shell_channel, client.kc.iopub_channel):
            _poll_every_second(channel)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        client.set_widgets_metadata()
    return time.perf_counter() - started


def _poll_every_second(channel) -> None:
    """Make a kernel channel's get_msg(timeout) look at its socket at least once a second.

    After a cell that displays widgets, nbclient was seen (here, and in nbclient issue #312) to
    wait out the whole cell timeout for an execute reply the kernel had already sent: the
    asyncio wake-up for the socket was missed. A fresh poll sees the waiting message.
    """
    from queue import Empty

    get_msg = channel.get_msg

    async def patient_get_msg(timeout: float | None = None, **kwargs):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=left, **kwargs)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = patient_get_msg


def _execute_here(notebook: str, cache_path: str, timeout: int) -> None:
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from nbclient.exceptions import CellExecutionError

    cache = get_cache(cache_path)
    nb = nbformat.read(notebook, as_version=4)
    try:
        cache.match_cache_notebook(nb)
        print(f"{Path(notebook).name}: unchanged, not executed again", flush=True)
        return
    except KeyError:
        pass
    stage = cache.add_nb_to_project(notebook)
    try:
        seconds = run_notebook(nb, Path(notebook).parent, timeout)
    except CellExecutionError as error:
        print(error, file=sys.stderr)
        raise SystemExit(1) from error
    cache.cache_notebook_bundle(
        CacheBundleIn(nb, stage.uri, data={"execution_seconds": seconds}), check_validity=False, overwrite=True
    )
    print(f"{Path(notebook).name}: executed in {seconds:.0f} s", flush=True)


def build(scale: str | None = None, rebuild_all: bool = False) -> Path:
    """Build the HTML book at `scale`; returns the path of its index.html."""
    import yaml

    scale = check_scale(scale) if scale else default_scale()
    if not (ROOT / "book" / "_config.yml").exists():
        raise BnlibError(f"no book/_config.yml under {ROOT}; build the book from a checkout of {REPO_URL}")
    problems = [p for nb in sorted(NOTEBOOKS.glob("*.ipynb")) for p in template_problems(nb)]
    if problems:
        raise BnlibError(f"{problems[0]} (python -m bnlib book --apply-template fixes the template)")
    out = ROOT / "book" / "_build" / scale
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    config["execute"] |= {"cache": str(out / "jupyter_cache"), "timeout": CELL_TIMEOUT_S[scale]}
    config["repository"] |= {"url": REPO_URL, "branch": REPO_TAG}
    # Jupyter Book resolves local extensions relative to the config file, which now lives in `out`.
    extensions = config["sphinx"].get("local_extensions", {})
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in extensions.items()}
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = os.environ | {"BNLIB_SCALE": scale, "BNLIB_PROGRESS": "0"}
    started = time.perf_counter()
    for notebook in toc_notebooks():
        execute_into_cache(notebook, out / "jupyter_cache", CELL_TIMEOUT_S[scale], env)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [
        str(jupyter_book if jupyter_book.exists() else shutil.which("jupyter-book") or "jupyter-book"),
        "build", str(ROOT),
        "--config", str(out / "_config.yml"),
        "--toc", str(ROOT / "book" / "_toc.yml"),
        "--path-output", str(out),
        "-W", "-n", "--keep-going",
    ]  # fmt: skip
    if rebuild_all:
        command.append("--all")
    done = subprocess.run(command, env=env)
    if done.returncode != 0:
        raise BnlibError(f"the {scale}-scale book build failed (exit {done.returncode}); the log above says where")
    index = out / "_build" / "html" / "index.html"
    print(f"{scale}-scale book built in {time.perf_counter() - started:.0f} s: {index}")
    return index
