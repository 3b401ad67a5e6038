"""The benchmark's report: the table, where the CPU goes, the floor check and the plot.

Pure formatting of measured ``Row``s (nothing here measures), for scripts/benchmark.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform

import numpy as np

FLOOR_RATIO = 0.85  # the floor: the layer at one worker per core against the limit


@dataclasses.dataclass
class Row:
    """One loader at one worker count; times are per batch, ``ratio`` is to the limit."""

    loader: str
    workers: int | None
    images_per_s: float
    median_batch_ms: float
    consumer_cpu_ms: float
    workers_cpu_ms: float
    ratio: float = 0.0


def floor_check(rows: list, limit: float, per_core: int) -> tuple:
    """("PASS" | "FAIL" | "not checked", lines): the floors at one worker per core."""
    at = {row.loader: row for row in rows if row.workers == per_core}
    layer = at.get("caffe_layers")
    if layer is None:
        return "not checked", [f"FLOOR: not checked: one worker per core ({per_core}) is not "
                               f"among --workers"]
    checks = [(f"caffe_layers {layer.ratio:.2f} x limit (floor {FLOOR_RATIO})",
               layer.images_per_s >= FLOOR_RATIO * limit)]
    for peer in ("keras queue", "torch DataLoader"):
        if peer in at:
            speedup = layer.images_per_s / at[peer].images_per_s
            checks.append((f"{speedup:.2f} x {peer} (floor > 1)", speedup > 1))
    lines = [f"floor at {per_core} workers (one per core):"]
    lines += [f"  {text}: {'PASS' if ok else 'FAIL'}" for text, ok in checks]
    status = "PASS" if all(ok for _, ok in checks) else "FAIL"
    return status, lines + [f"FLOOR: {status}"]


def versions(torch_version: str | None) -> str:
    """The versions the figures depend on: Python, numpy, OpenCV and torch if measured."""
    import cv2

    parts = [f"Python {platform.python_version()}", f"numpy {np.__version__}",
             f"OpenCV {cv2.__version__}"]
    if torch_version:
        parts.append(f"torch {torch_version}")
    return ", ".join(parts)


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def table_lines(single: Row, rows: list, limit: float, per_core: int) -> list:
    """The table: the limit, the one-process row, then every loader's row."""
    lines = [f"{'':<35}{'--- ms per batch: ---':>40}",
             f"{'loader':<18}{'workers':>8}{'img/s':>9}{'x limit':>9}{'median':>10}"
             f"{'CPU consumer':>14}{'CPU workers':>13}",
             f"{'limit':<18}{'-':>8}{limit:9.0f}{1:9.2f}   = {single.images_per_s:.0f} img/s "
             f"in one process x {per_core} cores"]
    for row in [single] + rows:
        workers = "-" if row.workers is None else str(row.workers)
        lines.append(f"{row.loader:<18}{workers:>8}{row.images_per_s:9.0f}{row.ratio:9.2f}"
                     f"{row.median_batch_ms:10.1f}{row.consumer_cpu_ms:14.1f}"
                     f"{row.workers_cpu_ms:13.1f}")
    return lines


def cpu_lines(single: Row, rows: list, per_core: int, batch: int) -> list:
    """Where the time goes at one worker per core: CPU per batch against the one-process loop.

    ``bound`` is the rate the loader's CPU cost allows if its processes get every core, as a
    ratio to the limit: the gap between it and the measured ratio is time the cores idled or
    were taken by other processes, not work the loader did.
    """
    single_ms = 1e3 * batch / single.images_per_s
    lines = []
    for row in rows:
        if row.workers == per_core and row.workers:
            cpu = row.consumer_cpu_ms + row.workers_cpu_ms
            lines.append(f"  {row.loader}: {row.consumer_cpu_ms:.1f} + {row.workers_cpu_ms:.1f} "
                         f"= {cpu:.1f} ms ({cpu / single_ms:.2f} x), bound "
                         f"{single_ms / cpu:.2f} x limit, measured {row.ratio:.2f} x")
    if not lines:
        return []
    return [f"CPU per batch at {per_core} workers (consumer + workers) against {single_ms:.1f} ms "
            f"wall in one process:"] + lines


def plot(path: str, single: Row, rows: list, limit: float, title: str) -> None:
    """images/s against worker processes for every loader, with the limit, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for loader in dict.fromkeys(row.loader for row in rows):
        mine = [row for row in rows if row.loader == loader]
        axes.plot([r.workers for r in mine], [r.images_per_s for r in mine], "o-", label=loader)
    axes.axhline(limit, color="black", linestyle="--", label="limit (1 process x cores)")
    axes.axhline(single.images_per_s, color="gray", linestyle=":", label="1 process")
    axes.set_title(title, fontsize="medium")
    axes.set_xlabel("worker processes")
    axes.set_ylabel("images/s")
    axes.set_xticks(sorted({row.workers for row in rows}))
    axes.set_ylim(0, 1.4 * max([limit] + [row.images_per_s for row in rows]))
    axes.legend(loc="upper left", ncol=2, fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
