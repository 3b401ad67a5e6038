"""DBDataLayer against real Caffe: its Data layer, its convert_imageset and its Datum.

Databases made by Caffe's ``convert_imageset`` (raw, encoded, gray, resized, re-encoded; LMDB and
LevelDB) are read by Caffe's ``Data`` layer and by ``DBDataLayer`` in one net, TEST phase
(centre crop, mean file from Caffe's ``compute_image_mean``, scale): every batch must be bit for
bit the same, wrapping included. The same for databases made by ``caffe-layers-convert-db``, whose
records must also be byte for byte those of ``convert_imageset``. In-process tests need real
pycaffe (the real-Caffe stage); the ``caffe test`` one runs the binary from any Python.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import real_caffe
from db_data import read_records
from hypothesis import given, settings
from hypothesis import strategies as st
from image_data import smooth_image, write_image, write_list

from caffe_layers.datum import parse_datum, serialize_datum
from caffe_layers.prefetch import close_all
from caffe_layers.tools import convert_db

pytestmark = [pytest.mark.real_caffe, pytest.mark.timeout(300)]

COUNT = 11  # not a multiple of the batch: batches wrap around the end
BATCH = 4
VARIANTS = {  # convert_imageset flags (ours are the same words with dashes)
    "raw": (),
    "encoded": ("--encoded",),
    "gray": ("--gray",),
    "resized": ("--resize_height=20", "--resize_width=24"),
    "gray-encoded-resized": ("--gray", "--encoded", "--resize_height=20", "--resize_width=24"),
    "reencoded-png": ("--encode_type=png",),
}


def write_images(directory: Path) -> Path:
    """JPEG and PNG photos-like images of two sizes, and their list."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(COUNT):
        size = (26, 30) if i % 3 else (30, 26)
        name = f"img/{i:02d}.{'jpg' if i % 2 else 'png'}"
        write_image(directory / name, smooth_image(rng, *size))
        lines.append(f"{name} {i}")
    return write_list(directory / "list.txt", lines)


def caffe_convert(directory: Path, name: str, backend: str, flags) -> Path:
    done = real_caffe.run_tool("convert_imageset", f"--backend={backend}", *flags,
                               f"{directory}/", directory / "list.txt", directory / name,
                               cwd=directory)
    assert done.returncode == 0, done.stdout
    return directory / name


