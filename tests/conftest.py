import gc
import os
import shutil
import tempfile

import pytest

import caffe_layers.testing
from caffe_layers import pycaffe
from caffe_layers.ranks import LAUNCHERS, SLURM_STEP
from caffe_layers.testing import leaks

# A suite run under mpirun, srun or torchrun must not see its own rank: every layer in TRAIN would
# shard by it. The launcher tests set the variables they need on the processes they start.
for _name, *_variables in LAUNCHERS:
    for _variable in _variables:
        os.environ.pop(_variable, None)
os.environ.pop(SLURM_STEP, None)

# Test modules and the layer modules they write may start with a plain `import caffe`: real
# Caffe when installed, else the package's fake.
caffe_layers.testing.install_fake_caffe()

# Every process the tests start keeps its temporary files in a directory of this session's own
# (their TMPDIR), so that one a process leaves behind (the /tmp/pymp-* directory of a forkserver
# whose parent was killed) is seen, and none that another program puts in /tmp is taken for
# ours. This process keeps the system's: tempfile caches it here, and tmp_path lives there.
tempfile.gettempdir()
SUBPROCESS_TMPDIR = tempfile.mkdtemp(prefix="caffe_layers-tests-")
os.environ["TMPDIR"] = SUBPROCESS_TMPDIR


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SUBPROCESS_TMPDIR, ignore_errors=True)


@pytest.fixture
def aborting_binary(capfd):
    """Layers run as under a ``caffe`` binary that aborts without printing the exception (a CMake
    build, the runner's CLI), so they print it themselves; yields ``capfd`` to read it."""
    pycaffe.emulate_binary(prints_layer_errors=False)
    try:
        yield capfd
    finally:
        pycaffe.emulate_binary(None)


@pytest.fixture(autouse=True)
def no_leftovers():
    """Every test must leave no child process, no /dev/shm entry, no shared-memory mapping and
    nothing in its processes' temporary directory."""
    shm_before = leaks.shm_entries()
    tmp_before = leaks.entries(SUBPROCESS_TMPDIR)
    yield
    gc.collect()
    children = leaks.child_pids() - leaks.multiprocessing_helpers()
    survivors = leaks.wait_gone(children, timeout_s=3.0)
    assert not survivors, f"child processes outlived the test: {sorted(survivors)}"
    new_shm = leaks.shm_entries() - shm_before
    assert not new_shm, f"/dev/shm entries left by the test: {sorted(new_shm)}"
    assert not leaks.memfds(), "shared-memory file descriptors still open after the test"
    assert not leaks.mapped_blocks(), "shared-memory blocks still mapped after the test"
    new_tmp = leaks.entries(SUBPROCESS_TMPDIR) - tmp_before
    assert not new_tmp, f"temporary files left by the test's processes: {sorted(new_tmp)}"


# --- object stores on localhost (tests/test_remote_*.py) ---------------------------------------


@pytest.fixture(scope="session")
def s3_store():
    """moto's S3 on a free localhost port, reached through the real s3fs client."""
    pytest.importorskip("s3fs", reason="the S3 tests need s3fs: pip install 'caffe-layers[s3]'")
    pytest.importorskip("moto", reason="the S3 tests need moto: pip install 'moto[server]'")
    from caffe_layers.testing.stores import S3Store

    with S3Store() as store:
        yield store


@pytest.fixture
def http_store(tmp_path):
    """An HTTP server of ``tmp_path/served`` on a free localhost port."""
    pytest.importorskip("aiohttp", reason="http:// URLs need aiohttp: pip install "
                                          "'caffe-layers[remote]'")
    from caffe_layers.testing.stores import HTTPStore

    root = tmp_path / "served"
    root.mkdir()
    with HTTPStore(root) as store:
        yield store


@pytest.fixture
def fast_retries(monkeypatch):
    """The retry policy with waits of milliseconds (forked workers inherit it)."""
    from caffe_layers.files import retry

    monkeypatch.setattr(retry, "POLICY", retry.RetryPolicy(attempts=4, first_delay_s=0.01,
                                                           max_delay_s=0.05))
    retry.take_retries()  # start counting from zero
    return retry.POLICY
