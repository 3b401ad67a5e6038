"""Reading the file a key names (a ``source`` list, a ``mean_file``, an image, an HDF5 file), on
local disk or at a URL: one reader.

A local path is read with plain ``open`` (fsspec is never imported for it). A missing file, a
directory and an unreadable file each get their message, naming the path as written and, for a
relative one, the working directory it was resolved from (``caffe`` does not add the prototxt's
directory). Files the package writes (mean files, clean lists) are written atomically: a reader
never sees half of one.

A URL (``s3://bucket/train.txt``, ``gs://``, ``az://``, ``https://``, any fsspec protocol) is read
through fsspec (:mod:`~caffe_layers.files.remote`) with ``storage_options``, transient failures
retried (:mod:`~caffe_layers.files.retry`), and named in every message with its credentials
hidden (:mod:`~caffe_layers.files.redact`). :mod:`~caffe_layers.files.read_ahead` keeps several
reads in flight; :mod:`~caffe_layers.files.random_access` opens a URL for h5py.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.files.redact import describe_options, redact_url
from caffe_layers.files.retry import take_retries

__all__ = ["read_bytes", "read_source", "write_atomically", "is_url", "shown", "require_local",
           "take_retries", "describe_options", "open_random_access"]
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*(?:://|::)")


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL (``scheme://...``, or an fsspec chain ``a::b://...``) rather
    than a local path."""
    return _URL.match(os.fspath(path)) is not None


def shown(path: str) -> str:
    """``path`` as messages name it: a URL without its credentials, a local path as written."""
    return redact_url(os.fspath(path))


def read_bytes(path: str, what: str, *, error: type = DataError, prefix: str = "",
               storage_options: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of ``path``, ``what`` it is (e.g. ``"image"``, for messages); else ``error``.

    ``prefix`` starts every message, e.g. ``"train.txt:17: "`` or ``"source: "``.
    ``storage_options`` go to the storage client of a URL.
    """
    path = os.fspath(path)
    if is_url(path):
        from caffe_layers.files import remote

        return remote.read(path, what, error=error, prefix=prefix,
                           storage_options=storage_options)
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


def read_source(path: str, what: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of the file the ``source`` key names (``what`` it is); ConfigError if not."""
    return read_bytes(path, f"the {what}", error=ConfigError, prefix="source: ",
                      storage_options=storage_options)


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


def open_random_access(path: str, what: str, *, error: type = DataError, prefix: str = "",
                       storage_options: Mapping[str, Any] | None = None):
    """A URL opened as a read-only seekable file (for h5py); a local path is returned as is."""
    path = os.fspath(path)
    if not is_url(path):
        return path
    from caffe_layers.files.random_access import RemoteFile

    return RemoteFile(path, what, error=error, prefix=prefix, storage_options=storage_options)


def require_local(path: str, key: str, why: str) -> None:
    """ConfigError when ``path`` (the value of ``key``) is a URL: ``why`` it must be local.

    E.g. an LMDB needs ``mmap``: ``require_local(source, "source", "LMDB maps its file into
    memory")``.
    """
    if is_url(path):
        raise ConfigError(f"{key}: '{shown(path)}' is a URL, but {why}, which needs a local file; "
                          f"copy it to local disk first (e.g. aws s3 cp --recursive, gsutil cp -r, "
                          f"azcopy copy) and give that path")
