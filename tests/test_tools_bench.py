"""caffe-layers-bench: every data layer measured per worker count, the table, the JSON, the verdict.

With the fake caffe (the net's time is unknown unless given with --net-ms). Timings are never
asserted: the verdict's logic and wording are checked with given numbers.
"""

from __future__ import annotations

import contextlib
import json
import re
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from caffe_layers.config import parse_yaml
from caffe_layers.testing import prototxt
from caffe_layers.tools import _netfile, bench
from caffe_layers.tools._bench_report import LayerResult, NetTime, Run, table_lines, verdict

HEADER = ["workers", "img/s", "ms/batch", "consumer CPU ms/batch", "setup s"]


def write_images(root: Path, count: int = 12) -> None:
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(count):
        cv2.imwrite(str(root / "images" / f"{i}.png"), rng.integers(0, 256, (10, 12, 3),
                                                                     np.uint8))
    (root / "list.txt").write_text("".join(f"{i}.png {i % 2}\n" for i in range(count)))


def data_layer(root: Path, phase: str = "TRAIN", name: str = "data", **extra) -> str:
    params = {"source": str(root / "list.txt"), "root_folder": f"{root}/images/",
              "batch_size": 4, "crop_size": 8, "mirror": True, "shuffle": True, **extra}
    return textwrap.dedent(f"""
        layer {{ name: "{name}" type: "Python" top: "{name}" top: "label_{name}"
          include {{ phase: {phase} }}
          python_param {{ module: "caffe_layers.layers" layer: "ImageListDataLayer"
                          param_str: {json.dumps(json.dumps(params))} }} }}""")


RANDOM = """
layer { name: "extra" type: "Python" top: "extra" top: "extra_label" include { phase: TRAIN }
  python_param { module: "caffe_layers.testing.example_layers" layer: "RandomDataLayer"
                 param_str: "{batch_size: 4, shape: [3, 5, 5]}" } }"""


def write_net(root: Path, *layers: str) -> Path:
    rest = ('layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
            'inner_product_param { num_output: 2 } }\n'
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label_data" '
            'top: "loss" }\n')
    path = root / "net.prototxt"
    path.write_text('name: "net"\n' + "\n".join(layers) + "\n" + rest)
    return path


def run(argv, capsys) -> tuple:
    status = bench.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def net(tmp_path):
    write_images(tmp_path)
    return write_net(tmp_path, data_layer(tmp_path), data_layer(tmp_path, "TEST"))


RUN_KEYS = {"workers", "worker_processes", "setup_s", "warmup_batches", "images_per_s",
            "ms_per_batch", "consumer_cpu_ms_per_batch"}


@pytest.mark.timeout(60)
def test_every_worker_count_is_measured_in_a_table_and_json(net, tmp_path, capsys):
    status, out, err = run([net, "--workers", 1, 0, "--batches", 3, "--json",
                            tmp_path / "out" / "bench.json", "-q"], capsys)
    assert status == 0, err
    assert err == ""  # -q: no progress; the layers' setup lines are not shown
    results = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert set(results) == {"schema", "net", "phase", "caffe", "cores", "batches", "layers",
                            "net_time", "net_time_unknown", "verdict"}
    assert (results["schema"], results["phase"], results["batches"]) == (1, "TRAIN", 3)
    assert results["caffe"] == bench.caffe_kind()
    [layer] = results["layers"]
    assert (layer["name"], layer["python_class"], layer["batch_size"]) == \
        ("data", "caffe_layers.layers.ImageListDataLayer", 4)
    assert layer["tops"] == {"data": [4, 3, 8, 8], "label_data": [4]}
    assert [set(r) for r in layer["runs"]] == [RUN_KEYS, RUN_KEYS]
    assert [r["workers"] for r in layer["runs"]] == [0, 1]
    assert [r["worker_processes"] for r in layer["runs"]] == [0, 1]  # workers really overridden
    assert [r["warmup_batches"] for r in layer["runs"]] == [4 + 0 + 2, 4 + 1 + 2]  # prefetch 4
    assert all(r[key] > 0 for r in layer["runs"] for key in ("images_per_s", "ms_per_batch",
                                                              "setup_s"))
    lines = out.splitlines()
    assert lines[0].startswith(f"caffe-layers-bench {net} (TRAIN, {results['caffe']}, ")
    at = lines.index("layer 'data' (caffe_layers.layers.ImageListDataLayer), batch 4 of 3x8x8")
    assert re.split(r"\s{2,}", lines[at + 1].strip()) == HEADER  # widths follow the figures
    for line, workers in zip(lines[at + 2:at + 4], (0, 1)):
        assert re.fullmatch(rf"\s+{workers}\s+[\d,]+\s+[\d.]+\s+[\d.]+\s+[\d.]+", line), line
    if results["caffe"] == "fake caffe":
        assert results["net_time"] is None
        assert "the fake caffe computes only Python layers" in results["net_time_unknown"]
        assert results["verdict"]["keeps_up"] is None
        assert lines[-2].startswith("net: forward+backward time unknown (the fake caffe")
        assert lines[-1].startswith("data loading reaches ")
    else:  # real pycaffe times the net (tests/test_real_pictures_bench.py)
        assert results["net_time"]["ms_per_batch"] > 0
        assert lines[-2].startswith("net: forward+backward ")


