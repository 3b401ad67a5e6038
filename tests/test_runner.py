"""The `caffe train` emulator: call order, solver rules and checks, the CLI's binary emulation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import runner_layers_probe as probe

from caffe_layers.testing import import_caffe, runner
from caffe_layers.testing.prototxt import PrototxtError

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
TIMEOUT_S = 60


def python_layer(name: str, phase: str | None, *, cls: str = "RecordLayer", tops=("data",),
                 param_str: str = "") -> str:
    include = f"include {{ phase: {phase} }}" if phase else ""
    tops_text = " ".join(f'top: "{top}"' for top in tops)
    return textwrap.dedent(f"""
        layer {{
          name: "{name}" type: "Python" {tops_text} {include}
          python_param {{ module: "runner_layers_probe" layer: "{cls}"
                          param_str: {json.dumps(param_str)} }}
        }}""")


def write_net(path: Path, *layers: str) -> str:
    path.write_text('name: "probe"\n' + "\n".join(layers) + "\n")
    return path.name


def two_phase_net(path: Path, train_params: str = "", test_params: str = "",
                  cls: str = "RecordLayer") -> str:
    """A TRAIN and a TEST RecordLayer, then a layer the fake does not compute."""
    return write_net(path, python_layer("data", "TRAIN", cls=cls, param_str=train_params),
                     python_layer("data", "TEST", cls=cls, param_str=test_params),
                     'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                     "inner_product_param { num_output: 2 } }")


def write_solver(path: Path, body: str) -> str:
    """Write a solver; it trains with a fixed rate unless ``body`` names an ``lr_policy``."""
    body = textwrap.dedent(body)
    path.write_text(body if "lr_policy" in body else body + 'lr_policy: "fixed"\n')
    return os.path.relpath(path)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory (solver paths are relative to it) and an empty call log."""
    monkeypatch.chdir(tmp_path)
    probe.calls.clear()
    yield tmp_path
    probe.calls.clear()


def fwd(phase: str, times: int) -> list:
    return [(phase, "reshape"), (phase, "forward")] * times


# ------------------------------------------------------------------------------ the schedule

def test_call_order_of_the_issue(workdir):
    """max_iter 5, test_interval 3, test_iter 2, display 1 (the issue's done-when)."""
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 5
        test_interval: 3
        test_iter: 2
        display: 1
        """)
    record = runner.run(solver)
    assert probe.calls == [
        ("train", "setup"), ("train", "reshape"), ("test", "setup"), ("test", "reshape"),
        *fwd("test", 2), *fwd("train", 3), *fwd("test", 2), *fwd("train", 3),
    ]
    assert record.iterations == 5
    assert [e for e in record.events if e[0] != "snapshot"] == [
        ("test", 0, 0), ("train", 0), ("train", 1), ("train", 2), ("test", 3, 0), ("train", 3),
        ("train", 4), ("forward", 5)]
    assert record.batch_size == 2
    assert len(record.iteration_s) == 5
    assert record.median_iteration_s > 0
    assert "Iteration 3, Testing net (#0)" in record.log
    assert any(line.startswith("Iteration 4 (") and "img/s" in line for line in record.log)


def test_iter_size_runs_that_many_forwards_per_iteration(workdir):
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 2
        iter_size: 3
        """)
    record = runner.run(solver)
    assert probe.calls == [("train", "setup"), ("train", "reshape"), *fwd("train", 6)]
    assert record.iterations == 2
    assert record.images_per_s == pytest.approx(2 * 3 / record.median_iteration_s)


def test_no_test_at_iteration_0_without_test_initialization(workdir):
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 3
        test_interval: 2
        test_iter: 1
        test_initialization: false
        """)
    runner.run(solver)
    assert probe.calls == [
        ("train", "setup"), ("train", "reshape"), ("test", "setup"), ("test", "reshape"),
        *fwd("train", 2), *fwd("test", 1), *fwd("train", 1),
    ]


def test_final_test_when_test_interval_divides_max_iter(workdir):
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 4
        test_interval: 2
        test_iter: 1
        """)
    record = runner.run(solver)
    assert probe.calls[4:] == [*fwd("test", 1), *fwd("train", 2), *fwd("test", 1),
                               *fwd("train", 2), *fwd("test", 1)]
    assert [e for e in record.events if e[0] == "test"] == [("test", 0, 0), ("test", 2, 0),
                                                            ("test", 4, 0)]


