"""LevelDB databases, read by several processes although LevelDB admits one at a time.

LevelDB takes an exclusive lock (its ``LOCK`` file) for as long as a process has a database open,
so Caffe's ``Data`` layer and the layer's own workers cannot all open one directory. Its table
files are never modified once written, though, so each reading process opens a *view*: a private
directory holding a hard link (a symbolic link across file systems) to every file of the database
but ``LOCK`` and the info logs. LevelDB then writes its own ``LOCK``, log and manifest into the
view and reads the tables through the links; the database itself is untouched.

The layer's process reads the keys through a view too (never the database itself: a second
LevelDB instance inside a ``caffe`` process whose own ``Data`` layer has the database open would
get the lock, which is per process, and corrupt it). Views live in the temporary directory as
``caffe_layers-leveldb-<pid>-*``; each is removed when its reader closes, and views of processes
that no longer run (killed workers, a ``caffe`` that never cleans up) are removed by the next
view made on the machine. A database fresh from ``convert_imageset`` keeps its last records (up to
256 MiB) in its write-ahead log, which every view then turns into a table of its own when it
opens; ``caffe-layers-convert-db`` leaves no log behind.

Needs ``plyvel`` (``pip install caffe-layers[leveldb]``). Reading the keys at setup reads the
whole database once: LevelDB stores values beside their keys.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from typing import Callable, Iterator, Sequence

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.sources.db import Database, DatabaseReader, KeyIndex

VIEW_PREFIX = "caffe_layers-leveldb-"
_NOT_LINKED = ("LOCK", "LOG", "LOG.old")
_VIEW_NAME = re.compile(re.escape(VIEW_PREFIX) + r"(\d+)-")


def _plyvel():
    try:
        import plyvel
    except ImportError:
        raise ConfigError("backend: LEVELDB needs the plyvel package: pip install "
                          "'caffe-layers[leveldb]' (or pip install plyvel)") from None
    return plyvel


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_views(directory: str | None = None) -> None:
    """Remove the views of processes that no longer run."""
    directory = directory or tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            match = _VIEW_NAME.match(name)
            if match and not _running(int(match.group(1))):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def make_view(source: str) -> str:
    """A new private directory linking every file of the database ``source``; its path."""
    remove_stale_views()
    view = tempfile.mkdtemp(prefix=f"{VIEW_PREFIX}{os.getpid()}-")
    try:
        for name in os.listdir(source):
            path = os.path.join(source, name)
            if name in _NOT_LINKED or not os.path.isfile(path):
                continue
            try:
                os.link(path, os.path.join(view, name))
            except OSError:  # another file system, or not allowed to link another's file
                os.symlink(os.path.abspath(path), os.path.join(view, name))
    except BaseException:
        shutil.rmtree(view, ignore_errors=True)
        raise
    return view


def _open(path: str, source: str):
    plyvel = _plyvel()
    try:
        return plyvel.DB(path, create_if_missing=False)
    except plyvel.Error as exc:
        raise DataError(f"source: cannot open the LevelDB database '{source}': {exc}") from None


@contextlib.contextmanager
def _view_opened(source: str) -> Iterator:
    """The database opened through a new view; closed and the view removed at the end."""
    view = make_view(source)
    try:
        db = _open(view, source)
        try:
            yield db
        finally:
            db.close()
    finally:
        shutil.rmtree(view, ignore_errors=True)


def _table_bytes(source: str) -> int:
    return sum(entry.stat().st_size for entry in os.scandir(source)
               if entry.name.endswith((".ldb", ".sst", ".log")) and entry.is_file())


def scan_leveldb(source: str) -> tuple:
    """``(KeyIndex, size in bytes)`` of the LevelDB database ``source``."""
    with _view_opened(source) as db:
        keys = KeyIndex.collect(db.iterator(include_value=False))
    return keys, _table_bytes(source)


class LevelDBReader(DatabaseReader):
    """Reads a LevelDB database through this process's own view of it."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._view = make_view(database.source)
        try:
            self._db = _open(self._view, database.source)
        except BaseException:
            shutil.rmtree(self._view, ignore_errors=True)
            raise

    @contextlib.contextmanager
    def batch(self, indices: Sequence[int] = ()) -> Iterator[Callable[[int], bytes]]:
        keys, db = self.database.keys, self._db

        def record(index: int) -> bytes:
            value = db.get(keys.key(index))
            if value is None:
                raise self._missing(index)
            return value

        yield record

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            shutil.rmtree(self._view, ignore_errors=True)
