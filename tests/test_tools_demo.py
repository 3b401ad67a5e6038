"""caffe-layers-demo end to end in a fresh working directory, and its synthetic dataset."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from caffe_layers.binaryproto import read_mean
from caffe_layers.tools import _examples, _shapes, demo

REPO = Path(__file__).resolve().parents[1]
DEMO_TIMEOUT_S = 90


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory holding only the demo's prototxt files."""
    (tmp_path / "prototxt").mkdir()
    for name in ("imagelist_solver.prototxt", "imagelist_train_val.prototxt"):
        shutil.copy(REPO / "prototxt" / name, tmp_path / "prototxt" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_demo(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), CAFFE_LAYERS_FAKE_CAFFE="1")
    return subprocess.run([sys.executable, "-m", "caffe_layers", "demo", *args], cwd=str(workdir),
                          env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)


@pytest.mark.slow
def test_demo_end_to_end_then_again(workdir):
    done = run_demo(workdir, "--iterations", "20")
    assert done.returncode == 0, done.stderr
    data = workdir / "demo_data"
    for name in _shapes.CLASSES:
        assert len(list((data / name).glob("*.jpg"))) == demo.PER_CLASS
    assert len((data / "train.txt").read_text().splitlines()) == 1280
    assert len((data / "val.txt").read_text().splitlines()) == 320
    assert (data / "labels.txt").read_text().split() == ["0", "circle", "1", "cross", "2",
                                                        "square", "3", "triangle"]
    assert read_mean(str(data / "mean.binaryproto")).shape == (3, 64, 64)
    png = cv2.imread(str(workdir / "demo_output" / "preview.png"))
    zoom = 2  # 56-pixel crops reach the 80-pixel tiles at zoom 2
    rows = 16 // 8  # the TRAIN batch of prototxt/imagelist_train_val.prototxt, 8 per row
    assert png.shape == (2 + rows * (56 * zoom + 14 + 2), 2 + 8 * (56 * zoom + 2), 3)
    assert "trained 20 iterations in " in done.stdout
    assert "test: loss and accuracy not computed (the runner computes only the Python layers" \
        in done.stdout
    [rate] = [line for line in done.stdout.splitlines() if line.startswith("data layer: ")]
    assert rate.endswith("images/s in steady state (its TRAIN batches alone, after the "
                         "prefetched ones)")
    assert float(rate.split()[2]) > 0
    assert "caffe-layers-preview" in done.stdout
    assert "caffe-layers-make-list" in done.stdout
    assert "Traceback" not in done.stderr
    mean_written = (data / "mean.binaryproto").stat().st_mtime_ns
    again = run_demo(workdir, "--iterations", "5")
    assert again.returncode == 0, again.stderr
    assert "using the existing demo_data/" in again.stdout
    assert (data / "mean.binaryproto").stat().st_mtime_ns == mean_written