@pytest.mark.parametrize(("display", "extra"), [(2, 1), (4, 1), (3, 0), (0, 0)])
def test_extra_forward_only_when_display_divides_max_iter(workdir, display, extra):
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", f"""
        net: "net.prototxt"
        max_iter: 4
        display: {display}
        """)
    record = runner.run(solver)
    assert probe.calls == [("train", "setup"), ("train", "reshape"), *fwd("train", 4 + extra)]
    assert (("forward", 4) in record.events) == bool(extra)


def test_max_iter_override(workdir):
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 1000
        """)
    record = runner.run(solver, max_iter=2)
    assert record.iterations == 2
    assert record.solver.max_iter == 2
    assert probe.calls == [("train", "setup"), ("train", "reshape"), *fwd("train", 2)]


def test_test_net_files_come_before_the_generic_net(workdir):
    """test_net files first, then one TEST instance of `net` per remaining test_iter."""
    two_phase_net(workdir / "net.prototxt", test_params="{batch: 3}")
    write_net(workdir / "other.prototxt", python_layer("other", None, param_str="{batch: 5}"))
    solver = write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        test_net: "other.prototxt"
        test_iter: [1, 2, 3]
        test_interval: 10
        max_iter: 0
        test_initialization: false
        """)
    record = runner.run(solver)
    assert record.solver.test_nets == ("other.prototxt", "net.prototxt", "net.prototxt")
    assert record.solver.test_iter == (1, 2, 3)
    # iteration 0 == max_iter: no training; the final test runs every test net in order
    assert probe.calls == [("train", "setup"), ("train", "reshape")] + \
        [("test", "setup"), ("test", "reshape")] * 3 + fwd("test", 1 + 2 + 3)
    assert [e for e in record.events if e[0] == "test"] == [("test", 0, 0), ("test", 0, 1),
                                                            ("test", 0, 2)]


def test_train_net_and_test_net_fields(workdir):
    write_net(workdir / "train.prototxt", python_layer("t", None))
    write_net(workdir / "val.prototxt", python_layer("v", None))
    solver = write_solver(workdir / "solver.prototxt", """
        train_net: "train.prototxt"
        test_net: "val.prototxt"
        test_iter: 2
        test_interval: 1
        max_iter: 1
        """)
    record = runner.run(solver)
    assert record.solver.test_nets == ("val.prototxt",)
    assert probe.calls[4:] == [*fwd("test", 2), *fwd("train", 1), *fwd("test", 2)]


def test_stop_request_finishes_the_iteration_then_snapshots(workdir):
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 10
        iter_size: 2
        display: 1
        snapshot_prefix: "snap/model"
        """)
    requests = iter(["none", "snapshot", "stop"])
    record = runner.run(solver, requested_action=lambda: next(requests, "none"))
    assert record.iterations == 3
    assert record.stopped_early
    assert probe.calls == [("train", "setup"), ("train", "reshape"), *fwd("train", 3 * 2)]
    assert [e for e in record.events if e[0] in ("snapshot", "stop")] == [
        ("snapshot", 2), ("stop", 3), ("snapshot", 3)]
    assert "Optimization stopped early." in record.log
    assert any("snap/model_iter_3.caffemodel" in line for line in record.log)
    assert not (workdir / "snap").exists()


