"""The consumer side: hand out batches in order from a bounded ring of shared-memory slots.

``prefetch + workers`` slots are allocated once. Each slot is lent to a worker to fill batch
``b`` and comes back with a short message; ``next_into`` waits for batch ``next`` (batches that
finish early wait in their slots), copies it once into the caller's arrays and lends the slot again
at once. Memory is bounded by the slot count, whatever the dataset's size.

Every wait has a deadline and wakes at least once a second; it watches the workers' pipes and their
process sentinels together, so a dead worker is noticed the moment it dies, and a worker exception
arrives as data (type, message, traceback) and is raised here as :class:`WorkerError`. On any fatal
error the engine closes itself before raising: nothing is left behind even if the caller never
calls ``close``.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections import deque
from multiprocessing import connection
from typing import Sequence

import numpy as np

from caffe_layers.errors import ConfigError, PrefetchTimeout, WorkerDied, WorkerError
from caffe_layers.prefetch.launch import START_METHODS, get_context
from caffe_layers.prefetch.pool import WorkerPool
from caffe_layers.prefetch.slots import SlotArena, TopSpec
from caffe_layers.prefetch.tasks import BatchTask, IndexedBatchTask

QUEUED_PER_WORKER = 2  # one being filled, one waiting, so a worker never idles between batches
RESPAWNS_PER_BATCH = 3
_live: weakref.WeakSet = weakref.WeakSet()


def close_all() -> None:
    """Close every engine of this process (pycaffe nets are never collected; tests call this)."""
    for engine in list(_live):
        engine.close()


class Prefetcher:
    """Fill batches of ``specs`` with ``producer`` in ``workers`` processes, in ``plan`` order.

    ``workers=0`` runs the same producer in this process (the debugging mode). ``first_batch``
    resumes the stream. ``on_worker_death`` is ``"raise"`` (WorkerDied naming pid and signal) or
    ``"respawn"`` (start a new worker and re-fill the batches the dead one owned; plans with worker
    affinity, i.e. generators, cannot respawn).
    """

    def __init__(self, producer, specs: Sequence[TopSpec], plan, *, workers: int = 2,
                 prefetch: int = 4, start_method: str | None = None, first_batch: int = 0,
                 timeout_s: float = 300.0, on_worker_death: str = "raise",
                 name: str = "prefetch") -> None:
        self.specs = tuple(specs)
        _check_options(plan, self.specs, workers, prefetch, start_method, timeout_s,
                       on_worker_death)
        self.plan = plan
        self.producer = producer
        self.workers = workers
        self.timeout_s = timeout_s
        self.on_worker_death = on_worker_death
        self.start_method = start_method or ("in-process" if workers == 0 else None)
        self.stats = {"respawns": 0}  # workers restarted after a death
        self._next_dispatch = self._next_deliver = self._first_batch = first_batch
        self._ready: dict = {}
        self._deaths: dict = {}
        self._closed = False
        self._error: Exception | None = None
        if workers == 0:
            self._start_in_process()
        else:
            self._start_workers(name, prefetch)
        _live.add(self)

    def _start_in_process(self) -> None:
        self._pool = None
        self._local = {s.name: np.empty(s.shape, s.dtype) for s in self.specs}
        self.producer.open(0, 1)
        self._finalizer = weakref.finalize(self, self.producer.close)

    def _start_workers(self, name: str, prefetch: int) -> None:
        context = get_context(self.start_method)
        self.start_method = context.get_start_method()
        arena = SlotArena(self.specs, prefetch + self.workers, name=name)
        self._free = deque(range(arena.n_slots))
        self._pool = WorkerPool(context, self.producer, arena, name)
        self._finalizer = weakref.finalize(self, self._pool.close)
        try:
            self._pool.start_all(self.workers)
            self._dispatch()
        except BaseException:
            self.close()
            raise

    # -- the consumer's API ------------------------------------------------------------------

    def next_into(self, targets: Sequence[np.ndarray]) -> object:
        """Copy the next batch into ``targets`` (one array per spec, in order); return its report.
        """
        if self._closed:
            if self._error is not None:
                raise self._error
            raise RuntimeError("this Prefetcher is closed")
        if self._pool is None:
            return self._next_in_process(targets)
        try:
            return self._next_from_workers(targets)
        except Exception:
            self.close()  # whatever went wrong, leave no worker behind
            raise

    def next_arrays(self) -> tuple:
        """``({name: copy of the array}, report)`` of the next batch (tests, benchmarks)."""
        arrays = {s.name: np.empty(s.shape, s.dtype) for s in self.specs}
        report = self.next_into([arrays[s.name] for s in self.specs])
        return arrays, report

    def last_task(self) -> BatchTask | IndexedBatchTask | None:
        """The plan's task of the batch last copied out (its samples, epochs and seed); None
        before the first. Lets a tool explain what the consumer received."""
        if self._next_deliver == self._first_batch:
            return None
        return self.plan.task(self._next_deliver - 1)

    def close(self) -> None:
        """Stop the workers and free the slots; idempotent."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def pids(self) -> list:
        return [] if self._pool is None else [w.pid for w in self._pool.workers]

    # -- internals -----------------------------------------------------------------------------

    def _next_from_workers(self, targets: Sequence[np.ndarray]) -> object:
        number = self._next_deliver
        slot, report = self._wait_for(number)
        arrays = self._pool.arena.slots[slot]
        for spec, target in zip(self.specs, targets):
            np.copyto(target, arrays[spec.name])
        self._free.append(slot)
        self._next_deliver += 1
        self._dispatch()
        return report

    def _next_in_process(self, targets: Sequence[np.ndarray]) -> object:
        report = self.producer.fill(self._local, self.plan.task(self._next_deliver))
        for spec, target in zip(self.specs, targets):
            np.copyto(target, self._local[spec.name])
        self._next_deliver += 1
        return report

    def _dispatch(self) -> None:
        """Lend free slots to workers with room in their queue, in batch order."""
        while self._free:
            worker = self._worker_for(self._next_dispatch)
            if worker is None:
                return
            number = self._next_dispatch
            worker.assign(number, self._free.popleft(), self.plan.task(number))
            self._next_dispatch += 1

    def _worker_for(self, number: int):
        workers = self._pool.workers
        wanted = self.plan.worker_for(number, len(workers))
        candidates = [workers[wanted]] if wanted is not None else workers
        worker = min(candidates, key=lambda w: len(w.outstanding))
        return worker if len(worker.outstanding) < QUEUED_PER_WORKER else None

    def _wait_for(self, number: int) -> tuple:
        deadline = time.monotonic() + self.timeout_s
        while number not in self._ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(self._timeout_error(number))
            self._poll(min(1.0, remaining))
        ready = self._ready.pop(number)
        if isinstance(ready, Exception):
            self._fail(ready)
        return ready

    def _poll(self, timeout: float) -> None:
        workers = self._pool.workers
        by_conn = {w.conn: w for w in workers}
        by_sentinel = {w.process.sentinel: w for w in workers}
        ready = connection.wait(list(by_conn) + list(by_sentinel), timeout)
        for obj in ready:
            if obj in by_conn:
                self._drain(by_conn[obj])
        for obj in ready:
            if obj in by_sentinel:
                self._on_death(by_sentinel[obj])

    def _drain(self, worker) -> None:
        try:
            while worker.conn.poll():
                self._receive(worker, worker.conn.recv())
        except (EOFError, OSError):
            pass  # the worker died; its sentinel reports it

    def _receive(self, worker, message: tuple) -> None:
        if message[0] == "done":
            _, number, slot, report = message
            worker.outstanding.pop(number)
            self._ready[number] = (slot, report)
            return
        _, number, sample, info = message
        where = "while starting" if number is None else f"while filling batch {number}"
        if sample is not None:
            where += f", sample {sample}"
        error = WorkerError(
            f"worker {worker.id} (pid {worker.pid}) raised {info['type']} {where}: "
            f"{info['message']}", remote_traceback=info["traceback"], exc_type=info["type"],
            batch=number)
        if number is None:
            self._fail(error)
        # Raised when its batch is due, as with workers: 0; the batches before it still arrive.
        worker.outstanding.pop(number)
        self._ready[number] = error

    def _on_death(self, worker) -> None:
        owned = list(worker.outstanding)
        what = worker.describe_death()
        doing = f" while filling batch {owned[0]}" if owned else ""
        if self.on_worker_death != "respawn":
            self._fail(WorkerDied(f"{what}{doing}. Set on_worker_death: respawn to restart "
                                  f"workers instead of failing.", worker.pid,
                                  worker.process.exitcode, owned[0] if owned else None))
        for number in owned:
            self._deaths[number] = self._deaths.get(number, 0) + 1
            if self._deaths[number] > RESPAWNS_PER_BATCH:
                self._fail(WorkerDied(f"{what}{doing}; batch {number} killed "
                                      f"{RESPAWNS_PER_BATCH + 1} workers, giving up",
                                      worker.pid, worker.process.exitcode, number))
        fresh = self._pool.restart(worker)
        for number, (slot, task) in worker.outstanding.items():
            fresh.assign(number, slot, task)
        self.stats["respawns"] += 1
        batches = ", ".join(map(str, owned)) or "none"
        print(f"caffe_layers: {what}{doing}; restarted as pid {fresh.pid}, re-filling batches "
              f"{batches}", file=sys.stderr, flush=True)

    def _timeout_error(self, number: int) -> PrefetchTimeout:
        owners = [f"worker {w.id} (pid {w.pid}) has batches {sorted(w.outstanding)}"
                  for w in self._pool.workers]
        return PrefetchTimeout(
            f"batch {number} not ready after {self.timeout_s:g} s although every worker is alive "
            f"({'; '.join(owners)}); a sample may hang (a stalled network file system?). Raise "
            f"timeout_s if loading is legitimately this slow.")

    def _fail(self, error: Exception) -> None:
        self._error = error
        self.close()
        raise error


