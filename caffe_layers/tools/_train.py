"""The demo's training step: real Caffe through pycaffe when importable, else the runner.

Both paths print what a user judges a run by: the training loss as it goes and the TEST
outputs (accuracy, loss) at the end when Caffe computes them, and the data layer's own
steady-state rate, measured as ``caffe-layers-bench`` measures it: the TRAIN net's data layer
alone, once the batches prefetched at setup are used up (while the net trains, the rate is
bounded by the net, not by the layer).
"""

from __future__ import annotations

import time
from typing import Any

from caffe_layers.testing.solver_file import SolverSpec, read_solver
from caffe_layers.tools.progress import Progress

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
    result["images_per_s"] = data_layer_rate(spec.train_net)
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
    print(f"data layer: {result['images_per_s']:.0f} images/s in steady state (its TRAIN batches "
          f"alone, after the prefetched ones)")


def _set_mode(caffe: Any, spec: SolverSpec) -> None:
    if spec.solver_mode == 1:
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()


def _train_real(caffe: Any, spec: SolverSpec, iterations: int) -> dict:
    """pycaffe's solver, ``display`` iterations at a time (its tests included)."""
    from caffe_layers.tools._netrun import close_layers

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


def data_layer_rate(net_path: str, batches: int = MEASURED_BATCHES) -> float:
    """Images/s of the first Python data layer of the TRAIN net of ``net_path``, run alone.

    ``caffe-layers-bench``'s measurement (:func:`caffe_layers.tools.bench.measure`): the layer in
    a net of its own with its own settings, the batches its workers prefetched at setup drained
    untimed, then ``batches`` timed: the rate the workers sustain.
    """
    from caffe_layers.testing import prototxt
    from caffe_layers.tools import _netfile, bench

    net_msg = prototxt.parse_file(net_path)
    layer = _netfile.select_layer(net_msg, "TRAIN", None, net_path)
    with Progress(0, "data layer", enabled=False) as bar:
        run, _ = bench.measure(net_msg, bench.target(layer), "TRAIN", None, batches, bar)
    return run.images_per_s
