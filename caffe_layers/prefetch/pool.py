"""The worker processes of one engine: start, restart, describe, stop.

Shutdown protocol (``close``): send every worker ``None`` and close our end of its pipe, join them
for ``grace_s``, then SIGTERM the stragglers, then SIGKILL; finally unmap and close the slots.
``close`` is idempotent and runs from ``Prefetcher.close()``, from a ``weakref.finalize`` when the
engine is collected, or at interpreter exit. None of these run inside ``caffe train``: there the
workers' own watchdog ends them when the consumer dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Iterator, Sequence

from caffe_layers.prefetch.forksafe import prepared_for_fork
from caffe_layers.prefetch.launch import children_allowed
from caffe_layers.prefetch.worker import run_worker


class Worker:
    """The consumer's handle on one worker process and the batches it owns."""

    def __init__(self, worker_id: int, process, conn) -> None:
        self.id = worker_id
        self.process = process
        self.conn = conn
        self.outstanding: dict = {}  # batch number -> (slot, task), in dispatch order

    @property
    def pid(self) -> int:
        return self.process.pid

    def assign(self, number: int, slot: int, task) -> None:
        """Send a batch; if the worker just died, its sentinel reports it and the batch is kept."""
        self.outstanding[number] = (slot, task)
        with contextlib.suppress(OSError):
            self.conn.send((number, slot, task))

    def describe_death(self) -> str:
        """E.g. ``worker 1 (pid 4711) died with SIGKILL``."""
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        if code is None:
            how = "stopped answering"
        elif code < 0:
            try:
                how = f"died with {signal.Signals(-code).name}"
            except ValueError:
                how = f"died with signal {-code}"
        else:
            how = f"exited with code {code}"
        return f"worker {self.id} (pid {self.pid}) {how}"


class WorkerPool:
    """Starts and stops the workers that fill ``arena``'s slots with ``producer``."""

    def __init__(self, context, producer, arena, name: str) -> None:
        self.context = context
        self.producer = producer
        self.arena = arena
        self.name = name
        self.consumer_pid = os.getpid()
        self.workers: list = []
        self.closed = False

    def start_all(self, workers: int) -> None:
        self.workers = [self.start(i, workers) for i in range(workers)]

    def start(self, worker_id: int, workers: int) -> Worker:
        ours, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=run_worker, name=f"caffe_layers:{self.name}:worker{worker_id}", daemon=True,
            args=(worker_id, workers, theirs, self.arena, self.producer, self.consumer_pid))
        with children_allowed(), self._forking():
            process.start()
        theirs.close()
        return Worker(worker_id, process, ours)

    @contextlib.contextmanager
    def _forking(self) -> Iterator[None]:
        """Around a fork: every native thread pool prepared, then the producer's own extras."""
        if self.context.get_start_method() != "fork":
            yield
            return
        with prepared_for_fork(), self.producer.forking():
            yield

    def restart(self, worker: Worker) -> Worker:
        """A new process in ``worker``'s place; the caller re-sends its outstanding batches."""
        _stop([worker], grace_s=0.0)
        fresh = self.start(worker.id, len(self.workers))
        self.workers[worker.id] = fresh
        return fresh

    def close(self, grace_s: float = 1.0) -> None:
        if self.closed:
            return
        self.closed = True
        _stop(self.workers, grace_s)
        self.arena.close()


def _stop(workers: Sequence[Worker], grace_s: float) -> None:
    for worker in workers:
        with contextlib.suppress(OSError):
            worker.conn.send(None)
        worker.conn.close()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
    for stop in (lambda p: p.terminate(), lambda p: p.kill()):
        alive = [w.process for w in workers if w.process.is_alive()]
        for process in alive:
            stop(process)
        for process in alive:
            process.join(timeout=1.0)
