# The two commands:  make run  (set up, train the demo models, serve)   make test
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch. On a GPU machine, pass a CUDA build, e.g. make setup TORCH="torch==2.13.0"
# with pip pointed at PyTorch's CUDA index (see docs/configuration.md, "GPU installs").
TORCH ?= torch==2.13.0
MODELS := artifacts/tabular.ubj artifacts/heavy.pt artifacts/schema.json artifacts/tokenizer.json

.PHONY: setup redis models run test lint docs reference bench bench-report bench-latency bench-stream bench-faults soak profile clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml client/pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ./client -e '.[dev]'
	touch $@

# A Redis server for the ticket journal's Redis backend and its tests: Debian's package
# (apt-get, as root). Tests that need it are skipped where none is installed.
redis:
	@command -v redis-server >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)

models: $(MODELS)

# Retrained when the demo's code changes; order-only on the venv: changing dependencies
# must not retrain the models.
$(MODELS) &: demo/data.py demo/net.py demo/train.py | $(VENV)/.installed
	$(BIN)/python -m demo.train --out artifacts

# Serve's HAProxy ingress; PROXY=python for Serve's Python proxy instead.
PROXY ?= haproxy

run: setup models
	$(BIN)/python -m ops.serve_local configs/local.yaml --proxy $(PROXY)

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The docs' tables of contents and figures, made again from their headings and from the
# reference run (benchmarks/reference/).
docs: setup
	$(BIN)/python -m tools.docs

# The last runs' results as the reference run: after make bench, bench-faults, soak,
# bench-latency, bench-stream and profile (docs/benchmarks.md, "The reference run").
REFERENCE := benchmarks/reference
reference:
	rm -rf $(REFERENCE) && mkdir -p $(REFERENCE)/bench
	cd results/bench && cp --parents */*.json ../../$(REFERENCE)/bench/
	cp results/fault_injection.json results/chaos_soak.json results/stage_one_latency.json \
	   results/stream_latency.json results/ingress_profile.json $(REFERENCE)/
	cp artifacts/metrics.json $(REFERENCE)/demo_models.json
	cp results/autoscaling.png docs/autoscaling.png

# Every part of the benchmark (about 25 min), or those named: make bench PARTS="sequential cpu".
# Each part's figures are saved as it ends (results/bench/); bench-report remakes the report.
PARTS ?=
bench: setup models redis
	$(BIN)/python -m benchmarks.bench $(if $(PARTS),--parts "$(PARTS)")

bench-report: setup
	$(BIN)/python -m benchmarks.bench --report

bench-latency: setup models
	$(BIN)/python -m benchmarks.stage_one_latency

bench-stream: setup models
	$(BIN)/python -m benchmarks.stream_latency

bench-faults: setup models redis
	$(BIN)/python -m benchmarks.fault_injection

# Ten minutes of load while a random replica dies every 30 s (journal on Redis).
soak: setup models redis
	$(BIN)/python -m benchmarks.chaos_soak

profile: setup models
	$(BIN)/python -m benchmarks.profile_ingress

clean:
	rm -rf artifacts results
