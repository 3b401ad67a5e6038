"""Whether a process lives, and whose child it is, from ``/proc/PID/stat`` (Linux).

The workers' watchdog asks whether the consumer lives; the package's leak checks
(:mod:`caffe_layers.testing.leaks`) ask which children a process has and whether they still run.
A zombie (``Z``) or dead (``X``) process counts as gone: it runs no code any more.
"""

from __future__ import annotations

from typing import Tuple

_GONE = (b"Z", b"X")


def read_stat(pid: int) -> Tuple[bytes, int] | None:
    """``(state, parent pid)`` of ``pid``, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # the name may hold ") "
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (exists and is neither a zombie nor dead)."""
    stat = read_stat(pid)
    return stat is not None and stat[0] not in _GONE
