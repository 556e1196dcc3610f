#!/usr/bin/env bash
# The test command: installs what the tests need (the Go modules, and the
# Python environment of the PyTorch engine through scripts/pyenv.sh), then runs
# the Go tests and the Python tests. Extra arguments go to `go test`.
#
#   scripts/test.sh                  # what .ci/run runs (with VLORA_QUALITY=1)
#   VLORA_QUALITY=1 scripts/test.sh  # with the long quality bars
set -euo pipefail
cd "$(dirname "$0")/.."
go mod download
scripts/pyenv.sh
go test -timeout 45m "$@" ./...
PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH} .venv/bin/python -m pytest -q python/tests
