"""caffe_layers.pycaffe: which caffe the layers subclass, and what is said when it is broken.

Each case runs in a fresh interpreter with a ``caffe`` package written into ``tmp_path``. The real
pycaffe cases (numpy 2 against a numpy-1 build, the caffe binary without pycaffe on PYTHONPATH)
are in tests/real_caffe/test_pycaffe_real.py.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from caffe_layers import pycaffe

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != pycaffe.FAKE_ENV}
    environ.update(env, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=str(tmp_path),
                          env=environ, capture_output=True, text=True, timeout=60, check=False)


def _package(tmp_path: Path, source: str, **files: bytes) -> None:
    (tmp_path / "caffe").mkdir()
    (tmp_path / "caffe" / "__init__.py").write_text(textwrap.dedent(source))
    for name, content in files.items():
        (tmp_path / "caffe" / name).write_bytes(content)


def test_without_caffe_the_fake_is_installed_lightly_and_silently(tmp_path):
    result = _python('''
        import sys
        import caffe_layers.testing as testing
        assert "numpy" not in sys.modules and "caffe_layers.testing.fake_caffe" not in sys.modules
        module = testing.import_caffe()
        import caffe
        assert caffe is module and module.__name__ == "caffe_layers.testing.fake_caffe"
        assert testing.install_fake_caffe() is module and testing.import_caffe() is module
        assert "cv2" not in sys.modules and "h5py" not in sys.modules
        print("ok")
    ''', tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert result.stderr == ""


def test_the_pypi_placeholder_is_replaced_and_said_once(tmp_path):
    _package(tmp_path, "")
    result = _python('''
        import caffe_layers.testing as testing
        first, second = testing.import_caffe(), testing.import_caffe()
        import caffe
        assert first is second is caffe and hasattr(caffe, "Layer") and hasattr(caffe, "Net")
    ''', tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("has no Layer class") == 1


def test_real_caffe_is_preferred_unless_the_fake_is_asked_for(tmp_path):
    _package(tmp_path, "class Layer:\n    pass\n")
    code = '''
        import caffe_layers.testing as testing
        print(testing.import_caffe().__name__, testing.install_fake_caffe().__name__,
              testing.install_fake_caffe(force=True).__name__)
    '''
    result = _python(code, tmp_path)
    assert result.stdout.split() == ["caffe", "caffe", "caffe_layers.testing.fake_caffe"]
    forced = _python(code, tmp_path, CAFFE_LAYERS_FAKE_CAFFE="1")
    assert forced.stdout.split() == ["caffe_layers.testing.fake_caffe"] * 3


def test_a_caffe_imported_before_the_layers_is_used_as_it_is(tmp_path):
    _package(tmp_path, "class Layer:\n    pass\n")
    result = _python('''
        import caffe
        import caffe_layers.layers as layers
        assert issubclass(layers.PrefetchDataLayer, caffe.Layer)
        print("ok")
    ''', tmp_path, CAFFE_LAYERS_FAKE_CAFFE="1")
    assert result.stdout == "ok\n", result.stderr


def test_pycaffe_without_its_compiled_module_is_explained_and_the_fake_used(tmp_path):
    _package(tmp_path, "from ._caffe import Layer\n")
    result = _python('''
        import sys
        import caffe_layers.layers
        import caffe
        print(caffe.__name__, sorted(m for m in sys.modules if m.startswith("caffe.")))
    ''', tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["caffe_layers.testing.fake_caffe", "[]"]
    assert f"pycaffe at {tmp_path / 'caffe'} has no compiled _caffe module" in result.stderr
    assert "`make pycaffe`" in result.stderr
    assert result.stderr.count("caffe_layers:") == 1


def test_pycaffe_built_against_numpy_1_is_explained_with_the_virtualenv_fix(tmp_path):
    # What pycaffe built against numpy 1.x raises under numpy 2 (seen with real Caffe).
    _package(tmp_path, 'raise SystemError("initialization of _caffe raised unreported exception")'
                       '\n', **{"_caffe.so": b"\x7fELF...libpython%d.%d.so.1.0..." %
                                sys.version_info[:2]})
    result = _python("import caffe_layers.layers\n", tmp_path)
    assert result.returncode == 0, result.stderr
    import numpy

    assert f"built against numpy 1.x and this Python ({sys.executable}) has numpy " \
           f"{numpy.__version__}" in result.stderr
    assert "-m venv --system-site-packages" in result.stderr
    assert "Using caffe_layers' fake caffe instead" in result.stderr


def test_pycaffe_built_for_another_python_names_both_versions(tmp_path):
    _package(tmp_path, 'raise ImportError("undefined symbol: _Py_NoneStruct")\n',
             **{"_caffe.so": b"\x7fELF...libpython2.7.so.1.0..."})
    result = _python("import caffe_layers.layers\n", tmp_path)
    assert result.returncode == 0, result.stderr
    running = "{}.{}".format(*sys.version_info[:2])
    assert f"its _caffe.so was built for Python 2.7, this is Python {running}" in result.stderr
    assert "python2.7 -m venv --system-site-packages`" in result.stderr


@pytest.fixture
def libcaffe(tmp_path):
    """A shared library named like Caffe's, for a process that looks like the caffe binary."""
    libm = ctypes.util.find_library("m")
    path = tmp_path / "lib" / "libcaffe.so.1.0.0"
    path.parent.mkdir()
    for folder in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"):
        if libm and os.path.exists(os.path.join(folder, libm)):
            shutil.copy(os.path.join(folder, libm), path)
            return path
    pytest.skip("no libm found to stand in for libcaffe")


@pytest.mark.parametrize("fake_env", ["", "1"])
def test_in_a_caffe_process_without_pycaffe_the_fake_is_never_used(tmp_path, libcaffe, fake_env):
    result = _python(f'''
        import ctypes
        ctypes.CDLL({str(libcaffe)!r})
        import caffe_layers.layers
    ''', tmp_path, CAFFE_LAYERS_FAKE_CAFFE=fake_env)
    assert result.returncode == 1
    assert "PycaffeError: this process is the caffe binary" in result.stderr
    assert "`import caffe` finds none on sys.path; put Caffe's python directory on " \
           "PYTHONPATH, e.g. PYTHONPATH=<caffe>/python:" in result.stderr


def test_in_a_caffe_process_a_broken_pycaffe_is_an_error_with_the_reason(tmp_path, libcaffe):
    _package(tmp_path, "from ._caffe import Layer\n")
    result = _python(f'''
        import ctypes
        ctypes.CDLL({str(libcaffe)!r})
        import caffe_layers.layers
    ''', tmp_path)
    assert result.returncode == 1
    assert "PycaffeError: this process is the caffe binary" in result.stderr
    assert "has no compiled _caffe module" in result.stderr
