"""Databases of Datum records in ``tmp_path`` for the DBDataLayer and convert-db tests.

:func:`converted` writes PNG images and converts them with ``caffe-layers-convert-db`` (in this
process); :func:`write_records` writes any ``(key, value)`` records straight into a new LMDB or
LevelDB, for records the converter would never write (not Datums, float_data, odd shapes).
Labels are the line index, so every test can tell exactly which records arrived.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence, Tuple

import lmdb
import numpy as np
import plyvel
from image_data import Dataset, write_dataset

from caffe_layers.datum import serialize_datum
from caffe_layers.tools import convert_db

LAYER = "DBDataLayer"


def converted(tmp_path: Path, count: int = 20, size: Tuple[int, int] = (12, 14), *,
              backend: str = "lmdb", name: str = "db", extra: Sequence[str] = (),
              **dataset_options) -> Tuple[str, Dataset]:
    """``(database path, dataset)``: ``count`` PNG images converted into a new database."""
    dataset = write_dataset(tmp_path, count, size, root_folder=str(tmp_path),
                            list_name=f"{name}.txt", folder=f"{name}_images", **dataset_options)
    path = tmp_path / name
    status = convert_db.main([f"{tmp_path}/", str(dataset.list_path), str(path), "--backend",
                              backend, "--workers", "1", "-q", *extra])
    assert status == 0
    return str(path), dataset


def write_records(path: Path, records: Iterable[Tuple[bytes, bytes]],
                  backend: str = "lmdb") -> str:
    """A new database at ``path`` holding ``records`` (keys need not be sorted)."""
    if backend == "lmdb":
        with lmdb.open(str(path), map_size=1 << 28) as env, env.begin(write=True) as txn:
            for key, value in records:
                txn.put(key, value)
    else:
        db = plyvel.DB(str(path), create_if_missing=True)
        for key, value in records:
            db.put(key, value)
        db.close()
    return str(path)


def read_records(path, backend: str = "lmdb") -> list:
    """``[(key, value)]`` of a database, in key order (LevelDB opened itself: nobody else may)."""
    if backend == "lmdb":
        with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
            return list(txn.cursor())
    db = plyvel.DB(str(path))
    try:
        return list(db)
    finally:
        db.close()


def raw_record(index: int, pixels: np.ndarray, label: int | None = None) -> Tuple[bytes, bytes]:
    """``(key, Datum)`` of ``(C, H, W)`` uint8 ``pixels`` at position ``index``."""
    key = b"%08d_raw" % index
    return key, serialize_datum(pixels.tobytes(), index if label is None else label,
                                pixels.shape)


def params(source: str, **keys) -> str:
    keys = {"source": source, "batch_size": 4, "workers": 0, **keys}
    return json.dumps(keys)


def chw(image: np.ndarray) -> np.ndarray:
    """An HWC image as the ``(C, H, W)`` float32 a transform-free layer outputs."""
    return image.transpose(2, 0, 1).astype(np.float32)
