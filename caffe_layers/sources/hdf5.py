"""Caffe's HDF5Data source: a list of ``.h5`` files, one dataset per top, read a few rows at a time.

Caffe's rules (CAFFE.md, "HDF5Data"): ``source`` is a text file of paths separated by whitespace,
relative to the working directory; each file holds one dataset per top, named like the top; all of
a file's datasets have the same number of rows (axis 0); a top's row shape is the same in every
file; integer data becomes float. Unlike Caffe, nothing loads a whole file: :class:`HDF5Files`
holds only metadata (picklable, numpy-backed, no open handle) and :class:`HDF5Reader`, created in
each process that reads, opens its own handles on first use and reads only the rows of a batch.

How rows are read (measured, ``scripts/bench_hdf5.py order``): h5py's fancy indexing costs
10-40x more than slices on chunked datasets, so a chunked dataset is read one slice per group of
neighbouring chunks (each chunk is decompressed once per batch and a slice never spans more than
``MAX_SPAN_BYTES`` unless a single row does), a contiguous dataset with one fancy-index call (or
one slice when the rows are a run).
"""

from __future__ import annotations

import atexit
import dataclasses
import math
import os
import weakref
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from caffe_layers.errors import ConfigError, DataError, first_few
from caffe_layers.files import is_url, open_random_access, read_source, shown
from caffe_layers.sources.arrays import is_numeric

MAX_SPAN_BYTES = 8 << 20  # one slice read covers at most this much beyond the rows it needs
CONTIGUOUS_BLOCK_BYTES = 1 << 20  # shuffle block of a contiguous dataset (h5py's largest chunk)
MAX_OPEN_FILES = 4  # per process; each with its own chunk cache
MAX_CACHE_BYTES = 32 << 20  # chunk cache per dataset (HDF5's default is 1 MiB)


def read_file_list(source: str, storage_options: Mapping[str, Any] | None = None) -> List[str]:
    """The ``.h5`` paths of Caffe's source file: whitespace-separated, as Caffe's ``>>`` reads.

    ``source`` and the paths it lists may be URLs (each as written: relative paths are local).
    """
    source = os.fspath(source)
    text = read_source(source, "HDF5 file list", storage_options)
    paths = [os.fsdecode(token) for token in text.split()]
    if not paths:
        raise ConfigError(f"source: the HDF5 file list '{shown(source)}' lists no files; write "
                          f"one .h5 path per line")
    return paths


_remote_handles: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_remote_handles() -> None:
    """h5py crashes at interpreter exit on a file over a Python file object left open."""
    for handle in list(_remote_handles):
        handle.close()


def open_h5(path: str, storage_options: Mapping[str, Any] | None = None, **kwargs):
    """``h5py.File(path, "r", **kwargs)`` of a local path or a URL (read by byte ranges through
    :class:`~caffe_layers.files.random_access.RemoteFile`); OSError if not HDF5, DataError if a
    URL cannot be read."""
    return _open_h5(path, storage_options, **kwargs)[0]


