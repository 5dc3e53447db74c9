# The two commands of the README's quick start: `make demo` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
QUESTION ?= Who was elected mayor of Greyholm?
PORT ?= 7860
export HF_HUB_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup demo ask test lint bench train-reader calibrate-reader train-term-selector

setup:
	@bash scripts/setup.sh

# Index the sample articles, then serve the chat at http://127.0.0.1:$(PORT)/ (Ctrl-C stops).
demo: setup
	$(BIN)/articleqa index samples/articles -q
	$(BIN)/articleqa chat --port $(PORT)

# The terminal version: index the samples and answer one question.
ask: setup
	$(BIN)/articleqa index samples/articles -q
	$(BIN)/articleqa ask "$(QUESTION)" -k 3

test: setup
	$(BIN)/ruff check qa embeddings ui tests benchmarks scripts
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/ingest_throughput.py

# How the shipped reader (qa/models/reader/) was trained and calibrated; never run in CI.
# Two stages, each resumable (run it again to continue from its last checkpoint): v1 from the
# packaged MiniLM, then v2 from v1's weights, with a new data order and negatives (seed 14) and a
# second, lower learning-rate cycle. Ship: copy artifacts/reader-v2/final/ into
# qa/models/reader/, then `make calibrate-reader`.
DATA := ../shared/data
READER_DATA := $(DATA)/reader-train/squad-v1.1-train.json.gz \
	$(DATA)/reader-train/tydiqa-goldp-en-train.json.gz \
	--dev $(DATA)/reader-train/tydiqa-goldp-en-dev.json.gz
train-reader: setup
	nice -n 19 $(BIN)/articleqa train-reader $(READER_DATA) \
		--out artifacts/reader-v1 --max-steps 3000 --checkpoint-minutes 12
	nice -n 19 $(BIN)/articleqa train-reader $(READER_DATA) --init artifacts/reader-v1/final \
		--out artifacts/reader-v2 --seed 14 --lr 7e-5 --max-steps 2200 --checkpoint-minutes 10

calibrate-reader: setup
	$(BIN)/articleqa calibrate-reader $(DATA)/squad2-dev-500/squad2-dev-500.json \
		--exclude $(DATA)/xquad-en/xquad.en.json

# The follow-up term selector (qa/models/term-selector/): fitted on CANARD dev in ~30 s, with
# folds held out by dialogue for its reported figures; never run in CI.
train-term-selector: setup
	$(BIN)/articleqa train-term-selector $(DATA)/conversations/canard_dev.jsonl \
		--out qa/models/term-selector
