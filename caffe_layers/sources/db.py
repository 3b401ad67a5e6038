"""Caffe's databases (``data_param.source``): an LMDB or LevelDB directory of records in key order.

:meth:`Database.scan` runs once, in the layer's process: it finds the backend (``data.mdb``:
LMDB, ``CURRENT``: LevelDB), checks it against the one asked for, reads every key into a
:class:`KeyIndex`, and closes the database again, so nothing open crosses a fork. Record ``i`` is
the ``i``-th key in key order, as Caffe's cursor walks them. Each process that fills batches then
calls :meth:`Database.open` for its own reader:

- LMDB: ``lmdb.open(readonly=True, lock=False)``, so that any number of processes (other solver
  ranks, ``caffe`` itself) read the same database; one read transaction per batch, and records are
  returned as views of the memory map, never copied.
- LevelDB admits one process at a time (its ``LOCK`` file): see :mod:`caffe_layers.sources.leveldb`.

The key index is one ``bytes`` buffer cut by an int64 offsets array: for a million records of
Caffe's ``%08d_<path>`` keys, about 50 MB, whatever the size of the records, and shared by forked
workers without copying. Reading the keys touches only LMDB's leaf pages when records are larger
than half a page (2 KiB): images are stored in overflow pages that the scan never reads.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import os
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.files import require_local

LMDB, LEVELDB = "LMDB", "LEVELDB"
BACKENDS = (LMDB, LEVELDB)
_MARKERS = {LMDB: "data.mdb", LEVELDB: "CURRENT"}
_KEYS_PER_CHUNK = 1 << 16


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise ConfigError("backend: LMDB needs the lmdb package: pip install lmdb") from None
    return lmdb


def detect_backend(source: str, backend: str | None = None) -> str:
    """The backend of database directory ``source``; ConfigError when it is not one, or not
    the ``backend`` asked for. Without ``backend`` the directory's files decide. A URL is refused:
    both are opened from a local directory (LMDB maps its file into memory)."""
    require_local(source, "source", "an LMDB or LevelDB database is opened from a local "
                                    "directory (LMDB maps its file into memory)")
    if not os.path.exists(source):
        raise ConfigError(f"source: the database '{source}' does not exist (relative paths are "
                          f"resolved from the working directory '{os.getcwd()}')")
    if not os.path.isdir(source):
        hint = (f"give the directory that holds it, '{os.path.dirname(source) or '.'}'"
                if os.path.basename(source) == "data.mdb" else
                "give the directory of an LMDB (holding data.mdb) or LevelDB (holding CURRENT) "
                "database; for a list of images use ImageListDataLayer")
        raise ConfigError(f"source: '{source}' is a file, not a database directory; {hint}")
    found = [name for name in BACKENDS if os.path.isfile(os.path.join(source, _MARKERS[name]))]
    if not found:
        raise ConfigError(f"source: '{source}' is not an LMDB or LevelDB database: it holds "
                          f"neither data.mdb nor CURRENT; make one with caffe-layers-convert-db "
                          f"or Caffe's convert_imageset")
    if backend is None:
        if len(found) > 1:
            raise ConfigError(f"source: '{source}' holds both data.mdb and CURRENT; set backend: "
                              f"LMDB or LEVELDB")
        return found[0]
    if backend not in found:
        raise ConfigError(f"backend: '{source}' is a {found[0]} database ({_MARKERS[found[0]]}), "
                          f"not {backend}; set backend: {found[0]} or leave backend out to detect "
                          f"it")
    return backend


@dataclasses.dataclass(frozen=True, eq=False)
class KeyIndex:
    """Keys in key order: key ``i`` is ``key_bytes[offsets[i]:offsets[i + 1]]``."""

    key_bytes: bytes
    offsets: np.ndarray

    @classmethod
    def collect(cls, keys: Iterable[bytes]) -> KeyIndex:
        """Gather an iterable of keys, a chunk of 65536 at a time (no per-key Python objects kept).
        """
        chunks, lengths, pending = [], [np.zeros(1, np.int64)], []
        for key in keys:
            pending.append(key)
            if len(pending) == _KEYS_PER_CHUNK:
                cls._flush(pending, chunks, lengths)
        cls._flush(pending, chunks, lengths)
        offsets = np.cumsum(np.concatenate(lengths))
        offsets.flags.writeable = False
        return cls(b"".join(chunks), offsets)

    @staticmethod
    def _flush(pending: list, chunks: list, lengths: list) -> None:
        if pending:
            chunks.append(b"".join(pending))
            lengths.append(np.fromiter(map(len, pending), np.int64, len(pending)))
            pending.clear()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def key(self, index: int) -> bytes:
        return self.key_bytes[self.offsets[index]:self.offsets[index + 1]]

    def nbytes(self) -> int:
        return len(self.key_bytes) + self.offsets.nbytes


def key_text(key: bytes) -> str:
    """A key for messages: text where it is UTF-8, escapes elsewhere."""
    return key.decode("utf-8", "backslashreplace")


@dataclasses.dataclass(frozen=True, eq=False)
class Database:
    """A scanned database: where it is, its backend, its keys and its size on disk (picklable)."""

    source: str
    backend: str
    keys: KeyIndex
    size_bytes: int

    @classmethod
    def scan(cls, source: str, backend: str | None = None) -> Database:
        """Find the backend, index every key; DataError for an empty or unreadable database."""
        source = os.fspath(source)
        backend = detect_backend(source, backend)
        scanner = _scan_lmdb if backend == LMDB else _scan_leveldb
        keys, size_bytes = scanner(source)
        if not len(keys):
            raise DataError(f"source: the {backend} database '{source}' holds no records")
        return cls(source, backend, keys, size_bytes)

    def __len__(self) -> int:
        return len(self.keys)

    def where(self, index: int) -> str:
        """``record 17 '00000017_cat.jpg' of 'train_lmdb'``: for messages."""
        return f"record {index} '{key_text(self.keys.key(index))}' of '{self.source}'"

    def mean_record_bytes(self) -> float:
        return self.size_bytes / len(self)

    def open(self) -> DatabaseReader:
        """A reader for this process (never share it with a forked child)."""
        if self.backend == LMDB:
            return LMDBReader(self)
        from caffe_layers.sources.leveldb import LevelDBReader

        return LevelDBReader(self)

    def describe(self) -> str:
        return (f"{len(self)} records in {self.backend} '{self.source}' "
                f"({self.size_bytes / 2 ** 20:.1f} MiB)")


class DatabaseReader:
    """Reads records by index in one process; ``close`` is idempotent."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @contextlib.contextmanager
    def batch(self, indices: Sequence[int] = ()) -> Iterator[Callable[[int], memoryview]]:
        """A function ``record(index) -> buffer``, valid until the block ends; the records of
        ``indices`` (those the block will read) may be fetched ahead."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the database."""

    def _missing(self, index: int) -> DataError:
        return DataError(f"{self.database.where(index)}: the key is gone since the layer's setup; "
                         f"was the database rewritten while training?")


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MADV_WILLNEED = 3  # Linux and the BSDs


