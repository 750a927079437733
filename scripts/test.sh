#!/usr/bin/env bash
# Set up and run the whole test suite (unit, contract, quality-on-real-data and CLI tests).
# Tests that need ../shared/data skip with a reason when it is absent, except under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# pytest exits 5 when it collects nothing: set -e turns that into a failure, as it should.
.venv/bin/python -m pytest "$@"