def test_demo_in_process_with_zero_iterations(workdir, capsys):
    assert demo.main(["--iterations", "0", "--out", "shown", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained 0 iterations in " in out
    assert "data layer: " in out  # the rate is measured on the data layer alone
    assert (workdir / "shown" / "preview.png").is_file()


def test_demo_from_an_empty_directory(tmp_path, monkeypatch, capsys):
    """What the demo needs ships in the package: it writes the prototxt files it trains."""
    monkeypatch.chdir(tmp_path)
    assert demo.main(["--iterations", "0", "-q"]) == 0
    out = capsys.readouterr().out
    for name in ("imagelist_solver.prototxt", "imagelist_train_val.prototxt"):
        assert f"wrote prototxt/{name} (the package's copy)" in out
        assert (tmp_path / "prototxt" / name).read_bytes() == \
            (REPO / "prototxt" / name).read_bytes()
    assert (tmp_path / "demo_output" / "preview.png").is_file()
    assert "caffe-layers-check-list path/to/images/train.txt" in out


def test_an_edited_prototxt_is_kept(workdir, capsys):
    solver = workdir / "prototxt" / "imagelist_solver.prototxt"
    edited = solver.read_text().replace("max_iter: 1500", "max_iter: 3")
    solver.write_text(edited)
    assert demo.main(["-q"]) == 0
    out = capsys.readouterr().out
    assert "wrote prototxt/" not in out
    assert "trained 3 iterations" in out
    assert solver.read_text() == edited


def test_a_missing_solver(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert demo.main(["--solver", "nope.prototxt"]) == 2
    assert capsys.readouterr().err.startswith(
        "caffe-layers-demo: error: solver 'nope.prototxt' does not exist")
    assert not (tmp_path / "demo_data").exists()


def test_the_shipped_prototxt_files_are_the_repositorys():
    shipped = sorted(p.name for p in (REPO / "caffe_layers" / "tools" / "demo_files").iterdir())
    assert shipped == sorted(name for example in _examples.EXAMPLES.values()
                             for name in example.prototxt_files)
    for name in shipped:
        assert (REPO / "caffe_layers" / "tools" / "demo_files" / name).read_bytes() == \
            (REPO / "prototxt" / name).read_bytes(), f"prototxt/{name} differs from the " \
            f"package's copy: edit both"


@pytest.mark.slow
@pytest.mark.parametrize("example", ["hdf5", "npy", "multi", "dataset"])
def test_every_example_in_one_command(tmp_path, example):
    """``caffe-layers-demo --example NAME`` from an empty directory: data, training, preview."""
    done = run_demo(tmp_path, "--example", example, "--iterations", "12", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "trained 12 iterations" in done.stdout
    assert "  Optimization Done. 12 iterations" in done.stdout
    assert f"python -m caffe_layers.testing.runner prototxt/{example}_solver.prototxt" in \
        done.stdout
    preview = cv2.imread(str(tmp_path / "demo_output" / f"preview_{example}.png"))
    assert preview is not None and preview.shape[2] == 3
    again = run_demo(tmp_path, "--example", example, "--iterations", "2", "-q")
    assert again.returncode == 0, again.stderr
    if _examples.EXAMPLES[example].write_data is not None:
        assert "using the existing example_data/" in again.stdout
    assert "wrote prototxt/" not in again.stdout


def test_an_incomplete_dataset_is_remade(workdir, capsys):
    assert demo.main(["--iterations", "0", "--quiet"]) == 0
    (workdir / "demo_data" / "mean.binaryproto").unlink()
    capsys.readouterr()
    assert demo.main(["--iterations", "0", "--quiet"]) == 0
    assert "wrote 1600 JPEGs" in capsys.readouterr().out
    assert (workdir / "demo_data" / "mean.binaryproto").is_file()


def test_bad_iterations(capsys):
    assert demo.main(["--iterations", "-1"]) == 2
    assert "argument --iterations" in capsys.readouterr().err


# --- the synthetic dataset ----------------------------------------------------------------------

def test_images_are_a_function_of_seed_class_and_index(tmp_path):
    one = _shapes.write_dataset(str(tmp_path / "a"), 3, seed=5)
    two = _shapes.write_dataset(str(tmp_path / "b"), 3, seed=5)
    other = _shapes.write_dataset(str(tmp_path / "c"), 3, seed=6)
    for name in _shapes.CLASSES:
        for a, b, c in zip(one[name], two[name], other[name]):
            assert Path(a).read_bytes() == Path(b).read_bytes() != Path(c).read_bytes()
            assert cv2.imread(a).shape == (64, 64, 3)


def _shape_features(image: np.ndarray) -> np.ndarray:
    """Hu moments of the foreground: pixels far from the median colour of the corners."""
    pixels = image.astype(float)
    corners = np.concatenate([pixels[:4, :4], pixels[:4, -4:], pixels[-4:, :4], pixels[-4:, -4:]])
    background = np.median(corners.reshape(-1, 3), axis=0)
    mask = (np.abs(pixels - background).sum(axis=2) > 90).astype(np.uint8)
    hu = cv2.HuMoments(cv2.moments(mask, True)).ravel()[:3]
    return -np.sign(hu) * np.log10(np.abs(hu) + 1e-30)


def _colour_features(image: np.ndarray) -> np.ndarray:
    pixels = image.astype(float)
    return np.concatenate([pixels.mean(axis=(0, 1)), pixels.std(axis=(0, 1))])


def _knn_accuracy(features, labels, train: int) -> float:
    features = np.asarray(features)
    labels = np.asarray(labels)
    features = (features - features[:train].mean(0)) / features[:train].std(0)
    distances = ((features[train:, None] - features[None, :train]) ** 2).sum(axis=2)
    nearest = np.argsort(distances, axis=1)[:, :5]
    votes = [np.bincount(labels[:train][row], minlength=4).argmax() for row in nearest]
    return float(np.mean(np.array(votes) == labels[train:]))


def test_the_shape_decides_the_class_not_the_colour(tmp_path):
    """Crude shape features classify held-out images well; colour statistics do not."""
    written = _shapes.write_dataset(str(tmp_path), 60, seed=0)
    order = np.random.default_rng(0).permutation(4 * 60)
    samples = [(path, label) for label, name in enumerate(_shapes.CLASSES)
               for path in written[name]]
    images = [cv2.imread(samples[i][0]) for i in order]
    labels = [samples[i][1] for i in order]
    shape_accuracy = _knn_accuracy([_shape_features(im) for im in images], labels, 180)
    colour_accuracy = _knn_accuracy([_colour_features(im) for im in images], labels, 180)
    assert shape_accuracy > 0.6
    assert colour_accuracy < shape_accuracy - 0.2
