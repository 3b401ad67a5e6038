"""The tools' process pool: a function over blocks of samples in worker processes, Ctrl-C safe.

``multiprocessing.Pool`` was not: its ``terminate()`` hung for good when a worker was killed
while sending a large result, its result thread waiting for the rest of the message (seen with
Python 3.8 on Ctrl-C during ``caffe-layers-convert-db``, whose results are megabytes of records).
Here each worker has its own pipe; the parent reads a message only when the worker's pipe is
ready, and on an interrupt or an error it stops reading, kills the workers and closes the pipes:
nothing ever waits on a half-sent message. A worker's exception is raised in the parent; a worker
that dies is a :class:`~caffe_layers.errors.WorkerDied` naming its pid and how it ended. Workers
are forked with native thread pools prepared
(:func:`~caffe_layers.prefetch.forksafe.prepared_for_fork`) and take one core each.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing import connection
from typing import Callable, Dict, Iterator, List, Sequence

from caffe_layers.errors import WorkerDied
from caffe_layers.prefetch.forksafe import one_thread_per_worker, prepared_for_fork
from caffe_layers.prefetch.worker import start_watchdog

QUEUED = 2  # blocks sent ahead to each worker, so it never waits between blocks
POLL_S = 1.0


def _serve(conn, function: Callable, state: object, parent: int) -> None:
    """A worker: ``function(state, indices)`` for each block received, until the pipe closes
    or the parent dies (a sibling forked later holds a copy of this pipe's other end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    start_watchdog(parent)
    one_thread_per_worker()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        number, indices = message
        try:
            reply = ("done", number, function(state, indices))
        except Exception as exc:  # raised in the parent, with its type
            reply = ("error", number, exc)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an unpicklable result or exception
            conn.send(("error", number, RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Workers:
    """Worker processes with one pipe each; blocks dispatched in order, results collected."""

    def __init__(self, function: Callable, state: object, blocks: Sequence, count: int) -> None:
        self.blocks = blocks
        self.next_block = 0
        self.processes: list = []
        self.conns: list = []
        self.queued: Dict[object, List[int]] = {}
        context = multiprocessing.get_context()
        try:
            for _ in range(count):
                parent, child = context.Pipe()
                process = context.Process(target=_serve, daemon=True,
                                          args=(child, function, state, os.getpid()))
                self.processes.append(process)
                self.conns.append(parent)
                self.queued[parent] = []
                with prepared_for_fork():  # native thread pools, as the prefetch engine does
                    process.start()
                child.close()
        except BaseException:  # Ctrl-C while starting them: stop those started
            self.close()
            raise

    def dispatch(self) -> None:
        for conn in self.conns:
            while len(self.queued[conn]) < QUEUED and self.next_block < len(self.blocks):
                conn.send((self.next_block, self.blocks[self.next_block]))
                self.queued[conn].append(self.next_block)
                self.next_block += 1

    def collect(self) -> dict:
        """``{block: result}`` of the replies ready now (waiting at most ``POLL_S``)."""
        ready = connection.wait(self.conns + [p.sentinel for p in self.processes], POLL_S)
        results = {}
        for conn, process in zip(self.conns, self.processes):
            if conn in ready:
                try:
                    status, number, payload = conn.recv()
                except (EOFError, OSError):  # it died: its sentinel says how
                    self._died(process)
                self.queued[conn].remove(number)
                if status == "error":
                    raise payload
                results[number] = payload
            if process.sentinel in ready:
                self._died(process)
        return results

    @staticmethod
    def _died(process) -> None:
        process.join(POLL_S)
        how = (f"signal {signal.Signals(-process.exitcode).name}" if (process.exitcode or 0) < 0
               else f"exit code {process.exitcode}")
        raise WorkerDied(f"a worker (pid {process.pid}) died with {how}", process.pid,
                         process.exitcode)

    def close(self) -> None:
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                process.kill()
        for process in self.processes:
            if process.pid is not None:
                process.join()
        for conn in self.conns:
            conn.close()


def map_blocks(function: Callable, state: object, index_blocks: Sequence[Sequence[int]],
               workers: int, ordered: bool = True) -> Iterator:
    """``function(state, indices)`` for every block, in this process or in ``workers``.

    ``state`` (e.g. a reader with its list) goes to each worker once, at its start; a task is
    only a block of indices. Results come in block order when ``ordered``, else as they finish.
    The workers are stopped when the iterator is exhausted or closed, or an error is raised.
    """
    if workers <= 1 or len(index_blocks) <= 1:
        for indices in index_blocks:
            yield function(state, indices)
        return
    pool = _Workers(function, state, index_blocks, min(workers, len(index_blocks)))
    try:
        pool.dispatch()
        ready: dict = {}
        for wanted in range(len(index_blocks)):
            while (wanted not in ready) if ordered else not ready:
                ready.update(pool.collect())
                pool.dispatch()
            yield ready.pop(wanted if ordered else next(iter(ready)))
    finally:
        pool.close()
