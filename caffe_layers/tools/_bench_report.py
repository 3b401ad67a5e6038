"""What ``caffe-layers-bench`` measured, and what it means: the table, the verdict, the JSON.

Pure functions of the measurements, so the wording and the verdict logic are tested with given
numbers (timings are never asserted). A data layer *keeps up* when, with at least one worker, it
produces images at least as fast as the net consumes them; with ``workers: 0`` loading runs
inside ``forward``, in series with the net, so it never overlaps and never counts as keeping up.
"""

from __future__ import annotations

import dataclasses
from typing import List, Sequence

SCHEMA = 1


@dataclasses.dataclass
class Run:
    """One data layer measured with ``workers`` (None: the layer's own settings, not ours)."""

    workers: int | None
    worker_processes: int
    setup_s: float
    warmup_batches: int
    images_per_s: float
    ms_per_batch: float
    consumer_cpu_ms_per_batch: float


@dataclasses.dataclass
class LayerResult:
    """A data layer of the net and its runs, one per worker count."""

    name: str
    python_class: str
    batch_size: int
    tops: dict
    runs: List[Run]

    def describe(self) -> str:
        shape = "x".join(str(d) for d in next(iter(self.tops.values()))[1:])
        return f"layer '{self.name}' ({self.python_class}), batch {self.batch_size} of {shape}"


@dataclasses.dataclass
class NetTime:
    """The net's forward+backward time per batch, and where the figure comes from."""

    ms_per_batch: float
    source: str

    def images_per_s(self, batch_size: int) -> float:
        return batch_size * 1000.0 / self.ms_per_batch


@dataclasses.dataclass
class Verdict:
    """Whether every data layer keeps up, from how many workers (the most any layer needs)."""

    keeps_up: bool | None
    workers: int | None
    lines: List[str]


def _rate(value: float) -> str:
    return f"{value:,.0f} img/s"


def workers_text(count: int | None) -> str:
    if count is None:
        return "its own settings"
    return f"{count} worker{'' if count == 1 else 's'}"


def _layer_verdict(layer: LayerResult, net: NetTime) -> tuple:
    """``(keeps up, workers it needs or None, line)`` for one layer against the net."""
    needed = net.images_per_s(layer.batch_size)
    overlapping = [run for run in layer.runs if run.workers != 0]
    fast = [run for run in overlapping if run.images_per_s >= needed]
    if fast:
        run = min(fast, key=lambda r: r.workers or 0)
        start = "with" if run.workers is None else "from"
        return True, run.workers, (
            f"data loading keeps up {start} {workers_text(run.workers)}: {_rate(run.images_per_s)} "
            f"against the net's {_rate(needed)}")
    if not overlapping:
        run = layer.runs[0]
        return False, None, (
            f"with 0 workers loading runs inside forward, adding {run.ms_per_batch:.1f} ms to "
            f"each of the net's {net.ms_per_batch:.1f} ms iterations; measure --workers 1 2 to "
            f"see it overlap")
    best = max(overlapping, key=lambda r: r.images_per_s)
    idle = 1.0 - best.images_per_s / needed
    return False, None, (
        f"data loading does not keep up: at most {_rate(best.images_per_s)} "
        f"({workers_text(best.workers)}) against the net's {_rate(needed)}; the net would wait for "
        f"data {idle:.0%} of the time (more workers if cores are free, else cheaper work per "
        f"image: see Performance in the README)")


def verdict(layers: Sequence[LayerResult], net: NetTime | None) -> Verdict:
    """The verdict for ``layers`` against ``net`` (None: unknown)."""
    if net is None:
        lines = []
        for layer in layers:
            best = max(layer.runs, key=lambda r: r.images_per_s)
            lines.append(f"data loading reaches {_rate(best.images_per_s)} at best "
                         f"({workers_text(best.workers)}); whether that keeps up needs the net's "
                         f"time (--net-ms)")
        return Verdict(None, None, _named(layers, lines))
    results = [_layer_verdict(layer, net) for layer in layers]
    keeps_up = all(kept for kept, _, _ in results)
    needed = [workers for _, workers, _ in results if workers is not None]
    workers = max(needed) if keeps_up and needed else None
    return Verdict(keeps_up, workers, _named(layers, [line for _, _, line in results]))


def _named(layers: Sequence[LayerResult], lines: List[str]) -> List[str]:
    if len(layers) == 1:
        return lines
    return [f"layer '{layer.name}': {line}" for layer, line in zip(layers, lines)]


HEADER = ("workers", "img/s", "ms/batch", "consumer CPU ms/batch", "setup s")


def table_lines(layer: LayerResult) -> List[str]:
    """The runs of one layer as an aligned table under a line naming the layer."""
    rows = [(_cell(run.workers), f"{run.images_per_s:,.0f}", f"{run.ms_per_batch:.2f}",
             f"{run.consumer_cpu_ms_per_batch:.2f}", f"{run.setup_s:.2f}") for run in layer.runs]
    widths = [max(len(text) for text in column) for column in zip(HEADER, *rows)]
    lines = [layer.describe()]
    for row in [HEADER, *rows]:
        lines.append("  " + "  ".join(text.rjust(width) for text, width in zip(row, widths)))
    return lines


def _cell(workers: int | None) -> str:
    return "own" if workers is None else str(workers)


def net_line(net: NetTime | None, layers: Sequence[LayerResult], unknown: str) -> str:
    if net is None:
        return f"net: forward+backward time unknown ({unknown})"
    rate = (f" = {_rate(net.images_per_s(layers[0].batch_size))}" if len(layers) == 1 else "")
    return f"net: forward+backward {net.ms_per_batch:.2f} ms per batch{rate} ({net.source})"


def as_json(net_path: str, phase: str, caffe: str, cores: int, batches: int,
            layers: Sequence[LayerResult], net: NetTime | None, unknown: str,
            result: Verdict) -> dict:
    """Everything measured, as a JSON-ready dict (``schema`` numbers its layout)."""
    return {
        "schema": SCHEMA, "net": net_path, "phase": phase, "caffe": caffe, "cores": cores,
        "batches": batches,
        "layers": [dataclasses.asdict(layer) for layer in layers],
        "net_time": None if net is None else {
            "ms_per_batch": net.ms_per_batch, "source": net.source,
            "images_per_s": {layer.name: net.images_per_s(layer.batch_size)
                             for layer in layers}},
        "net_time_unknown": unknown or None,
        "verdict": {"keeps_up": result.keeps_up, "workers": result.workers,
                    "lines": result.lines},
    }
