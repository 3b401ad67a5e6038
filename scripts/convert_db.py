#!/usr/bin/env python3
"""Convert an image list to an LMDB or LevelDB of Caffe Datums, as convert_imageset does.

A thin wrapper of `caffe-layers-convert-db` (caffe_layers.tools.convert_db)
that also runs from a clone without installing the package; see `--help`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.tools.convert_db import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
