"""``caffe-layers-convert-hdf5``: an image list -> HDF5 shards that Caffe's ``HDF5Data`` reads.

Each shard ``<name>_000.h5, <name>_001.h5, ...`` holds at most ``--shard-size`` samples:

- ``data``  ``(N, C, H, W)`` raw pixels (BGR or gray, 0..255, after the optional resize), float32
  or, with ``--dtype uint8``, 4x smaller (Caffe's HDF5Data and ours convert integers to float);
- ``label`` ``(N,)`` float32 (``(N, K)`` with ``--label-columns K`` > 1), the list's labels.

Datasets are named like the tops they feed and share the first dimension, as HDF5Data wants.
``<name>.txt`` lists the shard paths, one per line, for the layer's ``source`` (Caffe splits it at
whitespace, so the paths may not contain spaces).

Chunks are whole rows along axis 0: ``min(64 rows, 1 MiB // row bytes)`` rows (at least one).
Whole rows mean a batch read touches only the chunks covering its rows and decompresses each once;
a chunk of at most 1 MiB fits h5py's default 1 MiB chunk cache, so consecutive batch reads in one
chunk decompress it once, and a chunk-granular shuffle reads every chunk exactly once; 64 rows
keep chunks of small images large enough that per-chunk overhead stays negligible. Caffe's own
HDF5Data reads whole files, which is fast with any of these chunk sizes. No compression by
default: reading is fastest and Caffe holds the whole shard in memory anyway. ``gzip`` is
readable everywhere; ``lzf`` only by h5py (real Caffe's libhdf5 has no LZF filter).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
from typing import List, Sequence, Tuple

import numpy as np

from caffe_layers.errors import ConfigError
from caffe_layers.tools import _cli, _images, _pool
from caffe_layers.tools.progress import Progress

CHUNK_ROWS = 64
CHUNK_BYTES = 1 << 20
SHARD_BYTES = 1 << 30  # Caffe holds one whole shard in memory, as float32
COMPRESSIONS = ("none", "gzip", "lzf")
DTYPES = ("float32", "uint8")


def chunk_rows(row_bytes: int, rows: int) -> int:
    """Rows per chunk: at most 64 and at most 1 MiB, at least 1, at most ``rows``."""
    return max(1, min(CHUNK_ROWS, CHUNK_BYTES // max(1, row_bytes), rows))


def auto_shard_size(row_shape: Sequence[int]) -> int:
    """Samples per shard so that Caffe's float32 copy of one shard stays within 1 GiB."""
    return max(1, SHARD_BYTES // (4 * int(np.prod(row_shape))))


def shard_paths(out_dir: str, name: str, count: int) -> List[str]:
    """``out_dir/name_000.h5`` ... (at least 3 digits, more when needed)."""
    digits = max(3, len(str(count - 1)))
    return [os.path.join(out_dir, f"{name}_{k:0{digits}d}.h5") for k in range(count)]


def _check_source_paths(paths: Sequence[str]) -> None:
    spaced = [p for p in paths if re.search(r"\s", p)]
    if spaced:
        raise ConfigError(f"the shard path '{spaced[0]}' contains whitespace, but Caffe's "
                          f"HDF5Data splits its source list at whitespace; choose an output "
                          f"folder and --name without spaces")


def _read_block(reader: _images.ImageReader, indices: Sequence[int], skip_bad: bool = False
                ) -> Tuple[np.ndarray, List[int], List[_images.BadImage]]:
    """Images ``indices`` as one ``(k, C, H, W)`` uint8 array, the samples it holds and (with
    ``skip_bad``) the bad images left out."""
    images, kept, bad = [], [], []
    for i in indices:
        image = reader.try_read(i) if skip_bad else reader.read(i)
        if isinstance(image, _images.BadImage):
            bad.append(image)
        else:
            images.append(image)
            kept.append(int(i))
    shape = reader.size + (3 if reader.is_color else 1,)
    block = np.stack(images) if images else np.empty((0,) + shape, np.uint8)
    return block.transpose(0, 3, 1, 2), kept, bad


def _write_shard(path: str, reader: _images.ImageReader, order: np.ndarray, shape: tuple,
                 args: argparse.Namespace, progress: Progress) -> Tuple[int, int, list]:
    """Write samples ``order`` into one shard file (atomically replaced; not written when every
    sample is bad): its chunk rows, the samples written and the bad images left out."""
    import h5py

    dtype = np.dtype(args.dtype)
    rows = chunk_rows(int(np.prod(shape)) * dtype.itemsize, len(order))
    compression = None if args.compression == "none" else args.compression
    kept: List[int] = []
    bad: List[_images.BadImage] = []
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_dataset("data", (len(order),) + shape, dtype, chunks=(rows,) + shape,
                                    compression=compression,
                                    maxshape=((None,) + shape) if args.skip_bad else None)
            spans = [order[b.start:b.stop] for b in _images.blocks(0, len(order), rows)]
            read = functools.partial(_read_block, skip_bad=args.skip_bad)
            for block, block_kept, block_bad in _pool.map_blocks(read, reader, spans,
                                                                 args.workers):
                data[len(kept):len(kept) + len(block)] = block
                kept += block_kept
                bad += block_bad
                progress.advance(len(block_kept) + len(block_bad))
            if len(kept) < len(order):
                data.resize(len(kept), axis=0)
            _write_labels(f, reader.images.labels[kept])
        if kept:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return rows, len(kept), bad


def _write_labels(f, labels: np.ndarray) -> None:
    """The ``label`` dataset: ``(N,)`` for one label column, ``(N, K)`` for more, none for 0."""
    if labels.shape[1]:
        f.create_dataset("label", data=(labels[:, 0] if labels.shape[1] == 1 else labels)
                         .astype(np.float32))


def _parser() -> argparse.ArgumentParser:
    parser = _cli.make_parser(
        "convert-hdf5",
        "Convert an image list to HDF5 shards (datasets 'data' N x C x H x W and 'label' N)\n"
        "and a source list for Caffe's HDF5Data layer (or ours). Images are read exactly as\n"
        "ImageListDataLayer reads them; pixels are stored raw (no mean, no scale, no crop).",
        epilog="example:\n  caffe-layers-convert-hdf5 photos/train.txt hdf5/ --root-folder "
               "photos/ --new-height 64 --new-width 64 --dtype uint8\n  -> hdf5/train_000.h5 ..."
               " and hdf5/train.txt (HDF5Data's source)\n")
    _images.add_image_options(parser)
    _images.add_skip_bad(parser, "written to the shards")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for the shards and the "
                                                           "source list (created if missing)")
    parser.add_argument("--name", help="file name stem (default: LIST's, e.g. 'train')")
    parser.add_argument("--shard-size", type=_cli.positive_int, metavar="N",
                        help="samples per shard (default: as many as fit 1 GiB as float32, "
                             "since Caffe loads a whole shard into memory)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="stored pixel type (default: float32; uint8 is 4x smaller)")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="none",
                        help="chunk compression (default: none; lzf is readable by h5py only, "
                             "not by real Caffe)")
    parser.add_argument("--shuffle", action="store_true",
                        help="store the samples in a random order (seeded by --seed)")
    parser.add_argument("--seed", type=_cli.non_negative_int, default=0,
                        help="seed of --shuffle (default: 0)")
    parser.add_argument("--absolute-paths", action="store_true",
                        help="write absolute shard paths in the source list (default: as "
                             "OUT_DIR is given, relative to the working directory as in Caffe)")
    _cli.add_quiet(parser)
    return parser


