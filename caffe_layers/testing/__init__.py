"""Test helpers shipped with the package: a faithful fake ``caffe`` and a prototxt runner.

``install_fake_caffe()`` makes ``import caffe`` give real Caffe when it is usable, else the fake
(see :mod:`caffe_layers.pycaffe` for the rules), so that layer modules and tests can begin with a
plain ``import caffe``. Importing this package is cheap: the fake (and numpy) are imported only
when one of these functions is called.
"""

from __future__ import annotations

from types import ModuleType

from caffe_layers.pycaffe import FAKE_ENV, import_caffe, install_fake

__all__ = ["FAKE_ENV", "import_caffe", "install_fake_caffe"]


def install_fake_caffe(force: bool = False) -> ModuleType:
    """Make ``import caffe`` give the fake unless real Caffe is usable (or ``force``).

    Returns the ``caffe`` module now in use.
    """
    return install_fake(force)
