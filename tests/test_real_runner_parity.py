"""The runner calls a layer exactly as real ``caffe train`` does, and names the same snapshots.

A probe layer (tests/runner_layers_probe.py) appends every call it gets (phase and method) to a
file. The same solver runs under real ``caffe train`` and under the runner with the fake; the two
call records must be equal, and the snapshots the runner logs must be the files Caffe wrote.
The solvers cover the train/test schedule, ``test_initialization``, ``iter_size``, the forward
after the last iteration when ``display`` divides ``max_iter``, the final test, several test nets,
Caffe's default snapshot prefixes, SIGINT and SIGHUP during training, and a snapshot prefix that
cannot be written. A probe of the interpreter checks the runner's emulation of the binary's
embedded Python. CAFFE.md, "Schedule", "Solver files", "Signals" and "The embedded interpreter".
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import real_caffe

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary]

NET = """
layer { name: "data" type: "Python" top: "data" include { phase: TRAIN }
        python_param { module: "runner_layers_probe" layer: "RecordLayer"
                       param_str: "{record_file: calls.txt TRAIN_KEYS}" } }
layer { name: "data" type: "Python" top: "data" include { phase: TEST }
        python_param { module: "runner_layers_probe" layer: "RecordLayer"
                       param_str: "{record_file: calls.txt}" } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 } }
"""
SOLVERS = {
    "tests, iter_size, final forward and test": """
        net: "net.prototxt"
        test_iter: 2
        test_interval: 3
        max_iter: 6
        iter_size: 2
        display: 3
        snapshot: 3
        """,
    "no test_initialization, display not dividing": """
        net: "net.prototxt"
        test_iter: 3
        test_interval: 4
        test_initialization: false
        max_iter: 10
        display: 4
        snapshot_prefix: "snaps"
        """,
    "two test nets": """
        train_net: "net.prototxt"
        test_net: "net.prototxt"
        test_net: "net.prototxt"
        test_iter: 1
        test_iter: 2
        test_interval: 2
        max_iter: 4
        snapshot_prefix: "snaps/run"
        snapshot_after_train: false
        snapshot: 2
        """,
}


def prepare(folder, solver: str, train_keys: str = "") -> None:
    folder.mkdir()
    (folder / "snaps").mkdir()
    (folder / "net.prototxt").write_text(NET.replace(" TRAIN_KEYS", train_keys))
    (folder / "solver.prototxt").write_text(textwrap.dedent(solver) + 'solver_mode: CPU\n'
                                            'base_lr: 0.01\nlr_policy: "fixed"\n')


def snapshots_written(folder) -> list:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*.caffemodel"))


def snapshots_logged(log: str) -> list:
    return sorted(re.findall(r"Snapshotting to (\S+) \(the runner has no weights", log))


def run_runner(folder, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CAFFE_LAYERS_FAKE_CAFFE="1", PYTHONPATH=os.pathsep.join(
        [str(real_caffe.REPO), str(real_caffe.TESTS)]))
    return subprocess.run([sys.executable, "-m", "caffe_layers.testing.runner", "solver.prototxt",
                           *args], cwd=str(folder), env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def run_both(tmp_path, solver: str, train_keys: str = "", caffe_env: dict | None = None,
             runner_args: tuple = ()) -> tuple:
    """The solver under ``caffe train`` in ``caffe/`` and under the runner in ``runner/``."""
    real, emulated = tmp_path / "caffe", tmp_path / "runner"
    prepare(real, solver, train_keys)
    prepare(emulated, solver, train_keys)
    done = real_caffe.run_tool("caffe", "train", "--solver", "solver.prototxt", cwd=real,
                               timeout=120, env=caffe_env)
    return real, emulated, done, run_runner(emulated, *runner_args)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_the_runner_calls_layers_as_caffe_train_does(tmp_path, solver):
    real, emulated, done, ran = run_both(tmp_path, SOLVERS[solver])
    assert done.returncode == 0, done.stdout[-3000:]
    assert ran.returncode == 0, ran.stderr[-3000:]
    caffe_calls = (real / "calls.txt").read_text().splitlines()
    assert len(caffe_calls) > 10
    assert (emulated / "calls.txt").read_text().splitlines() == caffe_calls
    assert snapshots_logged(ran.stderr) == snapshots_written(real)
    assert snapshots_written(real), "the solver should have written a snapshot"


@pytest.mark.parametrize("keys", [", sigint_at: 3", ", sighup_at: 2"], ids=["SIGINT", "SIGHUP"])
def test_sigint_and_sighup_during_training(tmp_path, keys):
    """SIGINT: finish the iteration, snapshot, stop; SIGHUP: snapshot and go on (the defaults)."""
    solver = SOLVERS["tests, iter_size, final forward and test"]
    real, emulated, done, ran = run_both(tmp_path, solver, train_keys=keys)
    assert done.returncode == 0, done.stdout[-3000:]
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (emulated / "calls.txt").read_text() == (real / "calls.txt").read_text()
    assert snapshots_logged(ran.stderr) == snapshots_written(real)
    stopped = "Optimization stopped early." in done.stdout
    assert stopped == ("sigint" in keys)
    assert stopped == ("Optimization stopped early." in ran.stderr)


def test_an_unwritable_snapshot_prefix_stops_both_before_any_layer_is_built(tmp_path):
    solver = SOLVERS["tests, iter_size, final forward and test"] + 'snapshot_prefix: "gone/m"\n'
    real, emulated, done, ran = run_both(tmp_path, solver)
    assert done.returncode == -signal.SIGABRT
    assert "Cannot write to snapshot prefix 'gone/m'." in done.stdout
    assert ran.returncode == 1
    assert "Cannot write to snapshot prefix 'gone/m'" in ran.stderr
    assert not (real / "calls.txt").exists() and not (emulated / "calls.txt").exists()


def test_a_solver_without_lr_policy_aborts_caffe_and_is_refused_by_the_runner(tmp_path):
    real, emulated = tmp_path / "caffe", tmp_path / "runner"
    for folder in (real, emulated):
        prepare(folder, SOLVERS["two test nets"])
        text = (folder / "solver.prototxt").read_text()
        (folder / "solver.prototxt").write_text(text.replace('lr_policy: "fixed"\n', ""))
    done = real_caffe.run_tool("caffe", "train", "--solver", "solver.prototxt", cwd=real)
    assert done.returncode == -signal.SIGABRT
    assert "Unknown learning rate policy: " in done.stdout
    assert "train forward" in (real / "calls.txt").read_text()  # after the first passes
    ran = run_runner(emulated)
    assert ran.returncode == 1
    assert "lr_policy is not given: real `caffe train` aborts at the first update ('Unknown " \
           "learning rate policy: ')" in ran.stderr


ENV_NET = """
layer { name: "data" type: "Python" top: "data"
        python_param { module: "runner_layers_probe" layer: "EnvProbeLayer"
                       param_str: "{env_file: env.json}" } }
