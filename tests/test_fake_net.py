"""caffe.Net as a user drives it with pycaffe: written for real pycaffe, run here on the fake.

Only pycaffe's API is used. Layer modules and nets are files in ``tmp_path``; each test gets its
own module names. The few tests of what real Caffe does by aborting the process (or of the fake's
own warning) check the fake's stand-in and are skipped against real Caffe.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid

import caffe
import numpy as np
import pytest

fake_only = pytest.mark.skipif(not hasattr(caffe, "CaffeAbort"),
                               reason="real Caffe aborts the process here")

LAYERS = '''
    import caffe
    import numpy as np

    CALLS = []


    class Times10(caffe.Layer):
        """Multiplies by ten forward and backward."""

        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = 10 * bottom[0].data

        def backward(self, top, propagate_down, bottom):
            CALLS.append(("Times10", "backward", list(propagate_down)))
            if propagate_down[0]:
                bottom[0].diff[...] = 10 * top[0].diff


    class Counter(caffe.Layer):
        """A data layer: batches of consecutive integers (param_str is the batch size)."""

        def setup(self, bottom, top):
            if len(bottom) != 0 or len(top) != 1:
                raise ValueError("Counter: no bottom, one top")
            self.batch_size = int(self.param_str or 4)
            self.next = 0

        def reshape(self, bottom, top):
            top[0].reshape(self.batch_size)

        def forward(self, bottom, top):
            top[0].data[...] = np.arange(self.next, self.next + self.batch_size)
            self.next += self.batch_size

        def backward(self, top, propagate_down, bottom):
            CALLS.append(("Counter", "backward", list(propagate_down)))


    class Phase(caffe.Layer):
        """Outputs the phase it was built for."""

        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape()

        def forward(self, bottom, top):
            top[0].data[()] = self.phase


    class Scale(caffe.Layer):
        """Multiplies by a learnable scalar; its gradient is written in backward."""

        def setup(self, bottom, top):
            self.blobs.add_blob(1)
            self.blobs[0].data[0] = 2

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

        def backward(self, top, propagate_down, bottom):
            CALLS.append(("Scale", "backward", list(propagate_down)))
            self.blobs[0].diff[0] += (top[0].diff * bottom[0].data).sum()
            if propagate_down[0]:
                bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


    class SumLoss(caffe.Layer):
        """Loss = sum of its bottom; d loss / d bottom = 1 times the loss weight."""

        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape()

        def forward(self, bottom, top):
            top[0].data[()] = bottom[0].data.sum()

        def backward(self, top, propagate_down, bottom):
            CALLS.append(("SumLoss", "backward", list(propagate_down)))
            bottom[0].diff[...] = top[0].diff


    class AddOne(caffe.Layer):
        """In place: adds one to its blob."""

        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            pass

        def forward(self, bottom, top):
            top[0].data[...] += 1


    class SetupFails(caffe.Layer):
        def setup(self, bottom, top):
            raise SetupError("bad param_str: " + self.param_str)

        def reshape(self, bottom, top):
            pass


    class SetupError(Exception):
        pass
'''


@pytest.fixture
def layers(tmp_path, monkeypatch):
    """A fresh copy of LAYERS, importable under a name of its own; returns that name."""
    name = f"user_layers_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(LAYERS))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return name


@pytest.fixture
def net_file(tmp_path, layers):
    """Writes a prototxt (``$M`` stands for the layer module) and returns its path as a str."""

    def write(text: str) -> str:
        path = tmp_path / f"{uuid.uuid4().hex[:12]}.prototxt"
        path.write_text(textwrap.dedent(text).replace("$M", layers))
        return str(path)

    return write


def py(name: str, cls: str, bottom: str = "", top: str = "", extra: str = "",
       param_str: str = "") -> str:
    wiring = (f'bottom: "{bottom}" ' if bottom else "") + (f'top: "{top}" ' if top else "")
    param = f' param_str: "{param_str}"' if param_str else ""
    return (f'layer {{ name: "{name}" type: "Python" {wiring}{extra}\n'
            f'  python_param {{ module: "$M" layer: "{cls}"{param} }} }}\n')


CHAIN = ("name: 'chain' force_backward: true\n"
         "input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }\n"
         + py("one", "Times10", "data", "one") + py("two", "Times10", "one", "two")
         + py("three", "Times10", "two", "three"))


def test_chained_python_layers_forward(net_file):
    net = caffe.Net(net_file(CHAIN), caffe.TRAIN)
    net.blobs["data"].data[...] = 8
    out = net.forward()
    assert list(out) == ["three"]
    assert (out["three"] == 8000).all()
    assert (net.blobs["two"].data == 800).all()


def test_chained_python_layers_backward(net_file):
    net = caffe.Net(net_file(CHAIN), caffe.TRAIN)
    net.forward()
    net.blobs["three"].diff[...] = 7
    diffs = net.backward()
    assert list(diffs) == ["data"]
    assert (diffs["data"] == 7000).all()
    assert (net.blobs["one"].diff == 700).all()


def test_forward_and_backward_with_arrays(net_file):
    net = caffe.Net(net_file(CHAIN), caffe.TEST)
    data = np.arange(720, dtype=np.float32).reshape(10, 9, 8)
    assert (net.forward(data=data)["three"] == 1000 * data).all()
    assert (net.backward(three=np.ones((10, 9, 8)))["data"] == 1000).all()
    with pytest.raises(Exception, match="do not match net inputs"):
        net.forward(images=data)
    with pytest.raises(Exception, match="not batch sized"):
        net.forward(data=data[:5])


def test_forward_start_end_and_extra_blobs(net_file):
    net = caffe.Net(net_file(CHAIN), caffe.TEST)
    net.blobs["data"].data[...] = 1
    out = net.forward(end="two", blobs=["one"])
    assert sorted(out) == ["one", "two"]
    assert (out["two"] == 100).all()
    assert not net.blobs["three"].data.any()
    assert (net.forward(start="three")["three"] == 1000).all()


def test_reshaping_an_input_reshapes_downstream_layers(net_file):
    net = caffe.Net(net_file(CHAIN), caffe.TRAIN)
    net.blobs["data"].reshape(4, 4, 4, 4)
    net.forward()
    for blob in net.blobs.values():
        assert blob.data.shape == (4, 4, 4, 4)
    net.blobs["data"].reshape(2, 3)
    net.reshape()
    assert tuple(net.blobs["three"].shape) == (2, 3)


def test_data_layer_feeds_consecutive_batches(net_file):
    net = caffe.Net(net_file(py("data", "Counter", top="n", param_str="3")), caffe.TRAIN)
    assert [net.forward()["n"].tolist() for _ in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_exception_in_setup_reaches_the_caller_with_its_type(net_file, layers):
    path = net_file("input: 'data' input_shape { dim: 1 }\n"
                    + py("bad", "SetupFails", "data", "out", param_str="x: 1"))
    with pytest.raises(Exception, match="bad param_str: x: 1") as info:
        caffe.Net(path, caffe.TRAIN)
    assert type(info.value) is sys.modules[layers].SetupError


def test_exception_in_layer_validation_reaches_the_caller(net_file):
    path = net_file(py("data", "Counter", top="a", extra='top: "b"'))
    with pytest.raises(ValueError, match="no bottom, one top"):
        caffe.Net(path, caffe.TRAIN)


PARAMS = ("name: 'params' force_backward: true\n"
          "input: 'data' input_shape { dim: 2 dim: 3 }\n"
          + py("scale", "Scale", "data", "out"))


def test_parameter_blobs_survive_save_and_copy_from(net_file, tmp_path):
    path = net_file(PARAMS)
    net = caffe.Net(path, caffe.TRAIN)
    layer = net.layers[list(net._layer_names).index("scale")]
    assert list(net.params) == ["scale"]
    assert net.params["scale"][0].data[0] == 2
    net.blobs["data"].data[...] = 1
    net.forward()
    net.blobs["out"].diff[...] = 1
    net.backward()
    assert layer.blobs[0].diff[0] == 6
    layer.blobs[0].data[0] = 5
    weights = str(tmp_path / "scale.caffemodel")
    net.save(weights)
    layer.blobs[0].data[0] = -1
    net.copy_from(weights)
    assert layer.blobs[0].data[0] == 5
    assert caffe.Net(path, caffe.TEST, weights=weights).params["scale"][0].data[0] == 5
    assert caffe.Net(path, weights, caffe.TEST).params["scale"][0].data[0] == 5


def test_share_with_shares_parameter_data(net_file):
    path = net_file(PARAMS)
    train, test = caffe.Net(path, caffe.TRAIN), caffe.Net(path, caffe.TEST)
    test.share_with(train)
    train.params["scale"][0].data[0] = 3
    assert test.params["scale"][0].data[0] == 3
    test.blobs["data"].data[...] = 1
    assert (test.forward()["out"] == 3).all()
    test.params["scale"][0].diff[0] = 9
    assert train.params["scale"][0].diff[0] == 0  # diffs stay separate


def test_phase_is_visible_to_the_layer(net_file):
    path = net_file(py("layer", "Phase", top="phase"))
    for phase in (caffe.TRAIN, caffe.TEST):
        assert caffe.Net(path, phase).forward()["phase"] == phase


def test_backward_runs_in_reverse_order_where_a_loss_needs_it(net_file, layers):
    net = caffe.Net(net_file(
        "input: 'data' input_shape { dim: 2 dim: 3 }\n"
        + py("scale", "Scale", "data", "scaled")
        + py("loss", "SumLoss", "scaled", "loss", extra="loss_weight: 0.5")), caffe.TRAIN)
    assert net.blobs["loss"].diff == 0.5  # the loss weight, set at construction
    net.blobs["data"].data[...] = 1
    assert net.forward()["loss"] == 12
    net.backward()
    assert sys.modules[layers].CALLS == [("SumLoss", "backward", [True]),
                                         ("Scale", "backward", [False])]
    assert net.params["scale"][0].diff[0] == 3  # 0.5 * sum(data)
    assert not net.blobs["data"].diff.any()  # nothing propagated into the input


def test_backward_skips_layers_no_loss_depends_on(net_file, layers):
    net = caffe.Net(net_file("input: 'data' input_shape { dim: 2 }\n"
                             + py("times", "Times10", "data", "out")
                             + py("count", "Counter", top="n")), caffe.TRAIN)
    net.forward()
    net.backward()
    assert sys.modules[layers].CALLS == []


def test_force_backward_calls_every_layer(net_file, layers):
    net = caffe.Net(net_file("force_backward: true\n"
                             "input: 'data' input_shape { dim: 2 }\n"
                             + py("count", "Counter", top="n")
                             + py("times", "Times10", "data", "out")), caffe.TRAIN)
    net.forward()
    net.backward()
    assert sys.modules[layers].CALLS == [("Times10", "backward", [True]),
                                         ("Counter", "backward", [])]


def test_in_place_tops_share_the_blob(net_file):
    net = caffe.Net(net_file("input: 'data' input_shape { dim: 3 }\n"
                             + py("add", "AddOne", "data", "data")
                             + py("times", "Times10", "data", "out")), caffe.TEST)
    assert list(net.blobs) == ["data", "out"]
    assert net.top_names["add"] == net.bottom_names["add"] == ["data"]
    net.blobs["data"].data[...] = 1
    assert (net.forward()["out"] == 20).all()


def test_a_blob_read_twice_goes_through_a_split_layer(net_file):
    net = caffe.Net(net_file("force_backward: true\n"
                             "input: 'data' input_shape { dim: 2 }\n"
                             + py("a", "Times10", "data", "a") + py("b", "Times10", "data", "b")),
                    caffe.TRAIN)
    assert list(net._layer_names) == ["input", "data_input_0_split", "a", "b"]
    assert [layer.type for layer in net.layers] == ["Input", "Split", "Python", "Python"]
    assert list(net.blobs) == ["data", "data_input_0_split_0", "data_input_0_split_1", "a", "b"]
    net.blobs["data"].data[...] = 2
    out = net.forward()
    assert (out["a"] == 20).all()
    assert (out["b"] == 20).all()
    diffs = net.backward(a=np.ones(2), b=np.full(2, 2.0))
    assert (diffs["data"] == 30).all()  # 10 * 1 + 10 * 2, summed by the split


def test_inputs_and_outputs(net_file):
    net = caffe.Net(net_file(
        "layer { name: 'in' type: 'Input' top: 'y' top: 'x' top: 'unused'\n"
        "  input_param { shape { dim: 2 } shape { dim: 3 } shape { dim: 1 } } }\n"
        + py("zed", "Times10", "x", "zed") + py("alpha", "Times10", "y", "alpha")
        + "layer { name: 'quiet' type: 'Silence' bottom: 'unused' }\n"), caffe.TEST)
    assert net.inputs == ["y", "x", "unused"]
    assert net.outputs == ["alpha", "zed"]  # sorted, as Caffe keeps them in a std::set
    assert tuple(net.blobs["x"].shape) == (3,)
    assert sorted(net.forward(y=np.ones(2), x=np.ones(3), unused=np.ones(1))) == ["alpha", "zed"]


def test_include_and_exclude_rules_pick_layers_by_phase(net_file):
    path = net_file(py("train_data", "Counter", top="n", param_str="2",
                       extra="include { phase: TRAIN }")
                    + py("test_data", "Counter", top="n", param_str="5",
                         extra="include { phase: TEST }")
                    + py("times", "Times10", "n", "out", extra="exclude { phase: TEST }"))
    train = caffe.Net(path, caffe.TRAIN)
    assert list(train._layer_names) == ["train_data", "times"]
    assert train.forward()["out"].tolist() == [0, 10]
    test = caffe.Net(path, caffe.TEST)
    assert list(test._layer_names) == ["test_data"]
    assert test.forward()["n"].tolist() == [0, 1, 2, 3, 4]


def test_include_rules_on_stage_and_level(net_file):
    path = net_file(py("deploy", "Phase", top="p", extra="include { stage: 'deploy' }")
                    + py("deep", "Phase", top="q", extra="include { min_level: 2 }")
                    + py("always", "Phase", top="r", extra="exclude { not_stage: 'x' }"))
    assert list(caffe.Net(path, caffe.TEST)._layer_names) == []
    net = caffe.Net(path, caffe.TEST, level=2, stages=["deploy", "x"])
    assert list(net._layer_names) == ["deploy", "deep", "always"]


def test_legacy_input_with_input_dim(net_file):
    net = caffe.Net(net_file("input: 'a' input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4\n"
                             "input: 'b' input_dim: 5 input_dim: 1 input_dim: 1 input_dim: 1\n"),
                    caffe.TEST)
    assert net.inputs == ["a", "b"]
    assert tuple(net.blobs["a"].shape) == (1, 2, 3, 4)
    assert tuple(net.blobs["b"].shape) == (5, 1, 1, 1)
    assert [layer.type for layer in net.layers] == ["Input"]


def test_net_file_errors(net_file, tmp_path):
    with pytest.raises(RuntimeError, match="Could not open file"):
        caffe.Net(str(tmp_path / "missing.prototxt"), caffe.TRAIN)
    with pytest.raises(TypeError):
        caffe.Net(tmp_path / "net.prototxt", caffe.TRAIN)  # a Path is not a std::string


def test_caffe_module_functions():
    assert "Python" in caffe.layer_type_list()
    assert "Input" in caffe.layer_type_list()
    caffe.set_mode_cpu()
    caffe.set_random_seed(1)


@fake_only
def test_wiring_errors_name_the_layer_and_blob(net_file):
    unknown = net_file("input: 'data' input_shape { dim: 1 }\n"
                       + py("times", "Times10", "dta", "out"))
    with pytest.raises(caffe.CaffeAbort, match="Unknown bottom blob 'dta' .layer 'times'"):
        caffe.Net(unknown, caffe.TRAIN)
    twice = net_file("input: 'data' input_shape { dim: 1 }\n"
                     + py("a", "Times10", "data", "out") + py("b", "Counter", top="out"))
    with pytest.raises(caffe.CaffeAbort, match="Top blob 'out' produced by multiple sources "
                                               ".layer 'b'"):
        caffe.Net(twice, caffe.TRAIN)
    both = net_file(py("a", "Counter", top="n", extra="include { phase: TRAIN } "
                                                      "exclude { phase: TEST }"))
    with pytest.raises(caffe.CaffeAbort, match="either include rules or exclude rules"):
        caffe.Net(both, caffe.TRAIN)


@fake_only
def test_unknown_fields_and_types_are_refused(net_file):
    with pytest.raises(caffe.CaffeAbort, match='no field named "botom"'):
        caffe.Net(net_file("layer { name: 'a' type: 'Input' botom: 'x' }"), caffe.TRAIN)
    with pytest.raises(caffe.CaffeAbort, match="Unknown layer type: Pythn"):
        caffe.Net(net_file("layer { name: 'a' type: 'Pythn' top: 'x' }"), caffe.TRAIN)


UNCOMPUTED = (py("data", "Counter", top="n")
              + "layer { name: 'ip' type: 'InnerProduct' bottom: 'n' top: 'ip' }\n"
              + "layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'n' }\n"
              + "layer { name: 'acc' type: 'Accuracy' bottom: 'ip' bottom: 'n' top: 'acc' }\n")


@fake_only
def test_layers_the_fake_does_not_compute_are_named_in_one_warning(net_file):
    with pytest.warns(caffe.NotComputedWarning) as record:
        caffe.Net(net_file(UNCOMPUTED), caffe.TRAIN)
    assert len(record) == 1
    listed = str(record[0].message).rsplit(": ", 1)[1]
    assert listed == "ip (InnerProduct), loss (SoftmaxWithLoss), acc (Accuracy)"


@fake_only
def test_layers_the_fake_does_not_compute_leave_their_tops_alone(net_file, layers):
    with pytest.warns(caffe.NotComputedWarning):
        net = caffe.Net(net_file(UNCOMPUTED), caffe.TRAIN)
    assert list(net.blobs)[:4] == ["n", "n_data_0_split_0", "n_data_0_split_1",
                                   "n_data_0_split_2"]
    assert "(automatic)" in net.blobs  # the loss layer's top, made by Caffe
    assert net.outputs == ["acc"]
    assert net.forward() == {}  # acc is never computed, so it is left out
    assert net.forward() == {}
    net.backward()
    assert net.blobs["n"].data.tolist() == [4, 5, 6, 7]  # the Python data layer did run
    assert sys.modules[layers].CALLS == []
    for name in ("ip", "acc", "ip_ip_0_split_1"):
        assert tuple(net.blobs[name].shape) == ()
        with pytest.raises(caffe.NotComputedError, match="layer 'ip' .InnerProduct.|Accuracy"):
            net.blobs[name].data  # noqa: B018


@fake_only
def test_python_layer_reading_an_uncomputed_blob_is_told_why(net_file):
    path = net_file(py("data", "Counter", top="n")
                    + "layer { name: 'ip' type: 'InnerProduct' bottom: 'n' top: 'ip' }\n"
                    + py("times", "Times10", "ip", "out"))
    with pytest.warns(caffe.NotComputedWarning), \
            pytest.raises(caffe.NotComputedError, match="layer 'ip' .InnerProduct."):
        caffe.Net(path, caffe.TRAIN)
