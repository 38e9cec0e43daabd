#!/usr/bin/env bash
# `serve run configs/local.yaml` as a newcomer runs it, trained models and all: healthy,
# stage one answers, every ticket resolves to stage two. The benchmark starts and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
make models
.venv/bin/python -m benchmarks.stage_one_latency --requests 20 --out results/ci_smoke.json
