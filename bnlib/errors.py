"""The one exception type users see: a one-line reason that names the fix."""

from __future__ import annotations

import sys
from collections.abc import Callable


class BnlibError(Exception):
    """Bad input or missing resources. The message is one line and says how to fix it."""


class ConfigError(BnlibError, ValueError):
    """A run configuration (or a CLI argument that feeds one) is invalid."""


class DataError(BnlibError):
    """The data set cannot be found, read or decoded."""


class CacheError(BnlibError):
    """The cache folder (BNLIB_CACHE) is not a writable folder with enough free space."""


def warn(message: str) -> None:
    """Tell the user about something bnlib repairs by itself (a damaged file it recomputes): one
    plain line on stderr, without Python's file:line and source line."""
    print(f"bnlib: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


def report(error: BnlibError) -> int:
    """Say a BnlibError as bnlib's one line on stderr; returns the exit status that goes with it."""
    print(f"bnlib: error: {error}", file=sys.stderr)
    return 2


def run_script(main: Callable[[], object]) -> None:
    """Run a script's main() (the benchmarks): a BnlibError ends it with its one line, not a traceback."""
    try:
        main()
    except BnlibError as error:
        raise SystemExit(report(error)) from None
