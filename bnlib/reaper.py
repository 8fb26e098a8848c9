"""A watchdog that ends the local Ray a sweep started when the sweep's process dies.

A local Ray is a family of processes the driver starts (the GCS server, the raylet, the agents and
the workers). When the driver ends normally, Ray shuts them down; when it is killed (`kill -9`,
an out-of-memory kill, a closed notebook kernel), some of them are re-parented to PID 1 and keep
running. So `watch(pid)` starts this module in a process of its own, which follows the driver's
descendants while the driver lives and, once it is gone, terminates every one of them that is still
running (SIGTERM, then SIGKILL after a grace period), then exits.

    python -m bnlib.reaper DRIVER_PID   # what `watch` runs; not meant to be run by hand
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

POLL_S = 0.5  # how often the watchdog looks at the driver and its descendants
GRACE_S = 3.0  # between SIGTERM and SIGKILL


def watch(driver: int | None = None) -> subprocess.Popen | None:
    """Start the watchdog for `driver` (this process by default), in a session of its own so that
    a signal to the driver's process group does not reach it. None where psutil is missing (the
    watchdog needs it; `pip install psutil`)."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "bnlib.reaper", str(driver or os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _descendants(driver) -> dict[int, float]:
    """PID -> start time of every descendant of the driver (start times tell a reused PID apart)."""
    import psutil

    found = {}
    for child in driver.children(recursive=True):
        if child.pid == os.getpid():  # the watchdog itself
            continue
        try:
            found[child.pid] = child.create_time()
        except psutil.Error:
            continue
    return found


def _end(family: dict[int, float]) -> None:
    """Terminate the processes of `family` still running (and any descendants they have now)."""
    import psutil

    alive = []
    for pid, started in family.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == started:
                alive += [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
    for process in alive:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=GRACE_S)
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            pass


def main(argv: list[str]) -> int:
    import psutil

    try:
        driver = psutil.Process(int(argv[0]))
    except (IndexError, ValueError, psutil.Error):
        return 2
    family: dict[int, float] = {}
    while driver.is_running() and driver.status() != psutil.STATUS_ZOMBIE:
        family |= _descendants(driver)
        time.sleep(POLL_S)
    _end(family)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