def test_stop_request_during_a_test_interrupts_it(workdir):
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 10
        test_iter: 5
        test_interval: 10
        """)
    requests = iter(["none", "none", "stop"])
    record = runner.run(solver, requested_action=lambda: next(requests, "none"))
    assert record.iterations == 0
    assert probe.calls[4:] == fwd("test", 2)
    assert "Test interrupted." in record.log
    assert "Optimization stopped early." in record.log


def test_uncomputed_layers_are_listed_once_not_warned(workdir):
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 1\n')
    record = runner.run(solver)  # the suite turns warnings into errors
    assert record.uncomputed == ["ip (InnerProduct)"]
    assert [line for line in record.log if line.startswith("Not computed")] == [
        "Not computed by the fake caffe (wiring checked only): ip (InnerProduct)"]


def test_wiring_of_uncomputed_layers_is_checked(workdir):
    caffe = import_caffe()
    write_net(workdir / "net.prototxt", python_layer("data", None),
              'layer { name: "ip" type: "InnerProduct" bottom: "nothing" top: "ip" }')
    solver = write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 1\n')
    with pytest.raises(caffe.CaffeAbort, match="Unknown bottom blob 'nothing'"):
        runner.run(solver)
    write_net(workdir / "net.prototxt", python_layer("data", None),
              'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "data2" }',
              'layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "data2" }')
    with pytest.raises(caffe.CaffeAbort, match="Top blob 'data2' produced by multiple sources"):
        runner.run(solver)


def test_example_layer_gives_deterministic_batches(workdir):
    caffe = import_caffe()
    path = str(REPO / "prototxt" / "example_net.prototxt")
    with pytest.warns(caffe.NotComputedWarning):
        nets = [caffe.Net(path, caffe.TRAIN) for _ in range(2)]
    batches = []
    for net in nets:
        net._forward(0, 0)
        batches.append((net.blobs["data"].data.copy(), net.blobs["label"].data.copy()))
    (data, label), (data2, label2) = batches
    assert data.shape == (16, 3, 32, 32)
    assert label.shape == (16,)
    assert set(np.unique(label)) <= {0.0, 1.0, 2.0, 3.0}
    assert np.array_equal(data, data2)
    assert np.array_equal(label, label2)
    nets[0]._forward(0, 0)
    assert not np.array_equal(nets[0].blobs["data"].data, data)  # the next batch differs
    with pytest.warns(caffe.NotComputedWarning):
        test_net = caffe.Net(path, caffe.TEST)
    test_net._forward(0, 0)
    assert test_net.blobs["data"].data.shape == (8, 3, 32, 32)


# ------------------------------------------------------------------------------ solver errors

def refused(workdir: Path, body: str) -> str:
    two_phase_net(workdir / "net.prototxt")
    solver = write_solver(workdir / "solver.prototxt", body)
    with pytest.raises(PrototxtError) as info:
        runner.run(solver)
    assert probe.calls == []  # refused before any net is built
    return str(info.value)


def test_missing_test_iter_for_a_test_net(workdir):
    message = refused(workdir, """
        net: "net.prototxt"
        test_net: "net.prototxt"
        test_interval: 10
        """)
    assert message.startswith("solver.prototxt:3:1: ")  # at test_net
    assert "test_iter must be specified for each test network (got 1 test_net and 0 test_iter)" \
        in message
    assert "add test_iter" in message


def test_test_iter_count_must_match_test_nets_without_a_generic_net(workdir):
    message = refused(workdir, """
        train_net: "net.prototxt"
        test_net: "net.prototxt"
        test_iter: [1, 2]
        test_interval: 10
        """)
    assert "solver.prototxt:4:1: test_iter must be specified for each test network" in message


def test_missing_net_file_says_paths_are_relative_to_the_working_directory(workdir):
    (workdir / "models").mkdir()
    two_phase_net(workdir / "models" / "net.prototxt")
    solver = write_solver(workdir / "models" / "solver.prototxt", 'net: "net.prototxt"\n')
    with pytest.raises(runner.SolverError) as info:
        runner.run(solver)
    message = str(info.value)
    assert message.startswith("models/solver.prototxt:1:1: net: net file 'net.prototxt' not found")
    assert "relative to the working directory" in message
    assert "write 'models/net.prototxt'" in message  # the hint: where it does exist


@pytest.mark.parametrize(("body", "expected"), [
    ('net: "net.prototxt"\ntest_iter: 2\n', "2:1: test_interval must be > 0 when there are "
                                            "test nets"),
    ('net: "net.prototxt"\ntest_intervall: 2\n',
     "2:1: SolverParameter has no field named 'test_intervall' (did you mean 'test_interval'?)"),
    ('net: "net.prototxt"\nmax_iter: 2\nmax_iter: 3\n', "3:1: max_iter is given 2 times"),
    ('net: "net.prototxt"\nmax_iter: "5"\n', "2:1: max_iter: expected an integer, got '5'"),
    ('net: "net.prototxt"\nsolver_mode: TPU\n', "solver_mode: unknown value TPU"),
    ('net: "net.prototxt"\ntrain_net: "net.prototxt"\n', "more than one field specifies the "
                                                         "train net: net, train_net"),
    ("max_iter: 3\n", "the solver must specify a train net"),
    ('net: "net.prototxt"\niter_size: 0\n', "iter_size must be >= 1 (got 0)"),
    ('net: "net.prototxt"\nmax_iter: 1\nlr_policy: "steps"\n', "3:1: unknown lr_policy 'steps': "
                                                              "real `caffe train` aborts"),
    ('net_param { name: "x" }\n', "net_param (an inline net) is not supported by the runner"),
    ('net: "net.prototxt"\nmax_iter: \n', "missing value for 'max_iter'"),
])
def test_solver_errors(workdir, body, expected):
    message = refused(workdir, body)
    assert expected in message


def test_snapshot_prefix_defaults_as_in_caffe(workdir):
    """Caffe's UpgradeSnapshotPrefixProperty: no prefix -> the solver's path without extension;
    a directory -> <directory>/<solver stem>; anything else as given."""
    two_phase_net(workdir / "net.prototxt")
    (workdir / "conf").mkdir()
    (workdir / "snaps").mkdir()
    cases = {"": "conf/s", 'snapshot_prefix: "snaps"\n': os.path.join("snaps", "s"),
             'snapshot_prefix: "snaps/run"\n': "snaps/run"}
    for line, prefix in cases.items():
        solver = write_solver(workdir / "conf" / "s.prototxt", 'net: "net.prototxt"\n' + line)
        assert runner.read_solver(solver).snapshot_prefix == prefix


def test_an_unwritable_snapshot_prefix_is_refused_before_any_net_is_built(workdir):
    record = workdir / "calls.txt"
    two_phase_net(workdir / "net.prototxt", train_params=f"{{record_file: {record}}}")
    write_solver(workdir / "solver.prototxt",
                 'net: "net.prototxt"\nsnapshot: 5\nsnapshot_prefix: "missing/m"\n')
    with pytest.raises(runner.SolverError, match="Cannot write to snapshot prefix 'missing/m'"):
        runner.run("solver.prototxt")
    assert not record.exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["net.prototxt", "solver.prototxt"]


def test_a_solver_without_lr_policy_is_refused_unless_nothing_trains(workdir):
    two_phase_net(workdir / "net.prototxt")
    (workdir / "solver.prototxt").write_text('net: "net.prototxt"\nmax_iter: 2\n')
    with pytest.raises(runner.SolverError, match="lr_policy is not given: real `caffe train` "
                                                 "aborts at the first update"):
        runner.read_solver("solver.prototxt")
    assert runner.read_solver("solver.prototxt", max_iter=0).max_iter == 0


def test_missing_solver_file(workdir):
    with pytest.raises(runner.SolverError, match=r"solver file 'nope.prototxt' not found"):
        runner.run("nope.prototxt")


def test_read_solver_defaults(workdir):
    two_phase_net(workdir / "net.prototxt")
    spec = runner.read_solver(write_solver(workdir / "s.prototxt", 'net: "net.prototxt"\n'))
    assert (spec.test_initialization, spec.iter_size, spec.display, spec.max_iter) == \
        (True, 1, 0, 0)
    assert (spec.snapshot_after_train, spec.solver_mode, spec.random_seed) == (True, 1, -1)
    assert spec.test_nets == ()


# ------------------------------------------------------------------------ the command line

def cli(args: list, cwd: Path, *, extra_path: str = "", timeout: float = TIMEOUT_S):
    """Run the runner's CLI in a fresh process; layer modules come through PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(TESTS), extra_path) if p)
    return subprocess.run([sys.executable, "-m", "caffe_layers.testing.runner", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_runs_the_example_solver_from_the_repository_root():
    done = cli(["prototxt/example_solver.prototxt", "--max-iter", "12"], REPO)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "Iteration 0, Testing net (#0)" in lines
    assert "Iteration 10, Testing net (#0)" in lines
    assert any(line.startswith("Iteration 10 (") and line.endswith("img/s") for line in lines)
    assert "Not computed by the fake caffe (wiring checked only): fc (InnerProduct), " \
           "loss (SoftmaxWithLoss), accuracy (Accuracy)" in lines
    assert lines[-1].startswith("Optimization Done. 12 iterations, median iteration ")
    assert "Traceback" not in done.stderr


def test_cli_max_iter_and_record_file(workdir):
    record = workdir / "calls.txt"
    two_phase_net(workdir / "net.prototxt", train_params=f"{{record_file: {record}}}")
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 100\n')
    done = cli(["solver.prototxt", "--max-iter", "3"], workdir)
    assert done.returncode == 0, done.stderr
    assert record.read_text().splitlines() == ["train setup", "train reshape"] + \
        ["train reshape", "train forward"] * 3


def test_cli_reports_solver_errors_without_traceback(workdir):
    two_phase_net(workdir / "net.prototxt")
    write_solver(workdir / "solver.prototxt", 'net: "missing.prototxt"\n')
    done = cli(["solver.prototxt"], workdir)
    assert done.returncode == 1
    assert "net file 'missing.prototxt' not found" in done.stderr
    assert "Traceback" not in done.stderr


def env_facts(workdir: Path, *options: str, extra_path: str = "") -> dict:
    facts = workdir / "facts.json"
    write_net(workdir / "net.prototxt",
              python_layer("probe", None, cls="EnvProbeLayer", param_str=f"{{env_file: {facts}}}"))
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 1\n')
    done = cli(["solver.prototxt", *options], workdir, extra_path=extra_path)
    assert done.returncode == 0, done.stderr
    return json.loads(facts.read_text())


def test_cli_emulates_the_embedded_interpreter(workdir):
    facts = env_facts(workdir)
    assert facts == {"argv": [""], "executable": "", "spawn_executable": "",
                     "main_has_file": False, "empty_on_path": False, "cwd_on_path": False}


def test_cli_keeps_the_cwd_on_sys_path_when_pythonpath_names_it(workdir):
    assert env_facts(workdir, extra_path=str(workdir))["cwd_on_path"] is True


def test_cli_layer_module_in_cwd_is_not_found_without_pythonpath(workdir):
    (workdir / "cwd_layer.py").write_text("from runner_layers_probe import RecordLayer\n")
    write_net(workdir / "net.prototxt", python_layer("d", None).replace(
        '"runner_layers_probe"', '"cwd_layer"'))
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 1\n')
    embedded = cli(["solver.prototxt"], workdir)
    assert embedded.returncode == -signal.SIGABRT
    assert "ModuleNotFoundError: No module named 'cwd_layer'" in embedded.stderr
    plain = cli(["solver.prototxt", "--no-embedded"], workdir)
    assert plain.returncode == 0, plain.stderr


def test_cli_executable_option_and_no_embedded(workdir):
    facts = env_facts(workdir, "--executable", "/usr/bin/python3-wrong")
    assert facts["executable"] == facts["spawn_executable"] == "/usr/bin/python3-wrong"
    facts = env_facts(workdir, "--no-embedded")
    assert facts["argv"] != [""]
    assert facts["executable"] == sys.executable
    assert facts["main_has_file"] is True


@pytest.mark.parametrize("method", ["setup", "reshape", "forward"])
def test_cli_aborts_without_traceback_when_a_layer_method_raises(workdir, method):
    two_phase_net(workdir / "net.prototxt", train_params=f"{{fail_in: {method}}}",
                  cls="FailingLayer")
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 3\n')
    done = cli(["solver.prototxt"], workdir)
    assert done.returncode == -signal.SIGABRT
    assert "Traceback" not in done.stderr
    assert "deliberate failure" not in done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("*** ")]
    assert len(notes) == 1
    assert f"Python layer 'data' raised RuntimeError in {method}" in notes[0]
    assert "SIGABRT, exit 134" in notes[0]
    assert f"FailingLayer prints before failing in {method}" in done.stdout


def test_cli_prints_a_failed_check_and_aborts(workdir):
    write_net(workdir / "net.prototxt", python_layer("data", None),
              'layer { name: "ip" type: "InnerProduct" bottom: "nothing" top: "ip" }')
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 3\n')
    done = cli(["solver.prototxt"], workdir)
    assert done.returncode == -signal.SIGABRT
    assert "F Unknown bottom blob 'nothing' (layer 'ip', bottom index 0)" in done.stderr
    assert "*** real `caffe train` aborts here (SIGABRT, exit 134)" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_failed_check_inside_a_layer(workdir):
    write_net(workdir / "net.prototxt", python_layer("data", None, param_str="{batch: -1}"))
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 3\n')
    done = cli(["solver.prototxt"], workdir)
    assert done.returncode == -signal.SIGABRT
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("F ") for line in lines)
    assert any(line.startswith("*** Python layer 'data' raised CaffeAbort in setup: real `caffe "
                               "train` aborts here") for line in lines)


