"""CAFFE.md "Life of a Python layer" and "Blobs": every point the fake reproduces, checked on both.

The ``caffe`` fixture runs each test against the fake and against real pycaffe (the ``real``
cases are marked ``real_caffe`` and skip unless ``import caffe`` gives real pycaffe, as in ``make
test-real``); layer modules written by a test ``import caffe`` and get the module under test.
Tests named ``test_fake_only_*`` check what only the fake can show: the :class:`CaffeAbort`
raised where real Caffe kills the process (tests/test_real_aborts.py runs each of those cases
under real pycaffe in a subprocess and asserts the abort), and the fake's own hooks. The
schedule (test_interval, test_iter, ...) is the runner's: tests/test_runner.py, and
tests/test_real_runner_parity.py against real ``caffe train``.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import real_caffe

import caffe_layers.testing as testing
from caffe_layers.testing import fake_caffe
from caffe_layers.testing.fake_caffe import _state

REPO = Path(__file__).resolve().parents[1]


def _caffe_modules() -> list:
    in_use = testing.import_caffe()
    real = None if in_use is fake_caffe else in_use
    return [pytest.param(fake_caffe, id="fake"),
            pytest.param(real, id="real",
                         marks=[pytest.mark.real_caffe, real_caffe.needs_pycaffe])]


@pytest.fixture(params=_caffe_modules())
def caffe(request, monkeypatch):
    """The caffe module under test, also what ``import caffe`` gives the layer modules."""
    monkeypatch.setitem(sys.modules, "caffe", request.param)
    return request.param


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(sys.modules, "caffe", fake_caffe)
    return fake_caffe


class Files:
    """Layer modules and net files in ``tmp_path``, and nets built from them."""

    def __init__(self, caffe, tmp_path: Path) -> None:
        self.caffe, self.dir = caffe, tmp_path

    def module(self, source: str) -> str:
        name = f"contract_layers_{uuid.uuid4().hex[:12]}"
        (self.dir / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return name

    def net(self, text: str, phase: int = 0):
        path = self.dir / f"net_{uuid.uuid4().hex[:12]}.prototxt"
        path.write_text(textwrap.dedent(text))
        return self.caffe.Net(str(path), phase)


@pytest.fixture
def files(caffe, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return Files(caffe, tmp_path)


@pytest.fixture
def fake_files(fake, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return Files(fake, tmp_path)


RECORDER = '''
    import caffe

    EVENTS = []


    class Recorder(caffe.Layer):
        """Logs its calls to EVENTS; param_str is 'label [dims...]' (tops shaped dims, or 2 3)."""

        def __init__(self, param):
            before = (hasattr(self, "param_str"), hasattr(self, "phase"))
            caffe.Layer.__init__(self, param)
            after = (hasattr(self, "param_str"), hasattr(self, "phase"))
            EVENTS.append(("init", before, after))

        def setup(self, bottom, top):
            words = self.param_str.split()
            self.label, self.dims = words[0], [int(word) for word in words[1:]] or [2, 3]
            EVENTS.append((self.label, "setup"))

        def reshape(self, bottom, top):
            EVENTS.append((self.label, "reshape"))
            for i in range(len(top)):
                top[i].reshape(*self.dims)

        def forward(self, bottom, top):
            EVENTS.append((self.label, "forward"))

        def backward(self, top, propagate_down, bottom):
            EVENTS.append((self.label, "backward", len(top), len(propagate_down), len(bottom)))
'''


def python_layer(name: str, module: str, cls: str = "Recorder", bottom=(), top=(),
                 param_str: str | None = None) -> str:
    wiring = " ".join([f'bottom: "{b}"' for b in bottom] + [f'top: "{t}"' for t in top])
    param = f' param_str: "{param_str}"' if param_str is not None else ""
    return (f'layer {{ name: "{name}" type: "Python" {wiring}\n'
            f'  python_param {{ module: "{module}" layer: "{cls}"{param} }} }}\n')


def input_blob(files: Files, *shape: int):
    dims = " ".join(f"dim: {d}" for d in shape)
    net = files.net(f'layer {{ name: "in" type: "Input" top: "x" '
                    f'input_param {{ shape {{ {dims} }} }} }}')
    return net, net.blobs["x"]


def events(module: str) -> list:
    return sys.modules[module].EVENTS


# ============================================================== §1. Life of a Python layer

def test_layer_is_instantiated_with_one_opaque_argument(files, caffe):
    module = files.module('''
        import caffe
        SEEN = []

        class Layer(caffe.Layer):
            def __init__(self, *args, **kwargs):
                SEEN.append((args, kwargs))
                caffe.Layer.__init__(self, *args)

            def setup(self, bottom, top):
                pass

            def reshape(self, bottom, top):
                pass
    ''')
    files.net(python_layer("l", module, "Layer", top=["t"]))
    [(args, kwargs)] = sys.modules[module].SEEN
    assert len(args) == 1
    assert kwargs == {}
    opaque = args[0]
    assert not isinstance(opaque, (str, bytes, int, float, dict, list, tuple))
    assert not hasattr(opaque, "param_str")


@pytest.mark.parametrize("phase", [0, 1])
def test_param_str_and_phase_are_set_after_init_just_before_setup(files, caffe, phase):
    module = files.module(RECORDER + '''
    SETUP_SAW = []

    class Typed(Recorder):
        def setup(self, bottom, top):
            SETUP_SAW.append((type(self.param_str), self.param_str, type(self.phase), self.phase))
            Recorder.setup(self, bottom, top)
    ''')
    files.net(python_layer("a", module, "Typed", top=["a"], param_str="a 4"), phase)
    assert events(module)[0] == ("init", (False, False), (False, False))  # not in __init__
    saw = sys.modules[module].SETUP_SAW
    assert saw == [(str, "a 4", int, phase)]


def test_param_str_defaults_to_empty_string(files, caffe):
    module = files.module('''
        import caffe
        SEEN = []

        class Layer(caffe.Layer):
            def setup(self, bottom, top):
                SEEN.append((type(self.param_str), self.param_str))

            def reshape(self, bottom, top):
                pass
    ''')
    files.net(python_layer("l", module, "Layer", top=["t"]))
    seen = sys.modules[module].SEEN
    assert seen == [(str, "")]


def test_init_override_without_base_call_breaks_construction(files, caffe):
    module = files.module(RECORDER + '''
    class Forgetful(Recorder):
        def __init__(self, param):
            self.ready = True   # never calls caffe.Layer.__init__
    ''')
    # Real pycaffe prints the TypeError with PyErr_Print and may then surface a SystemError.
    expected = TypeError if caffe is fake_caffe else (TypeError, SystemError)
    with pytest.raises(expected) as info:
        files.net(python_layer("l", module, "Forgetful", top=["t"], param_str="l"))
    assert events(module) == []  # setup never ran
    if caffe is fake_caffe:
        assert "No registered converter" in str(info.value)


def test_init_override_calling_base_works(files, caffe):
    module = files.module(RECORDER + '''
    class Careful(Recorder):
        def __init__(self, param):
            Recorder.__init__(self, param)
            self.ready = True
    ''')
    net = files.net(python_layer("l", module, "Careful", top=["t"], param_str="l"))
    assert net.layers[0].ready is True
    assert events(module)[1:] == [("l", "setup"), ("l", "reshape")]


def test_construction_runs_setup_then_reshape_once_per_layer_in_order(files, caffe):
    module = files.module(RECORDER)
    files.net(python_layer("a", module, top=["a"], param_str="a")
              + python_layer("b", module, bottom=["a"], top=["b"], param_str="b"))
    init = ("init", (False, False), (False, False))
    assert events(module) == [init, ("a", "setup"), ("a", "reshape"),
                              init, ("b", "setup"), ("b", "reshape")]


def test_every_forward_runs_reshape_then_forward(files, caffe):
    module = files.module(RECORDER)
    net = files.net(python_layer("a", module, top=["a"], param_str="a")
                    + python_layer("b", module, bottom=["a"], top=["b"], param_str="b"))
    del events(module)[:]
    net.forward()
    net.forward()
    one_pass = [("a", "reshape"), ("a", "forward"), ("b", "reshape"), ("b", "forward")]
    assert events(module) == one_pass * 2


def test_data_layer_backward_is_not_called_without_force_backward(files, caffe):
    module = files.module(RECORDER)
    net = files.net(python_layer("data", module, top=["d"], param_str="data")
                    + python_layer("loss", module, bottom=["d"], top=["l"], param_str="loss")
                    .replace('type: "Python"', 'type: "Python" loss_weight: 1'))
    net.forward()
    net.backward()
    assert not [e for e in events(module) if e[1] == "backward"]


def test_force_backward_calls_data_layer_backward_with_empty_propagate_down(files, caffe):
    module = files.module(RECORDER)
    net = files.net("force_backward: true\n"
                    + python_layer("data", module, top=["d"], param_str="data"))
    net.forward()
    net.backward()
    net.backward()
    # (label, "backward", len(top), len(propagate_down), len(bottom))
    assert [e for e in events(module) if e[1] == "backward"] == [("data", "backward", 1, 0, 0)] * 2


def test_missing_setup_recurses_until_recursion_error(files, caffe):
    module = files.module('''
        import caffe

        class NoSetup(caffe.Layer):
            def reshape(self, bottom, top):
                pass
    ''')
    with pytest.raises(RecursionError):
        files.net(python_layer("l", module, "NoSetup", top=["t"]))


def test_missing_reshape_recurses_until_recursion_error(files, caffe):
    module = files.module('''
        import caffe

        class NoReshape(caffe.Layer):
            def setup(self, bottom, top):
                pass
    ''')
    with pytest.raises(RecursionError):
        files.net(python_layer("l", module, "NoReshape", top=["t"]))


def test_missing_forward_raises_attribute_error_only_when_called(files, caffe):
    module = files.module('''
        import caffe

        class NoForward(caffe.Layer):
            def setup(self, bottom, top):
                pass

            def reshape(self, bottom, top):
                top[0].reshape(1)
    ''')
    net = files.net(python_layer("l", module, "NoForward", top=["t"]))
    with pytest.raises(AttributeError, match="forward"):
        net.forward()


def test_missing_backward_raises_attribute_error_only_when_called(files, caffe):
    module = files.module('''
        import caffe

        class NoBackward(caffe.Layer):
            def setup(self, bottom, top):
                pass

            def reshape(self, bottom, top):
                top[0].reshape(1)

            def forward(self, bottom, top):
                top[0].data[...] = 1
    ''')
    net = files.net("force_backward: true\n" + python_layer("l", module, "NoBackward", top=["t"]))
    net.forward()
    with pytest.raises(AttributeError, match="backward"):
        net.backward()


def test_each_net_has_its_own_instance_and_module_globals_are_shared(files, caffe):
    module = files.module('''
        import caffe
        SETUPS = []

        class Counted(caffe.Layer):
            def setup(self, bottom, top):
                SETUPS.append(self.phase)

            def reshape(self, bottom, top):
                top[0].reshape(1)
    ''')
    text = python_layer("l", module, "Counted", top=["t"])
    train, test = files.net(text, caffe.TRAIN), files.net(text, caffe.TEST)
    assert train.layers[0] is not test.layers[0]
    assert type(train.layers[0]) is type(test.layers[0])  # one class: the module loaded once
    assert sys.modules[module].SETUPS == [caffe.TRAIN, caffe.TEST]


# ============================================================= §2. Blobs, top and bottom

def test_data_and_diff_are_fresh_float32_c_contiguous_writable_views(files, caffe):
    _, blob = input_blob(files, 2, 3)
    for name in ("data", "diff"):
        first, second = getattr(blob, name), getattr(blob, name)
        assert first is not second
        for view in (first, second):
            assert view.dtype == np.float32
            assert view.shape == (2, 3)
            assert view.flags.c_contiguous
            assert view.flags.writeable
        first[1, 2] = 5
        assert second[1, 2] == 5  # both view the blob's memory
        assert getattr(blob, name)[1, 2] == 5
    assert not np.shares_memory(blob.data, blob.diff)


def test_assigning_data_or_diff_raises_attribute_error(files, caffe):
    _, blob = input_blob(files, 2, 3)
    with pytest.raises(AttributeError):
        blob.data = np.ones((2, 3), np.float32)
    with pytest.raises(AttributeError):
        blob.diff = np.ones((2, 3), np.float32)
    assert not blob.data.any()


def test_wrong_shaped_write_raises_value_error(files, caffe):
    _, blob = input_blob(files, 2, 3)
    with pytest.raises(ValueError, match="broadcast"):
        blob.data[...] = np.ones((3, 2))
    with pytest.raises(ValueError, match="broadcast"):
        blob.diff[...] = np.ones(5)


def test_other_dtypes_are_cast_to_float32_silently(files, caffe):
    _, blob = input_blob(files, 2, 3)
    blob.data[...] = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert blob.data.dtype == np.float32
    assert blob.data.tolist() == [[0, 1, 2], [3, 4, 5]]
    blob.diff[...] = np.full((2, 3), 0.1, dtype=np.float64)
    assert (blob.diff == np.float32(0.1)).all()


def test_reshape_takes_positional_python_ints_and_bools(files, caffe):
    _, blob = input_blob(files, 2, 3)
    blob.reshape(4, 5)
    assert tuple(blob.shape) == (4, 5)
    blob.reshape(True, 2)
    assert tuple(blob.shape) == (1, 2)
    blob.reshape(*np.zeros((3, 1, 2)).shape)
    assert tuple(blob.shape) == (3, 1, 2)
    assert blob.data.shape == (3, 1, 2)


@pytest.mark.parametrize("args", [(np.int64(2), 3), (np.int32(2),), (2.0, 3), ((2, 3),),
                                  ([2, 3],), (np.zeros((2, 3)).shape,), ("2",)],
                         ids=["numpy.int64", "numpy.int32", "float", "tuple", "list",
                              "arr.shape", "str"])
def test_reshape_rejects_anything_but_python_ints_with_type_error(files, caffe, args):
    _, blob = input_blob(files, 2, 3)
    with pytest.raises(TypeError):
        blob.reshape(*args)
    assert tuple(blob.shape) == (2, 3)


def test_reshape_rejects_keyword_arguments_with_runtime_error(files, caffe):
    _, blob = input_blob(files, 2, 3)
    with pytest.raises(RuntimeError):
        blob.reshape(2, 3, num=1)
    assert tuple(blob.shape) == (2, 3)


def test_fake_only_negative_reshape_dim_raises_caffe_abort(fake_files, fake):
    _, blob = input_blob(fake_files, 2, 3)
    with pytest.raises(fake.CaffeAbort, match="real Caffe would abort here") as info:
        blob.reshape(2, -1)
    assert not isinstance(info.value, Exception)
    assert "shape[i] >= 0" in str(info.value)


def test_reshape_keeps_memory_unless_the_count_grows(files, caffe):
    _, blob = input_blob(files, 2, 3)
    before = blob.data
    before[...] = np.arange(6).reshape(2, 3)
    blob.reshape(3, 2)  # same count
    assert np.shares_memory(before, blob.data)
    assert blob.data.ravel().tolist() == list(range(6))
    blob.reshape(2, 2)  # smaller
    assert np.shares_memory(before, blob.data)
    assert blob.data.ravel().tolist() == [0, 1, 2, 3]
    blob.reshape(3, 2)  # back within the capacity
    assert np.shares_memory(before, blob.data)


def test_fake_only_growing_reshape_leaves_stale_views_nan_and_read_only(fake_files, fake):
    _, blob = input_blob(fake_files, 2, 3)
    stale_data, stale_diff = blob.data, blob.diff
    stale_data[...] = 1
    blob.reshape(4, 4)
    for stale in (stale_data, stale_diff):
        assert np.isnan(stale).all()
        with pytest.raises(ValueError, match="read-only"):
            stale[...] = 2
        assert not np.shares_memory(stale, blob.data)
        assert not np.shares_memory(stale, blob.diff)
    fresh = blob.data
    assert fresh.shape == (4, 4)
    assert fresh.flags.writeable
    assert (fresh == 0).all()


def test_shape_is_an_intvec_not_a_tuple(files, caffe):
    _, blob = input_blob(files, 2, 3)
    shape = blob.shape
    assert not isinstance(shape, (tuple, list))
    assert shape != (2, 3)
    assert shape != [2, 3]
    assert tuple(shape) == (2, 3)
    assert list(shape) == [2, 3]
    assert len(shape) == 2
    assert (shape[0], shape[1], shape[-1]) == (2, 3, 3)
    assert blob.shape is not shape  # a fresh copy on each access


def test_count_and_legacy_accessors(files, caffe):
    _, blob = input_blob(files, 2, 3)
    assert (blob.count, blob.num, blob.channels, blob.height, blob.width) == (6, 2, 3, 1, 1)
    blob.reshape(2, 3, 4, 5)
    assert (blob.count, blob.num, blob.channels, blob.height, blob.width) == (120, 2, 3, 4, 5)
    blob.reshape()
    assert (blob.count, blob.num, blob.channels, blob.height, blob.width) == (1, 1, 1, 1, 1)
    assert blob.data.shape == ()


def test_fake_only_legacy_accessors_on_more_than_four_axes_raise_caffe_abort(fake_files, fake):
    _, blob = input_blob(fake_files, 1, 1, 1, 1, 2)
    assert blob.count == 2
    for accessor in ("num", "channels", "height", "width"):
        with pytest.raises(fake.CaffeAbort, match="legacy accessors"):
            getattr(blob, accessor)


NO_RESHAPE = '''
    import caffe

    class Lazy(caffe.Layer):
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            pass
'''


def test_never_reshaped_top_has_empty_shape_and_zero_count(files, caffe):
    net = files.net(python_layer("l", files.module(NO_RESHAPE), "Lazy", top=["t"]))
    blob = net.blobs["t"]
    assert tuple(blob.shape) == ()
    assert blob.count == 0


def test_fake_only_touching_data_of_never_reshaped_top_raises_caffe_abort(fake_files, fake):
    net = fake_files.net(python_layer("l", fake_files.module(NO_RESHAPE), "Lazy", top=["t"]))
    for name in ("data", "diff"):
        with pytest.raises(fake.CaffeAbort, match="real Caffe would abort here"):
            getattr(net.blobs["t"], name)


VECTORS = '''
    import caffe
    SEEN = {}

    class Probe(caffe.Layer):
        def setup(self, bottom, top):
            SEEN["len"] = (len(bottom), len(top))
            top[-1].reshape(5)
            top[-2].reshape(4)
            part = top[0:1]
            SEEN["slice"] = (type(part) is type(top), len(part), len(top[1:]), len(top[5:]))
            part[0].reshape(7)
            SEEN["bottom"] = tuple(bottom[-1].shape)
            try:
                top[2]
            except IndexError:
                SEEN["index_error"] = True
            for name, vec in (("top", top), ("bottom", bottom)):
                try:
                    for blob in vec:
                        SEEN.setdefault("iterated", []).append(name)
                except TypeError:
                    SEEN.setdefault("type_error", []).append(name)
            try:
                list(top)
            except TypeError:
                SEEN["list_type_error"] = True

        def reshape(self, bottom, top):
            pass
'''


def test_top_and_bottom_support_len_negative_indexing_and_slicing(files, caffe):
    module = files.module(VECTORS)
    net = files.net('layer { name: "in" type: "Input" top: "x" '
                    'input_param { shape { dim: 3 } } }\n'
                    + python_layer("p", module, "Probe", bottom=["x"], top=["t1", "t2"]))
    seen = sys.modules[module].SEEN
    assert seen["len"] == (1, 2)
    assert seen["slice"] == (True, 1, 1, 0)
    assert seen["bottom"] == (3,)
    assert seen["index_error"] is True
    assert tuple(net.blobs["t1"].shape) == (7,)  # top[-2], then top[0:1][0]
    assert tuple(net.blobs["t2"].shape) == (5,)  # top[-1]


def test_top_and_bottom_cannot_be_iterated(files, caffe):
    module = files.module(VECTORS)
    files.net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 3 } } }\n'
              + python_layer("p", module, "Probe", bottom=["x"], top=["t1", "t2"]))
    seen = sys.modules[module].SEEN
    assert "iterated" not in seen
    assert seen["type_error"] == ["top", "bottom"]
    assert seen["list_type_error"] is True


# ===================================================================== fake-only machinery

def test_fake_only_caffe_abort_is_not_swallowed_by_except_exception(fake_files, fake):
    module = fake_files.module('''
        import caffe

        class Careless(caffe.Layer):
            def setup(self, bottom, top):
                try:
                    top[0].reshape(-3)
                except Exception:
                    pass

            def reshape(self, bottom, top):
                pass
    ''')
    assert issubclass(fake.CaffeAbort, BaseException)
    assert not issubclass(fake.CaffeAbort, Exception)
    with pytest.raises(fake.CaffeAbort):
        fake_files.net(python_layer("l", module, "Careless", top=["t"]))


FAILING = '''
    import caffe

    class Boom(Exception):
        pass

    class Failing(caffe.Layer):
        def __init__(self, param):
            caffe.Layer.__init__(self, param)
            if "__init__" in FAIL:
                raise Boom("__init__")

        def setup(self, bottom, top):
            if "setup" in self.param_str:
                raise Boom("setup")

        def reshape(self, bottom, top):
            top[0].reshape(1)
            if "reshape" in self.param_str and getattr(self, "shaped", False):
                raise Boom("reshape")
            self.shaped = True

        def forward(self, bottom, top):
            if "forward" in self.param_str:
                raise Boom("forward")

        def backward(self, top, propagate_down, bottom):
            raise Boom("backward")
'''


@pytest.mark.parametrize("method", ["__init__", "setup", "reshape", "forward", "backward"])
def test_fake_only_layer_exceptions_carry_the_layer_and_method(fake_files, fake, method):
    module = fake_files.module(f"FAIL = {method!r}\n" + textwrap.dedent(FAILING))
    text = "force_backward: true\n" + python_layer("the_layer", module, "Failing", top=["t"],
                                                   param_str=method)

    def run() -> None:
        net = fake_files.net(text)
        net.forward()
        net.forward()  # reshape raises from the second call on
        net.backward()

    with pytest.raises(Exception, match=f"^{method}$") as info:
        run()
    assert type(info.value).__name__ == "Boom"
    assert str(info.value) == method
    assert info.value.fake_caffe_call == ("the_layer", method)


def test_fake_only_import_errors_carry_the_layer_and_import(fake_files, fake):
    broken = fake_files.module("import caffe\nraise ImportError('missing dependency')\n")
    with pytest.raises(ImportError, match="missing dependency") as info:
        fake_files.net(python_layer("l1", broken, top=["t"]))
    assert info.value.fake_caffe_call == ("l1", "import")
    with pytest.raises(ModuleNotFoundError) as info:
        fake_files.net(python_layer("l2", "no_such_module_here", top=["t"]))
    assert info.value.fake_caffe_call == ("l2", "import")
    with pytest.raises(AttributeError) as info:
        fake_files.net(python_layer("l3", fake_files.module(RECORDER), "NoSuchClass", top=["t"]))
    assert info.value.fake_caffe_call == ("l3", "import")


def test_fake_only_set_mode_gpu_is_a_noop_that_says_so_once(fake, monkeypatch, capsys):
    monkeypatch.setattr(_state.settings, "gpu_note_shown", False)
    monkeypatch.setattr(_state.settings, "mode", "CPU")
    fake.set_mode_gpu()
    fake.set_mode_gpu()
    fake.set_mode_cpu()
    assert capsys.readouterr().err.count("set_mode_gpu() is a no-op") == 1


def test_fake_only_solver_count_rank_and_multiprocess(fake_files, fake, monkeypatch):
    for name in ("solver_count", "solver_rank", "multiprocess", "device", "random_seed"):
        monkeypatch.setattr(_state.settings, name, getattr(_state.settings, name))
    assert (fake.solver_count(), fake.solver_rank()) == (1, 0)
    fake.set_solver_count(2)
    fake.set_solver_rank(1)
    fake.set_device(1)
    fake.set_random_seed(7)
    assert (fake.solver_count(), fake.solver_rank()) == (2, 1)
    with pytest.raises(TypeError):
        fake.set_solver_count(2.0)
    text = python_layer("l", fake_files.module(RECORDER), top=["t"], param_str="l")
    fake_files.net(text, fake.TEST)  # only TRAIN Python layers are refused
    with pytest.raises(fake.CaffeAbort, match="use train.py"):
        fake_files.net(text, fake.TRAIN)
    fake.set_multiprocess(True)
    fake_files.net(text, fake.TRAIN)
