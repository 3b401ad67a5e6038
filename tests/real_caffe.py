"""Real BVLC Caffe for the tests marked ``real_caffe``: the binary, its tools and pycaffe.

Caffe is found through ``CAFFE_ROOT``, a built source tree (``build/tools/caffe``,
``python/caffe/_caffe.so``), as ``../shared/caffe/build.sh`` prints it. Without one, the tests skip
with the reason. Two kinds of test:

- ``needs_binary``: run ``caffe``/``convert_imageset``/... as a user does, in a subprocess, with
  :func:`binary_env` (``PATH=/usr/bin:/bin``, pycaffe and this repository on ``PYTHONPATH``). They
  run from any Python, since the binary embeds its own.
- ``needs_pycaffe``: use real pycaffe in the test process (``import caffe`` gives it); they run
  only under the Python Caffe was built for (the real-Caffe stage, ``make test-real``).

Mark a module ``pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary]``. ``make
test-real`` runs every test marked ``real_caffe`` anywhere under tests/; ``make test`` runs them too
and they skip with the reason; CI's fake-only stages deselect them (``-m "not real_caffe"``).

Also here: :func:`caffe_train` (``caffe train`` watched like the runner, tests/runner_harness.py),
:func:`cmake_build_binary` (the ``caffe`` tool as CMake builds it) and :func:`dev_python` (a
Python with numpy 2, for the tests of a pycaffe that cannot load there).
"""

from __future__ import annotations

import os
import site
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
    """The environment a user gives ``caffe``: system PATH, pycaffe + this repo on PYTHONPATH.

    Caffe's glog writes to stderr only (``GLOG_logtostderr``), not also to log files in TMPDIR.
    """
    assert ROOT is not None
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONHOME", "CAFFE_LAYERS_FAKE_CAFFE")}
    python_path = [str(ROOT / "python"), str(REPO), str(TESTS)] + [str(p) for p in paths]
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=os.pathsep.join(python_path),
               GLOG_logtostderr="1")
    env.update(extra)
    return env


def embedded_python_path() -> list:
    """Where the binary's Python finds what only the test venv installs (lmdb, plyvel): this
    venv's site-packages when it is a venv of that Python (the real-Caffe stage's), else nothing.
    Put it on the binary's PYTHONPATH: ``binary_env(*embedded_python_path())``."""
    if sys.base_prefix != sys.prefix and os.path.realpath(sys._base_executable) == \
            os.path.realpath("/usr/bin/python3"):
        return site.getsitepackages()
    return []


def run_tool(name: str, *args: str, cwd: os.PathLike, timeout: float = 300,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a Caffe tool to completion; its output (stdout + stderr) is in ``.stdout``.

    With :func:`binary_env` glog logs to stderr only. With an ``env`` that lets glog also write its
    log file (``caffe.<host>.<user>.log.INFO.<date>.<pid>``, by default into TMPDIR: Caffe's, not
    a leftover of ours), the file goes into ``cwd`` (``GLOG_log_dir``, unless ``env`` says
    otherwise), kept with the run's other files.
    """
    env = dict(env or binary_env())
    env.setdefault("GLOG_log_dir", str(cwd))
    return subprocess.run([str(tool(name)), *map(str, args)], cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)


def caffe_train(folder: os.PathLike, *args: str, env: dict | None = None,
                binary: os.PathLike | None = None):
    """``caffe train --solver solver.prototxt`` in ``folder`` (``binary``: another build of the
    tool), in its own session, watched as tests/runner_harness.py watches the runner."""
    from runner_harness import Runner

    command = [binary or tool("caffe"), "train", "--solver", "solver.prototxt", *args]
    return Runner(folder, command=command, env=env or binary_env(folder))


def cmake_build_binary(dest: os.PathLike) -> Path | None:
    """The ``caffe`` tool as a CMake build makes it, compiled into ``dest``; None if it cannot be.

    CMake adds ``WITH_PYTHON_LAYER`` to libcaffe's own definitions only (PRIVATE), so its
    ``tools/caffe.cpp`` has no ``catch (bp::error_already_set)``: a Python layer's exception
    escapes ``main`` and aborts. Compiled here with the commands this tree's Makefile uses for the
    tool (``make -n``), minus that definition, against this tree's libcaffe (a few seconds).
    """
    assert ROOT is not None
    planned = subprocess.run(["make", "-n", "-W", "tools/caffe.cpp", ".build_release/tools/caffe.o",
                              ".build_release/tools/caffe.bin"], cwd=str(ROOT),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             timeout=120, check=False, env=dict(os.environ, PATH="/usr/bin:/bin"))
    commands = [line for line in planned.stdout.replace("\\\n", " ").splitlines()
                if line.startswith(("g++", "c++"))]
    if planned.returncode != 0 or len(commands) != 2:
        return None
    binary, objects = Path(dest) / "caffe", Path(dest) / "caffe.o"
    compile_, link = (command.split(" 2>")[0].replace("-DWITH_PYTHON_LAYER", "").split()
                      for command in commands)
    compile_ = [str(objects) if word == ".build_release/tools/caffe.o" else word
                for word in compile_]
    link = [str(objects) if word == ".build_release/tools/caffe.o" else
            str(binary) if word == ".build_release/tools/caffe.bin" else word for word in link]
    library = str(ROOT / ".build_release" / "lib")
    link = [word.replace("\\$ORIGIN/../lib", library).replace("$ORIGIN/../lib", library)
            for word in link]
    for command in (compile_, link):
        done = subprocess.run(command, cwd=str(ROOT), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
        if done.returncode != 0:
            return None
    return binary


def dev_python() -> str | None:
    """A Python whose numpy is 2.x (``CAFFE_LAYERS_DEV_PYTHON``, which ``make test-real`` sets to
    the development venv's), or None."""
    python = os.environ.get("CAFFE_LAYERS_DEV_PYTHON")
    if not python or not os.path.isfile(python):
        return None
    done = subprocess.run([python, "-c", "import numpy; print(numpy.__version__)"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          timeout=60, check=False)
    major = done.stdout.split(".")[0]
    return python if major.isdigit() and int(major) >= 2 else None
