"""Writing a new LMDB or LevelDB database atomically, for ``caffe-layers-convert-db``.

:func:`new_database` writes into a temporary directory beside the target (``DB.incomplete-<pid>``)
and renames it to the target only when every record is committed; on any error or Ctrl-C the
temporary directory is removed, so a database at the target path is always complete. Records are
committed in transactions of at most ``COMMIT_RECORDS`` records or ``COMMIT_BYTES`` bytes. The
settings are Caffe's where Caffe sets them (LevelDB blocks of 64 KiB), and an LMDB map that
doubles when full, as Caffe's does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Iterator, List, Tuple

from caffe_layers.errors import ConfigError
from caffe_layers.sources.db import BACKENDS, LMDB

COMMIT_RECORDS = 1000
COMMIT_BYTES = 64 << 20
LMDB_INITIAL_MAP = 1 << 30
LEVELDB_BLOCK = 64 << 10  # Caffe's db_leveldb.cpp
LEVELDB_WRITE_BUFFER = 64 << 20


class _Writer:
    """Buffers puts and commits them in transactions."""

    def __init__(self) -> None:
        self.pending: List[Tuple[bytes, bytes]] = []
        self.pending_bytes = 0
        self.records = 0

    def put(self, key: bytes, value: bytes) -> None:
        self.pending.append((key, value))
        self.pending_bytes += len(key) + len(value)
        if len(self.pending) >= COMMIT_RECORDS or self.pending_bytes >= COMMIT_BYTES:
            self.commit()

    def commit(self) -> None:
        if self.pending:
            self._write(self.pending)
            self.records += len(self.pending)
            self.pending, self.pending_bytes = [], 0

    def _write(self, items: List[Tuple[bytes, bytes]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _LMDBWriter(_Writer):
    def __init__(self, path: str) -> None:
        super().__init__()
        from caffe_layers.sources.db import _lmdb

        self._lmdb = lmdb = _lmdb()
        self.env = lmdb.open(path, map_size=LMDB_INITIAL_MAP, subdir=True, meminit=False)

    def _write(self, items: List[Tuple[bytes, bytes]]) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in items:
                        txn.put(key, value)
                return
            except self._lmdb.MapFullError:  # the transaction was aborted: grow, write it again
                self.env.set_mapsize(2 * self.env.info()["map_size"])

    def close(self) -> None:
        self.env.close()


class _LevelDBWriter(_Writer):
    def __init__(self, path: str) -> None:
        super().__init__()
        from caffe_layers.sources.leveldb import _plyvel

        self.db = _plyvel().DB(path, create_if_missing=True, error_if_exists=True,
                               block_size=LEVELDB_BLOCK, write_buffer_size=LEVELDB_WRITE_BUFFER)

    def _write(self, items: List[Tuple[bytes, bytes]]) -> None:
        with self.db.write_batch() as batch:
            for key, value in items:
                batch.put(key, value)

    def close(self) -> None:
        # Move the last records from the write-ahead log into a table: compacting a range past
        # every key flushes the memory table and compacts nothing else. Readers of the database
        # then open it without replaying a log.
        self.db.compact_range(start=b"\xff" * 16)
        self.db.close()


def check_target(path: str) -> None:
    """ConfigError when ``path`` exists or its parent folder does not."""
    if os.path.lexists(path):
        raise ConfigError(f"DB '{path}' already exists; remove it or give another path (Caffe's "
                          f"convert_imageset refuses too)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"DB '{path}': the folder '{parent}' does not exist")


@contextlib.contextmanager
def new_database(path: str, backend: str) -> Iterator[_Writer]:
    """A writer into a new database at ``path`` (``backend`` LMDB or LEVELDB), renamed into
    place when the block ends without an error; removed otherwise."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    check_target(path)
    temporary = f"{path.rstrip(os.sep)}.incomplete-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    writer = None
    try:
        writer = _LMDBWriter(temporary) if backend == LMDB else _LevelDBWriter(temporary)
        yield writer
        writer.commit()
        writer.close()
        writer = None
        os.rename(temporary, path)
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        shutil.rmtree(temporary, ignore_errors=True)
