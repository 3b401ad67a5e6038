"""A file at a URL opened for random access (what h5py needs): byte ranges read in blocks.

:class:`RemoteFile` is a read-only, seekable raw file whose reads fetch whole blocks of
``BLOCK_BYTES`` by byte range (neighbouring missing blocks in one request, each request retried
as :mod:`caffe_layers.files.retry` says) and keep the ``CACHED_BLOCKS`` latest: HDF5's metadata
is read in many small pieces near each other, and a chunk-aware shuffle reads neighbouring
chunks, so most small reads are served from memory. Memory: at most ``CACHED_BLOCKS`` blocks
(32 MiB) per open file.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any, Mapping

from caffe_layers.errors import DataError
from caffe_layers.files import remote
from caffe_layers.files.redact import redact_url

BLOCK_BYTES = 2 << 20
CACHED_BLOCKS = 16


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

    def _fetch_missing(self, first: int, last: int) -> None:
        """Read the blocks ``first..last`` not in the cache, each run of them in one request."""
        number = first
        while number <= last:
            if number in self._blocks:
                number += 1
                continue
            end = number
            while end + 1 <= last and end + 1 not in self._blocks:
                end += 1
            self._fetch(number, end)
            number = end + 1

    def _fetch(self, first: int, last: int) -> None:
        start = first * self.block_bytes
        stop = min(self.size, (last + 1) * self.block_bytes)
        data = remote.read(self.url, start=start, end=stop, **self._read_args)
        if len(data) != stop - start:
            raise self._read_args["error"](
                f"{self._read_args['prefix']}cannot read {self._read_args['what']} '{self.name}': "
                f"asked for bytes {start}-{stop - 1} and got {len(data)} bytes; the server must "
                f"answer byte-range requests for random access (HDF5)")
        for number in range(first, last + 1):
            offset = (number - first) * self.block_bytes
            self._blocks[number] = data[offset:offset + self.block_bytes]

    def _evict(self) -> None:
        while len(self._blocks) > self.cached_blocks:
            self._blocks.popitem(last=False)

    def close(self) -> None:
        self._blocks.clear()
        super().close()
