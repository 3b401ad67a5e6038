"""Faults injected into a layer running under the `caffe train` emulator, in a subprocess.

Each test asserts the documented outcome (an error naming what went wrong, or a recovery), that
nothing hangs (every wait has a timeout), that no worker outlives the runner by more than two
seconds, and (through the autouse fixture) that no /dev/shm entry is left behind.
"""

import os
import signal

import pytest
from runner_harness import Runner, write_images, write_solver

from caffe_layers.testing import leaks

PARAMS = {"source": "train.txt", "batch_size": 8, "workers": 2, "prefetch": 2, "shuffle": "true"}
ABORTED = -signal.SIGABRT  # what the caffe binary does when a layer raises


@pytest.fixture
def dataset(tmp_path):
    write_images(tmp_path)
    return tmp_path


def run(folder, max_iter=100000, **overrides):
    params = dict(PARAMS, **overrides)
    write_solver(folder, "{" + ", ".join(f"{k}: {v}" for k, v in params.items()) + "}",
                 max_iter=max_iter)
    return Runner(folder)


def assert_no_orphans(runner):
    assert runner.workers, "the test never saw the workers"
    assert not leaks.wait_gone(runner.workers, 2.0), "workers outlived the runner"
    assert not runner.group_alive(), "a process of the runner's session survived"


def test_a_worker_raising_aborts_like_caffe_with_the_traceback_printed_first(dataset):
    (dataset / "img" / "17.jpg").write_text("not an image")
    runner = run(dataset).wait_for("ImageListDataLayer (TRAIN)")
    assert runner.finish() == ABORTED
    output = runner.output
    assert "ImageListDataLayer.forward failed" in output
    assert "train.txt:18" in output and "img/17.jpg" in output
    assert "cannot decode image" in output
    assert "Worker traceback" in output
    assert_no_orphans(runner)


def test_a_truncated_jpeg_is_named_with_its_list_line(dataset):
    image = dataset / "img" / "23.jpg"
    image.write_bytes(image.read_bytes()[:-200])
    runner = run(dataset).wait_for("ImageListDataLayer (TRAIN)")
    assert runner.finish() == ABORTED
    assert "train.txt:24" in runner.output and "truncated JPEG" in runner.output
    assert_no_orphans(runner)


def test_an_image_deleted_mid_run_is_an_error_naming_it(dataset):
    runner = run(dataset).wait_for("Iteration 20")
    (dataset / "img" / "5.jpg").unlink()
    assert runner.finish() == ABORTED
    assert "train.txt:6" in runner.output and "img/5.jpg' does not exist" in runner.output
    assert_no_orphans(runner)


def test_an_image_deleted_mid_run_is_skipped_and_logged_with_on_error_skip(dataset):
    runner = run(dataset, on_error="skip").wait_for("Iteration 20")
    (dataset / "img" / "5.jpg").unlink()
    runner.wait_for("skipped sample 5").wait_for("Iteration 200")
    runner.signal(signal.SIGINT)
    assert runner.finish() == 0
    assert "img/5.jpg' does not exist" in runner.output
    assert_no_orphans(runner)


def test_a_list_with_blank_lines_trains(dataset):
    listing = (dataset / "train.txt").read_text().splitlines(keepends=True)
    (dataset / "train.txt").write_text("".join(listing[:10]) + "\n  \n" + "".join(listing[10:])
                                       + "\n\n")
    runner = run(dataset, max_iter=20).wait_for("ImageListDataLayer (TRAIN)")
    assert runner.finish() == 0
    assert "40 images from train.txt" in runner.output
    assert_no_orphans(runner)


def test_a_killed_worker_aborts_naming_its_pid_and_signal(dataset):
    runner = run(dataset).wait_for("Iteration 10")
    victim = min(runner.workers)
    os.kill(victim, signal.SIGKILL)
    assert runner.finish() == ABORTED
    assert f"(pid {victim}) died with SIGKILL" in runner.output
    assert_no_orphans(runner)


def test_a_killed_worker_is_respawned_with_on_worker_death_respawn(dataset):
    runner = run(dataset, max_iter=200, on_worker_death="respawn").wait_for("Iteration 10")
    os.kill(min(runner.workers), signal.SIGKILL)
    assert runner.finish() == 0
    assert "died with SIGKILL" in runner.output and "restarted as pid" in runner.output
    runner.wait_for("Optimization Done")
    assert_no_orphans(runner)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_the_runner_is_killed(dataset, signum):
    runner = run(dataset).wait_for("Iteration 10")
    runner.signal(signum)
    assert runner.finish() == -signum
    assert_no_orphans(runner)


def test_ctrl_c_to_the_process_group_stops_after_the_iteration_without_tracebacks(dataset):
    runner = run(dataset).wait_for("Iteration 10")
    runner.signal(signal.SIGINT, group=True)
    assert runner.finish() == 0
    assert "Optimization stopped early" in runner.output
    assert "Traceback" not in runner.output and "KeyboardInterrupt" not in runner.output
    assert_no_orphans(runner)


def test_slots_beyond_the_memory_budget_are_a_clear_error_at_setup(dataset):
    runner = run(dataset, batch_size=100000, new_height=512, new_width=512)
    assert runner.finish() == ABORTED
    assert "prefetch needs" in runner.output and "lower prefetch, workers or batch_size" in \
        runner.output
    assert "ImageListDataLayer.setup failed" in runner.output
    assert not runner.group_alive()
