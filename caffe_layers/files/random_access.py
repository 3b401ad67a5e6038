"""A file at a URL opened for random access (what h5py needs): byte ranges read in blocks.

:class:`RemoteFile` is a read-only, seekable raw file whose reads fetch whole blocks of
``BLOCK_BYTES`` by byte range (neighbouring missing blocks in one request, each request retried
as :mod:`caffe_layers.files.retry` says) and keep the ``CACHED_BLOCKS`` latest: HDF5's metadata
is read in many small pieces near each other, and a chunk-aware shuffle reads neighbouring
chunks, so most small reads are served from memory. Memory: at most ``CACHED_BLOCKS`` blocks
(32 MiB) per open file.

:meth:`RemoteFile.prefetch` starts reading, in the background, the blocks of byte spans about
to be read (the chunks of this batch and of those sent after it, :class:`~caffe_layers
.sources.hdf5.HDF5Reader`): runs of up to ``RUN_BLOCKS`` blocks per request, all in flight
together as coroutines on fsspec's loop, at most ``AHEAD_BLOCKS`` blocks (64 MiB) read ahead
per file; a read of a block read ahead waits for it instead of asking again.
"""

from __future__ import annotations

import asyncio
import io
from collections import OrderedDict
from concurrent import futures
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Tuple

from caffe_layers.errors import DataError
from caffe_layers.files import remote
from caffe_layers.files.read_ahead import wait_while_running
from caffe_layers.files.redact import redact_url

BLOCK_BYTES = 2 << 20
CACHED_BLOCKS = 16
AHEAD_BLOCKS = 32  # read ahead, per open file
RUN_BLOCKS = 8  # neighbouring blocks read ahead in one request


class RemoteFile(io.RawIOBase):
    """The file at ``url`` (``what`` it is, ``prefix`` for messages), read-only and seekable."""

    def __init__(self, url: str, what: str, *, error: type = DataError, prefix: str = "",
                 storage_options: Mapping[str, Any] | None = None,
                 block_bytes: int = BLOCK_BYTES, cached_blocks: int = CACHED_BLOCKS) -> None:
        super().__init__()
        self.url = url
        self.name = redact_url(url)
        self._read_args = {"what": what, "error": error, "prefix": prefix,
                           "storage_options": storage_options}
        self.size = remote.size(url, **self._read_args)
        self.block_bytes = block_bytes
        self.cached_blocks = cached_blocks
        self._blocks: OrderedDict = OrderedDict()
        self._ahead: Dict[int, Tuple[int, futures.Future]] = {}  # block -> (run's first, run)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset} in '{self.name}'")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self.size - self._pos))
        if not count:
            return 0
        view = memoryview(buffer).cast("B")
        first, last = self._pos // self.block_bytes, (self._pos + count - 1) // self.block_bytes
        self._fetch_missing(first, last)
        done = 0
        for number in range(first, last + 1):
            block = self._blocks[number]
            self._blocks.move_to_end(number)
            offset = self._pos + done - number * self.block_bytes
            piece = block[offset:offset + count - done]
            view[done:done + len(piece)] = piece
            done += len(piece)
        self._evict()
        self._pos += count
        return count

    def prefetch(self, spans: Iterable[Tuple[int, int]]) -> None:
        """Start reading the blocks of the byte ``spans`` (``(start, stop)``) that are neither
        cached nor being read; forget the reads ahead of blocks outside ``spans`` (whoever
        wanted them has read what it needed)."""
        wanted = set()
        for start, stop in spans:
            stop = min(stop, self.size)
            if stop > start >= 0:
                wanted.update(range(start // self.block_bytes, (stop - 1) // self.block_bytes + 1))
        for number in [n for n in self._ahead if n not in wanted]:
            del self._ahead[number]
        room = AHEAD_BLOCKS - len(self._ahead)
        missing = sorted(n for n in wanted if n not in self._blocks and n not in self._ahead)
        if room <= 0 or not missing:
            return
        loop = remote.event_loop()
        for first, last in _runs(missing[:room], RUN_BLOCKS):
            run = asyncio.run_coroutine_threadsafe(self._read_async(first, last), loop)
            for number in range(first, last + 1):
                self._ahead[number] = (first, run)

    def _fetch_missing(self, first: int, last: int) -> None:
        """Read the blocks ``first..last`` not in the cache, each run of them in one request
        (or, read ahead, wait for it)."""
        number = first
        while number <= last:
            if number in self._blocks:
                number += 1
            elif number in self._ahead:
                self._land(number)
            else:
                end = number
                while end + 1 <= last and end + 1 not in self._blocks \
                        and end + 1 not in self._ahead:
                    end += 1
                self._keep(number, self._checked(number, end, remote.read(
                    self.url, start=self._start(number), end=self._stop(end),
                    **self._read_args)))
                number = end + 1

    async def _read_async(self, first: int, last: int) -> bytes:
        data = await remote.read_async(self.url, start=self._start(first), end=self._stop(last),
                                       **self._read_args)
        return self._checked(first, last, data)

    def _land(self, number: int) -> None:
        """Wait for the run read ahead that holds block ``number``; cache its blocks."""
        first, run = self._ahead[number]
        wait_while_running(lambda timeout_s: bool(futures.wait([run], timeout_s).done),
                           remote.event_loop())
        for block in [n for n, (_, other) in self._ahead.items() if other is run]:
            del self._ahead[block]
        self._keep(first, run.result())  # a failed read raises its error here

    def _start(self, first: int) -> int:
        return first * self.block_bytes

    def _stop(self, last: int) -> int:
        return min(self.size, (last + 1) * self.block_bytes)

    def _checked(self, first: int, last: int, data: bytes) -> bytes:
        start, stop = self._start(first), self._stop(last)
        if len(data) != stop - start:
            raise self._read_args["error"](
                f"{self._read_args['prefix']}cannot read {self._read_args['what']} '{self.name}': "
                f"asked for bytes {start}-{stop - 1} and got {len(data)} bytes; the server must "
                f"answer byte-range requests for random access (HDF5)")
        return data

    def _keep(self, first: int, data: bytes) -> None:
        for offset in range(0, len(data), self.block_bytes):
            self._blocks[first + offset // self.block_bytes] = data[offset:offset +
                                                                     self.block_bytes]

    def _evict(self) -> None:
        while len(self._blocks) > self.cached_blocks:
            self._blocks.popitem(last=False)

    def close(self) -> None:
        self._blocks.clear()
        self._ahead.clear()
        super().close()


def _runs(numbers: List[int], longest: int) -> Iterator[Tuple[int, int]]:
    """``(first, last)`` of each run of consecutive ``numbers`` (sorted), at most ``longest``
    long."""
    first = last = None
    for number in numbers:
        if first is not None and number == last + 1 and number - first < longest:
            last = number
            continue
        if first is not None:
            yield first, last
        first = last = number
    if first is not None:
        yield first, last