@pytest.mark.timeout(60)
def test_json_alone_goes_to_stdout(net, capsys):
    status, out, err = run([net, "--workers", 1, "--batches", 2, "--json"], capsys)
    assert status == 0, err
    assert json.loads(out)["layers"][0]["runs"][0]["workers"] == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("net_ms", "keeps_up"), [(1e9, True), (1e-6, False)])
def test_a_given_net_time_gives_a_verdict(net, capsys, net_ms, keeps_up):
    status, out, err = run([net, "--workers", 1, "--batches", 2, "--net-ms", net_ms, "--json"],
                           capsys)
    assert status == 0, err
    results = json.loads(out)
    assert results["net_time"]["source"] == "given with --net-ms"
    assert results["net_time"]["images_per_s"] == {"data": pytest.approx(4000 / net_ms)}
    assert results["verdict"]["keeps_up"] is keeps_up
    [line] = results["verdict"]["lines"]
    if keeps_up:
        assert results["verdict"]["workers"] == 1
        assert line.startswith("data loading keeps up from 1 worker: ")
    else:
        assert results["verdict"]["workers"] is None
        assert line.startswith("data loading does not keep up: at most ")


@pytest.mark.timeout(60)
def test_every_python_data_layer_is_measured_a_foreign_one_as_is(tmp_path, capsys):
    write_images(tmp_path)
    net = write_net(tmp_path, data_layer(tmp_path), RANDOM)
    status, out, err = run([net, "--workers", 0, 2, "--batches", 2, "--json"], capsys)
    assert status == 0, err
    ours, foreign = json.loads(out)["layers"]
    assert [r["workers"] for r in ours["runs"]] == [0, 2]
    assert foreign["name"] == "extra"
    assert [(r["workers"], r["worker_processes"], r["warmup_batches"])
            for r in foreign["runs"]] == [(None, 0, 2)]
    status, out, err = run([net, "--layer", "extra", "--batches", 2], capsys)
    assert status == 0, err
    assert "layer 'extra' (caffe_layers.testing.example_layers.RandomDataLayer)" in out
    assert "layer 'data'" not in out
    assert re.search(r"^\s+own\s+[\d,]+", out, re.MULTILINE)


def test_errors_say_what_to_fix(tmp_path, capsys):
    write_images(tmp_path)
    net = write_net(tmp_path, data_layer(tmp_path))
    status, _, err = run([net, "--phase", "TEST"], capsys)
    assert (status, err) == (2, f"caffe-layers-bench: error: {net}: the TEST net has no Python "
                                f"data layer (type: \"Python\", no bottom); try --phase TEST or "
                                f"another net\n")
    status, _, err = run([net, "--net-ms", 0], capsys)
    assert (status, err) == (2, "caffe-layers-bench: error: --net-ms: must be > 0 (got 0)\n")
    bad = write_net(tmp_path, data_layer(tmp_path, crop_size=64))
    status, _, err = run([bad, "--workers", 0, "--batches", 1], capsys)
    assert status == 2
    assert err.startswith("caffe-layers-bench: error: layer 'data' "
                          "(caffe_layers.layers.ImageListDataLayer): crop_size: must be <= ")
    status, _, err = run([tmp_path / "none.prototxt"], capsys)
    assert status == 2
    assert "net prototxt" in err


# --- the verdict, from given numbers -----------------------------------------------------------

def result(rates: dict, name: str = "data", batch: int = 64) -> LayerResult:
    runs = [Run(workers, workers or 0, 0.1, 6, rate, batch * 1e3 / rate, 1.0)
            for workers, rate in rates.items()]
    return LayerResult(name, "caffe_layers.layers.ImageListDataLayer", batch,
                       {"data": [batch, 3, 227, 227]}, runs)


NET = NetTime(100.0, "given")  # 64 images per 100 ms: 640 img/s


