"""HDF5DataLayer: memory stays flat as the file grows, and what the chunk-aware shuffle saves.

    python scripts/bench_hdf5.py memory [--sizes-mb 100,500,1000,2000] [--batches 300]
    python scripts/bench_hdf5.py order [--rows 4096] [--batches 100]

memory: for each size, writes one .h5 file of that size (rows of 3x32x32 float32, chunks of 64
rows; one directory reused, each file deleted before the next, the directory at the end), then
in a fresh process builds a net holding HDF5DataLayer (2 workers, shuffle, batch 64), reads the
batches and reports the peak RSS of the layer process plus its workers; and, in another fresh
process, the peak RSS of Caffe's way: the whole dataset read with h5py ``dataset[...]``. Free
disk and memory are checked first; a whole-file read that would need more than half the
available memory is skipped.

How RSS is counted: ``VmHWM`` (peak resident set) of the consumer, plus for each worker its
``VmHWM`` minus its ``RssShmem`` read just before the engine closes: the batch slots are one
shared-memory block that the consumer maps and touches whole, so they are counted once, in the
consumer. Pages a forked worker shares copy-on-write with the consumer (the interpreter, numpy,
h5py) are counted in every process: an overestimate, but one that does not grow with the file.

order: read cost per batch of 64 rows (mean ms, one process, file in the page cache) from a
contiguous dataset, one chunked 1 row per chunk, one chunked 64 rows per chunk and the same
gzip-compressed, in three orders: sequential (no shuffle), a uniform permutation (what
``shuffle_block: 1`` gives) and the default chunk-aware order (blocks of one chunk, or 1 MiB of
rows when contiguous, in windows of 4 blocks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without an install
sys.path.insert(0, str(REPO / "scripts"))
from bench_common import proc_status_kib  # noqa: E402

ROW = (3, 32, 32)
ROW_BYTES = int(np.prod(ROW)) * 4
CHUNK_ROWS = 64
BATCH = 64
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


# --- machine checks -----------------------------------------------------------------------------


def available_memory() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def status(pid: int) -> dict:
    """``VmHWM``, ``VmRSS`` and ``RssShmem`` of ``pid`` in bytes."""
    found = proc_status_kib(pid, ("VmHWM", "VmRSS", "RssShmem"))
    return {key: kib * 1024 for key, kib in found.items()}


# --- writing files ------------------------------------------------------------------------------


def write_file(path: Path, size_bytes: int, chunk_rows: int = CHUNK_ROWS) -> int:
    """An .h5 file of about ``size_bytes`` (data rows + labels) written piece by piece."""
    import h5py

    rows = max(BATCH, size_bytes // ROW_BYTES)
    piece = 2048
    rng = np.random.default_rng(0)
    template = rng.random((piece,) + ROW, dtype=np.float32)
    with h5py.File(path, "w") as f:
        data = f.create_dataset("data", (rows,) + ROW, np.float32, chunks=(chunk_rows,) + ROW)
        f.create_dataset("label", data=(np.arange(rows) % 10).astype(np.float32))
        for start in range(0, rows, piece):
            stop = min(rows, start + piece)
            data[start:stop] = template[:stop - start]
    return rows


# --- memory: the layer vs a whole-file read -------------------------------------------------------


def layer_process(listing: str, batches: int) -> None:
    """Run in a fresh process: build the net, read ``batches``, print the RSS figures as JSON."""
    import caffe_layers.testing

    caffe_layers.testing.install_fake_caffe()
    import caffe

    from caffe_layers.prefetch import close_all

    net_path = Path(listing).with_suffix(".prototxt")
    net_path.write_text(f'''layer {{ name: "d" type: "Python" top: "data" top: "label"
      python_param {{ module: "caffe_layers.layers" layer: "HDF5DataLayer"
      param_str: "{{source: {listing}, batch_size: {BATCH}, shuffle: true, workers: 2}}" }} }}
    ''')
    try:
        net = caffe.Net(str(net_path), caffe.TRAIN)
        started = time.perf_counter()
        for _ in range(batches):
            net.forward()
        seconds = time.perf_counter() - started
        engine = net.layers[0]._engine
        workers = [status(pid) for pid in engine.pids]
        print(json.dumps({"consumer": status(os.getpid()), "workers": workers,
                          "slots": engine._pool.arena.size, "seconds": seconds}))
    finally:
        close_all()


def whole_file_process(path: str) -> None:
    """Run in a fresh process: Caffe's HDF5Data load (every dataset whole), print VmHWM."""
    import h5py

    with h5py.File(path, "r") as f:
        arrays = [f[name][...] for name in ("data", "label")]
    print(json.dumps({"consumer": status(os.getpid()), "bytes": sum(a.nbytes for a in arrays)}))


def run_json(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], env=ENV, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def layer_peak(figures: dict) -> int:
    """Consumer VmHWM + each worker's VmHWM without its shared slots (see module docstring)."""
    return figures["consumer"]["VmHWM"] + sum(w["VmHWM"] - w["RssShmem"]
                                              for w in figures["workers"])


