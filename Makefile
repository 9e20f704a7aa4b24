# Every target that runs wflwv installs it first; `setup` is idempotent and fast the second time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN ?= runs/demo

.PHONY: setup demo test bench-perf clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/wflwv synth --out $(RUN)/data --preset demo
	$(BIN)/wflwv train --data $(RUN)/data/stills --config ldeq_demo --out $(RUN)/ldeq
	$(BIN)/wflwv bench --videos $(RUN)/data/videos --model $(RUN)/ldeq/checkpoint.pth.tar --out $(RUN)/bench

test: setup
	$(BIN)/python -m pytest -q

# The performance suite on CPU (under 10 minutes): prints every table and writes benchmarks/RESULTS.md.
bench-perf: setup
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

clean:
	rm -rf runs
