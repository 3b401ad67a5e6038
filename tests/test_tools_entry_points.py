"""Every console script as installed: ``--help``, ``-q``, and the demo after ``pip install .``.

The scripts are those of ``pyproject.toml``, run as installed in this interpreter's ``bin``
(``make test`` installs the package with ``pip install -e .``); a new tool is covered by
``--help`` at once and must add its ``-q`` run to :data:`QUIET_RUNS`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from image_data import write_dataset

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
ENV["CAFFE_LAYERS_FAKE_CAFFE"] = "1"


def console_scripts() -> dict:
    """``{script: module:function}`` of pyproject.toml's ``[project.scripts]``."""
    table = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1]
    table = table.split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.:]+)"', table, re.MULTILINE))


def installed(script: str) -> str:
    path = Path(sysconfig.get_path("scripts")) / script
    assert path.is_file(), (f"{script} is not installed in {path.parent}; install the package "
                            f"(make test does: pip install -e '.[test]')")
    return str(path)


def run(argv, cwd, timeout: float = 120, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=str(cwd), env=env or ENV,
                          capture_output=True, text=True, timeout=timeout)


def pip_env(tmp_path: Path) -> dict:
    """ENV with a TMPDIR of the test's own for pip and venv: the pip that Python 3.8's ensurepip
    installs leaves its extracted cacert.pem behind, which is pip's leftover, not ours."""
    tmp = tmp_path / "pip-tmp"
    tmp.mkdir(exist_ok=True)
    return dict(ENV, TMPDIR=str(tmp))


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_every_console_script_answers_help(script, tmp_path):
    done = run([installed(script), "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {script} ")
    assert re.search(r"^  -q, --quiet\b", done.stdout, re.MULTILINE), done.stdout


def quiet_runs(tmp_path: Path) -> dict:
    """A real run of every tool with ``-q``: ``{script: (argv, file it writes)}``."""
    (tmp_path / "tree" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "b").mkdir()
    dataset = write_dataset(tmp_path, 4, (6, 5), classes=2, root_folder=str(tmp_path))
    listing = str(dataset.list_path)
    root = f"{tmp_path}/"
    for name in ("a", "b"):
        shutil.copy(dataset.files[0], tmp_path / "tree" / name / "x.png")
    net = tmp_path / "net.prototxt"
    param_str = f"{{source: {listing}, root_folder: {root}, batch_size: 2, workers: 0}}"
    net.write_text('layer { name: "data" type: "Python" top: "data" top: "label" python_param {'
                   ' module: "caffe_layers.layers" layer: "ImageListDataLayer" param_str: '
                   f'"{param_str}" }} }}\n')
    (tmp_path / "empty").mkdir()
    return {
        "caffe-layers-make-list": ([tmp_path / "tree", "-q"], tmp_path / "tree" / "train.txt"),
        "caffe-layers-check-list": ([listing, "--root-folder", root, "-q"], None),
        "caffe-layers-compute-mean": ([listing, "--root-folder", root, "-q", "-o",
                                       tmp_path / "mean.binaryproto"],
                                      tmp_path / "mean.binaryproto"),
        "caffe-layers-convert-hdf5": ([listing, tmp_path / "h5", "--root-folder", root, "-q"],
                                      tmp_path / "h5" / "list.txt"),
        "caffe-layers-preview": ([net, "--out", tmp_path / "batch.png", "-q"],
                                 tmp_path / "batch.png"),
        "caffe-layers-demo": (["--iterations", "0", "-q"],
                              tmp_path / "empty" / "demo_output" / "preview.png"),
        "caffe-layers-convert-db": ([root, listing, tmp_path / "lmdb", "-q"],
                                    tmp_path / "lmdb" / "data.mdb"),
        "caffe-layers-bench": ([net, "--workers", "0", "--batches", "2", "--json",
                                tmp_path / "bench.json", "-q"], tmp_path / "bench.json"),
    }


@pytest.mark.slow
def test_every_console_script_takes_q(tmp_path):
    runs = quiet_runs(tmp_path)
    assert sorted(runs) == sorted(console_scripts()), "add the new tool's -q run to quiet_runs"
    for script, (argv, written) in runs.items():
        cwd = tmp_path / "empty" if script == "caffe-layers-demo" else tmp_path
        done = run([installed(script), *argv], cwd)
        assert done.returncode == 0, f"{script}: {done.stderr}"
        assert "unrecognized arguments" not in done.stderr
        if written is not None:
            assert written.is_file(), f"{script} did not write {written}"


# --- the demo after a non-editable install, outside the repository ------------------------------


def build_wheel(tmp_path: Path) -> Path:
    """The package as ``pip install .`` builds it (from a copy: the build writes into its
    source tree)."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "caffe_layers", source / "caffe_layers",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    done = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist",
                source], tmp_path, timeout=300, env=pip_env(tmp_path))
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("caffe_layers-*.whl")
    return wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A new virtualenv with the wheel installed and, through a .pth file, this interpreter's
    dependencies (numpy, OpenCV, h5py, PyYAML) but not its caffe_layers."""
    venv = tmp_path / "venv"
    done = run([sys.executable, "-m", "venv", venv], tmp_path, timeout=300, env=pip_env(tmp_path))
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    done = run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
               tmp_path, timeout=300, env=pip_env(tmp_path))
    assert done.returncode == 0, done.stderr
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
               tmp_path).stdout.strip()
    Path(site, "dependencies.pth").write_text("".join(p + "\n" for p in dependency_folders()))
    return venv


def dependency_folders() -> list:
    """The folders this interpreter imports the package's dependencies from."""
    import cv2
    import h5py
    import numpy
    import yaml

    folders = set()
    for module in (cv2, h5py, numpy, yaml):
        path = Path(module.__file__).resolve()  # a package's __init__.py, or a module file
        folders.add(str(path.parent.parent if path.stem == "__init__" else path.parent))
    return sorted(folders)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_demo_after_pip_install_in_an_empty_directory(tmp_path):
    wheel = build_wheel(tmp_path)
    shipped = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".prototxt")]
    assert sorted(shipped) == sorted(f"caffe_layers/tools/demo_files/{p.name}"
                                     for p in (REPO / "caffe_layers/tools/demo_files").iterdir())
    venv = fresh_venv(tmp_path, wheel)
    empty = tmp_path / "empty"
    empty.mkdir()
    where = run([venv / "bin" / "python", "-c",
                 "import caffe_layers; print(caffe_layers.__file__)"], empty)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    done = run([venv / "bin" / "caffe-layers-demo", "--iterations", "2", "-q"], empty,
               timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trained 2 iterations" in done.stdout
    assert (empty / "prototxt" / "imagelist_solver.prototxt").is_file()
    assert (empty / "demo_output" / "preview.png").is_file()
    example = run([venv / "bin" / "caffe-layers-demo", "--example", "hdf5", "--iterations", "2",
                   "-q"], empty, timeout=300)
    assert example.returncode == 0, example.stdout + example.stderr
    assert (empty / "demo_output" / "preview_hdf5.png").is_file()