def test_cli_example_layer_prints_its_own_traceback(workdir):
    write_net(workdir / "net.prototxt", python_layer("data", None, cls="RandomDataLayer").replace(
        '"runner_layers_probe"', '"caffe_layers.testing.example_layers"'))
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 3\n')
    done = cli(["solver.prototxt"], workdir)
    assert done.returncode == -signal.SIGABRT
    assert "RandomDataLayer.setup failed:" in done.stderr
    assert "needs no bottom and exactly 2 tops (data, label), got 0 bottoms and 1 tops" \
        in done.stderr  # printed by the layer itself: the runner shows no traceback
    assert "*** Python layer 'data' raised ConfigError in setup" in done.stderr


def test_cli_traceback_option_prints_it_and_still_aborts(workdir):
    two_phase_net(workdir / "net.prototxt", train_params="{fail_in: forward}",
                  cls="FailingLayer")
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 3\n')
    done = cli(["solver.prototxt", "--traceback"], workdir)
    assert done.returncode == -signal.SIGABRT
    assert "Traceback" in done.stderr
    assert "RuntimeError: deliberate failure in forward" in done.stderr


def test_cli_prints_the_traceback_of_a_constructor_error(workdir):
    write_net(workdir / "net.prototxt", python_layer("data", None, cls="FailingInitLayer"))
    write_solver(workdir / "solver.prototxt", 'net: "net.prototxt"\nmax_iter: 3\n')
    done = cli(["solver.prototxt"], workdir)
    assert done.returncode == -signal.SIGABRT
    assert "ValueError: deliberate failure in __init__" in done.stderr
    assert "Python layer 'data' raised ValueError in __init__" in done.stderr


