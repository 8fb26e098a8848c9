"""Ctrl-C and SIGTERM (a scheduler's `timeout`, `scancel`, `kill`): training stops between two
steps, saves its checkpoint, and the command says in one line how to resume, with exit status 130.

* `deferred()` wraps the training loop: inside it, the signals only raise a flag that the loop reads
  after each step, so a checkpoint never holds half a step (the resumed run stays bit-identical).
* `terminate_as_interrupt()` makes SIGTERM end a command as Ctrl-C does (the entry points call it).
* `say(interrupt)` is the command's last line.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

EXIT_STATUS = 130  # the shell's status for a command ended by SIGINT (128 + 2)
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM once it had saved what it had; the message says what.
    A KeyboardInterrupt, so nothing that catches Exception (a sweep's worker, a notebook's cell
    handler) swallows it."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deferred() -> Iterator[Callable[[], bool]]:
    """Within the block, Ctrl-C and SIGTERM only set a flag; yields the function that reads it. A
    signal this process ignores stays ignored; outside the main thread (where no handler can be
    set) nothing changes and the flag is never set."""
    if not _main_thread():
        yield lambda: False
        return
    caught: list[int] = []
    before = {}
    for signum in _SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            before[signum] = signal.signal(signum, lambda number, frame: caught.append(number))
    try:
        yield lambda: bool(caught)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def terminate_as_interrupt() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does."""
    if _main_thread() and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _raise_interrupt)


@contextlib.contextmanager
def keeping_sigterm() -> Iterator[None]:
    """Put back, after the block, the SIGTERM handler this process had before it (Ray's start-up
    installs one that prints a C++ stack dump)."""
    before = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    try:
        yield
    finally:
        if before is not None and signal.getsignal(signal.SIGTERM) is not before:
            signal.signal(signal.SIGTERM, before)


def cancellable() -> None:
    """Handle SIGINT in this process even where it was started with SIGINT ignored (a job started in
    the background inherits that): Ray cancels a task by raising KeyboardInterrupt as SIGINT would,
    and an ignored SIGINT would let the run go on without saving its checkpoint."""
    if _main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def say(interrupt: KeyboardInterrupt) -> int:
    """The one line a command ends with when interrupted; returns its exit status."""
    detail = " ".join(str(interrupt).split())
    print(
        f"bnlib: interrupted{f' ({detail})' if detail else ''}; resume with the same command",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_STATUS
