"""Smoke tests of scripts/scale_sampling.py and scripts/bench_list_memory.py: small runs end to
end (their checks must pass; their figures are measurements, not checked), and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args],
                          capture_output=True, text=True, env=env, cwd=str(REPO), timeout=timeout)


def test_scale_sampling_quick_run_checks_every_epoch(tmp_path):
    result = run_script("scale_sampling.py", "--quick", "--table", "--json",
                        str(tmp_path / "out.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("exactly once in each of 2 epochs across 16 ranks") == 2
    assert "each at exactly one position" in result.stdout
    assert "| 1,000,000 | 8 |" in result.stdout
    figures = json.loads((tmp_path / "out.json").read_text())
    assert figures["headline"]["ranks"] == 16 and len(figures["table"]) == 4


def test_scale_sampling_refuses_more_ranks_than_samples():
    result = run_script("scale_sampling.py", "--samples", "10", "--ranks", "11")
    assert result.returncode == 2
    assert "--ranks at most --samples" in result.stderr


def test_list_memory_small_run_reports_every_process(tmp_path):
    result = run_script("bench_list_memory.py", "--lines", "20000", "--workers", "1", "--json",
                        str(tmp_path / "out.json"))
    assert result.returncode == 0, result.stderr
    assert "20,000 lines: setup" in result.stdout
    row = json.loads((tmp_path / "out.json").read_text())["rows"][0]
    assert row["lines"] == 20000 and len(row["workers"]) == 1
    assert row["consumer"]["Pss"] > 0 and row["workers"][0]["Pss"] > 0


def test_list_memory_refuses_a_length_below_the_baseline():
    result = run_script("bench_list_memory.py", "--lines", "500")
    assert result.returncode == 2
    assert "must exceed the 1000-line baseline" in result.stderr
