"""scripts/bench_db.py's reading costs: shuffled against sequential reads with the database's
pages evicted from the page cache, and the setup (key index) of a 1,000,000-record database.

Databases are written straight with lmdb/plyvel from synthetic Datums (``synthetic_db``): the
reading cost depends on record sizes and order, not on the pixels. The page cache is emptied for
a database with ``posix_fadvise(DONTNEED)`` on each of its files (dropping every cache needs root
and ``/proc/sys/vm/drop_caches``, which this machine does not allow), after closing every map of
it: pages mapped by a process are not evicted.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

READS = {  # name: (record (C, H, W), records, encoded)
    "raw 3x256x256": ((3, 256, 256), 4096, False),
    "jpeg 256x256": ((3, 256, 256), 16384, True),
    "raw 3x32x32": ((3, 32, 32), 262144, False),
}
QUICK_READS = {"raw 3x32x32": ((3, 32, 32), 4096, False)}
WINDOWS_READ = 2  # each order reads as many records as two shuffle windows hold
SETUP_RECORDS = 1_000_000
KEY = b"%08d_train/n%08d/n%08d_%d.JPEG"  # convert_imageset's keys of an ImageNet list


def evict(directory: str) -> None:
    """Drop the page-cache pages of every file of ``directory`` (none may be mapped)."""
    for entry in os.scandir(directory):
        if entry.is_file():
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _value(rng: np.random.Generator, shape: tuple, encoded: bool, jpeg: bytes | None) -> bytes:
    from caffe_layers.datum import serialize_datum

    if encoded:
        return serialize_datum(jpeg, int(rng.integers(1000)))
    pixels = rng.integers(0, 256, int(np.prod(shape)), np.uint8).tobytes()
    return serialize_datum(pixels, int(rng.integers(1000)), shape)


def synthetic_db(path: str, shape: tuple, count: int, encoded: bool = False,
                 backend: str = "lmdb", tick=None) -> str:
    """A database of ``count`` Datums of ``shape`` (JPEG-encoded when ``encoded``), once."""
    marker = os.path.join(os.path.dirname(path), os.path.basename(path) + ".json")
    spec = {"shape": list(shape), "count": count, "encoded": encoded, "backend": backend}
    if os.path.isdir(path) and os.path.isfile(marker):
        with open(marker) as f:
            if json.load(f) == spec:
                return path
    rng = np.random.default_rng(0)
    jpeg = _jpeg(shape) if encoded else None
    values = [_value(rng, shape, encoded, jpeg) for _ in range(min(count, 64))]
    keys = (KEY % (i, i // 1300, i // 1300, i) for i in range(count))
    if backend == "lmdb":
        _write_lmdb(path, keys, values, count, tick)
    else:
        _write_leveldb(path, keys, values, count, tick)
    with open(marker, "w") as f:
        json.dump(spec, f)
    return path


def _jpeg(shape: tuple) -> bytes:
    import cv2
    from bench_workload import natural_image

    image = natural_image(np.random.default_rng(1), shape[2], shape[1])
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _write_lmdb(path: str, keys, values: list, count: int, tick) -> None:
    import lmdb

    size = sum(len(v) for v in values) / len(values)
    with lmdb.open(path, map_size=int(count * (size + 200) * 1.5) + (1 << 26)) as env:
        pending = 0
        txn = env.begin(write=True)
        for i, key in enumerate(keys):
            txn.put(key, values[i % len(values)], append=True)
            pending += 1
            if pending == 10000:
                txn.commit()
                txn, pending = env.begin(write=True), 0
                tick and tick(10000)
        txn.commit()


def _write_leveldb(path: str, keys, values: list, count: int, tick) -> None:
    import plyvel

    db = plyvel.DB(path, create_if_missing=True)
    batch = db.write_batch()
    for i, key in enumerate(keys):
        batch.put(key, values[i % len(values)])
        if (i + 1) % 10000 == 0:
            batch.write()
            batch = db.write_batch()
            tick and tick(10000)
    batch.write()
    db.compact_range(start=b"\xff" * 16)
    db.close()


def _pipeline(source: str, shape: tuple, order: str):
    from caffe_layers import config
    from caffe_layers.params import DBParams
    from caffe_layers.pipeline import db as pipeline

    keys = {"source": source, "batch_size": 64, "shuffle": order != "sequential"}
    if shape[1] >= 227:
        keys["crop_size"] = 227
    if order == "uniform":
        keys["shuffle_block"] = 1
    params = config.load(DBParams, json.dumps(keys), where="bench_db")
    return pipeline.build(params, train=False), params.shuffle


def batches_to_read(source: str, shape: tuple) -> int:
    """Batches covering ``WINDOWS_READ`` windows of the default block shuffle: a steady state in
    which each block read is used whole, as over an epoch."""
    built, _ = _pipeline(source, shape, "blocks")
    return max(8, -(-WINDOWS_READ * built.order(True, 0).window // 64))


def read_cost(source: str, shape: tuple, batches: int, order: str) -> dict:
    """ms per batch of 64 reading ``source`` in ``order`` (sequential, blocks, uniform) in this
    process, the records' pixels transformed as in TEST (centre crop 227 of 256), cache evicted.
    """
    from caffe_layers.prefetch import SamplePlan
    from caffe_layers.sampling import SampleStream

    built, shuffle = _pipeline(source, shape, order)
    plan = SamplePlan(SampleStream(built.order(shuffle, 0), 64), 0)
    out = {spec.name: np.empty(spec.shape, spec.dtype) for spec in built.layouts[2]}
    evict(source)
    producer = built.producer
    started = time.perf_counter()
    producer.open(0, 1)
    try:
        for number in range(batches):
            producer.fill(out, plan.task(number))
    finally:
        producer.close()
    seconds = time.perf_counter() - started
    return {"ms_per_batch": 1e3 * seconds / batches, "description": built.description}


def setup_cost(source: str) -> dict:
    """Seconds to index ``source`` (Database.scan) with its cache evicted, then warm, and the
    whole layer setup's pipeline build; the index's size."""
    from caffe_layers import config
    from caffe_layers.params import DBParams
    from caffe_layers.pipeline import db as pipeline
    from caffe_layers.sources.db import Database

    evict(source)
    started = time.perf_counter()
    database = Database.scan(source)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    Database.scan(source)
    warm = time.perf_counter() - started
    params = config.load(DBParams, json.dumps({"source": source, "batch_size": 64,
                                               "shuffle": True}), where="bench_db")
    started = time.perf_counter()
    pipeline.build(params, train=True).order(True, 0)(0)
    build = time.perf_counter() - started
    return {"records": len(database), "cold_s": cold, "warm_s": warm, "build_s": build,
            "index_mb": database.keys.nbytes() / 1e6, "db_mb": database.size_bytes / 1e6}
