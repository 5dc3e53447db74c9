# The two commands of the README's quick start: `make demo` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
QUESTION ?= Who scored the winning goal in the Northern Shield final?

.PHONY: setup demo test lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/articleqa index samples/articles
	$(BIN)/articleqa ask "$(QUESTION)" -k 3

test: setup
	$(BIN)/ruff check qa embeddings tests benchmarks
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/ingest_throughput.py
