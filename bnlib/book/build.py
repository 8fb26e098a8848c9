"""The book build: execute the chapters at a scale, then render the HTML with Jupyter Book 1.

    python -m bnlib.book [--scale cpu]      # build the HTML; prints where it is

The build executes the notebooks in notebooks/ (committed without outputs) at the chosen scale,
with a per-scale execution cache so an unchanged chapter is not run again, a per-cell timeout, and
any cell error failing the build. Chapters share run records (bnlib.records), so a training run
used by two chapters runs once. Each scale builds into its own folder, book/_build/<scale>: smoke
outputs never mix with the published cpu build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bnlib.book.project import REPO_TAG, REPO_URL
from bnlib.book.template import NOTEBOOKS, ROOT, template_problems
from bnlib.errors import BnlibError
from bnlib.experiments import check_scale, default_scale

CELL_TIMEOUT_S = {"smoke": 300, "cpu": 1800, "paper": 6 * 3600}


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
    done = subprocess.run([sys.executable, "-c", f"from bnlib.book.build import _execute_here; {call}"], env=env)
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
        raise BnlibError(f"{problems[0]} (python -m bnlib.book --apply-template fixes the template)")
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
