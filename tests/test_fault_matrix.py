"""Faults injected into a layer under the `caffe train` emulator and under real `caffe train`.

Every test runs twice: under the runner (``python -m caffe_layers.testing.runner``, which emulates
a ``caffe`` binary that aborts on a layer's exception without printing it, as a CMake build does)
and under real ``caffe train`` (``$CAFFE_ROOT``, a Make build: it prints the exception with
``PyErr_Print`` and exits 1; marked ``real_caffe``). Each asserts the documented outcome (an error
naming what went wrong, printed exactly once, or a recovery), that nothing hangs (every wait has a
timeout), that no worker outlives the process by more than two seconds, and (through the autouse
fixture) that no /dev/shm entry is left behind. CAFFE.md, "Errors" and "Signals".
"""

import dataclasses
import os
import signal

import pytest
import real_caffe
from runner_harness import Runner, write_images, write_solver

from caffe_layers.testing import leaks

PARAMS = {"source": "train.txt", "batch_size": 8, "workers": 2, "prefetch": 2, "shuffle": "true"}


@dataclasses.dataclass(frozen=True)
class Launcher:
    """How a solver is run, and what that process does when a Python layer raises."""

    name: str
    failed: int  # the exit status after a layer's exception
    layer_prints: bool  # whether our layer prints the traceback (nobody else does)

    def start(self, folder):
        if self.name == "runner":
            return Runner(folder)
        return real_caffe.caffe_train(folder)


RUNNER = Launcher("runner", failed=-signal.SIGABRT, layer_prints=True)
CAFFE = Launcher("caffe", failed=1, layer_prints=False)


@pytest.fixture(params=[pytest.param(RUNNER, id="runner"),
                        pytest.param(CAFFE, id="caffe", marks=[pytest.mark.real_caffe,
                                                              real_caffe.needs_binary])])
def launcher(request):
    return request.param


@pytest.fixture
def dataset(tmp_path):
    write_images(tmp_path)
    return tmp_path


def run(launcher, folder, max_iter=100000, **overrides):
    params = dict(PARAMS, **overrides)
    write_solver(folder, "{" + ", ".join(f"{k}: {v}" for k, v in params.items()) + "}",
                 max_iter=max_iter)
    return launcher.start(folder)


def assert_no_orphans(runner):
    assert runner.workers, "the test never saw the workers"
    assert not leaks.wait_gone(runner.workers, 2.0), "workers outlived the process"
    assert not runner.group_alive(), "a process of the session survived"


def assert_printed_once(launcher, output, method, error):
    """The traceback of ``error`` (a caffe_layers.errors class name) raised in ``method``
    appears exactly once: printed by our layer under the runner, by Caffe's ``PyErr_Print``
    under the Make-built binary."""
    assert output.count(f"\ncaffe_layers.errors.{error}: ") == 1, output[-3000:]
    header = f"caffe_layers: ImageListDataLayer.{method} failed:"
    assert output.count(header) == (1 if launcher.layer_prints else 0)


def test_a_worker_raising_fails_with_the_traceback_printed_once(launcher, dataset):
    (dataset / "img" / "17.jpg").write_text("not an image")
    runner = run(launcher, dataset).wait_for("ImageListDataLayer (TRAIN)")
    assert runner.finish() == launcher.failed
    output = runner.output
    assert_printed_once(launcher, output, "forward", "WorkerError")
    assert "train.txt:18" in output and "img/17.jpg" in output
    assert "cannot decode image" in output
    assert output.count("Worker traceback") == 1
    assert_no_orphans(runner)


def test_a_truncated_jpeg_is_named_with_its_list_line(launcher, dataset):
    image = dataset / "img" / "23.jpg"
    image.write_bytes(image.read_bytes()[:-200])
    runner = run(launcher, dataset).wait_for("ImageListDataLayer (TRAIN)")
    assert runner.finish() == launcher.failed
    assert "train.txt:24" in runner.output and "truncated JPEG" in runner.output
    assert_printed_once(launcher, runner.output, "forward", "WorkerError")
    assert_no_orphans(runner)


def test_an_image_deleted_mid_run_is_an_error_naming_it(launcher, dataset):
    runner = run(launcher, dataset).wait_for("Iteration 20")
    (dataset / "img" / "5.jpg").unlink()
    assert runner.finish() == launcher.failed
    assert "train.txt:6" in runner.output and "img/5.jpg' does not exist" in runner.output
    assert_no_orphans(runner)


def test_an_image_deleted_mid_run_is_skipped_and_logged_with_on_error_skip(launcher, dataset):
    runner = run(launcher, dataset, on_error="skip").wait_for("Iteration 20")
    (dataset / "img" / "5.jpg").unlink()
    runner.wait_for("skipped sample 5").wait_for("Iteration 200")
    runner.signal(signal.SIGINT)
    assert runner.finish() == 0
    assert "img/5.jpg' does not exist" in runner.output
    assert "Traceback" not in runner.output
    assert_no_orphans(runner)


def test_a_list_with_blank_lines_trains(launcher, dataset):
    listing = (dataset / "train.txt").read_text().splitlines(keepends=True)
    (dataset / "train.txt").write_text("".join(listing[:10]) + "\n  \n" + "".join(listing[10:])
                                       + "\n\n")
    runner = run(launcher, dataset, max_iter=20).wait_for("ImageListDataLayer (TRAIN)")
    assert runner.finish() == 0
    assert "40 images from train.txt" in runner.output
    assert "Optimization Done" in runner.output
    assert_no_orphans(runner)


def test_a_killed_worker_fails_naming_its_pid_and_signal(launcher, dataset):
    runner = run(launcher, dataset).wait_for("Iteration 10")
    victim = min(runner.workers)
    os.kill(victim, signal.SIGKILL)
    assert runner.finish() == launcher.failed
    assert f"(pid {victim}) died with SIGKILL" in runner.output
    assert_printed_once(launcher, runner.output, "forward", "WorkerDied")
    assert_no_orphans(runner)


def test_a_killed_worker_is_respawned_with_on_worker_death_respawn(launcher, dataset):
    runner = run(launcher, dataset, max_iter=200, on_worker_death="respawn")
    runner.wait_for("Iteration 10")
    os.kill(min(runner.workers), signal.SIGKILL)
    assert runner.finish() == 0
    assert "died with SIGKILL" in runner.output and "restarted as pid" in runner.output
    runner.wait_for("Optimization Done")
    assert_no_orphans(runner)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_the_process_is_killed(launcher, dataset, signum):
    runner = run(launcher, dataset).wait_for("Iteration 10")
    runner.signal(signum)
    assert runner.finish() == -signum
    assert_no_orphans(runner)


def test_ctrl_c_to_the_process_group_stops_after_the_iteration_without_tracebacks(launcher,
                                                                                   dataset):
    runner = run(launcher, dataset).wait_for("Iteration 10")
    runner.signal(signal.SIGINT, group=True)
    assert runner.finish() == 0
    assert "Optimization stopped early" in runner.output
    assert "Traceback" not in runner.output and "KeyboardInterrupt" not in runner.output
    assert_no_orphans(runner)


def test_slots_beyond_the_memory_budget_are_a_clear_error_at_setup(launcher, dataset):
    runner = run(launcher, dataset, batch_size=100000, new_height=512, new_width=512)
    assert runner.finish() == launcher.failed
    assert "prefetch needs" in runner.output and "lower prefetch, workers or batch_size" in \
        runner.output
    assert_printed_once(launcher, runner.output, "setup", "ConfigError")
    assert not runner.group_alive()
