import gc

import pytest

import caffe_layers.testing
from caffe_layers.testing import leaks

# Test modules and the layer modules they write may start with a plain `import caffe`: real
# Caffe when installed, else the package's fake.
caffe_layers.testing.install_fake_caffe()


@pytest.fixture(autouse=True)
def no_leftovers():
    """Every test must leave no child process, no /dev/shm entry and no shared-memory mapping."""
    shm_before = leaks.shm_entries()
    yield
    gc.collect()
    children = leaks.child_pids() - leaks.multiprocessing_helpers()
    survivors = leaks.wait_gone(children, timeout_s=3.0)
    assert not survivors, f"child processes outlived the test: {sorted(survivors)}"
    new_shm = leaks.shm_entries() - shm_before
    assert not new_shm, f"/dev/shm entries left by the test: {sorted(new_shm)}"
    assert not leaks.memfds(), "shared-memory file descriptors still open after the test"
    assert not leaks.mapped_blocks(), "shared-memory blocks still mapped after the test"
