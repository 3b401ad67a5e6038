"""``python -m caffe_layers <tool> [arguments]``: the command-line tools without console scripts.

``python -m caffe_layers demo`` is ``caffe-layers-demo``, and so on for every tool.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

TOOLS = {"demo": "demo", "make-list": "make_list", "compute-mean": "compute_mean",
         "convert-hdf5": "convert_hdf5", "convert-db": "convert_db", "preview": "preview",
         "bench": "bench", "check-list": "check_list"}
USAGE = ("usage: python -m caffe_layers {" + ",".join(TOOLS) + "} [arguments]\n"
         "  each tool's --help describes it; installed, they are also the console scripts "
         "caffe-layers-<tool>\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool named by the first argument; its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(USAGE)
        return 0 if argv else 2
    if argv[0] not in TOOLS:
        sys.stderr.write(USAGE + f"python -m caffe_layers: error: unknown tool '{argv[0]}'; "
                                 f"choose one of {', '.join(TOOLS)}\n")
        return 2
    tool = importlib.import_module(f"caffe_layers.tools.{TOOLS[argv[0]]}")
    return tool.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
