#!/usr/bin/env python3
"""Measure whether data loading keeps up with the net, and from how many workers.

A thin wrapper of `caffe-layers-bench` (caffe_layers.tools.bench)
that also runs from a clone without installing the package; see `--help`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.tools.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
