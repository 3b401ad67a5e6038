"""Process-wide Caffe settings (``Caffe::Get()`` in C++): mode, device, solver count and rank."""

from __future__ import annotations

import sys

from caffe_layers.testing.fake_caffe._errors import argument_error, extract_int


class _Settings:
    """One per process, like Caffe's thread-local singleton seen from the main thread."""

    def __init__(self) -> None:
        self.mode = "CPU"
        self.device = 0
        self.solver_count = 1
        self.solver_rank = 0
        self.multiprocess = False
        self.random_seed: int | None = None
        self.gpu_note_shown = False


settings = _Settings()


def _int_arg(function: str, value: object) -> int:
    if not isinstance(value, int):
        raise argument_error(function, (value,), f"{function}(int)")
    return extract_int(value)


def set_mode_cpu() -> None:
    """Run on the CPU (the fake always does)."""
    settings.mode = "CPU"


def set_mode_gpu() -> None:
    """Accepted and ignored: the fake computes nothing on a GPU. Says so once on stderr."""
    settings.mode = "GPU"
    if not settings.gpu_note_shown:
        settings.gpu_note_shown = True
        print("fake caffe: set_mode_gpu() is a no-op; everything runs on the CPU",
              file=sys.stderr)


def set_device(device_id: int) -> None:
    """Record the GPU id (real Caffe selects that device)."""
    settings.device = _int_arg("set_device", device_id)


def set_random_seed(seed: int) -> None:
    """Record the seed of Caffe's own RNGs (never Python's or numpy's, as in real Caffe)."""
    settings.random_seed = _int_arg("set_random_seed", seed)


def solver_count() -> int:
    """How many solvers (one per GPU) train together; 1 unless set."""
    return settings.solver_count


def set_solver_count(count: int) -> None:
    settings.solver_count = _int_arg("set_solver_count", count)


def solver_rank() -> int:
    """This process's solver index in ``range(solver_count())``; 0 unless set."""
    return settings.solver_rank


def set_solver_rank(rank: int) -> None:
    settings.solver_rank = _int_arg("set_solver_rank", rank)


def set_multiprocess(multiprocess: bool) -> None:
    """Declare one process per solver (pycaffe's ``train.py``), which allows Python layers."""
    if not isinstance(multiprocess, int):
        raise argument_error("set_multiprocess", (multiprocess,), "set_multiprocess(bool)")
    settings.multiprocess = bool(multiprocess)
