#!/usr/bin/env python3
"""Make Caffe image lists (train/val/labels) from a folder with one subfolder per class.

A thin wrapper of `caffe-layers-make-list` (caffe_layers.tools.make_list)
that also runs from a clone without installing the package; see `--help`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.tools.make_list import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
