#!/usr/bin/env python3
"""Compute a Caffe mean file (.binaryproto) and per-channel mean values from an image list.

A thin wrapper of `caffe-layers-compute-mean` (caffe_layers.tools.compute_mean)
that also runs from a clone without installing the package; see `--help`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.tools.compute_mean import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