def _plan(args: argparse.Namespace, count: int, shape: tuple) -> tuple:
    """The sample order, the shard size and the shard paths."""
    order = np.arange(count)
    if args.shuffle:
        order = np.random.default_rng(args.seed).permutation(count)
    shard_size = args.shard_size or auto_shard_size(shape)
    name = args.name or os.path.splitext(os.path.basename(args.list))[0] or "data"
    out_dir = os.path.abspath(args.out_dir) if args.absolute_paths else args.out_dir
    paths = shard_paths(out_dir, name, -(-count // shard_size))
    _check_source_paths(paths)
    return order, shard_size, paths, os.path.join(out_dir, f"{name}.txt")


def _run(args: argparse.Namespace) -> None:
    images = _images.open_list(args)
    reader, first, _ = _images.reader_for(args, images).sized(args.skip_bad)
    shape = (first.shape[2],) + first.shape[:2]
    order, shard_size, paths, source = _plan(args, len(images), shape)
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise ConfigError(f"OUT_DIR '{args.out_dir}' is a file; give a folder")
    os.makedirs(args.out_dir, exist_ok=True)
    if args.compression == "lzf":
        print("note: lzf-compressed files are readable by h5py only, not by real Caffe")
    with Progress(len(images), "convert-hdf5", enabled=False if args.quiet else None) as bar:
        shards = [_write_shard(path, reader, order[k * shard_size:(k + 1) * shard_size], shape,
                               args, bar) for k, path in enumerate(paths)]
    written = [path for path, (_, count, _) in zip(paths, shards) if count]
    with open(source, "w") as f:
        f.write("".join(p + "\n" for p in written))
    count = sum(kept for _, kept, _ in shards)
    columns = images.labels.shape[1]
    label = f", label ({count},{'' if columns == 1 else columns}) float32" if columns else ""
    print(f"{count} images -> {len(written)} shard(s) of at most {shard_size} samples: data "
          f"({count}, {', '.join(map(str, shape))}) {args.dtype}{label}")
    print(f"  chunks of {shards[0][0]} rows, compression {args.compression}")
    print(f"  source list: {source}   (use as the layer's source)")
    bad = [bad_image for _, _, shard_bad in shards for bad_image in shard_bad]
    if bad:
        print(_images.report_skipped(sorted(bad, key=lambda b: b.index), "the shards"))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
