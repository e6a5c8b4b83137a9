# The two commands a fresh machine needs (README): `make demo` and `make test`.
# Each one builds its own virtualenv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD := build
export RUNCTL_SANDBOX_DIR ?= $(CURDIR)/$(BUILD)/sandbox
# nbval always gets its own sandbox folder, whatever RUNCTL_SANDBOX_DIR the developer has set: the
# notebooks print the folder, and tests/nbval_sanitize.cfg [sandbox-folder] only recognises a path
# containing "sandbox" (and no spaces or parentheses).
NBVAL_SANDBOX_DIR := $(CURDIR)/$(BUILD)/nbval-sandbox
NBVAL := $(PY) -m pytest -q -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks
# The same notebooks on another day, in another timezone: what they show must come from the sandbox's
# frozen clock, never the machine's. A relative faketime offset keeps the runner, the kernel, the
# sandbox and the instances' scripts on one clock (an absolute @date would stop time.sleep).
SHIFTED_CLOCK := TZ=Pacific/Chatham faketime -f '+400d'
# Tools installed in the venv (shellcheck, jupyter) are found by the tests.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# tests/ runs on xdist workers: most tests wait on the sandbox (its delays, its instances' commands), so
# more workers than cores pay (BENCHMARKS.md, "Test suite"). A file's tests stay on one worker (--dist
# loadfile): a module-scoped fixture (a sandbox, a prepared instance) is set up once. nbval is the
# plugin of the notebooks' runs below, not of tests/ (-p no:nbval: each worker starts sooner).
PYTEST_WORKERS ?= 4
TESTS := $(PY) -m pytest -q -p no:cacheprovider -p no:nbval -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: demo test test-fast soak bench lint clean venv test-deps aws-smoke guides

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# Main job: execute the quickstart notebook headlessly against the embedded sandbox.
demo: venv
	mkdir -p $(BUILD)
	$(PY) -m runctl_jupyter.demo notebooks/quickstart.ipynb --output-dir $(BUILD)

# Re-execute the stored guides against a fresh sandbox (build/nbval-sandbox) and store them clean.
guides: venv
	$(PY) scripts/regenerate_guides.py

# Whole suite: lint, unit, sandbox integration, notebooks (nbval), browser (Playwright + chromium).
test: venv test-deps lint
	$(TESTS) tests
	RUNCTL_SANDBOX_DIR="$(NBVAL_SANDBOX_DIR)" $(NBVAL)
	RUNCTL_SANDBOX_DIR="$(NBVAL_SANDBOX_DIR)-shifted" $(SHIFTED_CLOCK) $(NBVAL)

test-fast: venv
	$(TESTS) -x tests --ignore=tests/browser

# The 1,000-example runs take longer than pytest's per-test limit (300 s): no limit here.
soak: venv
	RUNCTL_SOAK_EXAMPLES=1000 $(PY) -m pytest -q --timeout=0 -m "soak or not soak" tests

bench: venv
	$(PY) -m benchmarks

# Opt-in, on YOUR account (never in `make test`): RUNCTL_SMOKE_ACCOUNT=yes RUNCTL_BUCKET=… make aws-smoke
aws-smoke: venv
	bash scripts/aws-smoke.sh

# Debian's chromium (browser test) and faketime (notebooks on another date), installed when missing.
test-deps:
	bash scripts/ensure-debian-packages.sh chromium chromium fonts-dejavu-core
	bash scripts/ensure-debian-packages.sh faketime faketime

# Style, types (mypy, pyproject [tool.mypy]) and the layer rules (import-linter, [tool.importlinter]).
lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(BUILD) .pytest_cache
