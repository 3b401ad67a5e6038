"""The demo's training step: real Caffe through pycaffe when importable, else the runner.

Both paths print what a user judges a run by: the training loss as it goes and the TEST
outputs (accuracy, loss) at the end when Caffe computes them, and the data layer's own
steady-state rate, measured on the TRAIN net's data layer alone once the batches prefetched at
setup are used up (what the net gets while it trains is bounded by the net, not by the layer).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any, Iterator

import yaml

from caffe_layers.testing.solver_file import SolverSpec, read_solver

MEASURED_BATCHES = 200  # timed after the prefetched ones


def train(solver_path: str, iterations: int | None) -> dict:
    """Train ``solver_path`` for ``iterations`` (default: its ``max_iter``); what was measured.

    Returns ``{"iterations", "seconds", "test": {output: mean} or None, "images_per_s"}``.
    """
    from caffe_layers.pycaffe import import_caffe, is_fake

    spec = read_solver(solver_path)
    iterations = spec.max_iter if iterations is None else iterations
    caffe = import_caffe()
    if is_fake(caffe):
        print(f"training {solver_path} for {iterations} iterations with caffe_layers' runner "
              f"(real Caffe is not importable: only the Python data layers compute)")
        result = _train_fake(solver_path, iterations)
    else:
        print(f"training {solver_path} for {iterations} iterations with Caffe "
              f"({getattr(caffe, '__file__', '?')})")
        result = _train_real(caffe, spec, iterations)
    result["images_per_s"] = data_layer_rate(caffe, spec.train_net)
    _report(result)
    return result


def _report(result: dict) -> None:
    print(f"trained {result['iterations']} iterations in {result['seconds']:.1f} s")
    if result["test"] is None:
        print("test: loss and accuracy not computed (the runner computes only the Python "
              "layers; they need real Caffe)")
    elif result["test"]:
        print("test: " + ", ".join(f"{name} {value:.4f}" for name, value in
                                   sorted(result["test"].items())))
    rate = result["images_per_s"]
    print(f"data layer: {rate:.0f} images/s in steady state (its TRAIN batches alone, after the "
          f"prefetched ones)" if rate else "data layer: no rate (it has no batch)")


def _set_mode(caffe: Any, spec: SolverSpec) -> None:
    if spec.solver_mode == 1:
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()


def _train_real(caffe: Any, spec: SolverSpec, iterations: int) -> dict:
    """pycaffe's solver, ``display`` iterations at a time (its tests included)."""
    from caffe_layers.tools.preview import close_layers

    _set_mode(caffe, spec)
    solver = caffe.get_solver(spec.path)
    try:
        started = time.perf_counter()
        while solver.iter < iterations:
            solver.step(min(spec.display or iterations, iterations - solver.iter))
            outputs = {name: float(solver.net.blobs[name].data.sum())
                       for name in solver.net.outputs}
            print(f"  iteration {solver.iter}: " + ", ".join(
                f"{name} {value:.4f}" for name, value in sorted(outputs.items())))
        seconds = time.perf_counter() - started
        test = _test_outputs(solver.test_nets[0], spec.test_iter[0]) if spec.test_iter else {}
        return {"iterations": solver.iter, "seconds": seconds, "test": test}
    finally:
        close_layers(solver.net, *solver.test_nets)


def _test_outputs(net: Any, forwards: int) -> dict:
    """The mean of every output of ``net`` over ``forwards`` passes, as Caffe's test prints."""
    sums: dict = {}
    for _ in range(forwards):
        for name, value in net.forward().items():
            sums[name] = sums.get(name, 0.0) + float(value.sum())
    return {name: total / forwards for name, total in sums.items()}


def _train_fake(solver_path: str, iterations: int) -> dict:
    """The runner (``caffe train`` emulated; only Python layers compute)."""
    from caffe_layers.prefetch import close_all
    from caffe_layers.testing.runner import run

    started = time.perf_counter()
    try:
        record = run(solver_path, iterations, log=lambda line: print("  " + line))
    finally:
        close_all()  # the runner's nets, like caffe train's, are never torn down
    return {"iterations": record.iterations, "seconds": time.perf_counter() - started,
            "test": None}


@contextlib.contextmanager
def _quiet_fake(caffe: Any) -> Iterator[None]:
    """Hide the fake's note that it does not compute the net's other layers."""
    category = getattr(caffe, "NotComputedWarning", None)
    with warnings.catch_warnings():
        if category is not None:
            warnings.simplefilter("ignore", category)
        yield


def data_layer_rate(caffe: Any, net_path: str, batches: int = MEASURED_BATCHES) -> float | None:
    """Images/s of the first layer of a fresh TRAIN net of ``net_path``, run alone.

    The batches its workers prefetched at setup (``prefetch`` + ``workers``, at most 4 workers by
    default) are taken first, untimed; then ``batches`` are timed: the rate the workers sustain.
    """
    from caffe_layers.tools.preview import close_layers

    with _quiet_fake(caffe):
        net = caffe.Net(net_path, caffe.TRAIN)
    try:
        if not len(net.layers):
            return None
        layer = net.layers[0]
        params = yaml.safe_load(getattr(layer, "param_str", "") or "{}") or {}
        prefetched = int(params.get("prefetch", 4)) + int(params.get("workers", 4))
        for _ in range(prefetched):
            net._forward(0, 0)
        started = time.perf_counter()
        for _ in range(batches):
            net._forward(0, 0)
        seconds = time.perf_counter() - started
        first_top = net.blobs[net.top_names[net._layer_names[0]][0]]
        return batches * int(first_top.shape[0]) / seconds
    finally:
        close_layers(net)
