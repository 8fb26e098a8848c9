"""The one exception type users see: a one-line reason that names the fix."""


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
    import sys

    print(f"bnlib: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)