def _check_options(plan, specs: Sequence[TopSpec], workers: int, prefetch: int,
                   start_method: str | None, timeout_s: float, on_worker_death: str) -> None:
    problems = _batch_size_problems(plan, specs)
    if workers < 0:
        problems.append(f"workers: must be >= 0 (got {workers})")
    if prefetch < 1:
        problems.append(f"prefetch: must be >= 1 (got {prefetch})")
    if start_method not in (None,) + START_METHODS:
        problems.append(f"start_method: must be one of {', '.join(START_METHODS)}")
    if timeout_s <= 0:
        problems.append(f"timeout_s: must be > 0 (got {timeout_s})")
    if on_worker_death not in ("raise", "respawn"):
        problems.append("on_worker_death: must be 'raise' or 'respawn'")
    if on_worker_death == "respawn" and workers and plan.worker_for(0, workers) is not None:
        problems.append("on_worker_death: respawn needs indexed samples; a generator's state "
                        "dies with its worker")
    if problems:
        raise ConfigError("prefetch options: " + "; ".join(problems))


def _batch_size_problems(plan, specs: Sequence[TopSpec]) -> list:
    """The batch size enters twice, as the plan's and as every array's first dimension."""
    return [f"batch_size: the plan fills batches of {plan.batch_size} but array '{spec.name}' "
            f"holds {spec.shape[0] if spec.shape else 'no'} rows {tuple(spec.shape)}; they must "
            f"agree" for spec in specs if not spec.shape or spec.shape[0] != plan.batch_size]
