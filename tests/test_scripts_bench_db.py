"""Smoke test of scripts/bench_db.py: a --quick run of every part under the fake caffe.

Without real pycaffe the Caffe rows are skipped, saying why, and the floors are not checked;
DBDataLayer, the limit, the reads by order and the setup are measured. Figures are not checked:
this is a measurement, judged on a quiet machine with real Caffe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_quick_run_measures_every_part(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CAFFE_ROOT"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_db.py"), "--quick",
                           "--data", str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=str(REPO), timeout=280)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Caffe Data: skipped: real pycaffe is not importable" in out
    for kind in ("raw", "jpeg"):
        assert f"{kind} Datums (" in out
    assert sum(line.startswith("DBDataLayer ") for line in out.splitlines()) == 4
    assert "FLOOR: not checked" in out
    order = [line for line in out.splitlines() if line.startswith("raw 3x32x32 ")]
    assert len(order) == 1 and "x)" in order[0]
    assert "setup of a 20,000-record database" in out
    assert out.count("index built in") == 2
    second = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_db.py"), "--quick",
                             "--data", str(tmp_path), "--only", "setup"], capture_output=True,
                            text=True, env=env, cwd=str(REPO), timeout=120)
    assert second.returncode == 0, second.stderr
    assert "Datums (" not in second.stdout and "index built in" in second.stdout
