"""Batch slots in anonymous shared memory.

All slots of one engine live in one ``memfd`` (Linux): shared memory with no name, so nothing
can be left in ``/dev/shm`` whatever kills whom; the kernel frees it when the last process holding
the fd or a mapping exits. Without ``memfd_create`` a file in /dev/shm is created and unlinked at
once. Forked workers inherit the mapping; spawned ones receive the fd when they start (``DupFd``).

The whole size is reserved up front (``posix_fallocate``) after checking it against the memory
available, so a budget that cannot be met is a clear error at setup, never a bus error later.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import tempfile
from typing import NamedTuple, Sequence

import numpy as np

from caffe_layers.errors import ConfigError

_ALIGN = 4096
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0x8000 if sys.platform.startswith("linux") else 0)
MEMFD_PREFIX = "caffe_layers"  # caffe_layers.testing.leaks looks for this name


class TopSpec(NamedTuple):
    """One output array of every batch: its name, full batch shape and dtype."""

    name: str
    shape: tuple
    dtype: str = "float32"

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def _layout(specs: Sequence[TopSpec], n_slots: int) -> tuple:
    """Byte offset of every (slot, top) array, each page-aligned, and the total size."""
    offsets, size = [], 0
    for _ in range(n_slots):
        row = []
        for spec in specs:
            row.append(size)
            size += -(-max(spec.nbytes, 1) // _ALIGN) * _ALIGN
        offsets.append(tuple(row))
    return tuple(offsets), size


def available_memory() -> int:
    """Bytes this process can still use: MemAvailable, capped by a cgroup v2 limit if any."""
    available = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        return 1 << 62
    try:
        with open("/sys/fs/cgroup/memory.max") as limit_file:
            limit = limit_file.read().strip()
        with open("/sys/fs/cgroup/memory.current") as current_file:
            current = int(current_file.read())
        if limit != "max":
            available = min(available or 1 << 62, int(limit) - current)
    except (OSError, ValueError):
        pass
    return available if available is not None else 1 << 62


def _anonymous_fd(name: str) -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create(f"{MEMFD_PREFIX}:{name}", os.MFD_CLOEXEC)
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix=f"{MEMFD_PREFIX}-", dir=directory)
    os.unlink(path)
    return fd


class SlotArena:
    """``n_slots`` batches of arrays ``specs`` in one shared-memory block, owned by the consumer."""

    def __init__(self, specs: Sequence[TopSpec], n_slots: int, name: str = "slots",
                 budget_fraction: float = 0.5) -> None:
        self.specs = tuple(TopSpec(s.name, tuple(int(d) for d in s.shape), s.dtype) for s in specs)
        self.n_slots = n_slots
        self.offsets, self.size = _layout(self.specs, n_slots)
        self._check_budget(budget_fraction)
        self.fd = _anonymous_fd(name)
        try:
            os.ftruncate(self.fd, self.size)
            self._reserve()
            self._map()
        except BaseException:
            os.close(self.fd)
            raise

    def _check_budget(self, fraction: float) -> None:
        available = available_memory()
        if self.size > fraction * available:
            per_slot = self.size / self.n_slots / 2**20
            raise ConfigError(
                f"prefetch needs {self.n_slots} batch slots of {per_slot:.1f} MiB "
                f"({self.size / 2**20:.0f} MiB of shared memory) but only "
                f"{available / 2**20:.0f} MiB of memory is available and at most "
                f"{fraction:.0%} of it is used for slots; lower prefetch, workers or batch_size")

    def _reserve(self) -> None:
        try:
            os.posix_fallocate(self.fd, 0, self.size)
        except OSError as exc:
            raise ConfigError(f"cannot reserve {self.size / 2**20:.0f} MiB of shared memory for "
                              f"{self.n_slots} batch slots ({exc.strerror}); lower prefetch, "
                              f"workers or batch_size") from None

    def _map(self) -> None:
        # MAP_POPULATE maps every page now: the consumer's first copy from each slot would
        # otherwise take ~600 page faults (~3 ms for a 40 MB batch).
        self._mmap = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED | _MAP_POPULATE,
                               mmap.PROT_READ | mmap.PROT_WRITE)
        self.slots = [
            {spec.name: np.ndarray(spec.shape, spec.dtype, buffer=self._mmap, offset=offset)
             for spec, offset in zip(self.specs, row)}
            for row in self.offsets
        ]

    def __getstate__(self) -> dict:
        from multiprocessing import reduction

        # Only meaningful while a spawn/forkserver worker is being started: DupFd hands it the fd.
        return {"specs": self.specs, "n_slots": self.n_slots, "fd": reduction.DupFd(self.fd)}

    def __setstate__(self, state: dict) -> None:
        self.specs, self.n_slots = state["specs"], state["n_slots"]
        self.offsets, self.size = _layout(self.specs, self.n_slots)
        self.fd = state["fd"].detach()
        self._map()

    def close(self) -> None:
        """Unmap and close; idempotent. Views still held elsewhere keep their pages alive."""
        if self.fd < 0:
            return
        self.slots = []
        # If someone still holds a view, the mapping goes when that view is collected.
        with contextlib.suppress(BufferError):
            self._mmap.close()
        os.close(self.fd)
        self.fd = -1
