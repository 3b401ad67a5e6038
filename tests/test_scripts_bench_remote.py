"""Smoke test of scripts/bench_remote.py: a --quick run end to end against its servers (its own
processes), and bad input. Its figures are measurements, not checked."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench_remote.py"


def run_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, cwd=str(REPO), timeout=timeout)


def test_quick_run_prints_the_table_and_the_floors(tmp_path):
    pytest.importorskip("aiohttp")
    sources = ["http"] + (["s3"] if all(importlib.util.find_spec(m) for m in ("s3fs", "moto"))
                          else [])
    result = run_script("--quick", "--sources", *sources, "--json", str(tmp_path / "out.json"))
    assert result.returncode == 0, result.stderr
    assert "| source | img/s | x local |" in result.stdout
    for source in sources:
        assert f"\n| {source} | " in result.stdout
        assert f"floor 0.8 x local for {source}: " in result.stdout
    figures = json.loads((tmp_path / "out.json").read_text())
    assert [row["source"] for row in figures["rows"]] == ["local"] + sources
    assert all(row["images_per_s"] > 0 for row in figures["rows"])


def test_bad_arguments_exit_2():
    result = run_script("--latency-ms", "-1")
    assert result.returncode == 2
    assert "--latency-ms: must be >= 0 (got -1)" in result.stderr
