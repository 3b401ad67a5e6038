"""The exceptions caffe_layers raises.

Every exception derives from :class:`CaffeLayersError` and also from the builtin it resembles, so
callers can catch either::

    CaffeLayersError
    ├── ConfigError(ValueError)       a bad param_str, wrong top count, a budget that cannot be met
    ├── DataError(ValueError)         a sample that cannot be read: missing, corrupt, wrong shape
    ├── WorkerError(RuntimeError)     a prefetch worker raised; carries its formatted traceback
    │   └── WorkerDied                a prefetch worker died (signal or exit code), pid and batch
    ├── PrefetchTimeout(TimeoutError) no batch arrived in time although every worker is alive
    └── PycaffeError(ImportError)     inside the caffe binary, pycaffe cannot be imported

Messages say where, what and how to fix, e.g.
``param_str.crop_size: must be <= new_height (got 256 > 224)``. A message about many bad lines,
files or samples lists the first :data:`MAX_REPORTED` (:func:`first_few`).
"""

from __future__ import annotations

from typing import Sequence

MAX_REPORTED = 10


def first_few(items: Sequence[str], separator: str = ", ", noun: str = "",
              total: int | None = None) -> str:
    """The first ``MAX_REPORTED`` items joined, then ``... and N more <noun>`` for the rest.

    ``total`` counts the items when ``items`` holds only the first ones (costly to describe).
    """
    shown = separator.join(items[:MAX_REPORTED])
    hidden = (len(items) if total is None else total) - MAX_REPORTED
    if hidden <= 0:
        return shown
    return f"{shown}{separator}... and {hidden} more{' ' + noun if noun else ''}"


class CaffeLayersError(Exception):
    """Base of every error raised by caffe_layers."""


class ConfigError(CaffeLayersError, ValueError):
    """A layer's parameters are wrong; the message lists every problem found."""


class DataError(CaffeLayersError, ValueError):
    """A sample could not be read or does not match the shape fixed at setup."""


class WorkerError(CaffeLayersError, RuntimeError):
    """A prefetch worker raised while filling a batch.

    ``remote_traceback`` is the worker's formatted traceback, ``exc_type`` the name of the
    exception type raised there, ``batch`` the batch number it was filling.
    """

    def __init__(self, message: str, remote_traceback: str = "", exc_type: str = "",
                 batch: int | None = None) -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback
        self.exc_type = exc_type
        self.batch = batch

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nWorker traceback:\n" + self.remote_traceback.rstrip()
        return text


class WorkerDied(WorkerError):
    """A prefetch worker process ended without being asked to (killed by a signal, or exited)."""

    def __init__(self, message: str, pid: int, exitcode: int | None,
                 batch: int | None = None) -> None:
        super().__init__(message, batch=batch)
        self.pid = pid
        self.exitcode = exitcode


class PrefetchTimeout(CaffeLayersError, TimeoutError):
    """No batch arrived within the timeout although the workers are alive (a hung sample?)."""


class PycaffeError(CaffeLayersError, ImportError):
    """Real Caffe runs this process but pycaffe cannot be imported; the message says how to fix it.
    """