def test_loading_keeps_up_from_the_fewest_workers_that_outrun_the_net():
    found = verdict([result({0: 700, 1: 500, 2: 900, 4: 1500})], NET)
    assert (found.keeps_up, found.workers) == (True, 2)
    assert found.lines == ["data loading keeps up from 2 workers: 900 img/s against the net's "
                           "640 img/s"]


def test_loading_that_never_keeps_up_says_how_long_the_net_waits():
    found = verdict([result({1: 320, 4: 480})], NET)
    assert (found.keeps_up, found.workers) == (False, None)
    assert found.lines == ["data loading does not keep up: at most 480 img/s (4 workers) "
                           "against the net's 640 img/s; the net would wait for data 25% of the "
                           "time (more workers if cores are free, else cheaper work per image: "
                           "see Performance in the README)"]


def test_zero_workers_never_overlap_the_net():
    found = verdict([result({0: 6400})], NET)
    assert found.keeps_up is False
    assert found.lines == ["with 0 workers loading runs inside forward, adding 10.0 ms to each "
                           "of the net's 100.0 ms iterations; measure --workers 1 2 to see it "
                           "overlap"]


def test_several_layers_all_must_keep_up_and_are_named():
    found = verdict([result({1: 700}), result({1: 100, 2: 1000}, "extra", batch=32)], NET)
    assert (found.keeps_up, found.workers) == (True, 2)
    assert found.lines == [
        "layer 'data': data loading keeps up from 1 worker: 700 img/s against the net's 640 "
        "img/s",
        "layer 'extra': data loading keeps up from 2 workers: 1,000 img/s against the net's "
        "320 img/s"]
    foreign = LayerResult("x", "my.Layer", 64, {"x": [64]}, [Run(None, 0, 0.1, 2, 700, 1, 1)])
    found = verdict([foreign], NET)
    assert (found.keeps_up, found.workers) == (True, None)
    assert found.lines == ["data loading keeps up with its own settings: 700 img/s against the "
                           "net's 640 img/s"]


def test_without_the_net_time_the_best_rate_is_reported():
    found = verdict([result({0: 700, 2: 1500})], None)
    assert (found.keeps_up, found.workers) == (None, None)
    assert found.lines == ["data loading reaches 1,500 img/s at best (2 workers); whether that "
                           "keeps up needs the net's time (--net-ms)"]


def test_table_lines():
    layer = result({0: 1234.4, 2: 56.7})
    assert table_lines(layer) == [
        "layer 'data' (caffe_layers.layers.ImageListDataLayer), batch 64 of 3x227x227",
        "  workers  img/s  ms/batch  consumer CPU ms/batch  setup s",
        "        0  1,234     51.85                   1.00     0.10",
        "        2     57   1128.75                   1.00     0.10"]


# --- the nets it builds ------------------------------------------------------------------------

def not_computed(caffe):
    """The fake warns that it wires ip and loss without computing them; real Caffe computes."""
    if hasattr(caffe, "NotComputedWarning"):
        return pytest.warns(caffe.NotComputedWarning)
    return contextlib.nullcontext()


def test_with_param_and_with_inputs_make_nets_caffe_builds(tmp_path):
    import caffe

    write_images(tmp_path)
    net_msg = prototxt.parse_file(str(write_net(tmp_path, data_layer(tmp_path, workers=3),
                                                data_layer(tmp_path, "TEST"))))
    layer = _netfile.data_layers(net_msg, "TRAIN")[0]
    changed = _netfile.with_param(layer, "workers", 0)
    assert parse_yaml(_netfile.param_str(changed)) == dict(
        parse_yaml(_netfile.param_str(layer)), workers=0)
    assert parse_yaml(_netfile.param_str(layer))["workers"] == 3  # the original is untouched
    text = _netfile.with_inputs(net_msg, [(layer, [("data", (4, 3, 8, 8)),
                                                   ("label_data", (4,))])])
    (tmp_path / "inputs.prototxt").write_text(text)
    with not_computed(caffe):
        built = caffe.Net(str(tmp_path / "inputs.prototxt"), caffe.TRAIN)
    assert list(built._layer_names)[0] == "data"
    assert built.layers[0].type == "Input"
    assert tuple(built.blobs["data"].shape) == (4, 3, 8, 8)
    assert tuple(built.blobs["label_data"].shape) == (4,)
    with not_computed(caffe):
        test_net = caffe.Net(str(tmp_path / "inputs.prototxt"), caffe.TEST)
    try:
        assert test_net.layers[0].type == "Python"  # the TEST data layer is left as it was
    finally:
        bench._netrun.close_layers(test_net)
