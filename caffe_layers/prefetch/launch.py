"""Starting worker processes where Caffe runs us (CAFFE.md, "The embedded interpreter").

Start method. The default is ``fork``, chosen for the ``caffe`` binary's embedded interpreter:
``spawn`` and ``forkserver`` launch ``sys.executable``, which there points at whatever ``python3``
is first on PATH (often another version) or is empty, and they need picklable, importable targets.
``fork`` needs neither, starts in milliseconds and shares the read-only sample tables without
copying. Its known risk, forking a process that has other threads (OpenBLAS, Caffe's own prefetch
threads, CUDA), is contained because a worker only runs this package's fill code: it never touches
CUDA or Caffe, never prints, resets its signal handlers, and derives all randomness from
``(seed, epoch, index)``. ``spawn``/``forkserver`` remain available; for them the interpreter that
matches the running one is found here and handed to multiprocessing.

Daemonic parents. pycaffe's multi-GPU ``train.py`` runs each solver in a ``daemon=True`` process,
where multiprocessing refuses to start children. The refusal exists because daemonic processes are
killed without cleaning up their children; our workers clean up after themselves (their watchdog
exits when the consumer is gone), so the flag is lifted for the duration of ``start()``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.spawn
import os
import shutil
import subprocess
import sys
from typing import Iterator

from caffe_layers.errors import ConfigError

START_METHODS = ("fork", "spawn", "forkserver")
_VERSION_PROBE = "import sys; print(tuple(sys.version_info), sys.implementation.cache_tag)"
_matching: dict = {}


def default_start_method() -> str:
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def get_context(method: str | None) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for ``method`` (None: the default), ready to start workers."""
    method = method or default_start_method()
    if method not in multiprocessing.get_all_start_methods():
        raise ConfigError(f"start_method: {method!r} is not available here; use one of "
                          f"{', '.join(multiprocessing.get_all_start_methods())}")
    context = multiprocessing.get_context(method)
    if method != "fork":
        _use_matching_interpreter()
    if method == "forkserver":
        _forget_inherited_forkserver()
    return context


def _forget_inherited_forkserver() -> None:
    """Drop a forkserver inherited through fork (e.g. by train.py's solver processes).

    multiprocessing keeps its forkserver's pid and socket in module state, which a forked child
    inherits but cannot use (the server is not its child); forget it so a new one is started.
    """
    import multiprocessing.forkserver

    server = multiprocessing.forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        if server._forkserver_alive_fd is not None:
            os.close(server._forkserver_alive_fd)
        server._forkserver_pid = server._forkserver_address = server._forkserver_alive_fd = None


def _running_version() -> str:
    return f"{tuple(sys.version_info)} {sys.implementation.cache_tag}"


def _candidates() -> list:
    short = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    names = [
        os.environ.get("CAFFE_LAYERS_PYTHON", ""),
        multiprocessing.spawn.get_executable() or "",
        sys.executable,
        getattr(sys, "_base_executable", ""),
        os.path.join(sys.exec_prefix, "bin", short),
        os.path.join(sys.base_exec_prefix, "bin", short),
        shutil.which(short) or "",
    ]
    seen = []
    for name in names:
        if name and name not in seen and os.path.isfile(name) and os.access(name, os.X_OK):
            seen.append(name)
    return seen


def _probe(executable: str) -> str:
    try:
        result = subprocess.run([executable, "-c", _VERSION_PROBE], capture_output=True,
                                text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"failed: {exc}"
    return result.stdout.strip() if result.returncode == 0 else "failed"


def matching_interpreter() -> str:
    """Path of an interpreter with exactly this interpreter's version; ConfigError if none."""
    if "path" in _matching:
        return _matching["path"]
    want, tried = _running_version(), []
    for candidate in _candidates():
        found = _probe(candidate)
        if found == want:
            _matching["path"] = candidate
            return candidate
        tried.append(f"{candidate} ({found})")
    raise ConfigError(
        f"start_method spawn/forkserver needs a Python interpreter matching this one "
        f"({sys.version.split()[0]}), but none was found (tried: {', '.join(tried) or 'nothing'}); "
        f"use start_method: fork, or point CAFFE_LAYERS_PYTHON at the matching python binary")


def _use_matching_interpreter() -> None:
    path = matching_interpreter()
    if multiprocessing.spawn.get_executable() != path:
        multiprocessing.set_executable(path)


@contextlib.contextmanager
def children_allowed() -> Iterator[None]:
    """Let a daemonic process (pycaffe's multi-GPU train.py) start workers; see module docs."""
    config = multiprocessing.current_process()._config
    daemonic = config.get("daemon")
    if daemonic:
        config["daemon"] = False
    try:
        yield
    finally:
        if daemonic:
            config["daemon"] = daemonic
