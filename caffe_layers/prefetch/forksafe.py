"""Forking a process whose native libraries keep thread pools: prepare them, fork, restore.

A forked child inherits a copy of the parent's memory but only the thread that called ``fork``:
a native thread pool comes across with its bookkeeping and without its threads. OpenCV's is the
one that bites here. A child that reconfigures it (``cv2.setNumThreads``, which our image
workers and many user datasets call to take one core each) waits forever for threads that do not
exist (seen with OpenCV 4.2 and 5.0 once the parent had run a parallel call and its pool had gone
idle). Stopping the pool before the fork avoids it: the child then inherits a pool with no
threads, which it may use or reconfigure freely.

:func:`prepared_for_fork` does that for every such library loaded in this process (only those
already imported: a library first imported in the child starts its pool there, which is safe),
and restores the parent's setting afterwards. The prefetch engine enters it around every fork of a
worker, at start and at respawn, whatever the producer; the tools' process pools do the same. So
a producer, composite or not, gets it by construction. OpenBLAS needs nothing: it registers its
own ``pthread_atfork`` handlers. fsspec (remote files read at setup) keeps an event-loop thread:
it is stopped before the fork and started again, on the same loop, in the parent after it, so
the consumer forks with no thread of its own running (the child makes its own loop, as fsspec
does after any fork). What no process can repair is a pool it inherited itself from
an unprepared fork (e.g. a solver process forked by a launcher that had used OpenCV's pool):
preparing that one reconfigures it, which is the hazard; such a launcher must prepare its forks.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Callable, ContextManager, Iterator, List

LOOP_STOP_S = 5.0


@contextlib.contextmanager
def _opencv_single_threaded() -> Iterator[None]:
    """OpenCV's pool stopped (one thread) around the fork; the parent's setting back after."""
    cv2 = sys.modules.get("cv2")
    previous = cv2.getNumThreads() if hasattr(cv2, "getNumThreads") else 1
    if previous == 1:  # not loaded, or already without a pool: nothing to stop or restore
        yield
        return
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


@contextlib.contextmanager
def _fsspec_loop_stopped() -> Iterator[None]:
    """fsspec's event-loop thread stopped around the fork, the same loop run again after it."""
    asyn = sys.modules.get("fsspec.asyn")
    thread = asyn.iothread[0] if asyn is not None else None
    loop = asyn.loop[0] if asyn is not None else None
    if thread is None or loop is None or not thread.is_alive():
        yield
        return
    loop.call_soon_threadsafe(loop.stop)
    thread.join(LOOP_STOP_S)
    try:
        yield
    finally:
        if not thread.is_alive():  # stopped: run the loop again (its clients keep using it)
            restarted = threading.Thread(target=loop.run_forever, name="fsspecIO", daemon=True)
            restarted.start()
            asyn.iothread[0] = restarted


# One context manager per library with a thread pool; each must do nothing when its library is
# not loaded.
PREPARATIONS: List[Callable[[], ContextManager]] = [_opencv_single_threaded,
                                                    _fsspec_loop_stopped]


@contextlib.contextmanager
def prepared_for_fork() -> Iterator[None]:
    """Enter around ``fork`` (e.g. ``Process.start()`` with the fork start method)."""
    with contextlib.ExitStack() as stack:
        for prepare in PREPARATIONS:
            stack.enter_context(prepare())
        yield


def one_thread_per_worker() -> None:
    """In a worker process: OpenCV on one thread (one core per worker), when that is safe.

    A forked worker inherits OpenCV already single-threaded (see :func:`prepared_for_fork`) and
    is left alone; a spawned one, or one that imports OpenCV itself, has a fresh pool.
    """
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
