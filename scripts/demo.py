#!/usr/bin/env python3
"""The demo: synthetic dataset, a training run, a preview (the README's first command).

A thin wrapper of `caffe-layers-demo` (caffe_layers.tools.demo)
that also runs from a clone without installing the package; see `--help`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.tools.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
