#!/usr/bin/env python3
"""Report every malformed line and bad image of an image list in one pass.

A thin wrapper of `caffe-layers-check-list` (caffe_layers.tools.check_list)
that also runs from a clone without installing the package; see `--help`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.tools.check_list import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
