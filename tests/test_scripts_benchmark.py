"""Smoke test of scripts/benchmark.py: a --quick run end to end, and its bad-input errors.

The run is pinned to one CPU, so that one worker per core is among the quick run's worker counts
(0 and 1) and the floor check is computed, not skipped. Its figures are not checked: this is a
measurement, whose floors are judged on a quiet machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "benchmark.py"
LOADERS = ("caffe_layers", "keras queue")


def _one_cpu() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run_script(*args: str, timeout: float = 60, pin: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, cwd=str(REPO), timeout=timeout,
                          preexec_fn=_one_cpu if pin else None)


def has_module(name: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
    return probe.returncode == 0


def test_quick_run_prints_the_table_and_the_floor(tmp_path):
    data, results = tmp_path / "images", tmp_path / "results.json"
    done = run_script("--quick", "--data", str(data), "--json", str(results), pin=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert ", 1 cores usable" in done.stdout
    assert any(line.startswith("limit ") and "one process x 1 cores" in line for line in lines)
    for loader in LOADERS:
        for workers in (0, 1):
            assert any(line.startswith(loader) and line.split()[len(loader.split())] ==
                       str(workers) for line in lines), (loader, workers, done.stdout)
    floor = [line for line in lines if line.startswith("FLOOR: ")]
    assert floor in (["FLOOR: PASS"], ["FLOOR: FAIL"]), done.stdout
    assert (data / "list.txt").read_text().count("\n") == 16
    other = run_script("--quick", "--images", "17", "--data", str(data))
    assert other.returncode == 2
    assert "holds images made for" in other.stderr

    report = json.loads(results.read_text())
    measured = {(row["loader"], row["workers"]) for row in report["rows"]}
    assert {(loader, w) for loader in LOADERS for w in (0, 1)} <= measured
    assert all(row["images_per_s"] > 0 for row in report["rows"])
    torch_rows = {w for loader, w in measured if loader == "torch DataLoader"}
    if has_module("torch"):
        assert torch_rows == {0, 1}
        assert report["torch_skipped"] is None
    else:
        assert torch_rows == set()
        assert "torch is not importable" in report["torch_skipped"]
        assert "torch DataLoader: skipped: torch is not importable" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "-1"], "--workers: counts must be >= 0"),
    (["--batches", "1"], "--batches: must be >= 2"),
    (["--images", "x"], "--images: invalid int value"),
    (["--json", "/nonexistent-dir/out.json"], "--json: the directory of"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    done = run_script("--quick", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_data_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "images"
    path.write_text("not a directory")
    done = run_script("--quick", "--data", str(path))
    assert done.returncode == 2
    assert "exists and is not a directory" in done.stderr


def test_plot_is_written_or_refused_without_matplotlib(tmp_path):
    plot = tmp_path / "plot.png"
    done = run_script("--quick", "--workers", "0", "--plot", str(plot), pin=True)
    if has_module("matplotlib"):
        assert done.returncode == 0, done.stderr
        assert plot.read_bytes().startswith(b"\x89PNG")
    else:  # refused before any work
        assert done.returncode == 2
        assert "--plot needs matplotlib" in done.stderr
        assert "generating" not in done.stderr
        assert not plot.exists()


def test_help_describes_the_options():
    done = run_script("--help")
    assert done.returncode == 0
    for option in ("--workers", "--batches", "--images", "--data", "--quick", "--plot", "--json"):
        assert option in done.stdout


def test_bench_sequence_quick_run_prints_its_table_and_floor():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_sequence.py"), "--quick"],
                          capture_output=True, text=True, cwd=str(REPO), timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:-1]]
    assert [row[:2] for row in rows] == [["plain", "loop"], ["keras", "1"], ["caffe_layers", "1"],
                                         ["keras", "2"], ["caffe_layers", "2"]], done.stdout
    assert all(float(row[-1]) > 0 for row in rows)
    assert done.stdout.splitlines()[-1].startswith("floor: caffe_layers / keras at 2 workers = ")