def test_cli_sigint_stops_after_the_current_iteration(workdir):
    record = workdir / "calls.txt"
    two_phase_net(workdir / "net.prototxt",
                  train_params=f"{{record_file: {record}, sigint_at: 3}}")
    write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 50
        iter_size: 2
        display: 1
        """)
    done = cli(["solver.prototxt"], workdir)
    assert done.returncode == 0, done.stderr
    # SIGINT arrived in the 3rd forward, the first of iteration 1: that iteration still finishes
    assert record.read_text().splitlines()[2:] == ["train reshape", "train forward"] * 4
    assert "Optimization stopped early." in done.stderr
    assert "Snapshotting to solver_iter_2.caffemodel" in done.stderr  # Caffe's default prefix
    assert "KeyboardInterrupt" not in done.stderr


def test_cli_sighup_snapshots_and_continues(workdir):
    two_phase_net(workdir / "net.prototxt", train_params="{sighup_at: 2}")
    write_solver(workdir / "solver.prototxt", """
        net: "net.prototxt"
        max_iter: 4
        snapshot_prefix: "m"
        snapshot_after_train: false
        """)
    done = cli(["solver.prototxt"], workdir)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if "Snapshotting" in line] == [
        "Snapshotting to m_iter_2.caffemodel (the runner has no weights: nothing is written)"]
    assert "Optimization Done. 4 iterations" in done.stderr
