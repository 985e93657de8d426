# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates (or reuses) the virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-float32 docs benchmark clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,photos]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/digits_demo.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# The tests marked `numerics` as on a CPU without native bfloat16: float32 only, torch and oneDNN held to AVX2.
test-float32: $(VENV)/.installed
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 SKLEARN_SCAN_CPU_BFLOAT16=0 $(BIN)/python -m pytest -m numerics

# The documentation site, warnings treated as errors: docs/_build/html/index.html.
$(VENV)/.docs-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,photos,docs]'
	touch $@

docs: $(VENV)/.docs-installed
	rm -rf docs/_build docs/api docs/auto_examples
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

benchmark: $(VENV)/.installed
	$(BIN)/python benchmarks/defaults_cost.py --cases digits --seeds 0 1 2

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache docs/_build docs/api docs/auto_examples
