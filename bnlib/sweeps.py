"""Many runs at once, as Ray tasks: across the cores of this machine, its GPUs, or a cluster.

    bnlib.sweep(configs)                                   # Python: configs, or Jobs with probes
    python -m bnlib sweep vgg-bn-lr0.1 vgg-std-lr0.1 --lr 0.01,0.1,1 --seeds 0,1,2

Each config is one Ray task that calls `bnlib.load_or_run` in a worker, so the run records in
$BNLIB_CACHE stay the single source of truth: the cache must be a folder every worker sees (a
shared file system on a cluster). What that gives, and how:

* configs already recorded (with their probes) are skipped before any task starts;
* two tasks, or a task and a notebook, never train one run twice: `load_or_run` holds a lock per
  record, and the second waits for the first's record;
* a worker killed mid-run is retried by Ray (`max_retries`), and the retry resumes from the run's
  last checkpoint; a diverged run is a result; a config that fails does not stop the others, and
  the summary names it with its error;
* one progress bar for the whole sweep (done, running, failed, ETA), and a line per finished run.

Each task asks for one GPU when the cluster has GPUs, else for `threads` CPUs (default 1: on a
small machine, runs side by side on one thread each train faster in total than one run on all
cores). Local by default (`ray.init()` on this machine); a running cluster with `address`. Ray is
an optional extra (`pip install 'bnlib[sweep]'`); without it `sweep` runs the configs one after
another, with the same thread count, so the records are the same.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from bnlib import interrupts, reaper
from bnlib.config import RunConfig
from bnlib.data import ENV_DATA, resolve_location
from bnlib.errors import BnlibError, ConfigError
from bnlib.probes.hook import Probe, probe_key
from bnlib.records import check_probes, load_or_run, space_needed, stored_record
from bnlib.storage import ENV_CACHE, cache_dir, check_cache
from bnlib.train import ENV_CHECKPOINT, ENV_PROGRESS, RunOptions

INSTALL_RAY = "pip install 'bnlib[sweep]' (or pip install ray)"
STOP_GRACE_S = 30.0  # how long an interrupted sweep waits for its runs in flight to save their checkpoints


@dataclass(frozen=True)
class Job:
    """One run of a sweep: a config, the probes its record must carry, and a label for the summary."""

    config: RunConfig
    probes: tuple[Probe, ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        c = self.config
        return self.label or f"{c.model}-{c.norm}-lr{c.lr:g}-seed{c.seed}"


@dataclass
class Outcome:
    """What became of a job: "stored" (recorded before the sweep, skipped), "trained" (by this
    sweep), "loaded" (another process trained it while this one waited), or "failed"."""

    job: Job
    state: str
    status: str | None = None  # the run's own: "finished" or "diverged"
    final: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SweepResult:
    outcomes: list[Outcome]
    seconds: float
    backend: str  # "ray" or "sequential"

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.state == "failed"]

    def raise_if_failed(self, what: str) -> None:
        """A one-line BnlibError naming the first failed job, if any job failed ("3 of `what` failed")."""
        if self.failed:
            first = self.failed[0]
            raise BnlibError(f"{len(self.failed)} of {what} failed; the first: {first.job.name}: {first.error}")

    def summary(self) -> str:
        counts = {s: sum(o.state == s for o in self.outcomes) for s in ("trained", "loaded", "stored", "failed")}
        lines = [
            f"sweep of {len(self.outcomes)} runs in {self.seconds:.0f} s ({self.backend}): "
            + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        ]
        lines += [f"  failed: {o.job.name}: {o.error}" for o in self.failed]
        return "\n".join(lines)


def grid(
    names: Sequence[str],
    scale: str | None = None,
    lrs: Sequence[float] | None = None,
    norms: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    **changes: Any,
) -> list[RunConfig]:
    """The configs of named experiments x learning rates x normalizations x seeds (None: each
    experiment's own learning rate or normalization), with other fields changed as given."""
    from bnlib.experiments import experiment

    configs = []
    for name, lr, norm, seed in itertools.product(names, lrs or [None], norms or [None], seeds):
        extra = {k: v for k, v in (("lr", lr), ("norm", norm)) if v is not None}
        configs.append(experiment(name, scale, seed=seed, **changes, **extra))
    return list(dict.fromkeys(configs))  # the same config twice is one run


def sweep(
    jobs: Sequence[RunConfig | Job],
    probes: Sequence[Probe] = (),
    *,
    address: str | None = None,
    workers: int | None = None,
    threads: int = 1,
    options: RunOptions | None = None,
    progress: bool = True,
    require_ray: bool = False,
) -> SweepResult:
    """Run every job (a RunConfig, with `probes`, or a Job with its own) and return what became of
    each. Everything that can be checked is checked before anything runs: the jobs, the data
    location, the cache (writable, with room for every run) and, for a cluster, its address."""
    started = time.perf_counter()
    _check_count("threads", threads)
    if workers is not None:
        _check_count("workers", workers)
    jobs = _jobs(jobs, probes)
    if address:
        check_address(address)
    options = options or RunOptions()
    options.check()
    if any(job.config.on_cifar for job in jobs):
        resolve_location(options.data)
    outcomes: dict[int, Outcome] = {}
    todo = []
    for i, job in enumerate(jobs):
        record = stored_record(job.config, options)
        if record is not None and all(probe_key(p) in record.probes for p in job.probes):
            outcomes[i] = Outcome(job, "stored", record.status, record.final, record.wall_time_s)
        else:
            todo.append(i)
    if todo:  # a cache that holds every record may be read-only: only writing needs a writable one
        check_cache(space_needed([jobs[i].config for i in todo], options, at_once=workers or os.cpu_count() or 1))
    ray = _ray(required=require_ray or address is not None) if todo or address else None  # installed?
    if ray is not None and not address:
        _check_threads(threads, ray.cluster_resources().get("CPU") if ray.is_initialized() else workers, workers)
    if any(jobs[i].config.on_cifar for i in todo):
        from bnlib.data import load_cifar10

        load_cifar10(options.data)  # decoded (or downloaded) once here, not once per worker, before Ray starts
    if ray is not None:
        _connect(ray, address, workers)
        if address and not ray.cluster_resources().get("GPU"):
            _check_threads(threads, ray.cluster_resources().get("CPU", 0), None, address)
    if ray is None:
        for i in _progress(todo, jobs, progress):
            outcomes[i] = _outcome(jobs[i], run_job(jobs[i], options, threads))
    else:
        outcomes |= _run_on_ray(ray, jobs, todo, options, threads, _worker_environment(options), progress)
    result = SweepResult([outcomes[i] for i in range(len(jobs))], time.perf_counter() - started, _backend(ray))
    if progress:
        print(result.summary(), file=sys.stderr, flush=True)
    return result


def _check_threads(threads: int, cpus: float | None, workers: int | None, address: str | None = None) -> None:
    """A task asks Ray for `threads` CPUs; where Ray has fewer (`cpus`; None: this machine's, or
    `workers`), it would wait for them forever. One line naming what fits, before any work."""
    cpus = int(cpus if cpus is not None else os.cpu_count() or 1)
    if threads <= cpus:
        return
    have = f"{cpus} CPU{'s' if cpus != 1 else ''}"
    where = (
        f"the Ray cluster at {address} has {have}"
        if address
        else f"Ray has {have} here" + (f" (--workers {workers})" if workers else "")
    )
    more = "" if address else " or more --workers"
    raise ConfigError(f"each run asks for {threads} threads but {where}; give --threads {cpus} or fewer{more}")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, not {value!r}")


def _jobs(jobs: Sequence[RunConfig | Job], probes: Sequence[Probe]) -> list[Job]:
    if isinstance(jobs, RunConfig | Job) or not isinstance(jobs, Sequence):
        raise ConfigError("sweep needs a list of configs or Jobs")
    if not jobs:
        raise ConfigError("the sweep's grid is empty; give it at least one config (see bnlib.sweep.grid)")
    shared = tuple(check_probes(probes))
    out = []
    for job in jobs:
        if isinstance(job, RunConfig):
            job = Job(job, shared)
        if not isinstance(job, Job) or not isinstance(job.config, RunConfig):
            raise ConfigError(f"a sweep takes RunConfigs or Jobs, not {type(job).__name__}")
        out.append(Job(job.config, tuple(check_probes(job.probes)), job.label))
    return out


@contextlib.contextmanager
def ray_closed_after() -> Iterator[None]:
    """Shut down, on leaving, a local Ray that the sweeps inside started (one that was already
    running is left alone): a book build leaves no Ray behind in the process that called it."""
    try:
        import ray
    except ImportError:
        yield
        return
    running = ray.is_initialized()
    try:
        yield
    finally:
        if not running and ray.is_initialized():
            ray.shutdown()


def _ray(required: bool):
    try:
        import ray
    except ImportError:
        if required:
            raise BnlibError(f"Ray is not installed; {INSTALL_RAY}") from None
        print(
            f"bnlib: Ray is not installed, so the sweep runs one config after another ({INSTALL_RAY})", file=sys.stderr
        )
        return None
    return ray


def _backend(ray) -> str:
    return "sequential" if ray is None else "ray"


def check_address(address: str, timeout_s: float = 3.0) -> None:
    """Raise a one-line BnlibError unless a Ray cluster's address ("host:port", "ray://host:port",
    or "auto") answers a TCP connection within `timeout_s` (Ray itself retries for minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    hint = "start one with `ray start --head` (it prints its address), or drop --address to run here"
    if not host or not port.isdigit():
        raise BnlibError(f"--address {address!r} is not host:port (e.g. 10.0.0.5:6379); {hint}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise BnlibError(f"no Ray cluster answers at {address} ({e.strerror or type(e).__name__}); {hint}") from None


def _connect(ray, address: str | None, workers: int | None) -> None:
    if ray.is_initialized():
        return
    settings = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    notices = io.StringIO()  # Ray's start-up notices (token authentication, ...): shown only if it fails
    try:
        with contextlib.redirect_stdout(notices), contextlib.redirect_stderr(notices), interrupts.keeping_sigterm():
            if address:
                ray.init(address=address, **settings)
            else:
                ray.init(num_cpus=workers or os.cpu_count(), object_store_memory=128 << 20, **settings)
    except Exception as e:  # ConnectionError, TimeoutError, RuntimeError, ValueError: all mean "no cluster"
        print(notices.getvalue(), end="", file=sys.stderr)
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        message = " ".join(str(e).split())[:200]
        hint = "start one with `ray start --head`, or drop --address to run on this machine" if address else INSTALL_RAY
        raise BnlibError(f"cannot start or reach {where} ({type(e).__name__}: {message}); {hint}") from None
    if not address:
        reaper.watch()  # if this process is killed, the local Ray it started goes with it


def _worker_environment(options: RunOptions) -> dict[str, str]:
    """What every worker must see as the driver does: the cache (an absolute path, shared), the
    data, quiet progress bars, the checkpoint interval."""
    env = {ENV_CACHE: str(cache_dir()), ENV_PROGRESS: "0"}
    data = options.data or os.environ.get(ENV_DATA)
    if data:
        env[ENV_DATA] = os.path.abspath(os.path.expanduser(data))
    if os.environ.get(ENV_CHECKPOINT):
        env[ENV_CHECKPOINT] = os.environ[ENV_CHECKPOINT]
    return env


def run_job(job: Job, options: RunOptions, threads: int, environment: dict[str, str] | None = None) -> dict[str, Any]:
    """One job, where it runs (a Ray worker, given the driver's `environment`, or this process):
    its record, trained if missing. Returns a small summary; the record itself stays in the cache."""
    if environment is not None:
        os.environ.update(environment)
        interrupts.cancellable()  # a sweep's Ctrl-C reaches this run only if SIGINT is handled here
    data = environment.get(ENV_DATA) if environment is not None else options.data
    run_options = RunOptions(
        device=options.device,
        data=data,
        progress=False,
        threads=None if _gpu() else threads,
        published=options.published,
    )
    started = time.perf_counter()
    try:
        record = load_or_run(job.config, job.probes, run_options, label=job.label)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {' '.join(str(e).split())}", "trace": traceback.format_exc()}
    return {
        "state": "trained" if record.trained else "loaded",
        "status": record.status,
        "final": record.final,
        "seconds": time.perf_counter() - started,
    }


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _outcome(job: Job, summary: dict[str, Any]) -> Outcome:
    if "error" in summary:
        return Outcome(job, "failed", error=summary["error"])
    return Outcome(job, summary["state"], summary["status"], summary["final"], summary["seconds"])


def _progress(todo: list[int], jobs: list[Job], show: bool):
    bar = tqdm(todo, desc="sweep", unit="run", disable=not show)
    for i in bar:
        bar.set_postfix_str(jobs[i].name)
        yield i


def _run_on_ray(ray, jobs, todo, options, threads, environment, show) -> dict[int, Outcome]:
    gpus = ray.cluster_resources().get("GPU", 0)
    resources = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": threads}
    task = ray.remote(max_retries=3, retry_exceptions=False, **resources)(run_job)
    pending = {task.remote(jobs[i], options, threads, environment): i for i in todo}
    outcomes: dict[int, Outcome] = {}
    failed = 0
    # In a log (not a terminal) the bar is redrawn once a minute, not every two seconds.
    every = 0.1 if sys.stderr.isatty() else 60
    with tqdm(total=len(todo), desc="sweep", unit="run", disable=not show, mininterval=every) as bar:
        shown = None
        while pending:
            try:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            except KeyboardInterrupt:
                raise _stop(ray, pending, _slots(ray, resources)) from None
            for ref in done:
                i = pending.pop(ref)
                try:
                    outcome = _outcome(jobs[i], ray.get(ref))
                except Exception as e:  # the task died more often than Ray retries it
                    outcome = Outcome(jobs[i], "failed", error=f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
                outcomes[i] = outcome
                failed += outcome.state == "failed"
                bar.update(1)
                detail = outcome.error if outcome.state == "failed" else f"{outcome.status}, {outcome.seconds:.0f} s"
                if show:
                    bar.write(f"  {jobs[i].name}: {outcome.state} ({detail})", file=sys.stderr)
            status = {"running": min(len(pending), _slots(ray, resources)), "failed": failed}
            if status != shown:
                bar.set_postfix(status, refresh=False)
                shown = status
    return outcomes


def _stop(ray, pending: dict, slots: int) -> interrupts.Interrupted:
    """Ctrl-C or SIGTERM during a sweep: each run in flight is asked to stop (Ray raises
    KeyboardInterrupt in its worker, which saves its checkpoint between two steps, `bnlib.train`),
    and given STOP_GRACE_S to do so; what ended before is kept in the cache."""
    for ref in pending:
        ray.cancel(ref)
    with contextlib.suppress(Exception):
        ray.wait(list(pending), num_returns=len(pending), timeout=STOP_GRACE_S)
    running = min(len(pending), slots)
    return interrupts.Interrupted(f"the sweep's {running} runs in flight saved their checkpoints")


def _slots(ray, resources: dict[str, float]) -> int:
    total = ray.cluster_resources()
    kind = "GPU" if "num_gpus" in resources else "CPU"
    per_task = resources.get("num_gpus", resources.get("num_cpus", 1))
    return max(1, int(total.get(kind, 1) // per_task))
