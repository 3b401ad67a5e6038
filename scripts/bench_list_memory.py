"""The image-list layer's own memory against the list's length: consumer and each worker.

    python scripts/bench_list_memory.py [--lines 1000000,10000000] [--workers 2] [--json FILE]

For each length, writes a list of that many ``train/n01440764/n01440764_<k>.JPEG <label>`` lines
(about 40 bytes a line, like ImageNet's; the lines cycle over 1,000 small JPEGs, which does not
change what the list costs: every line is stored on its own), then in a fresh process builds a
net holding ImageListDataLayer (shuffle, batch 32, the given workers), runs 20 forwards and reads
``/proc/<pid>/smaps_rollup`` of the layer's process and of each worker: PSS (proportional set
size: a page shared by k processes counts 1/k in each, so the sum counts shared pages once) and
RSS, plus the consumer's peak RSS (``VmHWM``, which the parse at setup sets) and the layer's setup
time (building the net: reading and parsing the list, opening the first image, forking workers).

The baseline, measured in the same run the same way, is a 1,000-line list: the figures are also
given as the growth over it, per line, and projected linearly to 100,000,000 lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without an install
sys.path.insert(0, str(REPO / "scripts"))
from bench_common import proc_status_kib  # noqa: E402

IMAGES, BASELINE_LINES, PROJECT_TO = 1000, 1000, 100_000_000
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def write_images(folder: Path) -> None:
    import cv2
    import numpy as np

    (folder / "train" / "n01440764").mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for k in range(IMAGES):
        cv2.imwrite(str(folder / "train" / "n01440764" / f"n01440764_{10000 + k}.JPEG"), image)


def write_list(path: Path, lines: int) -> None:
    block = "".join(f"train/n01440764/n01440764_{10000 + k}.JPEG {k % 1000}\n"
                    for k in range(IMAGES))
    with open(path, "w") as out:
        for _ in range(lines // IMAGES):
            out.write(block)
        out.write(block[:sum(len(line) + 1 for line in block.split("\n")[:lines % IMAGES])])


def smaps_kib(pid: int) -> dict:
    """``Pss`` and ``Rss`` of ``/proc/PID/smaps_rollup``, in KiB."""
    found = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            key, _, value = line.partition(":")
            if key in ("Pss", "Rss"):
                found[key] = int(value.split()[0])
    return found


def measure_in_child(folder: str, workers: int) -> dict:
    """Run in a fresh process: the net, 20 forwards, then every process's memory."""
    import caffe_layers.testing

    caffe = caffe_layers.testing.install_fake_caffe()
    net_path = os.path.join(folder, "net.prototxt")
    params = (f"{{source: {folder}/train.txt, root_folder: {folder}/, batch_size: 32, "
              f"shuffle: true, workers: {workers}}}")
    with open(net_path, "w") as net_file:
        net_file.write(f'layer {{ name: "data" type: "Python" top: "data" top: "label"\n'
                       f'  python_param {{ module: "caffe_layers.layers" '
                       f'layer: "ImageListDataLayer" param_str: "{params}" }} }}\n')
    started = time.perf_counter()
    net = caffe.Net(net_path, caffe.TRAIN)
    setup_s = time.perf_counter() - started
    for _ in range(20):
        net.forward()
    layer = net.layers[0]
    result = {"setup_s": setup_s, "consumer": smaps_kib(os.getpid()),
              "consumer_peak_kib": proc_status_kib(os.getpid(), ["VmHWM"])["VmHWM"],
              "workers": [smaps_kib(pid) for pid in layer._engine.pids]}
    layer.close()
    return result


def measure(folder: Path, lines: int, workers: int) -> dict:
    write_list(folder / "train.txt", lines)
    code = (f"import json, sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); "
            f"import bench_list_memory as b; "
            f"print(json.dumps(b.measure_in_child({str(folder)!r}, {workers})))")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                          timeout=3600, check=False)
    if done.returncode:
        raise SystemExit(f"measuring {lines} lines failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["lines"] = lines
    result["total_pss_kib"] = result["consumer"]["Pss"] + sum(w["Pss"] for w in result["workers"])
    return result


def report(base: dict, row: dict) -> None:
    grow = row["lines"] - base["lines"]

    def per_line(key_of) -> float:
        return (key_of(row) - key_of(base)) * 1024 / grow

    parts = {
        "consumer PSS": lambda r: r["consumer"]["Pss"],
        "each worker PSS": lambda r: max(w["Pss"] for w in r["workers"]),
        "all processes PSS": lambda r: r["total_pss_kib"],
        "consumer peak RSS": lambda r: r["consumer_peak_kib"],
    }
    print(f"{row['lines']:>12,} lines: setup {row['setup_s']:.1f} s; " + "; ".join(
        f"{name} {key_of(row) / 1024:,.0f} MiB (+{per_line(key_of):.0f} B/line, "
        f"{per_line(key_of) * PROJECT_TO / 2 ** 30:,.1f} GiB at 100M)"
        for name, key_of in parts.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", default="1000000,10000000",
                        help="comma-separated list lengths (default 1000000,10000000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.lines.split(",")]
    except ValueError:
        parser.error(f"--lines: comma-separated integers, got {args.lines!r}")
    if min(sizes) <= BASELINE_LINES:
        parser.error(f"--lines: each length must exceed the {BASELINE_LINES}-line baseline")
    with tempfile.TemporaryDirectory(prefix="list_memory_") as folder:
        write_images(Path(folder))
        base = measure(Path(folder), BASELINE_LINES, args.workers)
        workers = ", ".join(f"{w['Pss'] / 1024:,.0f}" for w in base["workers"])
        print(f"baseline {BASELINE_LINES:,} lines: consumer PSS "
              f"{base['consumer']['Pss'] / 1024:,.0f} MiB, workers PSS {workers} MiB, consumer "
              f"peak RSS {base['consumer_peak_kib'] / 1024:,.0f} MiB")
        rows = []
        for lines in sizes:
            rows.append(measure(Path(folder), lines, args.workers))
            report(base, rows[-1])
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline": base, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
