"""The tools' process pool: results in order, errors and deaths raised, nothing left on a stop.

Results here are megabytes, as convert-db's: multiprocessing.Pool.terminate() hung when a worker
was killed while sending one (Python 3.8, Ctrl-C during caffe-layers-convert-db).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from caffe_layers.errors import DataError, WorkerDied
from caffe_layers.tools._pool import map_blocks

BLOCKS = [range(i, i + 3) for i in range(0, 30, 3)]


def big(state, indices):
    """Block ``indices`` as ``(indices, 2 MB of bytes)``."""
    return list(indices), bytes([indices[0] % 256]) * (state << 20)


def failing(state, indices):
    if state in indices:
        raise DataError(f"sample {state} is unreadable")
    return list(indices)


def dying(state, indices):
    if state in indices:
        os.kill(os.getpid(), signal.SIGKILL)
    return list(indices)


@pytest.mark.parametrize("workers", [1, 3])
def test_results_come_in_block_order(workers):
    results = list(map_blocks(big, 2, BLOCKS, workers))
    assert [r[0] for r in results] == [list(b) for b in BLOCKS]
    assert all(payload == bytes([b[0]]) * (2 << 20) for (_, payload), b in zip(results, BLOCKS))


def test_unordered_results_are_every_block_once():
    results = list(map_blocks(big, 1, BLOCKS, 2, ordered=False))
    assert sorted(r[0] for r in results) == [list(b) for b in BLOCKS]


def test_a_worker_s_exception_is_raised_with_its_type():
    with pytest.raises(DataError, match="sample 13 is unreadable"):
        list(map_blocks(failing, 13, BLOCKS, 2))


def test_a_dead_worker_is_named():
    with pytest.raises(WorkerDied) as info:
        list(map_blocks(dying, 7, BLOCKS, 2))
    assert "died with signal SIGKILL" in str(info.value)
    assert info.value.pid > 0 and info.value.exitcode == -signal.SIGKILL


@pytest.mark.timeout(60)
def test_stopping_while_workers_send_large_results_returns_at_once():
    for _ in range(5):
        results = map_blocks(big, 8, BLOCKS, 2)
        next(results)
        started = time.monotonic()
        results.close()  # as on Ctrl-C or an error in the consumer
        assert time.monotonic() - started < 5
