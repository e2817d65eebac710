# mlconvert: `make demo` and `make test` each set up .venv from pinned versions first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: setup test test-fast demo fixtures bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e ".[classic,tf,coreml,pmml,dev]"
	# The onnx2tf extra without dependencies: tf-keras would pull a second TensorFlow (pyproject.toml).
	$(PIP) install -q -c constraints.txt --no-deps onnx2tf tf-keras onnx-graphsurgeon sng4onnx ai-edge-litert \
		backports.strenum psutil
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not realworld"

demo: setup
	@mkdir -p out
	$(BIN)/mlconvert inspect fixtures/sklearn_rf_iris.pkl
	$(BIN)/mlconvert plan fixtures/lgbm_classifier_iris.pkl out/lgbm_iris.onnx --explain
	$(BIN)/mlconvert fixtures/sklearn_rf_iris.pkl out/rf_iris.onnx
	$(BIN)/mlconvert fixtures/lgbm_regressor_diabetes.txt out/lgbm_diabetes.onnx
	$(BIN)/mlconvert fixtures/xgb_regressor_diabetes.ubj out/xgb_diabetes.pkl
	$(BIN)/mlconvert fixtures/catboost_classifier_iris.pkl out/catboost_iris.onnx
	$(BIN)/mlconvert fixtures/keras_dense_iris.keras out/keras_iris.onnx
	$(BIN)/mlconvert inspect out/rf_iris.onnx
	$(BIN)/mlconvert batch fixtures --include '*.pkl' --include '*.txt' --to onnx --out out/batch --markdown out/batch-summary.md

fixtures: setup
	$(BIN)/python fixtures/make_fixtures.py

bench: setup
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) out .pytest_cache
