"""Producers that read files, which may be URLs: one file per sample read ahead, retries reported.

A remote read takes tens of milliseconds, mostly waiting: :class:`SampleFiles` keeps several in
flight. A worker is told of each batch it will fill as soon as the batch is sent to it
(``Producer.prepare``), so the files of the next batch are read while it decodes the current
one; a :class:`~caffe_layers.files.read_ahead.ReadAhead` bounds what is held (at most
``MAX_REQUESTS`` reads in flight and ``MAX_BYTES`` read but not yet decoded, per worker), its
reads coroutines on fsspec's event loop. Local files are read as before, when their sample is
loaded. The reads ahead start in the worker, after its fork; with ``workers: 0`` the layer's own
process reads each batch's files together and ends its reads ahead with the batch.

:class:`FileProducer` hands the reads retried since the last batch (:mod:`caffe_layers.files
.retry`) to the layer with each batch, which prints how many there were.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from caffe_layers.errors import DataError
from caffe_layers.files import take_retries
from caffe_layers.files.read_ahead import MAX_BYTES, MAX_REQUESTS, ReadAhead
from caffe_layers.prefetch import Producer
from caffe_layers.prefetch.worker import in_worker

Fetched = Callable[[int], Optional[bytes]]


class FileProducer(Producer):
    """A producer whose reports carry this process's retried reads: subclasses ``fill_rows``."""

    def fill(self, out: dict, task) -> object:
        return with_retries(self.fill_rows(out, task))

    def fill_rows(self, out: dict, task) -> object:
        raise NotImplementedError


def with_retries(report: object) -> object:
    """``report`` with ``retries: (count, latest)`` added when reads were retried since the last
    batch."""
    count, latest = take_retries()
    if not count:
        return report
    return dict(report or {}, retries=(count, latest))


class SampleFiles:
    """The bytes of the sample files of the batches this process fills, read ahead for URLs.

    ``locate(index)`` is ``(URL, what it is, message prefix)`` of sample ``index``'s file, e.g.
    ``("s3://b/cat.jpg", "image", "train.txt:17: ")`` (a method of the producer: picklable); a
    failed read is the DataError that names them. Picklable; its reads start with the first
    batch read ahead and stop at :meth:`close`.
    """

    def __init__(self, locate: Callable[[int], Tuple[str, str, str]], remote: bool,
                 storage_options: Mapping[str, Any] | None = None,
                 max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES) -> None:
        self.locate = locate
        self.remote = remote
        self.storage_options = storage_options
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self._reads: ReadAhead | None = None
        self._lock = threading.Lock()
        self._announced: Dict[int, _Requested] = {}  # by batch number

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _reads=None, _lock=None, _announced={})

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def prepare(self, task) -> None:
        """Start reading the files of batch ``task`` (told early, from the worker's inbox)."""
        if not self.remote or task.indices is None:
            return
        requested = self._request(task.indices)
        with self._lock:
            self._announced[task.number] = requested

    @contextlib.contextmanager
    def batch(self, task) -> Iterator[Fetched]:
        """While filling ``task``: ``fetched(index)`` is the bytes read ahead for the sample
        ``index`` (its read's exception is raised), or None for a file to read now."""
        if not self.remote or task.indices is None:
            yield _nothing
            return
        with self._lock:
            requested = self._announced.pop(task.number, None)
            stale = [self._announced.pop(n) for n in list(self._announced) if n < task.number]
        for batch in stale:  # announced but never filled here (e.g. after an error)
            batch.drop()
        if requested is None:
            requested = self._request(task.indices)
        try:
            yield requested.take
        finally:
            requested.drop()
            if not in_worker():  # the layer's own process may fork later: no read stays in flight
                self.close()

    def close(self) -> None:
        """Stop reading ahead (idempotent); reads in flight end in the background."""
        with self._lock:
            reads, self._reads = self._reads, None
            self._announced.clear()
        if reads is not None:
            reads.close()

    def _request(self, indices) -> _Requested:
        indices = [int(i) for i in indices]
        with self._lock:
            if self._reads is None:
                self._reads = self._open(indices[0])
            reads = self._reads
        return _Requested(reads, indices, reads.request(indices))

    def _open(self, first: int) -> ReadAhead:
        from caffe_layers.files import remote

        url, _, _ = self.locate(first)
        # The storage client is made here, not in the loop, where a constructor that waits on
        # the loop (fsspec's sync()) would fail; a failure is the first read's to report.
        with contextlib.suppress(Exception):
            remote.client(url, self.storage_options, "")
        return ReadAhead(self._read, remote.event_loop(), self.max_requests, self.max_bytes)

    async def _read(self, index: int) -> bytes:
        from caffe_layers.files import remote

        url, what, prefix = self.locate(index)
        return await remote.read_async(url, what, error=DataError, prefix=prefix,
                                       storage_options=self.storage_options)


class _Requested:
    """The tickets of one batch's files, by sample index (an index may come twice)."""

    def __init__(self, reads: ReadAhead, indices: List[int], tickets: List) -> None:
        self.reads = reads
        self.tickets: Dict[int, deque] = {}
        for index, ticket in zip(indices, tickets):
            self.tickets.setdefault(index, deque()).append(ticket)

    def take(self, index: int) -> bytes | None:
        queued = self.tickets.get(index)
        return self.reads.take(queued.popleft()) if queued else None

    def drop(self) -> None:
        self.reads.drop([ticket for queued in self.tickets.values() for ticket in queued])


def _nothing(index: int) -> None:
    return None
