"""Where real Caffe aborts the process, the fake raises CaffeAbort quoting the same check.

Each case runs in two fresh interpreters of the Python Caffe was built for: with real pycaffe,
which must die with SIGABRT after glog's ``F`` line holding Caffe's text, and with the fake forced,
which must raise :class:`CaffeAbort` whose ``what`` holds that same text (the fake's own tests in
tests/test_fake_contract.py check the rest of its behaviour). CAFFE.md, "Blobs" and "Multi-GPU".
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
import real_caffe

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_pycaffe]

INPUT_5D = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 ' \
           'dim: 1 dim: 1 dim: 2 } } }\n'
LAZY_NET = 'layer { name: "l" type: "Python" top: "t" python_param { module: "lazy_layer" ' \
           'layer: "Lazy" } }\n'
LAZY_LAYER = '''
    import caffe

    class Lazy(caffe.Layer):
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            pass
'''
SCRIPT = '''
    import sys
    if sys.argv[1] == "fake":
        import caffe_layers.testing
        caffe_layers.testing.install_fake_caffe(force=True)
    import caffe
    try:
        {code}
    except BaseException as exc:
        print("RAISED", type(exc).__name__, getattr(exc, "what", exc), flush=True)
        sys.exit(3)
    print("SURVIVED", flush=True)
'''
CASES = {
    "negative reshape dim": ("caffe.Net('input.prototxt', 1).blobs['x'].reshape(2, -1)",
                             "Check failed: shape[i] >= 0 (-1 vs. 0)"),
    "legacy accessor on 5 axes": ("caffe.Net('input.prototxt', 1).blobs['x'].num",
                                  "Check failed: num_axes() <= 4 (5 vs. 4) Cannot use legacy "
                                  "accessors on Blobs with > 4 axes."),
    "data of a never-reshaped top": ("caffe.Net('lazy.prototxt', 1).blobs['t'].data",
                                     "Check failed: data_"),
    "diff of a never-reshaped top": ("caffe.Net('lazy.prototxt', 1).blobs['t'].diff",
                                     "Check failed: diff_"),
    "TRAIN Python layer with 2 solvers": ("caffe.set_solver_count(2); "
                                          "caffe.Net('lazy.prototxt', 0)",
                                          "PythonLayer does not support CLI Multi-GPU, "
                                          "use train.py"),
}


def run(tmp_path, which: str, code: str) -> subprocess.CompletedProcess:
    (tmp_path / "input.prototxt").write_text(INPUT_5D)
    (tmp_path / "lazy.prototxt").write_text(LAZY_NET)
    (tmp_path / "lazy_layer.py").write_text(textwrap.dedent(LAZY_LAYER))
    script = tmp_path / "case.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("{code}", code))
    return subprocess.run([sys.executable, str(script), which], cwd=str(tmp_path),
                          env=real_caffe.binary_env(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60, check=False)


@pytest.mark.parametrize("case", list(CASES))
def test_real_caffe_aborts_where_the_fake_raises_caffe_abort(tmp_path, case):
    code, caffe_says = CASES[case]
    real = run(tmp_path, "real", code)
    assert real.returncode == -signal.SIGABRT, real.stdout[-2000:]
    [check_line] = [line for line in real.stdout.splitlines() if line.startswith("F")]
    assert caffe_says in check_line
    assert "RAISED" not in real.stdout and "SURVIVED" not in real.stdout
    fake = run(tmp_path, "fake", code)
    assert fake.returncode == 3, fake.stdout
    assert f"RAISED CaffeAbort {caffe_says}" in fake.stdout


@pytest.mark.parametrize("code", ["caffe.set_solver_count(2); caffe.Net('lazy.prototxt', 1)",
                                  "caffe.set_solver_count(2); caffe.set_multiprocess(True); "
                                  "caffe.Net('lazy.prototxt', 0)"],
                         ids=["TEST phase", "multiprocess"])
def test_with_two_solvers_a_test_net_or_train_py_mode_is_accepted(tmp_path, code):
    for which in ("real", "fake"):
        done = run(tmp_path, which, code)
        assert done.returncode == 0, done.stdout[-2000:]
        assert "SURVIVED" in done.stdout
