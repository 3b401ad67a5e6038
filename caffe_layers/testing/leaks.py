"""Find what a test (or a layer) left behind: child processes, /dev/shm entries, shared memory.

Linux only (reads ``/proc``). Used by this package's own test suite after every test; shipped so
users can check their own layers the same way.
"""

from __future__ import annotations

import os
import time
from typing import Iterable

from caffe_layers.prefetch.procstat import process_alive, read_stat
from caffe_layers.prefetch.slots import MEMFD_PREFIX

alive = process_alive  # whether a pid runs: exists, neither a zombie nor dead


def child_pids(pid: int | None = None) -> set:
    """Pids of the live children of ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None and stat[1] == pid and process_alive(int(entry)):
                children.add(int(entry))
    return children


def wait_gone(pids: Iterable[int], timeout_s: float) -> set:
    """Wait until every pid is gone or a zombie; return those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    remaining = {p for p in pids if alive(p)}
    while remaining and time.monotonic() < deadline:
        time.sleep(0.02)
        remaining = {p for p in remaining if alive(p)}
    return remaining


def entries(directory: str) -> set:
    """Names in ``directory`` (empty if it does not exist), e.g. a temporary directory."""
    try:
        return set(os.listdir(directory))
    except FileNotFoundError:
        return set()


def shm_entries() -> set:
    """Names in /dev/shm (shared-memory blocks and semaphores anybody left there)."""
    return entries("/dev/shm")


def memfds(pid: int | None = None) -> list:
    """Open file descriptors of ``pid`` that are caffe_layers shared-memory blocks."""
    pid = os.getpid() if pid is None else pid
    found = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"/memfd:{MEMFD_PREFIX}"):
            found.append(int(fd))
    return found


def mapped_blocks(pid: int | None = None) -> list:
    """Lines of ``/proc/PID/maps`` that map caffe_layers shared-memory blocks."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return [line.strip() for line in maps if f"/memfd:{MEMFD_PREFIX}" in line]
    except OSError:
        return []


def multiprocessing_helpers() -> set:
    """Pids of multiprocessing's own per-process servers (resource tracker, forkserver).

    spawn and forkserver start them once and they live as long as this process; they exit on their
    own when it does, so a test may leave them running.
    """
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    pids = {
        getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None),
        getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None),
    }
    return {pid for pid in pids if pid}