def memory(sizes_mb: list, batches: int, directory: str | None) -> None:
    largest = max(sizes_mb) << 20
    work = Path(tempfile.mkdtemp(prefix="bench_hdf5_", dir=directory))
    free_disk = shutil.disk_usage(work).free
    free_memory = available_memory()
    print(f"free disk {free_disk >> 20} MiB in {work}, available memory {free_memory >> 20} MiB")
    if free_disk < 2 * largest:
        shutil.rmtree(work)
        raise SystemExit(f"needs {2 * largest >> 20} MiB of free disk in {work.parent}")
    rows = []
    try:
        for size in sizes_mb:
            path = work / "bench.h5"
            count = write_file(path, size << 20)
            listing = work / "list.txt"
            listing.write_text(str(path) + "\n")
            layer = run_json("_layer", str(listing), str(batches))
            whole = None
            if size << 20 < free_memory // 2:
                whole = run_json("_whole", str(path))["consumer"]["VmHWM"]
            rows.append((size, count, layer, whole))
            path.unlink()
    finally:
        shutil.rmtree(work)
    print_memory(rows, batches)


def print_memory(rows: list, batches: int) -> None:
    mib = 1 << 20
    print(f"\n{batches} batches of {BATCH} x {ROW} float32, 2 workers, shuffle (chunks of "
          f"{CHUNK_ROWS} rows); peak RSS in MiB")
    print(f"{'file MB':>8} {'rows':>8} {'layer':>7} {'consumer':>9} {'workers':>8} "
          f"{'slots':>6} {'batch/s':>8} {'whole-file read':>16}")
    for size, count, layer, whole in rows:
        workers = sum(w["VmHWM"] - w["RssShmem"] for w in layer["workers"])
        whole_text = f"{whole / mib:.0f}" if whole else "skipped"
        print(f"{size:>8} {count:>8} {layer_peak(layer) / mib:>7.0f} "
              f"{layer['consumer']['VmHWM'] / mib:>9.0f} {workers / mib:>8.0f} "
              f"{layer['slots'] / mib:>6.1f} {batches / layer['seconds']:>8.0f} {whole_text:>16}")
    first, last = rows[0], rows[-1]
    growth = layer_peak(last[2]) / layer_peak(first[2])
    print(f"growth {first[0]} MB -> {last[0]} MB: layer x{growth:.2f}"
          + (f", whole-file read x{last[3] / first[3]:.2f}" if first[3] and last[3] else ""))


# --- order: read cost per batch -----------------------------------------------------------------


def write_layouts(path: Path, rows: int) -> None:
    import h5py

    data = np.random.default_rng(0).random((rows,) + ROW, dtype=np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("contiguous", data=data)
        f.create_dataset("chunks_1", data=data, chunks=(1,) + ROW)
        f.create_dataset("chunks_64", data=data, chunks=(64,) + ROW)
        f.create_dataset("chunks_64_gzip", data=data, chunks=(64,) + ROW, compression="gzip",
                         compression_opts=1)


def read_cost(path: str, name: str, order: str, batches: int) -> float:
    """Mean ms to read one batch of dataset ``name`` in ``order`` (the mean, not the median:
    with a chunk cache, the first batch of a window pays for the batches after it)."""
    from caffe_layers.pipeline.hdf5 import BLOCKS_PER_WINDOW
    from caffe_layers.sampling import BlockShuffledOrder, Order, ShuffledOrder
    from caffe_layers.sources.hdf5 import HDF5Files, HDF5Reader

    files = HDF5Files.single(path, (name,))
    starts, block = files.block_starts()
    window = max(BATCH, BLOCKS_PER_WINDOW * block)
    orders = {"sequential": (Order(len(files)), 0),
              "permutation": (ShuffledOrder(len(files), 1), BATCH),
              "chunk-aware": (BlockShuffledOrder(len(files), starts, window, 1), window)}
    epoch_order, reader_window = orders[order]
    indices = epoch_order(0)
    reader = HDF5Reader(files, reader_window)
    out = {name: np.empty((BATCH,) + ROW, np.float32)}
    count = min(batches, len(indices) // BATCH)
    try:
        started = time.perf_counter()
        for number in range(count):
            reader.read(indices[number * BATCH:(number + 1) * BATCH], out)
        return 1000 * (time.perf_counter() - started) / count
    finally:
        reader.close()


def order(rows: int, batches: int, directory: str | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_hdf5_order_", dir=directory))
    try:
        path = work / "layouts.h5"
        write_layouts(path, rows)
        names = ("contiguous", "chunks_1", "chunks_64", "chunks_64_gzip")
        orders = ("sequential", "permutation", "chunk-aware")
        print(f"\nms per batch of {BATCH} rows of {ROW} float32 ({rows} rows, page cache)")
        print(f"{'dataset':>16} " + " ".join(f"{o:>12}" for o in orders))
        for name in names:
            costs = [read_cost(str(path), name, o, batches) for o in orders]
            print(f"{name:>16} " + " ".join(f"{c:>12.2f}" for c in costs))
    finally:
        shutil.rmtree(work)


def main(argv=None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] in ("_layer", "_whole"):
        if sys.argv[1] == "_layer":
            layer_process(sys.argv[2], int(sys.argv[3]))
        else:
            whole_file_process(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=("memory", "order", "all"), default="all")
    parser.add_argument("--sizes-mb", default="100,500,1000,2000")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rows", type=int, default=4096, help="rows per dataset for `order`")
    parser.add_argument("--dir", default=None, help="where to write the files (default: TMPDIR)")
    args = parser.parse_args(argv)
    if args.mode in ("memory", "all"):
        memory([int(s) for s in args.sizes_mb.split(",")], args.batches, args.dir)
    if args.mode in ("order", "all"):
        order(args.rows, min(args.batches, 100), args.dir)


if __name__ == "__main__":
    main()
