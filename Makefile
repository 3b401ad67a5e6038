# The README's two commands (`make demo`, `make test`), and the real-Caffe tests. Each builds its
# virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
BIN := $(VENV)/bin
# make test-real: the tests marked real_caffe, under the Python Caffe embeds (its numpy, OpenCV
# and h5py come from that Python's site-packages; pip never installs them here).
CAFFE_ROOT ?=
CAFFE_PYTHON ?= /usr/bin/python3
CAFFE_VENV ?= .venv-caffe
CAFFE_BIN := $(CAFFE_VENV)/bin

.PHONY: demo test test-real

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python -m caffe_layers demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(CAFFE_BIN)/python:
	$(CAFFE_PYTHON) -m venv --system-site-packages $(CAFFE_VENV)

# The package without its dependencies (numpy, OpenCV, h5py, PyYAML are that Python's own), then
# lmdb and plyvel (DBDataLayer's databases), fsspec, aiohttp and s3fs (files at URLs), moto (the
# tests' S3 server) and the test tools; none of them needs numpy.
$(CAFFE_VENV)/.installed: pyproject.toml setup.py | $(CAFFE_BIN)/python
	$(CAFFE_BIN)/python -m pip install -q --no-deps -e .
	$(CAFFE_BIN)/python -m pip install -q 'lmdb>=1.0' 'plyvel>=1.3' 'fsspec>=2021.4.0' \
	  'aiohttp>=3.7' 's3fs>=2021.4.0' 'moto[server]>=5' 'pytest>=7' 'pytest-timeout>=2' \
	  'hypothesis>=6'
	touch $@

# The development venv (numpy 2) comes too: the tests of a pycaffe that cannot load use it.
test-real: $(CAFFE_VENV)/.installed $(VENV)/.installed
	@test -x "$(CAFFE_ROOT)/build/tools/caffe" || { echo "make test-real: set CAFFE_ROOT to a" \
	  "built Caffe tree (with build/tools/caffe and python/caffe), e.g." \
	  "CAFFE_ROOT=\$$(../shared/caffe/build.sh | tail -n 1) make test-real" >&2; exit 2; }
	CAFFE_ROOT="$(abspath $(CAFFE_ROOT))" PYTHONPATH="$(abspath $(CAFFE_ROOT))/python" \
	  CAFFE_LAYERS_DEV_PYTHON="$(abspath $(BIN))/python" \
	  $(CAFFE_BIN)/python -m pytest -m real_caffe $(PYTEST_ARGS)
