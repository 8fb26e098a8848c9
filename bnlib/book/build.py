"""The book build: execute the chapters at a scale, then render the HTML with Jupyter Book 1.

    python -m bnlib.book [--scale cpu]      # build the HTML; prints where it is

The chapters read their runs from the reader's cache, else from the book's published run store
(`bnlib.published`, `store/` in the repository), so with every run published the build trains
nothing and needs no data set. Runs found in neither are trained first, after saying which and how
long they will take (`--no-training` fails instead, naming them).

The build executes the notebooks in notebooks/ (committed without outputs) at the chosen scale,
with a per-scale execution cache so a chapter is not run again while neither its cells nor bnlib's
source changed, a hang detector (a cell with no output and no CPU for minutes fails; a long cell
that works does not), and any cell error failing the build. Chapters share run records
(bnlib.records), so a training run used by two chapters runs once. Each scale builds into its own
folder, book/_build/<scale>: smoke outputs never mix with the published cpu build.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bnlib import interrupts
from bnlib.book import plan
from bnlib.book.project import REPO_TAG, REPO_URL
from bnlib.book.template import ENV_BOOK, ENV_FINDINGS, ROOT, pages, template_problems
from bnlib.data import ENV_DATA
from bnlib.errors import BnlibError
from bnlib.experiments import check_scale, default_scale
from bnlib.storage import ENV_CACHE

# A cell that makes no progress (no new output and no CPU) for this long is a hang and fails the
# build. A long cell that is working is not: there is no limit on a cell's total time.
HANG_AFTER_S = {"smoke": 120, "cpu": 600, "paper": 1800}
SOURCE_KEY = "bnlib_source"  # the execution cache's note of the bnlib a page was executed with (source_digest)
PAGE_WORKERS = 2  # pages executed at a time, one thread each (the machines the book is built on have 2 cores)


def toc_notebooks() -> list[Path]:
    """The book's notebooks in table-of-contents order."""
    import yaml

    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    parts = toc.get("parts", [{"chapters": toc.get("chapters", [])}])
    files = [toc["root"], *(entry["file"] for part in parts for entry in part["chapters"])]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def execute_into_cache(notebook: Path, cache_path: Path, hang_after_s: float, env: dict[str, str]) -> bool:
    """Execute a notebook in a fresh process and store it in the book's execution cache, unless
    the cache already holds it; Jupyter Book then only renders it. Executing here rather than
    inside Sphinx lets us choose nbclient's options (see `_execute_here`), and a crash in one
    notebook cannot take the build process down. The cache is checked here first: a notebook
    unchanged, with bnlib unchanged, costs no process (a warm build is then seconds, not a torch
    import per page). Returns whether it executed the notebook."""
    if _cached(notebook, cache_path):
        print(f"{notebook.name}: unchanged, not executed again", flush=True)
        return False
    call = f"_execute_here({str(notebook)!r}, {str(cache_path)!r}, {hang_after_s})"
    returncode = run_child([sys.executable, "-c", f"from bnlib.book.build import _execute_here; {call}"], env)
    if returncode != 0:
        raise BnlibError(f"executing {notebook.relative_to(ROOT)} failed (exit {returncode}); its traceback is above")
    return True


_children: set[subprocess.Popen] = set()  # the build's processes (pages, Jupyter Book) running now


def run_child(command: list[str], env: dict[str, str]) -> int:
    """Run a process of the build and return its exit status. It runs in a session of its own, so
    Ctrl-C at the terminal reaches only the build, which stops it (`stop_children`): one line on
    the terminal instead of a traceback from each process."""
    child = subprocess.Popen(command, env=env, start_new_session=True)
    _children.add(child)
    try:
        return child.wait()
    finally:
        _children.discard(child)


def stop_children(grace_s: float = 5.0) -> None:
    """End the build's processes (SIGTERM, then SIGKILL after `grace_s`); a page's kernel follows
    its process (ipykernel watches its parent)."""
    for child in list(_children):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in list(_children):
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)


def run_notebook(nb, cwd: Path, hang_after_s: float) -> float:
    """Execute a notebook in place, cell by cell, saving widget state; returns the seconds taken.
    A cell that makes no progress for `hang_after_s` seconds is interrupted and fails (`Watchdog`).

    Cell by cell rather than nbclient's `execute()`: that call was seen to sit out the whole cell
    timeout after the last cell now and then (13 s notebooks taking 75-176 s, in and outside
    Jupyter Book); running the cells one by one on the same client never did.
    """
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="bnlib-kernel-") as sockets:
        # The kernel speaks over local sockets (IPC), not TCP: nothing leaves this machine, and the
        # kernel has nothing to warn about. record_timing=False: timing metadata on the cells would
        # change the notebook's hash in the execution cache, and Jupyter Book would then execute
        # every chapter a second time.
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(
            nb,
            km=km,
            timeout=None,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(cwd)}},
        )
        return _run_cells(client, nb, hang_after_s)


