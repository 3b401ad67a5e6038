"""Real BVLC Caffe for the tests marked ``real_caffe``: the binary, its tools and pycaffe.

Caffe is found through ``CAFFE_ROOT``, a built source tree (``build/tools/caffe``,
``python/caffe/_caffe.so``), as ``../shared/caffe/build.sh`` prints it. Without one, the tests skip
with the reason. Two kinds of test:

- ``needs_binary``: run ``caffe``/``convert_imageset``/... as a user does, in a subprocess, with
  :func:`binary_env` (``PATH=/usr/bin:/bin``, pycaffe and this repository on ``PYTHONPATH``). They
  run from any Python, since the binary embeds its own.
- ``needs_pycaffe``: use real pycaffe in the test process (``import caffe`` gives it); they run
  only under the Python Caffe was built for (the real-Caffe stage, ``make test-real``).

Mark a module ``pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def caffe_root() -> Path | None:
    """The built Caffe tree named by CAFFE_ROOT, or None."""
    root = os.environ.get("CAFFE_ROOT")
    if not root:
        return None
    root_path = Path(root)
    return root_path if (root_path / "build" / "tools" / "caffe").exists() else None


def _pycaffe_in_use() -> bool:
    caffe = sys.modules.get("caffe")
    return caffe is not None and not getattr(caffe, "__name__", "").startswith("caffe_layers.")


ROOT = caffe_root()
needs_binary = pytest.mark.skipif(
    ROOT is None, reason="no real Caffe: set CAFFE_ROOT to a built BVLC Caffe tree "
                         "(../shared/caffe/build.sh prints one)")
needs_pycaffe = pytest.mark.skipif(
    ROOT is None or not _pycaffe_in_use(),
    reason="real pycaffe is not what `import caffe` gives this Python: run the real-Caffe stage "
           "(make test-real) under the Python Caffe was built for")


def tool(name: str) -> Path:
    """``$CAFFE_ROOT/build/tools/<name>`` (caffe, convert_imageset, compute_image_mean, ...)."""
    assert ROOT is not None
    return ROOT / "build" / "tools" / name


def binary_env(*paths: os.PathLike, **extra: str) -> dict:
    """The environment a user gives ``caffe``: system PATH, pycaffe + this repo on PYTHONPATH."""
    assert ROOT is not None
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONHOME", "CAFFE_LAYERS_FAKE_CAFFE")}
    python_path = [str(ROOT / "python"), str(REPO), str(TESTS)] + [str(p) for p in paths]
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=os.pathsep.join(python_path), **extra)
    return env


def run_tool(name: str, *args: str, cwd: os.PathLike, timeout: float = 300,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a Caffe tool to completion; its output (stdout + stderr) is in ``.stdout``.

    glog also writes a log file per run (``caffe.<host>.<user>.log.INFO.<date>.<pid>``), by
    default into TMPDIR: Caffe's, not a leftover of ours, so it goes into ``cwd`` instead
    (``GLOG_log_dir``, unless ``env`` says otherwise), kept with the run's other files.
    """
    env = dict(env or binary_env())
    env.setdefault("GLOG_log_dir", str(cwd))
    return subprocess.run([str(tool(name)), *map(str, args)], cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)
