"""Under real pycaffe: the preview's exact per-sample inverse and the bench's net time.

pycaffe hands back a Python layer as the object itself (``net.layers[i]``), so the tools reach
the layer's engine as with the fake; the bench times the net's own forward+backward only here.
"""

from __future__ import annotations

import json

import cv2
import pytest
import real_caffe
from test_tools_preview_exact import (
    CROP,
    GAP,
    gradient_mean,
    image_params,
    placements,
    tiles,
    write_images,
    write_net,
)

from caffe_layers.tools import bench, preview

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_pycaffe]

LOSS = ('layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" '
        'top: "loss" }\n')


@pytest.mark.timeout(120)
def test_preview_undoes_each_train_sample_exactly(tmp_path, capsys):
    images = write_images(tmp_path, 6)
    gradient_mean(tmp_path / "mean.binaryproto")
    net = write_net(tmp_path / "net.prototxt", image_params(tmp_path, workers=2))
    status = preview.main([str(net), "--out", str(tmp_path / "p.png"), "--zoom", "1",
                           "--columns", "6"])
    out, err = capsys.readouterr()
    assert status == 0, err
    png = cv2.imread(str(tmp_path / "p.png"))
    assert png.shape[0] == GAP + CROP + 14 + GAP
    found = [placements(tile.astype(float), images) for tile in tiles(png, 6, (CROP, CROP))]
    assert sorted(matches[0][0] for matches in found if len(matches) == 1) == list(range(6))
    assert "(exact)" in out


@pytest.mark.timeout(120)
def test_bench_times_the_net_under_real_pycaffe(tmp_path, capsys):
    write_images(tmp_path, 6)
    net = write_net(tmp_path / "net.prototxt", image_params(tmp_path, mean_file="",
                                                            batch_size=3))
    net.write_text(net.read_text() + LOSS)
    status = bench.main([str(net), "--workers", "1", "--batches", "3", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    results = json.loads(out)
    assert results["caffe"] == "real pycaffe"
    assert results["net_time"]["ms_per_batch"] > 0
    assert results["net_time"]["source"] == ("real pycaffe on the CPU, mean of 3 iterations "
                                             "after 1 warm-up")
    assert results["net_time_unknown"] is None
    assert results["verdict"]["keeps_up"] in (True, False)
    assert results["verdict"]["lines"][0].startswith("data loading ")
