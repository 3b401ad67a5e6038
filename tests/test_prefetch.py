"""The prefetch engine: order, exactly-once, determinism, faults, and no leftovers.

The autouse ``no_leftovers`` fixture (conftest.py) checks after every test that no worker process,
/dev/shm entry or shared-memory mapping survives.
"""

import gc
import json
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from engine_producers import (
    ID_SPECS,
    ClosingProducer,
    CountingGenerator,
    IdProducer,
    ModulesProducer,
    OpenFails,
    PrepareFails,
    PrepareRecorder,
    collect,
)

from caffe_layers.errors import ConfigError, PrefetchTimeout, WorkerDied, WorkerError
from caffe_layers.prefetch import Prefetcher, Producer, RoundRobinPlan, SamplePlan, TopSpec
from caffe_layers.sampling import Order, SampleStream, ShuffledOrder
from caffe_layers.testing import leaks

METHODS = multiprocessing.get_all_start_methods()
N, BATCH = 23, 5
SCENARIOS = Path(__file__).with_name("engine_scenarios.py")
# Subprocesses find the package even when it is not installed (as in a bare checkout).
SUBPROCESS_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    filter(None, [str(SCENARIOS.parent.parent), os.environ.get("PYTHONPATH")])))


def plan(shuffle=True, seed=7, batch=BATCH, n=N):
    order = ShuffledOrder(n, seed) if shuffle else Order(n)
    return SamplePlan(SampleStream(order, batch), seed=seed)


def engine(workers, method=None, producer=None, **options):
    options.setdefault("prefetch", 2)
    return Prefetcher(producer or IdProducer(), ID_SPECS, options.pop("plan", None) or plan(),
                      workers=workers, start_method=method if workers else None, **options)


def reference(batches, **plan_options):
    with engine(0, plan=plan(**plan_options)) as local:
        return collect(local, batches)


def assert_exactly_once_in_order(ids, epochs=3):
    for epoch in range(epochs):
        seen = ids[ids[:, 1] == epoch, 0]
        assert sorted(seen.tolist()) == list(range(N)), f"epoch {epoch} is not a permutation"
    epochs_seen = ids[:, 1]
    assert np.all(np.diff(epochs_seen) >= 0), "epochs must not interleave"


@pytest.mark.parametrize(("workers", "method"),
                         [(0, None)] + [(w, m) for w in (1, 3) for m in METHODS])
