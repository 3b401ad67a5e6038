"""Reading the file a key names (a ``source`` list, a ``mean_file``, an image): one reader.

A missing file, a directory and an unreadable file each get their message, naming the path as
written and, for a relative one, the working directory it was resolved from (``caffe`` does not
add the prototxt's directory). Files the package writes (mean files, clean lists) are written
atomically: a reader never sees half of one.
"""

from __future__ import annotations

import os

from caffe_layers.errors import ConfigError, DataError


def read_bytes(path: str, what: str, *, error: type = DataError, prefix: str = "") -> bytes:
    """The bytes of ``path``, ``what`` it is (e.g. ``"image"``, for messages); else ``error``.

    ``prefix`` starts every message, e.g. ``"train.txt:17: "`` or ``"source: "``.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        where = "" if os.path.isabs(path) else (f" (relative paths are resolved from the working "
                                                f"directory '{os.getcwd()}')")
        raise error(f"{prefix}{what} '{path}' does not exist{where}") from None
    except IsADirectoryError:
        raise error(f"{prefix}cannot read {what} '{path}': it is a directory") from None
    except OSError as exc:
        raise error(f"{prefix}cannot read {what} '{path}': {exc.strerror or exc}") from None


def read_source(path: str, what: str) -> bytes:
    """The bytes of the file the ``source`` key names (``what`` it is); ConfigError if not."""
    return read_bytes(path, f"the {what}", error=ConfigError, prefix="source: ")


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, then rename it in place."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
