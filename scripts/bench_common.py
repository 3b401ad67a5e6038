"""Helpers the benchmark scripts share: /proc readers, a JPEG list writer, staged progress, which
caffe runs.

Scripts, not package code: a script imports this module after putting ``scripts/`` on
``sys.path``. Linux only (reads ``/proc``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from caffe_layers.tools.progress import Progress


# ------------------------------------------------------------------------------------ /proc

def proc_status_kib(pid: int, keys: Iterable[str]) -> dict:
    """The ``keys`` of ``/proc/PID/status`` found (VmRSS, VmHWM, RssAnon, ...), in KiB."""
    wanted, found = set(keys), {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in wanted:
                found[key] = int(value.split()[0])
    return found


def _children(pid: int) -> list:
    """Pids of ``pid``'s child processes."""
    found = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as children:
                found += [int(child) for child in children.read().split()]
    return found


def children_cpu_s() -> float:
    """CPU seconds used so far by this process's children (the loaders' workers)."""
    total = 0
    for child in _children(os.getpid()):
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{child}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------- datasets

def write_jpeg_list(directory: str, list_name: str, samples: Iterable[tuple], quality: int,
                    tick: Callable[[], None] | None = None) -> None:
    """Each ``(name, image, label)`` of ``samples`` as a JPEG in ``directory``, then the list
    file ``list_name`` of their ``name label`` lines (the image-list layer's ``source``)."""
    import cv2

    lines = []
    for name, image, label in samples:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise OSError(f"OpenCV could not encode {name}")
        with open(os.path.join(directory, name), "wb") as f:
            f.write(encoded.tobytes())
        lines.append(f"{name} {label}\n")
        if tick is not None:
            tick()
    with open(os.path.join(directory, list_name), "w") as f:
        f.writelines(lines)


# ---------------------------------------------------------------------------------- progress

def staged_progress(total: int, label: str) -> Progress:
    """The package's bar on stderr, redrawn on every tick, starting at stage ``label``."""
    from caffe_layers.tools.progress import Progress

    bar = Progress(total, label, min_interval_s=0.0)
    stage(bar, label)
    return bar


def stage(bar: Progress, label: str) -> None:
    """Name benchmark.py's stage now running: in the bar on a terminal, else one
    ``benchmark: <label>`` line on stderr (so a log shows where a long run is)."""
    bar.label = label
    if bar.enabled:
        bar.advance(0)
    else:
        print(f"benchmark: {label}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- caffe

def real_pycaffe() -> bool:
    """Whether ``import caffe`` gives real pycaffe (else the package's fake is installed)."""
    from caffe_layers.testing import install_fake_caffe

    return not install_fake_caffe().__name__.startswith("caffe_layers.")
