# Two commands on a fresh clone: `make tour` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGE_FILES := pyproject.toml requirements-dev.txt constraints-dev.txt $(wildcard packages/*/pyproject.toml)

.PHONY: tour test test-slow peer-tests lint wheels-check docs ci clean

$(STAMP): $(PACKAGE_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## tour: every installed headline experiment, measured beside its prediction
tour: $(STAMP)
	$(BIN)/noisygrad tour --out report

## test: the default test suite (slow tests excluded; `make test-slow` runs them)
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q --durations=40

## peer-tests: the peers' own test suites (qiskit-algorithms 0.4.0 from its sdist) against our components
peer-tests: $(STAMP)
	bash .ci/peer-tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy packages/core/src/noisygrad
	for plugin in pinn quantum dsp bio; do $(BIN)/mypy packages/$$plugin/src/noisygrad/$$plugin || exit 1; done

## wheels-check: build every wheel, install noisygrad[quantum] from them into a fresh venv, import it
wheels-check: $(STAMP)
	bash .ci/wheels-check

## docs: Sphinx HTML in docs/_build/html (API reference, and the gallery running examples/); warnings fail
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

ci: lint test test-slow peer-tests wheels-check docs install-check

clean:
	rm -rf $(VENV) dist build report docs/_build docs/api docs/auto_examples docs/_gallery_src

.PHONY: install-check docs-browser mutation

## install-check: each documented install command in a fresh venv, then that README's examples there; twine check
install-check: $(STAMP)
	bash .ci/install-check

## docs-browser: `make docs`'s pages in headless Chromium (.ci/docs-browser-setup installs it); screenshots kept
docs-browser: $(STAMP)
	NOISYGRAD_DOCS_HTML=docs/_build/html NOISYGRAD_DOCS_SCREENSHOTS=docs/_build/screenshots \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_docs_browser.py

## mutation: every mutant of the targets in .ci/mutation.toml (long); CI runs a seeded sample (.ci/mutation-check)
mutation: $(STAMP)
	$(BIN)/python tools/mutation.py --config .ci/mutation.toml --jobs 2