def _run_cells(client, nb, hang_after_s: float) -> float:
    started = time.perf_counter()
    with client.setup_kernel(cleanup_kc=True):  # the manager is ours (IPC), so shut its kernel down too
        for channel in (client.kc.shell_channel, client.kc.iopub_channel):
            _poll_every_second(channel)
        kernel = client.km.provisioner.process.pid
        watchdog = Watchdog(kernel, hang_after_s)
        for index, cell in enumerate(nb.cells):
            with watchdog.watching(cell):
                try:
                    client.execute_cell(cell, index)
                except KeyboardInterrupt:  # the build is stopping: the kernel goes now, without a word
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(kernel, signal.SIGKILL)
                    raise
                except Exception as error:
                    if watchdog.hung:
                        raise BnlibError(
                            f"cell {index} of the notebook made no progress (no output, no CPU) for "
                            f"{hang_after_s:.0f} s and was interrupted: a hang"
                        ) from error
                    raise
        client.set_widgets_metadata()
    return time.perf_counter() - started


class Watchdog:
    """Watches a kernel while a cell runs: if the kernel's processes use (almost) no CPU and the
    cell gains no output for `hang_after_s` seconds, it interrupts the kernel (SIGINT, then SIGKILL
    if that does not help) and sets `hung`."""

    def __init__(self, kernel_pid: int, hang_after_s: float, poll_s: float = 2.0, idle_cpu: float = 0.02):
        import psutil

        self.kernel = psutil.Process(kernel_pid)
        self.hang_after_s, self.poll_s, self.idle_cpu = hang_after_s, min(poll_s, hang_after_s / 4), idle_cpu
        self.hung = False

    def _cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for process in (self.kernel, *self.kernel.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    @contextlib.contextmanager
    def watching(self, cell):
        stop = threading.Event()

        def watch() -> None:
            cpu, outputs, last_progress, signals = (
                self._cpu_seconds(),
                len(cell.get("outputs", [])),
                time.monotonic(),
                0,
            )
            while not stop.wait(self.poll_s):
                now_cpu, now_outputs = self._cpu_seconds(), len(cell.get("outputs", []))
                if now_cpu - cpu > self.idle_cpu * self.poll_s or now_outputs != outputs:
                    last_progress = time.monotonic()
                cpu, outputs = now_cpu, now_outputs
                if time.monotonic() - last_progress > self.hang_after_s * (1 + signals):
                    self.hung = True
                    self.kernel.send_signal(signal.SIGINT if signals == 0 else signal.SIGKILL)
                    signals += 1

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


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


def source_digest() -> str:
    """A checksum of bnlib's source (every .py file under bnlib/, with its path). A page's outputs
    depend on it as much as on the page's own cells: a changed rule or figure must execute the
    page again, so the execution cache keeps it beside each page it holds."""
    digest = hashlib.sha256()
    package = ROOT / "bnlib"
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cached(notebook: Path, cache_path: Path) -> bool:
    """Whether the execution cache holds this notebook's code already, executed with this bnlib."""
    import nbformat
    from jupyter_cache import get_cache

    try:
        record = get_cache(str(cache_path)).match_cache_notebook(nbformat.read(notebook, as_version=4))
    except KeyError:
        return False
    return (record.data or {}).get(SOURCE_KEY) == source_digest()


def _execute_here(notebook: str, cache_path: str, hang_after_s: float) -> None:
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from nbclient.exceptions import CellExecutionError

    interrupts.terminate_as_interrupt()  # the build stops a page with SIGTERM: its kernel goes with it
    cache = get_cache(cache_path)
    nb = nbformat.read(notebook, as_version=4)
    stage = cache.add_nb_to_project(notebook)
    try:
        seconds = run_notebook(nb, Path(notebook).parent, hang_after_s)
    except CellExecutionError as error:
        print(error, file=sys.stderr)
        raise SystemExit(1) from error
    except KeyboardInterrupt:  # the build says so, once
        raise SystemExit(interrupts.EXIT_STATUS) from None
    cache.cache_notebook_bundle(
        CacheBundleIn(nb, stage.uri, data={"execution_seconds": seconds, SOURCE_KEY: source_digest()}),
        check_validity=False,
        overwrite=True,
    )
    print(f"{Path(notebook).name}: executed in {seconds:.0f} s", flush=True)


def execute_pages(
    notebooks: list[Path], cache_path: Path, hang_after_s: float, env: dict[str, str], seconds: dict[str, float]
) -> bool:
    """Execute the pages into the cache, PAGE_WORKERS at a time (each on one thread: the runs are
    trained already, so a page mostly imports, loads and draws, one core's work); their seconds go
    into `seconds`. Returns whether any page was executed; the first failure is raised once all
    have ended."""
    from concurrent.futures import ThreadPoolExecutor, wait

    env = env | {"OMP_NUM_THREADS": "1"}  # two pages on two threads each would oversubscribe the cores
    seconds |= {notebook.stem: 0.0 for notebook in notebooks}  # printed in the book's order

    def execute(notebook: Path) -> bool:
        began = time.perf_counter()
        done = execute_into_cache(notebook, cache_path, hang_after_s, env)
        seconds[notebook.stem] = time.perf_counter() - began
        return done

    _cached(notebooks[0], cache_path)  # creates the cache's database here, before two processes race to
    with ThreadPoolExecutor(max_workers=PAGE_WORKERS) as pool:
        futures = [pool.submit(execute, notebook) for notebook in notebooks]
        try:
            wait(futures)
        except KeyboardInterrupt:  # the pages executed so far stay in the cache
            for future in futures:
                future.cancel()
            stop_children()
            raise
    results = [future.exception() or future.result() for future in futures]
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return any(results)


def pretrain(scale: str, env: dict[str, str], training: bool = True) -> dict[str, float]:
    """Train every run the book reads that is in neither the reader's cache nor the published store,
    with the union of the probes its chapters read, as sweeps across this machine's cores
    (`bnlib.sweep`: one thread per run), so that the chapters only load them; each round's runs and
    their time on this machine are announced first. Some chapters read more seeds where seed 0
    reached its target, so the sweeps run in rounds until nothing the chapters read is missing.
    Returns the seconds each round took. Without Ray the sweeps run one config after another.
    With `training` False, a missing run is an error that names it."""
    from bnlib.book import contents, store
    from bnlib.book.session import refresh
    from bnlib.sweeps import ray_closed_after, sweep

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    session = contents.session(scale, whole=True)  # as the pages will read them
    seconds = {}
    try:
        with ray_closed_after():
            while todo := session.missing():
                if not training:
                    store.refuse_missing(session, None, "the book reads")
                print(plan.announce(scale, todo, workers=min(os.cpu_count() or 1, len(todo)), who="The build"))
                started = time.perf_counter()
                sweep(todo).raise_if_failed("the book's runs")
                seconds[f"training round {len(seconds) + 1} ({len(todo)} runs)"] = time.perf_counter() - started
                refresh()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return seconds


def build(
    scale: str | None = None, rebuild_all: bool = False, findings: Path | None = None, training: bool = True
) -> Path:
    """Build the HTML book at `scale`; returns the path of its index.html. The pages share what they
    measure through `findings` (a folder of this build's own, deleted after, if None; the tests
    give one they share with pages they execute beside the build, from the same runs). `training`
    False: fail, naming them, if runs are in neither the store nor the cache (`pretrain`)."""
    import yaml

    scale = check_scale(scale) if scale else default_scale()
    if not (ROOT / "book" / "_config.yml").exists():
        raise BnlibError(f"no book/_config.yml under {ROOT}; build the book from a checkout of {REPO_URL}")
    problems = [p for nb in pages() for p in template_problems(nb)]
    if problems:
        raise BnlibError(f"{problems[0]} (python -m bnlib.book --apply-template fixes the template)")
    out = ROOT / "book" / "_build" / scale
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    # Jupyter Book only renders: the chapters are executed into its cache first (no time limit there)
    config["execute"] |= {"cache": str(out / "jupyter_cache"), "timeout": -1}
    config["repository"] |= {"url": REPO_URL, "branch": REPO_TAG}
    # Jupyter Book resolves local extensions relative to the config file, which now lives in `out`.
    extensions = config["sphinx"].get("local_extensions", {})
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in extensions.items()}
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    # every chapter reads its runs with the union of all chapters' probes (bnlib.book.template.start)
    env = os.environ | {"BNLIB_SCALE": scale, "BNLIB_PROGRESS": "0", ENV_BOOK: "all"}
    for name in (ENV_DATA, ENV_CACHE):  # the chapters run in notebooks/: relative paths mean the caller's
        if env.get(name):
            env[name] = str(Path(env[name]).expanduser().absolute())
    started = time.perf_counter()
    seconds = pretrain(scale, env, training)
    # the pages of this build measure each claim once between them (the results page and the bottom
    # line show claims their chapters measured); a folder of the build's own goes with it, so none is stale
    with contextlib.ExitStack() as stack:
        shared = findings or stack.enter_context(tempfile.TemporaryDirectory(prefix="bnlib-findings-"))
        shares = env | {ENV_FINDINGS: str(shared)}
        executed = execute_pages(toc_notebooks(), out / "jupyter_cache", HANG_AFTER_S[scale], shares, seconds)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [
        str(jupyter_book if jupyter_book.exists() else shutil.which("jupyter-book") or "jupyter-book"),
        "build", str(ROOT),
        "--config", str(out / "_config.yml"),
        "--toc", str(ROOT / "book" / "_toc.yml"),
        "--path-output", str(out),
        "-W", "-n", "--keep-going",
    ]  # fmt: skip
    # Sphinx re-renders only pages whose source changed; a page executed again (its outputs changed
    # with bnlib, its source did not) needs every page rendered
    if rebuild_all or executed:
        command.append("--all")
    began = time.perf_counter()
    try:
        returncode = run_child(command, env)
    except KeyboardInterrupt:
        stop_children()
        raise
    if returncode != 0:
        raise BnlibError(f"the {scale}-scale book build failed (exit {returncode}); the log above says where")
    seconds["rendering the HTML"] = time.perf_counter() - began
    index = out / "_build" / "html" / "index.html"
    print(f"\n{scale}-scale book built in {time.perf_counter() - started:.0f} s: {index}")
    for page, took in seconds.items():
        print(f"  {took:7.0f} s  {page}")
    return index
