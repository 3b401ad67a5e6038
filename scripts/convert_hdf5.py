#!/usr/bin/env python3
"""Convert an image list to HDF5 shards and a source list for Caffe's HDF5Data layer.

A thin wrapper of `caffe-layers-convert-hdf5` (caffe_layers.tools.convert_hdf5)
that also runs from a clone without installing the package; see `--help`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.tools.convert_hdf5 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
