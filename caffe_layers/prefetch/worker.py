"""The worker process: fill the batches it is sent into shared-memory slots, until told to stop.

Protocol (one duplex pipe per worker, small messages only; batch data never crosses it):

- consumer → worker: ``(number, slot, task)`` to fill batch ``number`` into ``slot``; ``None``
  to stop. A receiving thread takes each message as it arrives and tells the producer of the
  task at once (``Producer.prepare``: reads can start a batch ahead); the main thread fills the
  batches in the order they came.
- worker → consumer: ``("done", number, slot, report)``, or ``("error", number, sample, info)``
  where ``info`` holds the exception's type name, message and formatted traceback (``number`` is
  None when ``Producer.open`` failed).

A worker runs under SCHED_BATCH (same CPU share, but a wake-up never preempts: the consumer that
wakes it with a new task keeps its CPU), ignores SIGINT and SIGHUP (Ctrl-C in a terminal reaches
the whole process group; the ``caffe`` binary handles it itself), keeps the memory it frees for
reuse (:func:`keep_freed_memory`), never prints, and runs a watchdog
thread that exits the process within ``WATCHDOG_S`` of the consumer's death however the consumer
died: Caffe never runs ``atexit``, so this watchdog, not the consumer's cleanup, is the guarantee
against orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import threading
import time
import traceback

from caffe_layers.prefetch.procstat import process_alive

WATCHDOG_S = 0.2
INBOX_POLL_S = 1.0
KEEP_FREED_BYTES = 32 << 20  # glibc's largest mmap threshold on 64-bit systems
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_in_worker = False


def in_worker() -> bool:
    """Whether this process is a prefetch worker (threads it starts never cross a fork)."""
    return _in_worker


def describe(exc: BaseException) -> dict:
    """A picklable description of ``exc`` for the consumer."""
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _watch(consumer_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_S)
        # A dead parent re-parents us at once; a forkserver-started worker checks the pid itself.
        if os.getppid() != consumer_pid and not process_alive(consumer_pid):
            os._exit(0)


def start_watchdog(consumer_pid: int) -> None:
    """Exit this process within ``WATCHDOG_S`` of ``consumer_pid``'s death, however it died."""
    threading.Thread(target=_watch, args=(consumer_pid,), name="watchdog", daemon=True).start()


def _quiet_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _never_preempt_the_consumer() -> None:
    """SCHED_BATCH: when the consumer sends a task, the woken worker does not take its CPU.

    Measured (scripts/bench_prefetch.py): under SCHED_OTHER the consumer lost 3-4 ms to a woken
    worker in about one call in five; under SCHED_BATCH, never.
    """
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks below 32 MiB for reuse instead of unmapping or trimming them.

    A worker allocates and frees the same large buffers for every sample (a decoded 500x375 JPEG
    is 0.5 MiB, libjpeg's work buffers as much again). With glibc's defaults each free gave the
    pages back to the kernel and the next sample faulted them in again: 247 page faults and
    1.51 ms per decode instead of 0.99 ms on scripts/benchmark.py's images, and ~121 instead of
    ~84 ms for the layer's whole per-image work on a batch of 64. It depends on the heap's layout,
    so it came and went with unrelated imports (``import torch`` hid it). The cost is up to 64 MiB
    of freed memory kept per worker. False where glibc's ``mallopt`` is missing (nothing changed).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # Setting either parameter turns off glibc's adaptive thresholds: set both.
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, 2 * KEEP_FREED_BYTES))


def _send(conn, message) -> bool:
    """Send ``message``; False when the consumer has closed the pipe (stopped us, or died)."""
    try:
        conn.send(message)
    except OSError:
        return False
    return True


class Inbox:
    """The consumer's messages, received in a thread as they arrive.

    Each task goes to ``producer.prepare`` at once, while the main thread may still be filling
    earlier ones; the main thread takes the messages in order with :meth:`next`.
    """

    def __init__(self, conn, producer) -> None:
        self._conn = conn
        self._producer = producer
        self._messages: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._receive, name="inbox", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                message = None
            if message is None:
                self._messages.put((None, None))
                return
            self._messages.put((message, self._prepare(message[2])))

    def _prepare(self, task) -> Exception | None:
        try:
            self._producer.prepare(task)
        except Exception as exc:  # the batch's error, raised when it is filled
            return exc
        return None

    def next(self) -> tuple:
        """``(message, exception of prepare or None)``; ``(None, None)`` when told to stop or
        when the pipe closed."""
        while True:
            try:
                return self._messages.get(timeout=INBOX_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._messages.empty():
                    return None, None


def _serve(conn, arena, producer) -> None:
    """Fill batches until told to stop or the pipe closes, e.g. by the consumer's ``close()``
    while a batch was being filled; then the producer's ``close()`` runs (a LevelDB view, say, is
    removed)."""
    inbox = Inbox(conn, producer)
    while True:
        message, prepare_error = inbox.next()
        if message is None:
            return
        number, slot, task = message
        try:
            if prepare_error is not None:
                raise prepare_error
            report = producer.fill(arena.slots[slot], task)
        except Exception as exc:
            reply = ("error", number, task.current_sample(), describe(exc))
        else:
            reply = ("done", number, slot, report)
        if not _send(conn, reply):
            return


def run_worker(worker_id: int, workers: int, conn, arena, producer, consumer_pid: int) -> None:
    """Entry point of a worker process (the target of its multiprocessing.Process)."""
    global _in_worker
    _in_worker = True
    _quiet_signals()
    _never_preempt_the_consumer()
    keep_freed_memory()
    start_watchdog(consumer_pid)
    try:
        producer.open(worker_id, workers)
    except Exception as exc:
        _send(conn, ("error", None, None, describe(exc)))
        with contextlib.suppress(EOFError, OSError):
            conn.recv()  # wait to be stopped; the consumer raises the error
        return
    try:
        _serve(conn, arena, producer)
    finally:
        producer.close()
