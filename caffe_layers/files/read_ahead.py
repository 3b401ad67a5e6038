"""Reading files ahead of their use as coroutines on an event loop, so that a remote read's
latency overlaps the decoding of the samples before it.

A :class:`ReadAhead` takes keys (paths, sample numbers) in the order their files will be used
(:meth:`~ReadAhead.request`, which returns a ticket per key) and keeps at most ``max_requests``
reads in flight; it starts no new read while ``max_bytes`` or more of read bytes wait to be
taken. So the bytes it holds are at most ``max_bytes`` plus ``max_requests`` files (the reads in
flight when the cap was reached). :meth:`~ReadAhead.take` waits for a ticket's bytes (reading it
at once, whatever the caps, if it has not started) and raises the read's own exception if it
failed; :meth:`~ReadAhead.drop` forgets tickets that will not be taken.

The reads are coroutines (``async def read(key) -> bytes``) on ``loop``, which runs in a thread
of its own: fsspec's loop, where its clients' connections live. A coroutine per read spares the
reading process the hand-offs of a thread per read blocked on that loop (two per file). The
process that reads (a prefetch worker, after its fork) makes its ReadAhead: a loop does not
survive a fork.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any, Awaitable, Callable, List, Sequence

MAX_REQUESTS = 32  # reads in flight per process: 32 x 20 ms latency covers 1600 files/s
MAX_BYTES = 64 << 20  # read bytes waiting to be decoded, per process
LOOP_CHECK_S = 1.0  # how often a waiting take() checks that the loop still runs


class Ticket:
    """One requested read: its key, then its bytes or its exception."""

    __slots__ = ("key", "started", "dropped", "taken", "counted", "data", "error", "done")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.started = self.dropped = self.taken = self.counted = False
        self.data: bytes | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class ReadAhead:
    """Reads requested keys with the coroutine ``read(key)`` on ``loop``, up to
    ``max_requests`` at once."""

    def __init__(self, read: Callable[[Any], Awaitable[bytes]], loop: asyncio.AbstractEventLoop,
                 max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES) -> None:
        self._read = read
        self._loop = loop
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._waiting: deque = deque()
        self._running = 0
        self._held = 0  # bytes read and not yet taken or dropped
        self._tasks: set = set()  # the loop keeps only weak references to its tasks
        self._closed = False

    @property
    def held_bytes(self) -> int:
        return self._held

    def request(self, keys: Sequence[Any]) -> List[Ticket]:
        """Tickets for ``keys``, read in this order as the caps allow."""
        tickets = [Ticket(key) for key in keys]
        with self._lock:
            self._waiting.extend(tickets)
            self._start_reads()
        return tickets

    def take(self, ticket: Ticket) -> bytes:
        """The bytes of ``ticket`` (waiting for its read); raises the read's exception."""
        with self._lock:
            if not ticket.started:
                self._start([ticket])  # needed now: the caps are for reading ahead only
        wait_while_running(ticket.done.wait, self._loop)
        with self._lock:
            ticket.taken = True
            self._uncount(ticket)
            self._start_reads()
        data, ticket.data = ticket.data, None
        if ticket.error is not None:
            raise ticket.error
        return data

    def drop(self, tickets: Sequence[Ticket]) -> None:
        """Forget ``tickets`` that will not be taken (their bytes are freed when read)."""
        with self._lock:
            for ticket in tickets:
                if not ticket.taken:
                    ticket.dropped = True
                    self._uncount(ticket)
                    ticket.data = None
            self._start_reads()

    def close(self) -> None:
        """Start no more reads; reads in flight finish in the background. Idempotent."""
        with self._lock:
            self._closed = True
            for ticket in self._waiting:
                ticket.dropped = True
            self._waiting.clear()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- with the lock held --------------------------------------------------------------------

    def _start_reads(self) -> None:
        starting = []
        while self._waiting and self._running + len(starting) < self.max_requests \
                and self._held < self.max_bytes and not self._closed:
            ticket = self._waiting.popleft()
            if not ticket.started and not ticket.dropped:
                starting.append(ticket)
        if starting:
            self._start(starting)

    def _start(self, tickets: List[Ticket]) -> None:
        if self._closed and any(not ticket.started for ticket in tickets):
            raise RuntimeError("this ReadAhead is closed")
        for ticket in tickets:
            ticket.started = True
        self._running += len(tickets)
        if _running_loop() is self._loop:
            self._create_tasks(tickets)
        else:  # one wake-up of the loop for all of them
            self._loop.call_soon_threadsafe(self._create_tasks, tickets)

    def _uncount(self, ticket: Ticket) -> None:
        if ticket.counted:
            self._held -= len(ticket.data)
            ticket.counted = False

    # -- in the loop ---------------------------------------------------------------------------

    def _create_tasks(self, tickets: List[Ticket]) -> None:
        for ticket in tickets:
            task = self._loop.create_task(self._run(ticket))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, ticket: Ticket) -> None:
        data, error = None, None
        try:
            data = await self._read(ticket.key)
        except Exception as exc:  # handed to whoever takes the ticket
            error = exc
        with self._lock:
            self._running -= 1
            if not ticket.dropped:
                ticket.data, ticket.error = data, error
                if data is not None:
                    ticket.counted = True
                    self._held += len(data)
            self._start_reads()
        ticket.done.set()


def wait_while_running(wait: Callable[[float], bool], loop: asyncio.AbstractEventLoop) -> None:
    """``wait(timeout_s)`` until it returns True (a read in flight on ``loop`` ended), checking
    every ``LOOP_CHECK_S`` that the loop still runs: RuntimeError if it stopped."""
    while not wait(LOOP_CHECK_S):
        if not loop.is_running():
            raise RuntimeError("the event loop of the reads ahead stopped with a read in flight")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
