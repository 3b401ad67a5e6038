"""Reading the file a layer's ``source`` key names (an image list, a list of HDF5 files)."""

from __future__ import annotations

import os

from caffe_layers.errors import ConfigError


def read_source(path: str, what: str) -> bytes:
    """The bytes of ``source`` file ``path`` (``what`` it is, for messages); ConfigError if not."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(f"source: the {what} '{path}' does not exist (relative paths are "
                          f"resolved from the working directory '{os.getcwd()}')") from None
    except OSError as exc:
        raise ConfigError(f"source: cannot read the {what} '{path}': "
                          f"{exc.strerror or exc}") from None