def our_convert(directory: Path, name: str, backend: str, flags) -> Path:
    ours = [re.sub(r"^--(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), f)
            for f in flags]
    ours = [part for flag in ours for part in flag.split("=")]
    status = convert_db.main([f"{directory}/", str(directory / "list.txt"),
                              str(directory / name), "--backend", backend, "-q", *ours])
    assert status == 0
    return directory / name


def mean_file(directory: Path, database: Path, backend: str) -> Path:
    path = directory / f"{database.name}.binaryproto"
    done = real_caffe.run_tool("compute_image_mean", f"--backend={backend}", database, path,
                               cwd=directory)
    assert done.returncode == 0, done.stdout
    return path


def pair_net(directory: Path, database: Path, backend: str, transform: dict) -> Path:
    """A net holding Caffe's Data layer and DBDataLayer on ``database``, same settings."""
    caffe_transform = " ".join(f"{k}: {json.dumps(item)}" for k, v in transform.items()
                               for item in (v if isinstance(v, list) else [v]))
    ours = json.dumps({"source": str(database), "batch_size": BATCH, "workers": 2, **transform})
    path = directory / f"pair_{database.name}.prototxt"
    path.write_text(f'''name: "pair"
layer {{ name: "caffe" type: "Data" top: "cdata" top: "clabel"
  transform_param {{ {caffe_transform} }}
  data_param {{ source: "{database}" backend: {backend.upper()} batch_size: {BATCH} }} }}
layer {{ name: "ours" type: "Python" top: "data" top: "label"
  python_param {{ module: "caffe_layers.layers" layer: "DBDataLayer"
                  param_str: {json.dumps(ours)} }} }}
''')
    return path


def assert_same_batches(net_path: Path, batches: int = 6) -> None:
    import caffe

    net = caffe.Net(str(net_path), caffe.TEST)
    try:
        for _ in range(batches):
            net.forward()
            blobs = net.blobs
            assert blobs["data"].data.shape == blobs["cdata"].data.shape
            assert np.array_equal(blobs["data"].data.view(np.uint32),
                                  blobs["cdata"].data.view(np.uint32))
            assert np.array_equal(blobs["label"].data, blobs["clabel"].data)
    finally:
        close_all()


def transform_for(directory: Path, database: Path, backend: str, variant: str) -> dict:
    """Resized records share one size: a mean file. Others come in two sizes: mean values."""
    if "resized" in variant:
        return {"crop_size": 17, "mean_file": str(mean_file(directory, database, backend)),
                "scale": 0.0078125}
    values = [101.5] if "gray" in variant else [101.5, 117.0, 123.25]
    return {"crop_size": 17, "mean_value": values, "scale": 0.0078125}


@real_caffe.needs_pycaffe
@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_caffe_s_databases_read_bit_for_bit_as_caffe_s_data_layer(tmp_path, backend, variant):
    write_images(tmp_path)
    database = caffe_convert(tmp_path, "caffe_db", backend, VARIANTS[variant])
    transform = transform_for(tmp_path, database, backend, variant)
    assert_same_batches(pair_net(tmp_path, database, backend, transform))


@real_caffe.needs_pycaffe
@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_our_databases_hold_caffe_s_records_and_caffe_reads_them(tmp_path, backend, variant):
    write_images(tmp_path)
    theirs = caffe_convert(tmp_path, "caffe_db", backend, VARIANTS[variant])
    ours = our_convert(tmp_path, "our_db", backend, VARIANTS[variant])
    assert read_records(ours, backend) == read_records(theirs, backend)
    transform = transform_for(tmp_path, ours, backend, variant)
    assert_same_batches(pair_net(tmp_path, ours, backend, transform))


@real_caffe.needs_pycaffe
@pytest.mark.parametrize("force", ["force_color", "force_gray"])
def test_forced_decoding_matches_caffe(tmp_path, force):
    write_images(tmp_path)
    database = caffe_convert(tmp_path, "enc", "lmdb", ("--encoded",))
    assert_same_batches(pair_net(tmp_path, database, "lmdb",
                                 {force: True, "crop_size": 20, "mean_value": [3.5]}))


@real_caffe.needs_pycaffe
@settings(max_examples=100, deadline=None)
@given(label=st.integers(-(1 << 31), (1 << 31) - 1), shape=st.tuples(*[st.integers(1, 4)] * 3),
       encoded=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_pycaffe_s_generated_datum_agrees_byte_for_byte(label, shape, encoded, seed):
    from caffe.proto import caffe_pb2

    data = np.random.default_rng(seed).integers(0, 256, int(np.prod(shape)), np.uint8).tobytes()
    theirs = caffe_pb2.Datum(data=data, label=label, encoded=encoded)
    if not encoded:
        theirs.channels, theirs.height, theirs.width = shape
    ours = serialize_datum(data, label, None if encoded else shape)
    assert ours == theirs.SerializeToString()
    parsed = parse_datum(theirs.SerializeToString())
    assert (parsed.label, parsed.encoded, bytes(parsed.data)) == (label, encoded, data)


@real_caffe.needs_binary
def test_caffe_test_finds_the_two_layers_identical_inside_the_binary(tmp_path):
    """`caffe test` on a net with both layers and a Euclidean loss between them: exactly 0."""
    env = real_caffe.binary_env(*real_caffe.embedded_python_path(),
                                GLOG_minloglevel="0",  # the scores
                                GLOG_logtostderr="1")  # and no log files in TMPDIR
    probe = subprocess.run(["/usr/bin/python3", "-c", "import lmdb"], env=env,
                           capture_output=True, timeout=60, check=False)
    if probe.returncode:
        pytest.skip("the caffe binary's Python cannot import lmdb: pip install --no-deps lmdb "
                    "plyvel for /usr/bin/python3 (or run the real-Caffe stage)")
    write_images(tmp_path)
    database = caffe_convert(tmp_path, "enc", "lmdb", ("--encoded", "--resize_height=20",
                                                       "--resize_width=24"))
    net = pair_net(tmp_path, database, "lmdb", {"crop_size": 17, "mean_value": [100, 110, 120]})
    net.write_text(net.read_text() + '''
layer { name: "data_loss" type: "EuclideanLoss" bottom: "data" bottom: "cdata" top: "data_loss" }
layer { name: "label_loss" type: "EuclideanLoss" bottom: "label" bottom: "clabel"
        top: "label_loss" }
''')
    (tmp_path / "none.caffemodel").write_bytes(b"")  # an empty NetParameter: nothing to learn
    done = real_caffe.run_tool("caffe", "test", f"--model={net}", "--iterations=8",
                               f"--weights={tmp_path / 'none.caffemodel'}", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout[-3000:]
    losses = re.findall(r"\] (data_loss|label_loss) = (\S+)", done.stdout)
    assert sorted(set(losses)) == [("data_loss", "0"), ("label_loss", "0")], done.stdout[-3000:]
    assert "caffe_layers: DBDataLayer (TEST)" in done.stdout
