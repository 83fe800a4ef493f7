#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: set up, lint, type-check, test.
# Extra arguments go to pytest (e.g. ./scripts/test.sh -m "not slow" for a quicker local run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --dev
export STORE_AGENT_DATA="${STORE_AGENT_DATA:-$(cd .. && pwd)/shared/data}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
