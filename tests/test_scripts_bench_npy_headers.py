"""Smoke test of scripts/bench_npy_headers.py: a small run end to end (figures not checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_small_run_prints_both_timings_and_keeps_dir(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_npy_headers.py"),
                           "--files", "50", "--shape", "2", "3", "--dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("wrote 50 files of (2, 3) float32 in ")
    assert re.fullmatch(r"headers: \d+\.\d\d s \(\d+\.\d us per file\)", lines[1])
    assert re.fullmatch(r"load:    \d+\.\d\d s \(\d+\.\d us per file\)", lines[2])
    assert re.fullmatch(r"headers / load: \d+\.\d\d", lines[3])
    assert len(list((tmp_path / "d" / "npy").iterdir())) == 50
