"""DBDataLayer against Caffe's Data layer inside real Caffe, against the machine's limit, and what
a shuffled read and the setup cost.

    CAFFE_ROOT=... PYTHONPATH=$CAFFE_ROOT/python:. python scripts/bench_db.py [--repeat 3]

Run it under the Python Caffe was built for (the ``caffe`` binary's, e.g. a venv of
``/usr/bin/python3`` made with ``--system-site-packages`` holding lmdb and plyvel), with pycaffe on
``PYTHONPATH``; without real pycaffe the Caffe rows are skipped, saying why. One run, three parts:

throughput  The issue's workload: 512 JPEGs 500x375 q90 converted by caffe-layers-convert-db to
            256x256 Datums, raw and JPEG-encoded (``convert_imageset --resize_height=256
            --resize_width=256 [--encode_type=jpg]``), read in TRAIN with crop 227, mirror, mean
            values, batch 64, in key order. Both layers through ``caffe.Net.forward`` on a net
            holding only the data layer; the limit is the layer's own per-image work (its
            producer's ``fill``) in one process times the cores. Floors (issue) at one worker per
            core: encoded >= 1.6 x Caffe and >= 0.85 x limit, raw >= 1.2 x Caffe.
order       ms per batch reading databases in key order, block-shuffled (the default) and
            uniformly shuffled, page cache evicted before each (see bench_db_io).
setup       Indexing a 1,000,000-record LMDB (and LevelDB): cold and warm, and the index's size.

Exit status 0 even when a floor is missed (a measurement); 1 on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import children_cpu_s, real_pycaffe  # noqa: E402
from bench_db_io import (  # noqa: E402
    QUICK_READS,
    READS,
    SETUP_RECORDS,
    WINDOWS_READ,
    batches_to_read,
    read_cost,
    setup_cost,
    synthetic_db,
)
from bench_report import cpu_model  # noqa: E402
from bench_workload import QUICK, Workload, cores, make_dataset, reuse_dataset  # noqa: E402

KINDS = {"raw": (), "jpeg": ("--encode-type", "jpg")}
FLOORS = {"jpeg": (1.6, 0.85), "raw": (1.2, None)}  # (x Caffe, x limit) at one worker per core


def make_databases(directory: str, work: Workload) -> dict:
    """``{kind: LMDB path}``: the images converted once (reused on a later run)."""
    from caffe_layers.tools import convert_db

    if not reuse_dataset(directory, work):
        make_dataset(directory, work)
    paths = {}
    for kind, flags in KINDS.items():
        path = os.path.join(directory, f"{kind}_{work.new_hw}_lmdb")
        if not os.path.isdir(path):
            with contextlib.redirect_stdout(io.StringIO()):
                status = convert_db.main(["-q", directory + os.sep,
                                          os.path.join(directory, "list.txt"), path,
                                          "--resize-height", str(work.new_hw),
                                          "--resize-width", str(work.new_hw), *flags])
            if status:
                raise RuntimeError(f"caffe-layers-convert-db failed for {path}")
        paths[kind] = path
    return paths


def warm(path: str) -> None:
    for entry in os.scandir(path):
        with open(entry.path, "rb") as f:
            while f.read(1 << 24):
                pass


# ----------------------------------------------------------------------------- throughput

def _net_text(kind: str, source: str, work: Workload, workers: int) -> str:
    mean = " ".join(f"mean_value: {v:g}" for v in work.mean)
    if kind == "caffe":
        return (f'layer {{ name: "data" type: "Data" top: "data" top: "label"\n'
                f'  transform_param {{ crop_size: {work.crop} mirror: true {mean} }}\n'
                f'  data_param {{ source: "{source}" backend: LMDB '
                f'batch_size: {work.batch} }} }}\n')
    keys = {"source": source, "backend": "LMDB", "batch_size": work.batch,
            "crop_size": work.crop, "mirror": True, "mean_value": list(work.mean),
            "workers": workers}
    return ('layer { name: "data" type: "Python" top: "data" top: "label"\n'
            '  python_param { module: "caffe_layers.layers" layer: "DBDataLayer"\n'
            f'    param_str: {json.dumps(json.dumps(keys))} }} }}\n')


def time_net(kind: str, source: str, work: Workload, workers: int, warmup: int) -> dict:
    """images/s and CPU per batch of ``caffe.Net.forward`` on a net holding one data layer."""
    import caffe

    from caffe_layers.prefetch import close_all

    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(_net_text(kind, source, work, workers))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            net = caffe.Net(f.name, caffe.TRAIN)
        for _ in range(warmup):
            net.forward()
        wall, cpu, children = time.perf_counter(), time.process_time(), children_cpu_s()
        for _ in range(work.batches):
            net.forward()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        children = children_cpu_s() - children
    finally:
        close_all()
        os.unlink(f.name)
    return {"images_per_s": work.batch * work.batches / wall,
            "consumer_ms": 1e3 * cpu / work.batches, "workers_ms": 1e3 * children / work.batches}


def time_limit(source: str, work: Workload) -> dict:
    """The layer's per-image work (its producer's fill) in this process: images/s."""
    from caffe_layers import config
    from caffe_layers.params import DBParams
    from caffe_layers.pipeline import db as pipeline
    from caffe_layers.prefetch import SamplePlan
    from caffe_layers.prefetch.worker import keep_freed_memory
    from caffe_layers.sampling import SampleStream

    keys = {"source": source, "batch_size": work.batch, "crop_size": work.crop, "mirror": True,
            "mean_value": list(work.mean)}
    params = config.load(DBParams, json.dumps(keys), where="bench_db")
    built = pipeline.build(params, train=True)
    plan = SamplePlan(SampleStream(built.order(False, 0), work.batch), 0)
    out = {spec.name: np.empty(spec.shape, spec.dtype) for spec in built.layouts[2]}
    keep_freed_memory()  # as in the layer's workers
    built.producer.open(0, 1)
    try:
        for number in range(3):
            built.producer.fill(out, plan.task(number))
        wall, cpu = time.perf_counter(), time.process_time()
        for number in range(work.batches):
            built.producer.fill(out, plan.task(number))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        built.producer.close()
    return {"images_per_s": work.batch * work.batches / wall, "consumer_ms": 0.0,
            "workers_ms": 1e3 * cpu / work.batches}


def why_no_pycaffe() -> str:
    """Why the Caffe rows cannot run, or "" when real pycaffe is what ``import caffe`` gives
    (else ``import caffe`` gives the package's fake, which runs DBDataLayer's rows)."""
    if not real_pycaffe():
        return ("real pycaffe is not importable (the package's fake is in use): run under the "
                "Python Caffe was built for with $CAFFE_ROOT/python on PYTHONPATH")
    return ""


def throughput(args: argparse.Namespace, work: Workload, directory: str) -> dict:
    databases = make_databases(directory, work)
    no_caffe = why_no_pycaffe()
    worker_counts = sorted({0, 1, cores()}) if not args.quick else [0, 1]
    plan = [(kind, row, workers) for kind in databases
            for row, workers in ([("limit", None)] + ([] if no_caffe else [("Caffe Data", None)])
                                 + [("DBDataLayer", w) for w in worker_counts])]
    best: dict = {}
    for round_number in range(args.repeat):
        for kind, row, workers in plan:
            print(f"bench_db: round {round_number + 1}/{args.repeat}: {kind} {row}"
                  + ("" if workers is None else f", {workers} workers"), file=sys.stderr)
            warm(databases[kind])
            if row == "limit":
                found = time_limit(databases[kind], work)
            else:
                found = time_net("caffe" if row == "Caffe Data" else "ours", databases[kind],
                                 work, workers or 0, 4 + 2 + (workers or 0))
            key = (kind, row, workers)
            if key not in best or found["images_per_s"] > best[key]["images_per_s"]:
                best[key] = found
    return {"databases": databases, "no_caffe": no_caffe, "rows": best}


def throughput_lines(result: dict, work: Workload) -> tuple:
    lines, checks = [], []
    per_core = cores()
    if result["no_caffe"]:
        lines.append(f"Caffe Data: skipped: {result['no_caffe']}")
    for kind, path in result["databases"].items():
        rows = {(r, w): v for (k, r, w), v in result["rows"].items() if k == kind}
        limit = rows["limit", None]["images_per_s"] * per_core
        caffe = rows.get(("Caffe Data", None), {}).get("images_per_s")
        size = sum(e.stat().st_size for e in os.scandir(path)) / 2 ** 20
        lines += ["", f"{kind} Datums ({size:.1f} MiB LMDB)   workers    img/s  x Caffe  x limit"
                      f"   CPU ms/batch: consumer  workers",
                  f"{'limit':<30}{'-':>9}{limit:9.0f}{_ratio(limit, caffe):>9}{1:9.2f}"
                  f"   = {rows['limit', None]['images_per_s']:.0f} img/s in one process x "
                  f"{per_core} cores"]
        for (row, workers), value in rows.items():
            if row == "limit":
                continue
            rate = value["images_per_s"]
            lines.append(f"{row:<30}{'-' if workers is None else workers:>9}{rate:9.0f}"
                         f"{_ratio(rate, caffe):>9}{rate / limit:9.2f}"
                         f"{value['consumer_ms']:24.1f}{value['workers_ms']:9.1f}")
        ours = rows.get(("DBDataLayer", per_core))
        if ours and caffe:
            floor_caffe, floor_limit = FLOORS[kind]
            ratio = ours["images_per_s"] / caffe
            checks.append((f"{kind} {ratio:.2f} x Caffe (floor {floor_caffe})",
                           ratio >= floor_caffe))
            if floor_limit:
                ratio = ours["images_per_s"] / limit
                checks.append((f"{kind} {ratio:.2f} x limit (floor {floor_limit})",
                               ratio >= floor_limit))
    if not checks:
        return lines + ["", "FLOOR: not checked (no Caffe rows, or one worker per core not "
                            "measured)"]
    status = "PASS" if all(ok for _, ok in checks) else "FAIL"
    lines += ["", f"floors at {per_core} workers (one per core):"]
    lines += [f"  {text}: {'PASS' if ok else 'FAIL'}" for text, ok in checks]
    return lines + [f"FLOOR: {status}"]


def _ratio(rate: float, caffe: float | None) -> str:
    return "-" if not caffe else f"{rate / caffe:.2f}"


# ----------------------------------------------------------------------------- order, setup

def _readahead(path: str) -> str:
    """The readahead of the block device holding ``path`` (a partition's is its disk's)."""
    device = os.stat(path).st_dev
    base = f"/sys/dev/block/{os.major(device)}:{os.minor(device)}"
    for queue in (f"{base}/queue", f"{base}/../queue"):
        with contextlib.suppress(OSError), open(f"{queue}/read_ahead_kb") as f:
            return f"readahead {f.read().strip()} KiB"
    return "readahead unknown"


def order_lines(args: argparse.Namespace, directory: str) -> list:
    lines = ["", f"reads by order, page cache evicted before each (posix_fadvise DONTNEED; "
                 f"{_readahead(directory)}), in one process, TEST transform; each order reads "
                 f"the records of {WINDOWS_READ} shuffle windows:",
             f"{'database':<16}{'records':>9}{'MiB':>7}{'read':>7}  ms per batch of 64: "
             f"{'key order':>10}{'blocks':>15}{'uniform':>15}"]
    for name, (shape, count, encoded) in (QUICK_READS if args.quick else READS).items():
        print(f"bench_db: order: {name}", file=sys.stderr)
        path = synthetic_db(os.path.join(directory, "order_" + name.replace(" ", "_")), shape,
                            count, encoded)
        batches = batches_to_read(path, shape)
        costs = {order: read_cost(path, shape, batches, order)
                 for order in ("sequential", "blocks", "uniform")}
        size = sum(e.stat().st_size for e in os.scandir(path)) / 2 ** 20
        base = costs["sequential"]["ms_per_batch"]
        cells = "".join(f"{costs[o]['ms_per_batch']:9.1f} ({costs[o]['ms_per_batch'] / base:.1f}x)"
                        for o in ("blocks", "uniform"))
        block = costs["blocks"]["description"].split("shuffled in ")[-1]
        lines.append(f"{name:<16}{count:>9}{size:7.0f}{batches * 64:>7}  {'':<20}{base:10.1f}"
                     f"{cells}   ({block})")
    return lines


def setup_lines(args: argparse.Namespace, directory: str) -> list:
    count = 20000 if args.quick else SETUP_RECORDS
    lines = ["", f"setup of a {count:,}-record database (keys as convert_imageset's for "
                 f"ImageNet, records of 1x8x8):"]
    for backend in ("lmdb", "leveldb"):
        print(f"bench_db: setup: {backend}", file=sys.stderr)
        path = synthetic_db(os.path.join(directory, f"setup_{count}_{backend}"), (1, 8, 8),
                            count, backend=backend)
        cost = setup_cost(path)
        lines.append(f"  {backend.upper():<8} index built in {cost['cold_s']:.2f} s with the "
                     f"cache evicted, {cost['warm_s']:.2f} s warm; the layer's whole build "
                     f"(index, first record, shuffled order) {cost['build_s']:.2f} s; index "
                     f"{cost['index_mb']:.1f} MB for {cost['db_mb']:.0f} MB of database")
    return lines


# ---------------------------------------------------------------------------- command line

def _parse_args(argv: list | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_db.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=("throughput", "order", "setup"),
                        default=["throughput", "order", "setup"], help="parts to run")
    parser.add_argument("--repeat", type=int, default=1, metavar="R",
                        help="measure throughput rows in R interleaved rounds, keep each best")
    parser.add_argument("--batches", type=int, metavar="N", help="batches timed per row")
    parser.add_argument("--data", metavar="DIR", help="keep the images and databases in DIR "
                                                      "(reused by a later run)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.repeat < 1 or (args.batches is not None and args.batches < 2):
        parser.error("--repeat must be >= 1 and --batches >= 2")
    return args


def run(args: argparse.Namespace, directory: str) -> list:
    import cv2

    work = QUICK if args.quick else Workload()
    if args.batches:
        work = Workload(**{**work.__dict__, "batches": args.batches})
    load = os.getloadavg()[0]
    lines = [f"bench_db: {work.images} JPEGs {work.image_wh[0]}x{work.image_wh[1]} "
             f"q{work.quality} -> {work.new_hw}x{work.new_hw} Datums; TRAIN, crop {work.crop}, "
             f"mirror, mean values, batch {work.batch}, {work.batches} batches timed per row",
             f"machine: {cpu_model()}, {cores()} cores usable; Python "
             f"{sys.version.split()[0]}, numpy {np.__version__}, OpenCV {cv2.__version__}"]
    lines += ["--quick: a smoke run; its figures mean nothing"] if args.quick else []
    if "throughput" in args.only:
        lines += throughput_lines(throughput(args, work, directory), work)
    if "order" in args.only:
        lines += order_lines(args, directory)
    if "setup" in args.only:
        lines += setup_lines(args, directory)
    lines.append(f"load average before/after: {load:.2f} / {os.getloadavg()[0]:.2f}")
    return lines


def main(argv: list | None = None) -> int:
    args = _parse_args(argv)
    try:
        if args.data:
            os.makedirs(args.data, exist_ok=True)
            lines = run(args, os.path.abspath(args.data))
        else:
            with tempfile.TemporaryDirectory(prefix="caffe_layers_bench_db_") as tmp:
                lines = run(args, tmp)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"bench_db.py: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
