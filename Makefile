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

test: install
	$(BIN)/pytest -n auto --dist loadfile

lint: install
	$(BIN)/ruff check domain projections web anxin tests
	$(BIN)/mypy domain

fmt: install
	$(BIN)/ruff format domain projections web anxin tests
	$(BIN)/ruff check --fix domain projections web anxin tests

bench: install
	$(BIN)/python -m anxin.bench
	$(BIN)/python -m anxin.bench_web

clean:
	rm -rf $(VENV) var
