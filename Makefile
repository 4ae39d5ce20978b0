PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install dev browser-deps run test lint fmt bench clean

# What running needs: the package and its dependencies in ./.venv (no root, no apt, no browser).
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

# What testing, linting and the benches need besides: the `dev` extras (still no root).
dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

run: install
	$(BIN)/anxin init --if-missing
	$(BIN)/anxin demo --if-empty
	$(BIN)/anxin summary
	$(BIN)/anxin serve --host 127.0.0.1 --port 8000

# What the browser tests need besides: Debian's Chromium and a CJK font (apt-get, as root or
# through sudo, only when missing). Only `make test` asks for it.
browser-deps:
	./.ci/browser-deps

# One pytest worker per core, a file's tests together. A crashed worker is not replaced:
# pytest-xdist's loadfile scheduler can hang forever after a replacement (its issue 784),
# so a crash fails the run at once.
test: dev browser-deps
	$(BIN)/pytest -n auto --dist loadfile --max-worker-restart 0

lint: dev
	$(BIN)/ruff check domain projections web anxin bench tests
	$(BIN)/ruff format --check domain projections web anxin bench tests
	$(BIN)/mypy domain projections anxin web bench

fmt: dev
	$(BIN)/ruff format domain projections web anxin bench tests
	$(BIN)/ruff check --fix domain projections web anxin bench tests

# The benches live in bench/ (not packaged): run from here, where `bench` is importable.
bench: dev
	$(BIN)/python -m bench.core
	$(BIN)/python -m bench.web
	$(BIN)/python -m bench.login
	$(BIN)/python -m bench.audit

clean:
	rm -rf $(VENV) var