def test_three_epochs_exactly_once_and_in_order(workers, method):
    batches = -(-3 * N // BATCH)
    with engine(workers, method) as e:
        ids, _ = collect(e, batches)
    assert_exactly_once_in_order(ids[: 3 * N])
    expected = np.concatenate([plan().stream.batch(b)[0] for b in range(batches)])
    assert np.array_equal(ids[:, 0], expected), "batches were not handed out in plan order"


def test_without_shuffle_the_order_is_the_identity():
    with engine(2, "fork", plan=plan(shuffle=False)) as e:
        ids, _ = collect(e, 10)
    assert ids[:, 0].tolist() == [i % N for i in range(50)]


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_bytes_for_any_worker_count(method):
    expected = reference(12)
    for workers in (1, 2, 4):
        with engine(workers, method) as e:
            got = collect(e, 12)
        assert got[0].tobytes() == expected[0].tobytes(), f"{workers} workers: other samples"
        assert got[1].tobytes() == expected[1].tobytes(), f"{workers} workers: other randomness"


def test_another_seed_gives_another_order_and_randomness():
    first, second = reference(6, seed=7), reference(6, seed=8)
    assert not np.array_equal(first[0], second[0])
    assert not np.array_equal(first[1], second[1])


def test_first_batch_resumes_exactly():
    full = reference(10)
    with engine(2, "fork", first_batch=4) as e:
        resumed = collect(e, 6)
    assert np.array_equal(resumed[0], full[0][4 * BATCH:])
    assert np.array_equal(resumed[1], full[1][4 * BATCH:])


@pytest.mark.parametrize("workers", [0, 2])
def test_last_task_names_the_samples_of_the_batch_last_copied_out(workers):
    with engine(workers, "fork" if workers else None, first_batch=3) as e:
        assert e.last_task() is None
        for number in (3, 4):
            arrays, _ = e.next_arrays()
            task = e.last_task()
            assert task.number == number
            assert task.seed == 7
            assert task.indices.tolist() == arrays["ids"][:, 0].tolist()
            assert task.epochs.tolist() == arrays["ids"][:, 1].tolist()


def test_a_worker_exception_arrives_with_its_traceback_and_sample():
    with engine(2, "fork", producer=IdProducer(fail_at=11)) as e, \
            pytest.raises(WorkerError) as caught:
        collect(e, 10)
    error = caught.value
    assert error.exc_type == "ValueError"
    assert "sample 11" in str(error)
    assert "cannot load sample 11" in str(error)
    assert "Traceback" in error.remote_traceback
    assert "engine_producers.py" in error.remote_traceback
    assert "in fill" in str(error), "str(error) carries the worker's traceback for printing"


def test_after_a_failure_the_engine_is_closed_and_raises_the_same_error_again():
    e = engine(2, "fork", producer=IdProducer(fail_at=3))
    with pytest.raises(WorkerError) as first:
        collect(e, 10)
    assert not any(leaks.alive(pid) for pid in e.pids)
    with pytest.raises(WorkerError) as second:
        e.next_arrays()
    assert second.value is first.value


def test_a_worker_is_told_of_its_next_batch_while_it_fills_the_one_before():
    """prepare() runs in the worker's receiving thread as a task arrives: a producer can start
    reading the next batch's files while it decodes this one (remote files)."""
    with engine(1, "fork", producer=PrepareRecorder(), plan=plan(shuffle=False)) as e:
        reports = [e.next_arrays()[1] for _ in range(4)]
    assert [r["batch"] for r in reports] == [0, 1, 2, 3]
    assert all(r["next_came_meanwhile"] for r in reports)
    assert all(r["batch"] in r["prepared_before"] for r in reports)


def test_an_exception_in_prepare_is_that_batchs_error():
    with engine(1, "fork", producer=PrepareFails(), plan=plan(shuffle=False)) as e, \
            pytest.raises(WorkerError, match="ValueError while filling batch 2: cannot start "
                                             "reading batch 2"):
        collect(e, 3)


def test_a_failure_in_producer_open_is_reported():
    with pytest.raises(WorkerError, match="while starting: worker 0 cannot open its files"):
        engine(1, "fork", producer=OpenFails()).next_arrays()


@pytest.mark.parametrize("method", METHODS)
def test_a_killed_worker_is_reported_with_pid_and_signal(method):
    e = engine(2, method, producer=IdProducer(delay_s=0.05))
    e.next_arrays()
    victim = e.pids[1]
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(WorkerDied) as caught:
        collect(e, 100)
    assert time.monotonic() - started < 5.0
    assert f"pid {victim}" in str(caught.value)
    assert "SIGKILL" in str(caught.value)
    assert caught.value.pid == victim
    assert caught.value.exitcode == -signal.SIGKILL
    e.close()


@pytest.mark.parametrize("method", METHODS)
def test_respawn_replaces_a_killed_worker_without_losing_or_repeating_samples(method, capfd):
    expected = reference(3 * N // BATCH + 1)
    with engine(2, method, producer=IdProducer(delay_s=0.02),
                on_worker_death="respawn") as e:
        first = collect(e, 4)
        os.kill(e.pids[0], signal.SIGKILL)
        rest = collect(e, len(expected[0]) // BATCH - 4)
        assert e.stats["respawns"] == 1
    got = (np.concatenate([first[0], rest[0]]), np.concatenate([first[1], rest[1]]))
    assert np.array_equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert_exactly_once_in_order(got[0][: 3 * N])
    assert re.search(r"worker 0 \(pid \d+\) died with SIGKILL while filling batch \d+; "
                     r"restarted as pid \d+", capfd.readouterr().err)


def test_generators_cannot_respawn():
    with pytest.raises(ConfigError, match="respawn needs indexed samples"):
        engine(2, "fork", producer=CountingGenerator(), plan=RoundRobinPlan(BATCH),
               on_worker_death="respawn")


@pytest.mark.parametrize("workers", [0, 2])
def test_the_arrays_and_the_plan_must_agree_on_the_batch_size(workers):
    with pytest.raises(ConfigError, match=r"batch_size: the plan fills batches of 4 but array "
                                          r"'ids' holds 5 rows \(5, 2\)"):
        engine(workers, "fork", plan=plan(batch=4))


def test_a_hung_worker_times_out_naming_the_batch():
    e = engine(1, "fork", producer=IdProducer(hang_at_batch=2), timeout_s=1.0)
    collect(e, 2)
    with pytest.raises(PrefetchTimeout, match=r"batch 2 not ready after 1 s .*worker 0 \(pid"):
        collect(e, 1)
    assert not any(leaks.alive(pid) for pid in e.pids)


def test_workers_ignore_sigint_and_sighup():
    with engine(2, "fork", producer=IdProducer(delay_s=0.01)) as e:
        collect(e, 2)
        for pid in e.pids:
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGHUP)
        ids, _ = collect(e, 12)
        assert all(leaks.alive(pid) for pid in e.pids)
    assert np.array_equal(ids, reference(14)[0][2 * BATCH:])


@pytest.mark.parametrize("method", METHODS)
def test_generators_run_one_instance_per_worker(method):
    with engine(3, method, producer=CountingGenerator(), plan=RoundRobinPlan(BATCH)) as e:
        ids, _ = collect(e, 6)
    owners = ids[:, 0] // 1000
    assert owners.tolist() == [b % 3 for b in range(6) for _ in range(BATCH)]
    assert set(ids[:, 1].tolist()) == {3}, "each generator is told the number of workers"
    for worker in range(3):
        counts = ids[owners == worker, 0] % 1000
        assert counts.tolist() == list(range(len(counts))), "each generator is its own instance"


def test_close_is_idempotent_and_stops_the_workers_within_two_seconds():
    e = engine(2, "fork")
    pids = e.pids
    collect(e, 3)
    started = time.monotonic()
    e.close()
    e.close()
    assert not leaks.wait_gone(pids, 2.0)
    assert time.monotonic() - started < 2.0
    with pytest.raises(RuntimeError, match="closed"):
        e.next_arrays()


@pytest.mark.parametrize("method", METHODS)
def test_close_during_a_fill_still_runs_the_producers_close(method, tmp_path):
    """The worker's reply then meets a closed pipe: it must return, not exit on the spot, so
    that what ``close()`` releases (a LevelDB view directory, say) is released."""
    e = engine(2, method, producer=ClosingProducer(tmp_path, delay_s=0.3))
    pids = e.pids
    collect(e, 1)
    time.sleep(0.1)  # both workers are now filling the batches after it
    e.close()
    assert not leaks.wait_gone(pids, 2.0)
    assert sorted(os.listdir(tmp_path)) == sorted(f"closed-{pid}" for pid in pids)


def test_garbage_collection_stops_the_workers():
    e = engine(2, "fork")
    pids = e.pids
    del e
    gc.collect()
    assert not leaks.wait_gone(pids, 2.0)


def test_an_exception_in_the_with_block_closes_the_engine():
    pids = []

    def consume():
        with engine(2, "fork") as e:
            pids.extend(e.pids)
            raise KeyError("consumer failed")

    with pytest.raises(KeyError):
        consume()
    assert len(pids) == 2
    assert not leaks.wait_gone(pids, 2.0)


def test_slots_are_memfd_blocks_sized_by_prefetch_plus_workers():
    before = leaks.shm_entries()
    with engine(3, "fork", prefetch=4) as e:
        assert leaks.shm_entries() == before, "nothing may appear in /dev/shm"
        blocks = {os.stat(f"/proc/self/fd/{fd}").st_ino for fd in leaks.memfds()}
        assert len(blocks) == 1, "all slots live in one block (mmap holds a dup of its fd)"
        assert e._pool.arena.n_slots == 4 + 3
    assert not leaks.memfds()
    assert not leaks.mapped_blocks()


def test_a_slot_budget_beyond_memory_is_a_clear_error_at_setup():
    huge = (TopSpec("data", (4096, 3, 1024, 1024)),)  # 48 GiB per slot
    with pytest.raises(ConfigError, match=r"prefetch needs 4 batch slots of .* lower prefetch"):
        Prefetcher(IdProducer(), huge, plan(batch=4096), workers=2, prefetch=2)


def test_the_consumer_may_already_have_threads():
    stop = threading.Event()
    busy = threading.Thread(target=lambda: [stop.wait(0.001) for _ in iter(stop.is_set, True)])
    lock = threading.Lock()
    lock.acquire()  # held by this thread across the fork, never touched by workers
    busy.start()
    try:
        with engine(2, "fork") as e:
            got = collect(e, 12)
    finally:
        stop.set()
        busy.join()
        lock.release()
    assert np.array_equal(got[0], reference(12)[0])


def _consume_in_daemon(method, conn):
    with engine(2, method) as e:
        ids, noise = collect(e, 12)
    conn.send((ids, noise))


@pytest.mark.parametrize("method", METHODS)
def test_the_consumer_may_be_a_daemonic_process(method):
    ours, theirs = multiprocessing.Pipe()
    daemon = multiprocessing.get_context("fork").Process(
        target=_consume_in_daemon, args=(method, theirs), daemon=True)
    daemon.start()
    assert ours.poll(60), "the daemonic consumer produced nothing"
    ids, noise = ours.recv()
    daemon.join(10)
    assert daemon.exitcode == 0
    expected = reference(12)
    assert np.array_equal(ids, expected[0])
    assert np.array_equal(noise, expected[1])


def test_workers_never_import_caffe():
    sys.modules.setdefault("caffe", type(sys)("caffe"))  # as inside caffe train
    with engine(1, "spawn", producer=ModulesProducer()) as e:
        _, report = e.next_arrays()
    assert report == []


def run_scenario(*args, timeout=60):
    return subprocess.run([sys.executable, str(SCENARIOS), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=SCENARIOS.parent,
                          env=SUBPROCESS_ENV)


@pytest.mark.parametrize("executable", ["", "/usr/bin/python3", "/nonexistent/python3"])
@pytest.mark.parametrize("method", METHODS)
def test_works_in_an_embedded_looking_interpreter(method, executable):
    result = run_scenario("embedded", method, executable)
    assert result.returncode == 0, result.stderr
    import hashlib

    expected = reference(12)
    digest = hashlib.sha256(expected[0].tobytes() + expected[1].tobytes()).hexdigest()
    report = json.loads(result.stdout)
    assert report == {"digest": digest, "start_method": method}


def _start_scenario(name, method, tmpdir=None):
    env = SUBPROCESS_ENV if tmpdir is None else dict(SUBPROCESS_ENV, TMPDIR=str(tmpdir))
    process = subprocess.Popen([sys.executable, str(SCENARIOS), name, method],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=SCENARIOS.parent, env=env)
    line = process.stdout.readline()
    if not line:
        process.kill()
        pytest.fail(f"scenario {name} printed nothing: {process.communicate(timeout=10)[1]}")
    return process, json.loads(line)


@pytest.mark.parametrize("method", METHODS)
def test_workers_exit_within_two_seconds_of_the_parent_being_sigkilled(method, tmp_path):
    # A SIGKILLed forkserver user leaves its /tmp/pymp-* directory (only atexit removes it, see
    # README "Start methods"): let it land in this test's tmp_path.
    process, info = _start_scenario("serve_forever", method, tmpdir=tmp_path)
    assert len(info["workers"]) == 2
    assert all(leaks.alive(p) for p in info["workers"])
    time.sleep(0.3)
    process.kill()
    process.wait(10)
    assert not leaks.wait_gone(info["workers"], 2.0), "workers outlived their parent"
    _, stderr = process.communicate(timeout=10)
    assert "Traceback" not in stderr, "workers must exit quietly"


def test_workers_exit_when_the_parent_exits_without_any_cleanup():
    process, info = _start_scenario("exit_without_close", "fork")
    _, stderr = process.communicate(timeout=10)
    assert not leaks.wait_gone(info["workers"], 2.0)
    assert "Traceback" not in stderr


def test_a_worker_error_is_raised_when_its_batch_is_due_not_before():
    with engine(2, "fork", producer=IdProducer(fail_at=int(plan().stream.batch(4)[0][2]))) as e:
        ids, _ = collect(e, 4)  # batches 0-3 arrive although batch 4 failed meanwhile
        with pytest.raises(WorkerError, match="while filling batch 4"):
            e.next_arrays()
    assert np.array_equal(ids, reference(4)[0])


class _Opened(Producer):
    per_process = ("_reader", "_extra")

    def __init__(self) -> None:
        self.kept = 3
        self._reader = threading.Lock()  # as a handle, it cannot be pickled

    def fill(self, out, task):
        raise NotImplementedError


def test_a_producer_pickles_without_what_open_makes_in_each_process():
    copy = pickle.loads(pickle.dumps(_Opened()))
    assert (copy.kept, copy._reader, copy._extra) == (3, None, None)
