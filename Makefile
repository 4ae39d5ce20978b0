PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint fmt bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	./.ci/browser-deps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/anxin init --if-missing
	$(BIN)/anxin demo --if-empty
	$(BIN)/anxin summary
	$(BIN)/anxin serve --host 127.0.0.1 --port 8000

# One pytest worker per core, a file's tests together. A crashed worker is not replaced:
# pytest-xdist's loadfile scheduler can hang forever after a replacement (its issue 784),
# so a crash fails the run at once.
test: install
	$(BIN)/pytest -n auto --dist loadfile --max-worker-restart 0

lint: install
	$(BIN)/ruff check domain projections web anxin bench tests
	$(BIN)/ruff format --check domain projections web anxin bench tests
	$(BIN)/mypy domain projections anxin web bench

fmt: install
	$(BIN)/ruff format domain projections web anxin bench tests
	$(BIN)/ruff check --fix domain projections web anxin bench tests

# The benches live in bench/ (not packaged): run from here, where `bench` is importable.
bench: install
	$(BIN)/python -m bench.core
	$(BIN)/python -m bench.web
	$(BIN)/python -m bench.login
	$(BIN)/python -m bench.audit

clean:
	rm -rf $(VENV) var
