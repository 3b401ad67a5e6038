#!/usr/bin/env python3
"""Save one batch of a data layer, as the net receives it, as a PNG grid.

A thin wrapper of `caffe-layers-preview` (caffe_layers.tools.preview)
that also runs from a clone without installing the package; see `--help`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.tools.preview import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
