# Every target that runs wflwv installs it first; `setup` is idempotent and fast the second time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN ?= runs/demo
STUDY ?= runs/study


setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Debian packages the tests need (headless Chromium renders the report); installs only what is missing, as root.
system-deps:
	@command -v chromium >/dev/null || { \
		[ "$$(id -u)" = 0 ] || { echo "system-deps: chromium is missing; run 'make system-deps' as root" >&2; exit 1; }; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

demo: setup
	$(BIN)/wflwv synth --out $(RUN)/data --preset demo
	$(BIN)/wflwv train --data $(RUN)/data/stills --config ldeq_demo --out $(RUN)/ldeq
	$(BIN)/wflwv train --data $(RUN)/data/stills --config hrnet_demo --out $(RUN)/hrnet
	$(BIN)/wflwv bench --model $(RUN)/ldeq/checkpoint.pth.tar --model $(RUN)/hrnet/checkpoint.pth.tar --stills $(RUN)/data/stills --videos $(RUN)/data/videos --out $(RUN)/bench
	$(BIN)/wflwv report $(RUN)/bench

# Every demo model trained from seeds 0, 1 and 2 and benchmarked: leaderboards as mean ± sd over seeds, RwR's effect per seed.
study: setup
	$(BIN)/wflwv synth --out $(RUN)/data --preset demo
	$(BIN)/wflwv study --world $(RUN)/data --out $(STUDY)

# WFLW-V built end to end on the synthetic world (scraped over loopback), then benchmarked.
pipeline: setup
	$(BIN)/wflwv run pipelines/demo.toml

# The full reproduction on real data: needs YouTube, WFLW at data/WFLW and GPUs (pipelines/wflwv.toml).
reproduce: setup
	$(BIN)/wflwv run pipelines/wflwv.toml --device cuda

test: setup system-deps
	$(BIN)/python -m pytest -q

# The performance suite on CPU (under 10 minutes): prints every table and writes benchmarks/RESULTS.md.
bench-perf: setup
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

clean:
	rm -rf runs
