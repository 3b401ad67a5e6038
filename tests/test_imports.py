"""Importing the package stays light: caffe, cv2 and h5py load only where they are used."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("caffe", "cv2", "h5py")


def imported_after(statement):
    code = f"import sys\n{statement}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=True)
    return result.stdout.strip()


def test_the_package_and_its_machinery_import_none_of_caffe_cv2_h5py():
    modules = ("caffe_layers", "caffe_layers.config", "caffe_layers.params",
               "caffe_layers.sampling", "caffe_layers.prefetch", "caffe_layers.pipeline",
               "caffe_layers.errors", "caffe_layers.testing")
    assert imported_after("\n".join(f"import {m}" for m in modules)) == "[]"


def test_the_layers_module_imports_caffe_but_no_data_library():
    assert imported_after("import caffe_layers.layers") == "['caffe']"