@functools.lru_cache(maxsize=None)
def _madvise():
    """libc's ``madvise``, or None where it cannot be had."""
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return function


def will_need(view: memoryview) -> None:
    """Ask the kernel to start reading the pages under ``view`` (part of a file map) now."""
    madvise = _madvise()
    if madvise is None or not len(view):
        return
    address = np.frombuffer(view, np.uint8).ctypes.data
    start = address - address % _PAGE
    madvise(start, address + len(view) - start, _MADV_WILLNEED)  # a failure only loses the hint


def _open_lmdb(path: str):
    lmdb = _lmdb()
    try:
        return lmdb.open(path, readonly=True, lock=False, subdir=True, max_dbs=0)
    except lmdb.Error as exc:
        raise DataError(f"source: cannot open the LMDB database '{path}': {exc}") from None


def _scan_lmdb(path: str) -> tuple:
    env = _open_lmdb(path)
    try:
        stat = env.stat()
        size = (stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]) \
            * stat["psize"]
        with env.begin(buffers=False) as txn:
            keys = KeyIndex.collect(txn.cursor().iternext(keys=True, values=False))
    finally:
        env.close()
    return keys, size


def _scan_leveldb(path: str) -> tuple:
    from caffe_layers.sources.leveldb import scan_leveldb

    return scan_leveldb(path)


class LMDBReader(DatabaseReader):
    """Readonly, lockless LMDB; one read transaction per batch, records as views of the map."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._env = _open_lmdb(database.source)

    @contextlib.contextmanager
    def batch(self, indices: Sequence[int] = ()) -> Iterator[Callable[[int], memoryview]]:
        """Records as views of the map; the pages of ``indices`` are first asked of the kernel
        all at once (``madvise(WILLNEED)``), so that their reads overlap instead of each record
        waiting for its own page faults when the database is not in the page cache."""
        keys = self.database.keys
        with self._env.begin(buffers=True) as txn:
            cursor = txn.cursor()

            def record(index: int) -> memoryview:
                if not cursor.set_key(keys.key(index)):
                    raise self._missing(index)
                return cursor.value()

            for index in indices:
                if cursor.set_key(keys.key(index)):
                    will_need(cursor.value())
            yield record

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
