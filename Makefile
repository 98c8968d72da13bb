# jdl: `make run` trains the default experiment; `make test` runs the whole suite.
# Both set themselves up from nothing (a virtualenv in .venv with jdl installed editable).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.jdl-installed
TPU_STAMP   := $(VENV)/.jdl-tpu-installed
BENCH_STAMP := $(VENV)/.jdl-bench-installed
RUN_DIR ?= runs/keras_regression/$(shell date +%Y%m%d-%H%M%S)
PYTEST_WORKERS ?= 2

.PHONY: install data test test-integration run bench figures lint clean ext

$(STAMP): pyproject.toml
	@# The FunSearch sandbox's seccomp filter needs the libseccomp library (Debian: libseccomp2).
	ldconfig -p | grep -q libseccomp.so.2 || (apt-get update && apt-get install -y libseccomp2)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# setuptools >= 77 reads pyproject's SPDX licence (the wheel test builds without isolation).
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=77'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# The offline data sets the experiments use (see jdl/data/install.py); safe to run again. For
# `make run` only the MLP's data is required: another missing data set is a warning there.
data: install
	$(BIN)/python -m jdl.data.install $(DATA_NEED)

# The core suite compiles training steps for TPU slices on this CPU (`jdl compile`: the tpu
# extra, libtpu) and runs gs:// workdirs against a local Cloud Storage emulator (the tpu extra's
# gcsfs and google-cloud-storage, the dev extra's gcp-storage-emulator). The style check runs
# first (seconds); the slowest tests are listed at the end. pytest exits 5 when it collects
# nothing, which fails the target like any other failure.
test: $(TPU_STAMP) data lint
	JAX_PLATFORMS=cpu $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --durations=25 -m 'not integration' tests

# The second tier: parity with the peers (PyTorch, Keras, gensim: the bench extra), the browser
# check of the figure gallery, storage-emulator soaks, the TPU recipes on mock data.
test-integration: $(BENCH_STAMP) data
	@# The gallery's browser check drives Debian's Chromium (no downloaded browser).
	command -v chromium > /dev/null || (apt-get update && apt-get install -y chromium)
	JAX_PLATFORMS=cpu $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --durations=15 -m integration tests

# The lecture's Keras MLP (and sklearn's MLPRegressor beside it), on CPU, in seconds.
run: DATA_NEED := --need experiments/mlp
run: install data
	$(BIN)/jdl train --config experiments/mlp/keras_regression.py:sklearn --workdir $(RUN_DIR)

$(TPU_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,tpu]'
	touch $@

$(BENCH_STAMP): $(TPU_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,tpu]'
	touch $@

bench: $(BENCH_STAMP) data
	$(BIN)/jdl bench mlp
	$(BIN)/jdl bench cnn
	$(BIN)/jdl bench gpt
	$(BIN)/jdl bench lstm
	$(BIN)/jdl bench transformer

# The LSTM kernels for XLA:CPU (jdl/models/lstm_ffi: lstm.cc on scipy-openblas32, lstm_onednn.cc
# on oneDNN; g++), built ahead into jdl's cache; otherwise each is built on its first use.
ext: install
	$(BIN)/python -c "from jdl.models import lstm_ffi; from jdl.models.lstm_ffi import onednn; print(lstm_ffi.build()); print(onednn.available() or onednn.unavailable_reason())"

figures: install data
	$(BIN)/jdl figures

lint: install
	$(BIN)/ruff format --check jdl tests experiments
	$(BIN)/ruff check jdl tests experiments

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .jax_cache
