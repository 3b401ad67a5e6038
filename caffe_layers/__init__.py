"""Python data layers for Caffe that keep the GPU fed from datasets far larger than memory.

Layers live in :mod:`caffe_layers.layers` (they get ``caffe`` from :mod:`caffe_layers.pycaffe`);
the prefetch engine in :mod:`caffe_layers.prefetch`; a faithful fake of ``caffe`` and a prototxt
runner in :mod:`caffe_layers.testing`. Importing this package imports neither caffe, cv2, h5py
nor lmdb.
"""

__version__ = "0.1.0.dev0"