"""


@pytest.mark.parametrize("python3_on_path", [True, False])
def test_the_runner_emulates_the_embedded_interpreter(tmp_path, python3_on_path):
    """sys.argv, __main__, sys.path and sys.executable as a layer sees them inside caffe."""
    seen = {}
    for name in ("caffe", "runner"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "net.prototxt").write_text(ENV_NET)
        (folder / "solver.prototxt").write_text('net: "net.prototxt"\nmax_iter: 1\n'
                                                'snapshot_after_train: false\nsolver_mode: CPU\n'
                                                'lr_policy: "fixed"\n')
    env = real_caffe.binary_env()
    if not python3_on_path:
        (tmp_path / "empty").mkdir()
        env["PATH"] = str(tmp_path / "empty")
    done = real_caffe.run_tool("caffe", "train", "--solver", "solver.prototxt",
                               cwd=tmp_path / "caffe", env=env)
    assert done.returncode == 0, done.stdout[-3000:]
    seen["caffe"] = json.loads((tmp_path / "caffe" / "env.json").read_text())
    executable = seen["caffe"]["executable"]
    assert (executable != "") == python3_on_path
    ran = run_runner(tmp_path / "runner", *(["--executable", executable] if executable else []))
    assert ran.returncode == 0, ran.stderr[-3000:]
    seen["runner"] = json.loads((tmp_path / "runner" / "env.json").read_text())
    assert seen["runner"] == seen["caffe"]
