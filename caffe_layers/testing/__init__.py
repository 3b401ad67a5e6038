"""Test helpers shipped with the package: a faithful fake ``caffe`` and a prototxt runner.

``import_caffe()`` returns real Caffe when it is installed, else installs the fake as
``sys.modules['caffe']``; ``install_fake_caffe()`` does the same at a test suite's start so that
layer modules can begin with a plain ``import caffe``. Importing this package is cheap: the fake
(and numpy) are imported only when one of these functions is called.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

__all__ = ["import_caffe", "install_fake_caffe"]

FAKE_ENV = "CAFFE_LAYERS_FAKE_CAFFE"
_FAKE_NAME = "caffe_layers.testing.fake_caffe"
_placeholder_noted = False


def _fake() -> ModuleType:
    return importlib.import_module(_FAKE_NAME)


def _use_fake() -> ModuleType:
    fake = _fake()
    sys.modules["caffe"] = fake
    return fake


def _note_placeholder(module: ModuleType) -> None:
    global _placeholder_noted
    if not _placeholder_noted:
        _placeholder_noted = True
        where = getattr(module, "__file__", None) or "?"
        print(f"caffe_layers.testing: the 'caffe' module at {where} has no Layer class (the "
              f"empty PyPI placeholder 'caffe'?); using caffe_layers' fake caffe instead",
              file=sys.stderr)


def import_caffe() -> ModuleType:
    """Real Caffe if ``import caffe`` finds one with ``Layer``, else the fake (installed once).

    The fake is used when no ``caffe`` module exists, when the one found has no ``Layer`` (the
    PyPI placeholder; said once on stderr), or when ``CAFFE_LAYERS_FAKE_CAFFE=1``. A real Caffe
    whose import fails for another reason (a broken build) raises that error.
    """
    current = sys.modules.get("caffe")
    if os.environ.get(FAKE_ENV) == "1" or (current is not None
                                            and current is sys.modules.get(_FAKE_NAME)):
        return _use_fake()
    try:
        module = importlib.import_module("caffe")
    except ModuleNotFoundError as exc:
        if exc.name != "caffe":
            raise
        return _use_fake()
    if not hasattr(module, "Layer"):
        _note_placeholder(module)
        return _use_fake()
    return module


def install_fake_caffe(force: bool = False) -> ModuleType:
    """Make ``import caffe`` give the fake unless real Caffe is importable (or ``force``).

    Returns the ``caffe`` module now in use.
    """
    return _use_fake() if force else import_caffe()
