"""Command-line tools, Caffe's ``convert_imageset``/``compute_image_mean`` for our formats.

One module per tool, each with ``main(argv=None) -> int`` (installed as a console script)::

    caffe-layers-make-list      make_list       folder tree (one subfolder per class) -> lists
    caffe-layers-check-list     check_list      image list -> every bad line and image, per class
    caffe-layers-compute-mean   compute_mean    image list -> mean .binaryproto + mean values
    caffe-layers-convert-hdf5   convert_hdf5    image list -> HDF5 shards + HDF5Data source list
    caffe-layers-convert-db     convert_db      image list -> LMDB/LevelDB of Datums (Data layer)
    caffe-layers-preview        preview         one batch of a data layer -> PNG grid
    caffe-layers-bench          bench           does data loading keep up with the net?
    caffe-layers-demo           demo            synthetic dataset, training run, preview

Errors print ``caffe-layers-<tool>: error: <what, where, how to fix>`` and return 2 for bad
arguments or configuration, 1 for bad data; never a traceback for bad input. Long loops show a
progress bar on stderr when it is a terminal (see :mod:`caffe_layers.tools.progress`).
Importing this package imports nothing heavy.
"""
