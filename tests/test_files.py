"""The files keys name (a source list, a mean file, an image) are read by one reader: a missing
file, a directory and an unreadable file get the same messages whoever reads them."""

from __future__ import annotations

import pytest

from caffe_layers.binaryproto import read_mean
from caffe_layers.errors import ConfigError, DataError
from caffe_layers.sources.image_list import SampleList
from caffe_layers.sources.images import read_image

READERS = {
    "source": (lambda path: SampleList.read(path), ConfigError, "source: ", "the image list"),
    "mean_file": (lambda path: read_mean(path), DataError, "", "mean_file"),
    "image": (lambda path: read_image(path, where="l.txt:3"), DataError, "l.txt:3: ", "image"),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_directory(tmp_path, reader):
    read, error, prefix, what = READERS[reader]
    with pytest.raises(error) as info:
        read(str(tmp_path))
    assert str(info.value) == f"{prefix}cannot read {what} '{tmp_path}': it is a directory"


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_missing_file_named_by_a_relative_path_names_the_working_directory(
        tmp_path, monkeypatch, reader):
    read, error, prefix, what = READERS[reader]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as info:
        read("nope")
    assert str(info.value) == (f"{prefix}{what} 'nope' does not exist (relative paths are "
                               f"resolved from the working directory '{tmp_path}')")


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_missing_file_named_by_an_absolute_path(tmp_path, reader):
    read, error, prefix, what = READERS[reader]
    with pytest.raises(error) as info:
        read(str(tmp_path / "nope"))
    assert str(info.value) == f"{prefix}{what} '{tmp_path / 'nope'}' does not exist"