def _open_h5(path: str, storage_options: Mapping[str, Any] | None = None, **kwargs) -> tuple:
    """``(h5py.File, its RemoteFile or None for a local path)``."""
    import h5py

    target = open_random_access(path, "HDF5 file", storage_options=storage_options)
    handle = h5py.File(target, "r", **kwargs)
    if isinstance(target, str):
        return handle, None
    _remote_handles.add(handle)
    return handle, target


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What setup learns about one dataset: row shape, dtype, rows per chunk (0: contiguous)."""

    rows: int
    row_shape: Tuple[int, ...]
    dtype: str
    chunk_rows: int

    @property
    def row_bytes(self) -> int:
        return max(1, int(np.prod(self.row_shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize)


def _dataset_info(handle, path: str, top: str) -> DatasetInfo:
    """``path`` names the file in messages."""
    import h5py

    found = handle.get(top)
    if not isinstance(found, h5py.Dataset):
        names = ", ".join(sorted(handle.keys())) or "nothing"
        what = "no dataset" if found is None else "a group, not a dataset,"
        raise DataError(f"{path}: has {what} named '{top}' (it holds: {names}); name the datasets "
                        f"like the tops, or list them in top order with tops: [...]")
    if found.ndim == 0:
        raise DataError(f"{path}: dataset '{top}' is a scalar; it needs one row per sample "
                        f"along axis 0")
    if not is_numeric(found.dtype):
        raise DataError(f"{path}: dataset '{top}' has dtype {found.dtype}; tops are float32, so "
                        f"it must hold numbers (bool, integer or float)")
    chunk_rows = found.chunks[0] if found.chunks else 0
    return DatasetInfo(int(found.shape[0]), tuple(int(d) for d in found.shape[1:]),
                       found.dtype.str, int(chunk_rows))


def _scan_file(path: str, tops: Sequence[str], storage_options: Mapping[str, Any] | None = None
               ) -> Tuple[DatasetInfo, ...]:
    name = shown(path)
    if not is_url(path) and not os.path.isfile(path):
        raise DataError(f"{path}: no such file (paths in the source list are relative to the "
                        f"working directory '{os.getcwd()}', as in Caffe)")
    try:
        with open_h5(path, storage_options) as handle:
            infos = tuple(_dataset_info(handle, name, top) for top in tops)
    except OSError as exc:
        raise DataError(f"{name}: not a readable HDF5 file ({exc})") from None
    rows = {top: info.rows for top, info in zip(tops, infos)}
    if len(set(rows.values())) > 1:
        counts = ", ".join(f"'{t}' {n}" for t, n in rows.items())
        raise DataError(f"{name}: the datasets have different numbers of rows ({counts}); every "
                        f"top needs one row per sample")
    return infos


def _check_row_shapes(paths: Sequence[str], tops: Sequence[str], infos: list) -> List[str]:
    problems = []
    for path, file_infos in zip(paths[1:], infos[1:]):
        for top, info, first in zip(tops, file_infos, infos[0]):
            if info.row_shape != first.row_shape:
                problems.append(f"{shown(path)}: dataset '{top}' has rows shaped "
                                f"{info.row_shape} but '{shown(paths[0])}' has {first.row_shape}; "
                                f"a top's rows must have the same shape in every file")
    return problems


def _raise(source: str, problems: List[str]) -> None:
    if problems:
        raise DataError(f"source '{source}': {len(problems)} problem(s) with the HDF5 files:\n  "
                        + first_few(problems, "\n  "))


@dataclasses.dataclass(frozen=True, eq=False)
class HDF5Files:
    """The files of one source list: paths, where each file's rows start, and dataset metadata.

    Sample ``i`` is row ``i - offsets[f]`` of file ``f``, the file with
    ``offsets[f] <= i < offsets[f + 1]``. ``infos[f][t]`` describes top ``t`` in file ``f``.
    ``source`` names the list in messages (a URL without its credentials); ``storage_options``
    go to the storage client of the files that are URLs.
    """

    source: str
    paths: Tuple[str, ...]
    tops: Tuple[str, ...]
    offsets: np.ndarray
    infos: Tuple[Tuple[DatasetInfo, ...], ...]
    storage_options: Mapping[str, Any] | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def scan(cls, source: str, tops: Sequence[str],
             storage_options: Mapping[str, Any] | None = None) -> HDF5Files:
        """Read the list and every file's metadata; one DataError lists every bad file."""
        paths = read_file_list(source, storage_options)
        name = shown(os.fspath(source))
        infos, problems = [], []
        for path in paths:
            try:
                infos.append(_scan_file(path, tops, storage_options))
            except DataError as exc:
                problems.append(str(exc))
        _raise(name, problems)
        _raise(name, _check_row_shapes(paths, tops, infos))
        offsets = np.zeros(len(paths) + 1, np.int64)
        np.cumsum([file_infos[0].rows for file_infos in infos], out=offsets[1:])
        if offsets[-1] == 0:
            raise DataError(f"source '{name}': the HDF5 files hold no rows")
        offsets.flags.writeable = False
        return cls(name, tuple(paths), tuple(tops), offsets, tuple(infos), storage_options)

    @classmethod
    def single(cls, path: str, tops: Sequence[str],
               storage_options: Mapping[str, Any] | None = None) -> HDF5Files:
        """One ``.h5`` file without a list (e.g. an attached source); DataError if unusable."""
        path = os.fspath(path)
        infos = _scan_file(path, tops, storage_options)
        offsets = np.array([0, infos[0].rows], np.int64)
        offsets.flags.writeable = False
        return cls(shown(path), (path,), tuple(tops), offsets, (infos,), storage_options)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def row_shape(self, top: str) -> Tuple[int, ...]:
        return self.infos[0][self.tops.index(top)].row_shape

    def locate(self, indices: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(file numbers, rows)`` of global sample ``indices``."""
        files = np.searchsorted(self.offsets, indices, side="right") - 1
        return files, indices - self.offsets[files]

    def where(self, index: int) -> str:
        """``'file.h5' row r`` of sample ``index``, for messages."""
        files, rows = self.locate(np.array([index]))
        return f"'{shown(self.paths[files[0]])}' row {rows[0]}"

    def _widest(self, number: int) -> DatasetInfo:
        return max(self.infos[number], key=lambda info: info.row_bytes)

    def block_rows(self, number: int) -> int:
        """File ``number``'s shuffle block: the chunk length of its widest dataset, or for a
        contiguous one as many rows as fill ``CONTIGUOUS_BLOCK_BYTES``."""
        widest = self._widest(number)
        return widest.chunk_rows or max(1, CONTIGUOUS_BLOCK_BYTES // widest.row_bytes)

    def block_runs(self, block_rows: int | None = None) -> Tuple[np.ndarray, int]:
        """The shuffle blocks as runs ``(first sample, block length, blocks)`` (blocks never
        span files; a file's last block may be shorter) and the largest block.

        ``block_rows`` overrides the per-file default of :meth:`block_rows`.
        """
        runs, largest = [], 1
        for number in range(len(self.paths)):
            first, end = int(self.offsets[number]), int(self.offsets[number + 1])
            size = block_rows or self.block_rows(number)
            whole, rest = divmod(end - first, size)
            if whole:
                runs.append((first, size, whole))
            if rest:
                runs.append((first + whole * size, rest, 1))
            if end > first:
                largest = max(largest, min(size, end - first))
        return np.array(runs, np.int64).reshape(-1, 3), largest

    def block_starts(self, block_rows: int | None = None) -> Tuple[np.ndarray, int]:
        """First sample of every shuffle block (see :meth:`block_runs`) and the largest block."""
        runs, largest = self.block_runs(block_rows)
        return np.concatenate([np.arange(first, first + length * count, length)
                               for first, length, count in runs]), largest

    def describe(self) -> str:
        layouts = {_layout(info.chunk_rows) for file_infos in self.infos for info in file_infos}
        return (f"{len(self)} rows of {', '.join(self.tops)} in {len(self.paths)} HDF5 file(s) "
                f"from {self.source} ({', '.join(sorted(layouts))})")


def _layout(chunk_rows: int) -> str:
    if chunk_rows == 0:
        return "contiguous"
    return f"chunks of {chunk_rows} row{'s' if chunk_rows > 1 else ''}"


def plan_reads(rows: np.ndarray, chunk_rows: int, row_bytes: int,
               span_bytes: int = MAX_SPAN_BYTES) -> List[Tuple[int, int, bool]]:
    """How to read the sorted unique ``rows`` of one dataset: ``(lo, hi, fancy)`` groups.

    Group ``rows[lo:hi]`` is read with one fancy-index call when ``fancy``, else with the slice
    ``rows[lo]:rows[hi - 1] + 1`` (from which the wanted rows are picked). Contiguous datasets
    (``chunk_rows == 0``) take one call; chunked ones one slice per run of neighbouring chunks,
    at most ``span_bytes`` long unless the wanted rows themselves are a run.
    """
    count = len(rows)
    if count == 0:
        return []
    if chunk_rows == 0:
        return [(0, count, rows[-1] - rows[0] + 1 != count)]
    chunks = rows // chunk_rows
    cuts = np.flatnonzero(np.diff(chunks)) + 1
    starts = np.concatenate([[0], cuts]).tolist()
    ends = np.concatenate([cuts, [count]]).tolist()
    max_rows = max(1, span_bytes // max(1, row_bytes))
    groups: List[Tuple[int, int, bool]] = []
    for lo, hi in zip(starts, ends):
        if int(rows[hi - 1] - rows[lo]) + 1 > max_rows:
            groups.extend(_runs(rows, lo, hi))
            continue
        if groups and chunks[lo] - chunks[groups[-1][1] - 1] <= 1 \
                and int(rows[hi - 1] - rows[groups[-1][0]]) + 1 <= max_rows:
            groups[-1] = (groups[-1][0], hi, False)
        else:
            groups.append((lo, hi, False))
    return groups


def _runs(rows: np.ndarray, lo: int, hi: int) -> List[Tuple[int, int, bool]]:
    """``rows[lo:hi]`` as runs of consecutive rows, one slice each."""
    cuts = (np.flatnonzero(np.diff(rows[lo:hi]) != 1) + 1 + lo).tolist()
    bounds = [lo] + cuts + [hi]
    return [(a, b, False) for a, b in zip(bounds[:-1], bounds[1:])]


def cache_bytes(infos: Sequence[DatasetInfo], window: int) -> int:
    """Chunk cache per dataset for a file: the chunks a shuffle window touches, capped.

    A window's rows are spread over several batches, so without a cache each of its chunks
    would be read (and decompressed) once per batch instead of once. Chunks of one row are read
    once anyway: they keep HDF5's default of 1 MiB.
    """
    needed = 1 << 20
    for info in infos:
        if info.chunk_rows > 1:
            chunks = math.ceil(window / info.chunk_rows) + 2
            needed = max(needed, chunks * info.chunk_rows * info.row_bytes)
    return min(needed, MAX_CACHE_BYTES)


class HDF5Reader:
    """This process's reads: opens files on first use (at most ``MAX_OPEN_FILES`` at a time).

    Create it in the process that reads (a prefetch worker's ``open``): h5py handles must never
    cross a fork. ``window`` (the shuffle window, 0 without shuffling) sizes the chunk caches.
    """

    def __init__(self, files: HDF5Files, window: int = 0) -> None:
        self.files = files
        self.window = window
        self._open: OrderedDict = OrderedDict()  # file number -> (h5py.File, datasets, remote)
        self._buffers: Dict[str, np.ndarray] = {}

    def read_ahead(self, batches: Sequence[np.ndarray]) -> None:
        """Start reading the chunks of the rows of ``batches`` (this batch's and those after it)
        of files at URLs, all at once in the background (RemoteFile.prefetch); local files:
        nothing. Files are opened for this batch only: a later batch's files that are not open
        wait for it (opening them now could close one this batch reads). A problem is left for
        the reads themselves to report."""
        spans: Dict[int, list] = {}
        for position, indices in enumerate(batches):
            unique = np.unique(np.asarray(indices, np.int64))
            numbers, rows = self.files.locate(unique)
            for number in np.unique(numbers).tolist():
                if is_url(self.files.paths[number]) and (position == 0 or number in self._open):
                    spans.setdefault(number, []).extend(
                        self._spans(number, rows[numbers == number]))
        for number, found in spans.items():
            remote = self._open[number][2] if number in self._open else None
            if remote is not None:
                remote.prefetch(found)

    def _spans(self, number: int, rows: np.ndarray) -> list:
        """The byte spans in file ``number`` of the chunks (or contiguous rows) of ``rows``."""
        try:
            datasets = self._datasets(number)
        except (DataError, OSError):
            return []
        found = []
        for dataset, info in zip(datasets, self.files.infos[number]):
            try:
                found += _row_spans(dataset, info, rows)
            except (OSError, ValueError, AttributeError, TypeError):
                continue  # e.g. an h5py without chunk queries: read as needed
        return found

    def read(self, indices: np.ndarray, outs: Dict[str, np.ndarray]) -> None:
        """Write samples ``indices`` of each top into ``outs[top]`` (float32, one row each)."""
        unique, inverse = np.unique(np.asarray(indices, np.int64), return_inverse=True)
        inverse = inverse.reshape(-1)
        numbers, rows = self.files.locate(unique)
        cuts = np.flatnonzero(np.diff(numbers)) + 1
        buffers = {top: self._buffer(top, len(unique)) for top in outs}
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(unique)]):
            self._read_file(int(numbers[lo]), rows[lo:hi], lo, buffers)
        for top, out in outs.items():
            np.take(buffers[top], inverse, axis=0, out=out)

    def _buffer(self, top: str, count: int) -> np.ndarray:
        buffer = self._buffers.get(top)
        if buffer is None or len(buffer) < count:
            shape = (count,) + self.files.row_shape(top)
            buffer = self._buffers[top] = np.empty(shape, np.float32)
        return buffer[:count]

    def _read_file(self, number: int, rows: np.ndarray, at: int, buffers: dict) -> None:
        datasets = self._datasets(number)
        for top, buffer in buffers.items():
            t = self.files.tops.index(top)
            info = self.files.infos[number][t]
            try:
                for lo, hi, fancy in plan_reads(rows, info.chunk_rows, info.row_bytes):
                    _read_group(datasets[t], rows[lo:hi], fancy, buffer[at + lo:at + hi])
            except OSError as exc:
                raise DataError(f"{shown(self.files.paths[number])}: cannot read rows {rows[0]}"
                                f"...{rows[-1]} of dataset '{top}': {exc}") from exc

    def _datasets(self, number: int) -> tuple:
        if number in self._open:
            self._open.move_to_end(number)
            return self._open[number][1]

        while len(self._open) >= MAX_OPEN_FILES:
            self._open.popitem(last=False)[1][0].close()
        path = self.files.paths[number]
        try:
            handle, remote = _open_h5(path, self.files.storage_options,
                                      rdcc_nbytes=cache_bytes(self.files.infos[number],
                                                              self.window),
                                      rdcc_nslots=10007, rdcc_w0=0.0)
        except OSError as exc:
            raise DataError(f"{shown(path)}: cannot open the HDF5 file: {exc}") from exc
        try:
            datasets = tuple(handle[top] for top in self.files.tops)
        except KeyError as exc:
            handle.close()
            raise DataError(f"{shown(path)}: a dataset named like the tops "
                            f"{list(self.files.tops)} is gone since setup ({exc}); was the file "
                            f"replaced during training?") from exc
        self._open[number] = (handle, datasets, remote)
        return datasets

    def close(self) -> None:
        """Close every handle; idempotent."""
        while self._open:
            self._open.popitem()[1][0].close()
        self._buffers.clear()


def _row_spans(dataset, info: DatasetInfo, rows: np.ndarray) -> list:
    """``(start, stop)`` byte spans in the file of the chunks holding ``rows`` (sorted) of
    ``dataset`` (chunks of whole rows only), or of each run of its rows if contiguous."""
    if not info.chunk_rows:
        offset = dataset.id.get_offset()
        if offset is None:
            return []
        return [(offset + int(rows[lo]) * info.row_bytes,
                 offset + (int(rows[hi - 1]) + 1) * info.row_bytes)
                for lo, hi, _ in _runs(rows, 0, len(rows))]
    if tuple(dataset.chunks[1:]) != tuple(dataset.shape[1:]):
        return []  # chunks that split rows: read as needed
    spans = []
    for chunk in np.unique(rows // info.chunk_rows).tolist():
        where = dataset.id.get_chunk_info_by_coord(
            (chunk * info.chunk_rows,) + (0,) * (dataset.ndim - 1))
        if where.byte_offset is not None:  # None: never written (fill value)
            spans.append((where.byte_offset, where.byte_offset + where.size))
    return spans


def _read_group(dataset, rows: np.ndarray, fancy: bool, out: np.ndarray) -> None:
    if fancy:
        out[...] = dataset[rows]
        return
    first = int(rows[0])
    block = dataset[first:int(rows[-1]) + 1]
    out[...] = block if len(block) == len(rows) else block[rows - first]
