"""Test helpers shipped with the package: a faithful fake ``caffe`` and a prototxt runner."""
